"""Assemble the sandbox's ASGI app from its three faces: /v1 API, /_s3 storage, /_sandbox control."""

from __future__ import annotations

from fastapi import FastAPI, Request
from fastapi.responses import Response

from sandbox.encoura.admin import admin_router
from sandbox.encoura.api import api_router
from sandbox.encoura.errors import ApiError, S3Error
from sandbox.encoura.s3 import s3_router
from sandbox.encoura.state import SandboxState


def build_app(state: SandboxState) -> FastAPI:
    app = FastAPI(title="Encoura Data Lab API sandbox", docs_url=None, redoc_url=None, openapi_url=None)

    async def api_error(_: Request, exc: Exception) -> Response:
        assert isinstance(exc, ApiError)
        return exc.response()

    async def s3_error(_: Request, exc: Exception) -> Response:
        assert isinstance(exc, S3Error)
        state.note_s3_rejection(exc.code)
        return exc.response()

    app.add_exception_handler(ApiError, api_error)
    app.add_exception_handler(S3Error, s3_error)
    app.include_router(api_router(state))
    app.include_router(s3_router(state))
    app.include_router(admin_router(state))
    return app
