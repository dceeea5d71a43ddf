"""A small synchronous client for Canvas's SIS import endpoints.

It only knows HTTP: retries come from RetryTransport, auth from CanvasTokenAuth, and status codes
become the project's errors here, in one place, with Canvas's own message when it sends one.
"""

from __future__ import annotations

import contextlib
import json
from datetime import datetime
from pathlib import Path
from typing import Any

import httpx

from canvas_tasks.api.auth import CanvasTokenAuth
from canvas_tasks.api.errors import CanvasAPIError, CanvasRefused, CanvasTokenRejected, SubmitOutcomeUnknown
from canvas_tasks.api.models import SisImport
from canvas_tasks.api.transport import CanvasRetryTransport, RetryPolicy, UploadInterrupted, is_rate_limited
from common.download import TruncatedBody, save_body
from common.http_errors import ExplainingTransport, ServiceHints, env_proxy, is_html, ssl_context
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


CANVAS_HINTS = ServiceHints("Canvas", "CANVAS_BASE_URL", "CANVAS_CA_BUNDLE")


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
        ca_bundle: str | None = None,
    ) -> None:
        self.base_url = base_url.rstrip("/")
        verify = ssl_context(ca_bundle)
        self.account_id = account_id
        self._http = httpx.Client(
            base_url=f"{self.base_url}/api/v1/accounts/{account_id}/",
            auth=CanvasTokenAuth(token_source, self.base_url),
            timeout=timeout,
            verify=verify,
            transport=ExplainingTransport(
                CanvasRetryTransport(
                    transport or httpx.HTTPTransport(verify=verify, proxy=env_proxy(self.base_url)), retry
                ),
                CANVAS_HINTS,
            ),
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
        term = dict(fields).get("batch_mode_term_id")
        if response.status_code == 404 and term:  # the account was checked first: the term is what is unknown
            raise CanvasRefused(
                f"batch_mode_term_id {term!r} is not a term Canvas knows on account {self.account_id} (HTTP 404); "
                "check --batch-mode-term-id (options.batch_mode_term_id in a deployment): a Canvas term id, or "
                "sis_term_id:<SIS id>"
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
        """Abort one import. Canvas answers 404 to an abort of an import that has already finished:
        that is a lost race with completion, not a missing import, so the finished import is returned
        with `finished_before_abort` set (a really unknown id still raises CanvasRefused)."""
        response = self._call("PUT", f"sis_imports/{import_id}/abort")
        if response.status_code == 404:
            current = self.get_import(import_id)
            if current.is_terminal:
                return current.model_copy(update={"finished_before_abort": True})
        return SisImport.model_validate(self._json(response, f"abort import {import_id}"))

    def abort_all_pending(self) -> bool:
        """Abort every import on the account that is created but not yet processed, or processing."""
        body = self._json(self._call("PUT", "sis_imports/abort_all_pending"), "abort all pending SIS imports")
        return bool(body.get("aborted")) if isinstance(body, dict) else bool(body)

    def importing(self) -> list[SisImport]:
        """The imports Canvas is processing right now (`sis_imports/importing`)."""
        body = self._json(self._get("sis_imports/importing"), "list the importing SIS imports")
        items = body.get("sis_imports", []) if isinstance(body, dict) else body if isinstance(body, list) else []
        return [SisImport.model_validate(item) for item in items]

    def restore_states(
        self,
        import_id: int,
        *,
        batch_mode: bool = False,
        undelete_only: bool = False,
        unconclude_only: bool = False,
    ) -> dict[str, Any]:
        """Roll back what an import changed. Returns Canvas's Progress object (the restore runs in the
        background; the import moves through restoring to restored / partially_restored)."""
        if undelete_only and unconclude_only:
            raise CanvasRefused("undelete_only and unconclude_only exclude each other; pick one")
        params = {
            name: "true"
            for name, on in (
                ("batch_mode", batch_mode),
                ("undelete_only", undelete_only),
                ("unconclude_only", unconclude_only),
            )
            if on
        }
        response = self._call("PUT", f"sis_imports/{import_id}/restore_states", params=params)
        body = self._json(response, f"restore the states of import {import_id}")
        return body if isinstance(body, dict) else {"result": body}

    def list_imports(
        self,
        *,
        created_since: datetime | None = None,
        created_before: datetime | None = None,
        workflow_states: list[str] | None = None,
        per_page: int = 100,
        limit: int | None = None,
    ) -> list[SisImport]:
        """The account's imports, newest first, following the Link header's `next` page to the end
        (or until `limit` imports were read)."""
        params: list[tuple[str, str]] = [("per_page", str(per_page))]
        if created_since is not None:
            params.append(("created_since", created_since.isoformat()))
        if created_before is not None:
            params.append(("created_before", created_before.isoformat()))
        params += [("workflow_state[]", state) for state in workflow_states or []]
        found: list[SisImport] = []
        response = self._call("GET", "sis_imports", params=params)
        while True:
            body = self._json(response, "list SIS imports")
            items = body.get("sis_imports", []) if isinstance(body, dict) else []
            found += [SisImport.model_validate(item) for item in items]
            next_url = response.links.get("next", {}).get("url")
            if not next_url or not items or (limit is not None and len(found) >= limit):
                break
            if httpx.URL(next_url).host not in ("", httpx.URL(self.base_url).host):
                raise CanvasAPIError("Canvas's next-page link points at another host; not following it")
            response = self._call("GET", next_url)
        return found[:limit] if limit is not None else found

    def list_created_since(self, since: datetime) -> list[SisImport]:
        """Imports created after `since`: how a caller finds out whether an interrupted upload landed."""
        return self.list_imports(created_since=since)

    def download_errors(self, import_id: int, dest: Path) -> Path | None:
        """Save the full errors CSV (errors_attachment) of any past import; None if it has none."""
        imp = self.get_import(import_id)
        url = imp.errors_attachment_url
        return self.download(url, dest) if url else None

    def download(self, url: str, dest: Path) -> Path:
        """Stream a file (the errors CSV) to `dest` via a temp name, so a partial file is never left."""
        try:
            with self._http.stream("GET", url) as response:
                if response.status_code >= 400:
                    self._raise_for(response, f"download {redact_url(url)}")
                save_body(response, dest)
        except (httpx.TransportError, TruncatedBody) as exc:
            raise CanvasAPIError(f"could not download {redact_url(url)} ({type(exc).__name__})") from None
        return dest

    # --- plumbing ----------------------------------------------------------------------------------

    def _get(self, url: str, params: dict[str, str] | None = None) -> httpx.Response:
        return self._call("GET", url, params=params)

    def _call(self, method: str, url: str, **kwargs: Any) -> httpx.Response:
        try:
            return self._http.request(method, url, **kwargs)
        except httpx.TransportError as exc:
            # ExplainingTransport already said which host failed and what to change.
            raise CanvasAPIError(f"{redact_text(str(exc))} ({method} {url})") from None

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
        if status >= 500 and is_html(response):  # a maintenance page: its HTML is no message for a person
            raise CanvasAPIError(
                f"could not {what}: Canvas at {response.request.url.host} answered HTTP {status} with an HTML page "
                "instead of the API (maintenance, or a proxy's error page?); try again later"
            )
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
