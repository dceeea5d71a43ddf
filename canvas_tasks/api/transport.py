"""Canvas's answers to the shared, method-aware retry policy (common.http_retry.RetryTransport).

A GET or the abort PUT can be repeated safely: 5xx, 429, Canvas's 403 "Rate Limit Exceeded" and
network errors are retried. The SIS upload (POST) creates an import, so the shared policy repeats it
only when the connection never opened; Canvas adds the answers that prove it did not process the
request: a throttle (403 rate limit, 429) or "unavailable" (503). A 500 or a connection dropped after
the body was sent is handed back to the caller, which reconciles through the import list rather than
re-sending (no double import).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field

import httpx

from common.http_retry import NOT_SENT_ERRORS, RETRY_STATUSES, RetryTransport, is_idempotent

RATE_LIMIT_TEXT = "rate limit exceeded"


@dataclass(frozen=True)
class RetryPolicy:
    """How hard to try. Defaults suit a daily job; tests shrink the delays."""

    attempts: int = 6  # total tries, first included
    backoff: float = 1.0  # seconds; grows exponentially, with jitter
    max_backoff: float = 60.0  # also caps how long a Retry-After is honoured
    sleep: Callable[[float], None] = field(default=time.sleep, repr=False, compare=False)


class UploadInterrupted(Exception):
    """The connection failed after (part of) an upload was sent; deliberately not an httpx.TransportError,
    so the retrying transport does not repeat it."""

    def __init__(self, cause: httpx.TransportError) -> None:
        super().__init__(type(cause).__name__)
        self.cause_name = type(cause).__name__


def is_rate_limited(response: httpx.Response) -> bool:
    """Canvas throttles with 403 + "Rate Limit Exceeded" (X-Rate-Limit-Remaining at 0); 429 elsewhere."""
    if response.status_code == 429:
        return True
    if response.status_code != 403:
        return False
    remaining = response.headers.get("X-Rate-Limit-Remaining")
    if remaining is not None:
        try:
            if float(remaining) <= 0:
                return True
        except ValueError:
            pass
    response.read()
    return RATE_LIMIT_TEXT in response.text.lower()


def _retry_safe(response: httpx.Response) -> bool:
    return response.status_code in RETRY_STATUSES or response.status_code >= 500 or is_rate_limited(response)


def _retry_upload(response: httpx.Response) -> bool:
    return response.status_code == 503 or is_rate_limited(response)


class _UploadErrorsAsInterrupted(httpx.BaseTransport):
    """A non-idempotent request that failed after it may have been sent becomes UploadInterrupted, so the
    caller can tell "maybe imported" from "never reached Canvas"."""

    def __init__(self, inner: httpx.BaseTransport) -> None:
        self._inner = inner

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        try:
            return self._inner.handle_request(request)
        except NOT_SENT_ERRORS:
            raise
        except httpx.TransportError as exc:
            if is_idempotent(request):
                raise
            raise UploadInterrupted(exc) from None

    def close(self) -> None:
        self._inner.close()


class CanvasRetryTransport(RetryTransport):
    """The shared policy with Canvas's rate-limit and 503 rules."""

    def __init__(self, inner: httpx.BaseTransport | None = None, policy: RetryPolicy | None = None) -> None:
        policy = policy or RetryPolicy()
        super().__init__(
            _UploadErrorsAsInterrupted(inner or httpx.HTTPTransport(verify=True)),
            max_attempts=policy.attempts,
            backoff_base=policy.backoff,
            backoff_cap=policy.max_backoff,
            should_retry=_retry_safe,
            retry_unsafe_response=_retry_upload,
            sleep=policy.sleep,
        )
