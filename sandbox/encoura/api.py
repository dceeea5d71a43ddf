"""The /v1 Data Lab API as the real gateway answers it: API key, session token, Organization, faults.

Every route goes through `gate()` first, in the order the real stack applies them: count the
call, maybe stall, maybe fail (before any state changes, so an injected failure on the
download-URL endpoint never consumes anything), then check the API key, token and organization.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

from fastapi import APIRouter, Depends, Request
from fastapi.responses import JSONResponse, Response

from sandbox.encoura.errors import ApiError
from sandbox.encoura.exports import EXPORT_STATUSES
from sandbox.encoura.state import SandboxState
from sandbox.encoura.uploads import UPLOAD_BUCKET


@dataclass(frozen=True)
class Caller:
    token: str | None
    organization: str | None
    # With `fail_after_acting`, the fault drawn for this call, to be answered after the handler acted.
    late_fault: ApiError | None = None


def _gate(state: SandboxState, endpoint: str, *, session: bool, org: bool) -> Callable[[Request], Awaitable[Caller]]:
    async def gate(request: Request) -> Caller:
        state.count(endpoint)
        delay = state.draw_delay()
        if delay:
            await asyncio.sleep(delay)
        fault = state.draw_fault(endpoint)
        if fault is not None and not state.config.fail_after_acting:
            raise fault
        state.check_api_key(request.headers.get("x-api-key"))
        token = state.check_token(request.headers.get("authorization")) if session else None
        organization = state.check_organization(request.headers.get("organization")) if org else None
        return Caller(token, organization, late_fault=fault)

    return gate


async def _json_body(state: SandboxState, request: Request) -> dict[str, Any]:
    """Parse JSON whatever the Content-Type says: the official sample posts its login with none."""
    content_type = request.headers.get("content-type", "")
    if state.config.require_content_type and not content_type.lower().startswith("application/json"):
        raise ApiError(415, "Unsupported Media Type")
    try:
        body = json.loads(await request.body())
    except (ValueError, UnicodeDecodeError):
        raise ApiError(400, "Could not parse request body into json") from None
    if not isinstance(body, dict):
        raise ApiError(400, "Request body must be a JSON object")
    return body


_BAD_LISTINGS: dict[str, Callable[[], Response]] = {
    # A body cut off mid-entry, still labelled JSON.
    "malformed_json": lambda: Response('[{"uid": "5a4db0c5-0000-4', media_type="application/json"),
    # A proxy's maintenance page served with 200.
    "html_200": lambda: Response(
        "<html><head><title>Maintenance</title></head><body><h1>We'll be back soon</h1></body></html>",
        media_type="text/html",
    ),
    "non_list": lambda: JSONResponse({"message": "Exports are temporarily unavailable", "items": None}),
}


def api_router(state: SandboxState) -> APIRouter:
    router = APIRouter(prefix="/v1")

    def gate(endpoint: str, *, session: bool = True, org: bool = True) -> Any:
        return Depends(_gate(state, endpoint, session=session, org=org))

    @router.post("/login")
    async def login(request: Request, _: Caller = gate("login", session=False, org=False)) -> JSONResponse:
        state.note_login_attempt()
        return JSONResponse(state.login(await _json_body(state, request)))

    @router.get("/refresh-token")
    async def refresh_token(_: Caller = gate("refresh_token", org=False)) -> JSONResponse:
        return JSONResponse(state.refresh())

    @router.get("/datacenter/exports")
    async def list_exports(request: Request, caller: Caller = gate("list_exports")) -> Response:
        assert caller.organization is not None
        # Parameter names are case sensitive: `Status=...` is simply not the status filter.
        status = request.query_params.get("status")
        if status is not None and status not in EXPORT_STATUSES:
            raise ApiError(400, f"Invalid status '{status}'; expected one of: {', '.join(EXPORT_STATUSES)}")
        product_key = request.query_params.get("productKey")
        mode = state.config.listing_mode
        if mode == "empty":
            return JSONResponse([])
        if mode != "normal":
            if state.config.bad_listing_consumes:
                state.list_exports(caller.organization, status, product_key)
            return _BAD_LISTINGS[mode]()
        return JSONResponse(state.list_exports(caller.organization, status, product_key))

    @router.get("/datacenter/exports/{uid}/download")
    async def download_url(uid: str, caller: Caller = gate("download_url")) -> JSONResponse:
        assert caller.organization is not None
        record = state.export_for(caller.organization, uid)
        return JSONResponse({"downloadUrl": state.issue_download_url(record)})

    @router.post("/files/upload")
    async def create_upload(request: Request, caller: Caller = gate("upload_create")) -> JSONResponse:
        assert caller.organization is not None
        record = state.create_upload(caller.organization, await _json_body(state, request))
        if caller.late_fault is not None:
            raise caller.late_fault  # the record exists; the gateway's answer is lost
        return JSONResponse({"id": record.id, "url": f"{state.root_url}/_s3/{UPLOAD_BUCKET}", "fields": record.fields})

    @router.get("/files/{upload_id}")
    async def file_status(upload_id: str, caller: Caller = gate("file_status")) -> JSONResponse:
        assert caller.organization is not None
        return JSONResponse(state.poll_upload(caller.organization, upload_id))

    @router.api_route("/{path:path}", methods=["GET", "POST", "PUT", "PATCH", "DELETE"], include_in_schema=False)
    async def unknown_route(path: str) -> JSONResponse:
        # What API Gateway answers for a path it does not route, e.g. the docs' `/datacenter/<uid>/download`.
        state.count("unknown_route")
        return JSONResponse({"message": "Missing Authentication Token"}, status_code=403)

    return router
