"""A small httpx client for the Encoura Data Lab API: exports (list, download) and uploads.

Two httpx clients on purpose: the API client carries auth and retries; the presigned-URL client
carries neither (S3 rejects a second auth mechanism, and a one-time URL must not be replayed
blindly: callers ask for a fresh URL instead).
"""

from __future__ import annotations

import logging
import mimetypes
from collections.abc import Callable
from pathlib import Path
from typing import Any
from xml.etree import ElementTree

import httpx
from pydantic import ValidationError

from common.download import PROGRESS_EVERY_BYTES as PROGRESS_EVERY_BYTES  # the export steps' progress unit
from common.download import TruncatedBody, save_body
from common.http_errors import ExplainingTransport, ServiceHints, env_proxy, is_html, ssl_context
from common.http_retry import NOT_SENT_ERRORS, RetryTransport
from common.redaction import redact_text
from common.secrets import reveal
from encoura_tasks.api.auth import EncouraAuth
from encoura_tasks.api.errors import DownloadError, EncouraError, EncouraResponseError
from encoura_tasks.api.models import (
    DownloadedFile,
    ExportListing,
    ListingResult,
    Organization,
    PresignedUrl,
    UploadTicket,
    source_name_from_url,
)
from encoura_tasks.api.settings import EncouraSettings

logger = logging.getLogger(__name__)

ENCOURA_HINTS = ServiceHints("Encoura", "ENCOURA_BASE_URL", "ENCOURA_CA_BUNDLE", "ENCOURA_TIMEOUT_SECONDS")


def _json_body(response: httpx.Response, what: str) -> Any:
    content_type = response.headers.get("content-type", "")
    try:
        return response.json()
    except ValueError:
        kind = "an HTML page" if "html" in content_type or response.text.lstrip().startswith("<") else "malformed JSON"
        raise EncouraResponseError(f"{what}: Encoura answered HTTP {response.status_code} with {kind}") from None


def _api_error(response: httpx.Response, what: str) -> EncouraError:
    status = response.status_code
    if status >= 500 and is_html(response):
        return EncouraError(
            f"{what}: Encoura at {response.request.url.host} answered HTTP {status} with an HTML page instead of "
            "the API (maintenance, or a proxy's error page?); try again later"
        )
    if status == 403:
        return EncouraError(
            f"{what}: Encoura answered HTTP 403 (Forbidden); check ENCOURA_API_KEY, and that the account may use "
            "this organization (ENCOURA_ORGANIZATION_UID)"
        )
    detail = ""
    try:
        body = response.json()
        if isinstance(body, dict):
            detail = str(body.get("message") or body.get("error") or "")[:300]
    except ValueError:
        pass
    suffix = f": {detail}" if detail else ""
    return EncouraError(f"{what}: Encoura answered HTTP {response.status_code}{suffix}")


def s3_error_message(response: httpx.Response) -> str:
    """S3 explains itself in XML (<Code>, <Message>); show that rather than a bare status."""
    try:
        root = ElementTree.fromstring(response.content)  # noqa: S314 - small trusted-format error body
        code = root.findtext("Code") or ""
        message = root.findtext("Message") or ""
        text = f"{code}: {message}".strip(": ")
    except ElementTree.ParseError:
        text = response.text[:300]
    return redact_text(text) or f"HTTP {response.status_code}"


class UncertainAttempts(httpx.BaseTransport):
    """Innermost transport: flags a request when an attempt may have been processed without us
    seeing the answer (read timeout or dropped connection after sending, or a 5xx other than
    429/503, e.g. a gateway timeout while the backend carried on).

    RetryTransport retries such attempts transparently. For most calls that is right; for the
    NotDelivered listing it is not: the lost answer consumed exports, and the retry's answer no
    longer contains them. `list_exports` reads the flag so those exports are recovered.
    """

    FLAG = "encoura_uncertain"

    def __init__(self, wrapped: httpx.BaseTransport) -> None:
        self.wrapped = wrapped

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        try:
            response = self.wrapped.handle_request(request)
            # API answers are small JSON: read them here, so a body cut off after the headers is a
            # transport error the retry layer sees (and flags), not a failure after retries are over.
            response.read()
        except NOT_SENT_ERRORS:
            raise  # never sent: nothing can have been processed
        except httpx.TransportError:
            request.extensions[self.FLAG] = True
            raise
        if response.status_code >= 500 and response.status_code != 503:
            request.extensions[self.FLAG] = True
        return response

    def close(self) -> None:
        self.wrapped.close()


class EncouraClient:
    def __init__(
        self,
        settings: EncouraSettings,
        *,
        transport: httpx.BaseTransport | None = None,
    ) -> None:
        self.settings = settings
        timeout = httpx.Timeout(settings.timeout_seconds, connect=min(15.0, settings.timeout_seconds))
        verify = ssl_context(settings.ca_bundle)
        self.auth = EncouraAuth(
            base_url=settings.base_url,
            api_key=reveal(settings.api_key, setting="ENCOURA_API_KEY") or "",
            username=reveal(settings.username, setting="ENCOURA_USERNAME") or "",
            password=reveal(settings.password, setting="ENCOURA_PASSWORD") or "",
            organization_uid=settings.organization_uid,
            scheme=settings.auth_scheme,
            token_lifetime=settings.token_lifetime_seconds,
            refresh_margin=settings.token_lifetime_seconds / 4,
        )
        self._api = httpx.Client(
            base_url=settings.base_url + "/",
            auth=self.auth,
            timeout=timeout,
            verify=verify,
            transport=ExplainingTransport(
                transport
                or RetryTransport(
                    UncertainAttempts(httpx.HTTPTransport(verify=verify, proxy=env_proxy(settings.base_url))),
                    max_attempts=settings.max_attempts,
                ),
                ENCOURA_HINTS,
            ),
            headers={"Accept": "application/json", "User-Agent": "encoura-slate-flows/0.1"},
            follow_redirects=False,
        )
        # Presigned URLs: no auth, no API headers, no retries (a retry needs a fresh one-time URL).
        self._raw = httpx.Client(timeout=timeout, verify=verify, follow_redirects=True)

    def __repr__(self) -> str:
        return f"EncouraClient(base_url={self.settings.base_url!r})"

    def close(self) -> None:
        self._api.close()
        self._raw.close()

    def __enter__(self) -> EncouraClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # ----------------------------------------------------------------- session
    def login(self) -> list[Organization]:
        """Log in now (normally lazy) and return the organizations the account can see."""
        flow = self.auth.ensure_login()
        try:
            request = next(flow)
            while True:
                response = self._api.send(request, auth=None)
                response.read()
                request = flow.send(response)
        except StopIteration:
            pass
        return self.auth.organizations

    # ----------------------------------------------------------------- exports
    def list_exports(self, product_key: str | None, status: str = "NotDelivered") -> ListingResult:
        params = {"status": status}
        if product_key:
            params["productKey"] = product_key
        what = f"listing {status} exports for {product_key or 'all products'}"
        try:
            response = self._api.get("datacenter/exports", params=params)
        except httpx.TransportError as exc:
            # No answer after every attempt; one of them may still have consumed exports.
            raise EncouraResponseError(f"{what}: no answer from Encoura ({type(exc).__name__})") from None
        uncertain = bool(response.request.extensions.get(UncertainAttempts.FLAG))
        if response.status_code != 200:
            if uncertain:
                raise EncouraResponseError(f"{what}: {_api_error(response, what)} after an unanswered attempt")
            raise _api_error(response, what)
        body = _json_body(response, what)
        if not isinstance(body, list):
            raise EncouraResponseError(f"{what}: expected a JSON list, got {type(body).__name__}")
        result = ListingResult(uncertain=uncertain)
        for index, entry in enumerate(body):
            if not isinstance(entry, dict):
                result.problems.append(f"{what}: entry #{index} is not an object; skipped")
                continue
            try:
                listing = ExportListing.model_validate(entry)
            except ValidationError as exc:
                fields = ", ".join(".".join(map(str, e["loc"])) or "entry" for e in exc.errors())
                result.problems.append(f"{what}: entry #{index} has no usable {fields}; skipped")
                continue
            if not listing.product_key and product_key:
                listing.product_key = product_key
            result.exports.append(listing)
        return result

    def get_download_url(self, uid: str) -> PresignedUrl:
        what = f"export {uid}: asking for a download URL"
        response = self._api.get(f"datacenter/exports/{uid}/download")
        if response.status_code != 200:
            raise _api_error(response, what)
        body = _json_body(response, what)
        url = body.get("downloadUrl") if isinstance(body, dict) else None
        if not isinstance(url, str) or not url.startswith(("https://", "http://")):
            raise EncouraResponseError(f"{what}: the answer has no usable downloadUrl")
        return PresignedUrl(url)

    def download(
        self,
        url: PresignedUrl,
        target: Path,
        *,
        on_progress: Callable[[int], None] | None = None,
    ) -> DownloadedFile:
        """Stream to `target` through a temporary name with bounded memory; verify the length."""
        source_name = source_name_from_url(url.reveal())
        try:
            with self._raw.stream("GET", url.reveal()) as response:
                if response.status_code != 200:
                    response.read()
                    raise DownloadError(
                        f"download answered HTTP {response.status_code} ({s3_error_message(response)})"
                    )
                saved = save_body(response, target, on_progress=on_progress)
        except TruncatedBody as exc:
            raise DownloadError(f"download truncated: {exc}") from None
        except (httpx.TransportError, httpx.TimeoutException) as exc:
            raise DownloadError(f"download interrupted ({type(exc).__name__})") from None
        return DownloadedFile(source_name=source_name, size=saved.size, sha256=saved.sha256)

    # ----------------------------------------------------------------- uploads
    def create_upload(
        self, *, file_name: str, product_type: str, data_source: str = "API", description: str = ""
    ) -> UploadTicket:
        what = f"{file_name}: creating the Encoura upload record"
        response = self._api.post(
            "files/upload",
            json={
                "fileName": file_name,
                "originalFileName": file_name,
                "productType": product_type,
                "dataSource": data_source,
                "fileDescription": description,
            },
        )
        if response.status_code not in (200, 201):
            raise _api_error(response, what)
        body = _json_body(response, what)
        try:
            return UploadTicket(id=str(body["id"]), url=PresignedUrl(str(body["url"])), fields=dict(body["fields"]))
        except (KeyError, TypeError):
            raise EncouraResponseError(f"{what}: the answer lacks id, url or fields") from None

    def send_upload(self, ticket: UploadTicket, path: Path, *, file_name: str) -> None:
        """Presigned POST: every field first, `file` last, no API headers. S3 answers 204."""
        with open(path, "rb") as fh:
            response = self._raw.post(
                ticket.url.reveal(),
                data={k: str(v) for k, v in ticket.fields.items()},
                files={"file": (file_name, fh, mimetypes.guess_type(file_name)[0] or "application/octet-stream")},
            )
        if response.status_code != 204:
            raise EncouraError(
                f"{file_name}: storage refused the upload (HTTP {response.status_code}: {s3_error_message(response)})"
            )

    def get_upload(self, file_id: str) -> dict[str, Any]:
        what = f"upload {file_id}: reading its status"
        response = self._api.get(f"files/{file_id}")
        if response.status_code != 200:
            raise _api_error(response, what)
        body = _json_body(response, what)
        if not isinstance(body, dict) or "status" not in body:
            raise EncouraResponseError(f"{what}: the answer has no status")
        return body


