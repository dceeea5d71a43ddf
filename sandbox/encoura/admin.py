"""Test-control endpoints under /_sandbox, for flows and tests running in another process.

Crash tests run the flow in a subprocess while the sandbox lives in the pytest process; the
benchmark harness may talk to a standalone sandbox. Both steer it here, over plain HTTP.
"""

from __future__ import annotations

import base64
import binascii
from typing import Any

from fastapi import APIRouter, Body
from fastapi.responses import JSONResponse
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from sandbox.encoura.state import SandboxState


class NewExport(BaseModel):
    model_config = ConfigDict(extra="forbid")

    product_key: str = "prospect"
    filename: str | None = None
    content_b64: str | None = None
    size: int | None = Field(default=None, ge=0)
    seed: int = 0
    listing_overrides: dict[str, Any] | None = None
    status: str = "NotDelivered"
    organization_uid: str | None = None


def _bad_request(message: str) -> JSONResponse:
    return JSONResponse({"message": message}, status_code=400)


def admin_router(state: SandboxState) -> APIRouter:
    router = APIRouter(prefix="/_sandbox")

    @router.get("/state")
    async def get_state() -> JSONResponse:
        return JSONResponse(state.snapshot())

    @router.post("/exports")
    async def add_export(body: dict[str, Any] = Body(...)) -> JSONResponse:
        try:
            spec = NewExport.model_validate(body)
            content = base64.b64decode(spec.content_b64, validate=True) if spec.content_b64 is not None else None
            uid = state.add_export(
                spec.product_key,
                spec.filename,
                content,
                size=spec.size,
                seed=spec.seed,
                listing_overrides=spec.listing_overrides,
                status=spec.status,
                organization_uid=spec.organization_uid,
            )
        except (ValidationError, ValueError, binascii.Error) as exc:
            return _bad_request(str(exc))
        return JSONResponse({"uid": uid})

    @router.post("/config")
    async def configure(body: dict[str, Any] = Body(...)) -> JSONResponse:
        try:
            config = state.configure(**body)
        except (ValidationError, ValueError) as exc:
            return _bad_request(str(exc))
        return JSONResponse(config.model_dump(mode="json"))

    @router.post("/reset")
    async def reset() -> JSONResponse:
        state.reset()
        return JSONResponse({"ok": True})

    @router.post("/expire-tokens")
    async def expire_tokens() -> JSONResponse:
        state.expire_tokens()
        return JSONResponse({"ok": True})

    return router
