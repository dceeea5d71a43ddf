"""The S3 side: one-time presigned export downloads and the presigned-POST upload bucket.

Never subject to `fail_rate` (that models the API); it has its own faults: truncated bodies
and slow responses.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from email.utils import formatdate

from fastapi import APIRouter, Request
from fastapi.responses import Response
from starlette.types import Receive, Scope, Send

from sandbox.encoura.errors import S3Error
from sandbox.encoura.state import SandboxState
from sandbox.encoura.uploads import UPLOAD_BUCKET
from sandbox.multipart import MultipartError, parse_form

CHUNK = 64 * 1024
_TRUNCATION_LOG = "ASGI callable returned without completing response."


class _ExpectedTruncation(logging.Filter):
    """uvicorn logs an ERROR when a response stops short; for a truncation we injected, that is noise."""

    def filter(self, record: logging.LogRecord) -> bool:
        return record.getMessage() != _TRUNCATION_LOG


def quiet_truncation_errors() -> None:
    logger = logging.getLogger("uvicorn.error")
    if not any(isinstance(f, _ExpectedTruncation) for f in logger.filters):
        logger.addFilter(_ExpectedTruncation())


class ObjectResponse(Response):
    """Streams an object with its full Content-Length; if `truncate`, stops halfway and drops the connection.

    Returning from an ASGI app before the body is complete makes uvicorn close the socket, which is
    what a client sees when S3 or the network drops a download.
    """

    def __init__(
        self, data: bytes, *, etag: str, truncate: bool, chunk_delay: float, on_abort: Callable[[], None]
    ) -> None:
        super().__init__(status_code=200)
        self.data = data
        self.etag = etag
        self.on_abort = on_abort
        self.truncate = truncate
        self.chunk_delay = chunk_delay

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        data = memoryview(self.data)
        headers = [
            (b"content-length", str(len(data)).encode()),
            (b"content-type", b"binary/octet-stream"),
            (b"etag", self.etag.encode()),
            (b"last-modified", formatdate(usegmt=True).encode()),
            (b"accept-ranges", b"bytes"),
        ]
        # uvicorn drops sends after a disconnect silently, so watch for it: a client killed mid-download
        # must not leave a slow (chunk_delay) stream trickling into the void until shutdown.
        gone = asyncio.Event()

        async def watch() -> None:
            while (await receive())["type"] != "http.disconnect":
                pass
            gone.set()

        watcher = asyncio.create_task(watch())
        try:
            await send({"type": "http.response.start", "status": 200, "headers": headers})
            limit = len(data) // 2 if self.truncate else len(data)
            for start in range(0, limit, CHUNK):
                if start and self.chunk_delay:
                    await asyncio.sleep(self.chunk_delay)
                if gone.is_set():
                    self.on_abort()
                    return
                chunk = bytes(data[start : min(start + CHUNK, limit)])
                await send({"type": "http.response.body", "body": chunk, "more_body": True})
            if not self.truncate:
                await send({"type": "http.response.body", "body": b"", "more_body": False})
        finally:
            watcher.cancel()


def s3_router(state: SandboxState) -> APIRouter:
    router = APIRouter(prefix="/_s3")

    async def pause() -> None:
        delay = state.draw_delay()
        if delay:
            await asyncio.sleep(delay)

    @router.get("/{bucket}/{key:path}")
    async def get_object(bucket: str, key: str, request: Request) -> Response:
        state.count("s3_get")
        state.reject_api_headers(dict(request.headers))
        await pause()
        record = state.redeem_download(
            bucket, key, request.query_params.get("Signature"), request.query_params.get("Expires")
        )
        truncate = len(record.content) > 1 and state.draw_truncate(record.uid)
        return ObjectResponse(
            record.content,
            etag=record.etag,
            truncate=truncate,
            chunk_delay=state.config.s3_chunk_delay_seconds,
            on_abort=lambda: state.note_s3_abort(record.uid),
        )

    @router.post(f"/{UPLOAD_BUCKET}")
    async def post_object(request: Request) -> Response:
        state.count("s3_upload")
        state.reject_api_headers(dict(request.headers))
        await pause()
        try:
            parts = parse_form(await request.body(), request.headers.get("content-type"))
        except MultipartError as exc:
            raise S3Error(400, "MalformedPOSTRequest", str(exc)) from None
        state.receive_upload(parts)
        return Response(status_code=204)

    return router
