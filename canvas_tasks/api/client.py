"""A small synchronous client for Canvas's SIS import endpoints.

It only knows HTTP: retries come from RetryTransport, auth from CanvasTokenAuth, and status codes
become the project's errors here, in one place, with Canvas's own message when it sends one.
"""

from __future__ import annotations

import contextlib
import json
import os
from datetime import datetime
from pathlib import Path
from typing import Any

import httpx

from canvas_tasks.api.auth import CanvasTokenAuth
from canvas_tasks.api.errors import CanvasAPIError, CanvasRefused, CanvasTokenRejected, SubmitOutcomeUnknown
from canvas_tasks.api.models import SisImport
from canvas_tasks.api.transport import CanvasRetryTransport, RetryPolicy, UploadInterrupted, is_rate_limited
from common.redaction import redact_text, redact_url

DEFAULT_TIMEOUT = httpx.Timeout(connect=10.0, read=60.0, write=300.0, pool=10.0)


def canvas_message(response: httpx.Response, limit: int = 500) -> str:
    """Canvas's own words from an error body: `{"errors":[{"message":..}]}`, `{"message":..}` or text."""
    with contextlib.suppress(httpx.ResponseNotRead):
        response.read()
    text = response.text
    try:
        body: Any = json.loads(text)
    except ValueError:
        return redact_text(text.strip()[:limit]) or f"HTTP {response.status_code}"
    messages: list[str] = []
    if isinstance(body, dict):
        errors = body.get("errors")
        if isinstance(errors, list):
            for item in errors:
                messages.append(str(item.get("message", item)) if isinstance(item, dict) else str(item))
        elif isinstance(errors, dict):
            messages.extend(f"{k}: {v}" for k, v in errors.items())
        for key in ("message", "error_message", "error"):
            if isinstance(body.get(key), str):
                messages.append(body[key])
    return redact_text("; ".join(messages)[:limit]) if messages else redact_text(text.strip()[:limit])


class CanvasSisClient:
    """SIS import calls for one root account. Use as a context manager so connections are closed."""

    def __init__(
        self,
        base_url: str,
        account_id: str,
        token_source: Any,
        *,
        timeout: httpx.Timeout = DEFAULT_TIMEOUT,
        retry: RetryPolicy | None = None,
        transport: httpx.BaseTransport | None = None,
    ) -> None:
        self.base_url = base_url.rstrip("/")
        self.account_id = account_id
        self._http = httpx.Client(
            base_url=f"{self.base_url}/api/v1/accounts/{account_id}/",
            auth=CanvasTokenAuth(token_source, self.base_url),
            timeout=timeout,
            transport=CanvasRetryTransport(transport or httpx.HTTPTransport(verify=True), retry),
            headers={"Accept": "application/json", "User-Agent": "encoura-slate-flows canvas-sis-import"},
            follow_redirects=True,
        )

    def __repr__(self) -> str:
        return f"CanvasSisClient(base_url={self.base_url!r}, account_id={self.account_id!r})"

    def __enter__(self) -> CanvasSisClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        self._http.close()

    # --- calls -------------------------------------------------------------------------------------

    def submit(self, path: Path, filename: str, content_type: str, fields: list[tuple[str, str]]) -> SisImport:
        """POST the file as multipart `attachment` with the options as form fields; never re-sent blindly."""
        with open(path, "rb") as fh:
            try:
                response = self._http.post(
                    "sis_imports", data=_form(fields), files={"attachment": (filename, fh, content_type)}
                )
            except (httpx.ConnectError, httpx.ConnectTimeout, httpx.PoolTimeout) as exc:
                raise CanvasAPIError(
                    f"could not reach Canvas at {self.base_url} ({type(exc).__name__}); nothing was submitted"
                ) from None
            except (httpx.TransportError, UploadInterrupted) as exc:
                name = exc.cause_name if isinstance(exc, UploadInterrupted) else type(exc).__name__
                raise SubmitOutcomeUnknown(
                    f"the upload to Canvas was interrupted ({name}); the import may or may not have been created"
                ) from None
        if response.status_code >= 500 and response.status_code != 503 and not is_rate_limited(response):
            raise SubmitOutcomeUnknown(
                f"Canvas answered HTTP {response.status_code} to the upload ({canvas_message(response)}); "
                "the import may or may not have been created"
            )
        return SisImport.model_validate(self._json(response, "submit the SIS import"))

    def check_root_account(self) -> None:
        """Read the account: proves the token works and that the account is a root account, before any upload."""
        response = self._get(f"{self.base_url}/api/v1/accounts/{self.account_id}")
        account = self._json(response, f"read account {self.account_id}")
        root = account.get("root_account_id") if isinstance(account, dict) else None
        if root is not None:
            raise CanvasRefused(
                f"CANVAS_ACCOUNT_ID {self.account_id} is a sub-account; SIS imports can only be executed on root "
                f"accounts (this one's root account is {root})"
            )

    def get_import(self, import_id: int) -> SisImport:
        return SisImport.model_validate(self._json(self._get(f"sis_imports/{import_id}"), f"read import {import_id}"))

    def abort(self, import_id: int) -> SisImport:
        response = self._call("PUT", f"sis_imports/{import_id}/abort")
        return SisImport.model_validate(self._json(response, f"abort import {import_id}"))

    def list_created_since(self, since: datetime) -> list[SisImport]:
        """Imports created after `since`: how a caller finds out whether an interrupted upload landed."""
        response = self._get("sis_imports", params={"created_since": since.isoformat(), "per_page": "100"})
        body = self._json(response, "list SIS imports")
        items = body.get("sis_imports", []) if isinstance(body, dict) else []
        return [SisImport.model_validate(item) for item in items]

    def download(self, url: str, dest: Path) -> Path:
        """Stream a file (the errors CSV) to `dest` via a temp name, so a partial file is never left."""
        dest.parent.mkdir(parents=True, exist_ok=True)
        tmp = dest.with_name(f".{dest.name}.part")
        try:
            with self._http.stream("GET", url) as response:
                if response.status_code >= 400:
                    self._raise_for(response, f"download {redact_url(url)}")
                with open(tmp, "wb") as fh:
                    for chunk in response.iter_bytes():
                        fh.write(chunk)
            os.replace(tmp, dest)
        except httpx.TransportError as exc:
            raise CanvasAPIError(f"could not download {redact_url(url)} ({type(exc).__name__})") from None
        finally:
            tmp.unlink(missing_ok=True)
        return dest

    # --- plumbing ----------------------------------------------------------------------------------

    def _get(self, url: str, params: dict[str, str] | None = None) -> httpx.Response:
        return self._call("GET", url, params=params)

    def _call(self, method: str, url: str, **kwargs: Any) -> httpx.Response:
        try:
            return self._http.request(method, url, **kwargs)
        except httpx.TransportError as exc:
            raise CanvasAPIError(
                f"Canvas {method} {url} failed after retries ({type(exc).__name__}: {redact_text(str(exc))})"
            ) from None

    def _json(self, response: httpx.Response, what: str) -> Any:
        if response.status_code >= 400:
            self._raise_for(response, what)
        try:
            return response.json()
        except ValueError:
            raise CanvasAPIError(f"could not {what}: Canvas answered with something that is not JSON") from None

    def _raise_for(self, response: httpx.Response, what: str) -> None:
        status = response.status_code
        if status == 401:
            raise CanvasTokenRejected()
        message = canvas_message(response)
        if is_rate_limited(response):
            raise CanvasAPIError(f"could not {what}: Canvas kept rate limiting us ({message}); try again later")
        if status in (400, 403, 404, 409, 422):
            hint = ""
            if "root account" in message.lower():
                hint = " (check CANVAS_ACCOUNT_ID: it must be the root account)"
            raise CanvasRefused(f"could not {what}: HTTP {status}: {message}{hint}")
        raise CanvasAPIError(f"could not {what}: HTTP {status}: {message}")


def _form(fields: list[tuple[str, str]]) -> dict[str, str | list[str]]:
    form: dict[str, str | list[str]] = {}
    for key, value in fields:
        if key in form:
            existing = form[key]
            form[key] = [*existing, value] if isinstance(existing, list) else [existing, value]
        else:
            form[key] = value
    return form
