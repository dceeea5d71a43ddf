"""The two error dialects the real service speaks: API Gateway JSON and S3 XML."""

from __future__ import annotations

import secrets
from xml.sax.saxutils import escape

from fastapi.responses import JSONResponse, Response


class ApiError(Exception):
    """An /v1 answer other than success; rendered as `{"message": ...}` like API Gateway does."""

    def __init__(self, status: int, message: str, *, headers: dict[str, str] | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.headers = headers or {}

    def response(self) -> JSONResponse:
        return JSONResponse({"message": self.message}, status_code=self.status, headers=self.headers)


class S3Error(Exception):
    """An S3 answer other than success; rendered as S3's `<Error>` XML document."""

    def __init__(self, status: int, code: str, message: str) -> None:
        super().__init__(f"{code}: {message}")
        self.status = status
        self.code = code
        self.message = message

    def response(self) -> Response:
        body = (
            '<?xml version="1.0" encoding="UTF-8"?>\n'
            f"<Error><Code>{escape(self.code)}</Code><Message>{escape(self.message)}</Message>"
            f"<RequestId>{secrets.token_hex(8).upper()}</RequestId><HostId>sandbox</HostId></Error>"
        )
        return Response(body, status_code=self.status, media_type="application/xml")
