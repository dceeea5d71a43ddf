"""Retries live in the transport, the seam httpx gives, so every call gets the same policy.

Which failures are retried depends on whether the request may already have taken effect. A GET
or the abort PUT can be repeated safely. The SIS upload (POST) creates an import, so it is only
repeated when Canvas certainly did not process it: the connection never opened, or Canvas
throttled us (403 "Rate Limit Exceeded", 429) or said it is unavailable (503). Anything else
(a 500 or a dropped connection after the body was sent) is handed back to the caller as-is.
"""

from __future__ import annotations

import logging
import random
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from email.utils import parsedate_to_datetime

import httpx

log = logging.getLogger(__name__)

SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS", "PUT", "DELETE"})
RATE_LIMIT_TEXT = "rate limit exceeded"


@dataclass(frozen=True)
class RetryPolicy:
    """How hard to try. Defaults suit a daily job; tests shrink the delays."""

    attempts: int = 6  # total tries, first included
    backoff: float = 1.0  # seconds; doubled each retry, with jitter
    max_backoff: float = 60.0
    max_retry_after: float = 300.0  # never sleep longer than this on a server's say-so
    sleep: Callable[[float], None] = field(default=time.sleep, repr=False, compare=False)


def is_rate_limited(response: httpx.Response) -> bool:
    """Canvas throttles with 403 + "Rate Limit Exceeded" (X-Rate-Limit-Remaining near 0); 429 elsewhere."""
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


def retry_after_seconds(response: httpx.Response) -> float | None:
    value = response.headers.get("Retry-After")
    if not value:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        return max(0.0, parsedate_to_datetime(value).timestamp() - time.time())
    except (TypeError, ValueError):
        return None


class RetryTransport(httpx.BaseTransport):
    """Wrap another transport; retry what is safe to retry, with exponential backoff and jitter."""

    def __init__(self, inner: httpx.BaseTransport | None = None, policy: RetryPolicy | None = None) -> None:
        self._inner = inner or httpx.HTTPTransport(verify=True)
        self._policy = policy or RetryPolicy()

    def _delay(self, attempt: int, response: httpx.Response | None) -> float:
        if response is not None:
            hinted = retry_after_seconds(response)
            if hinted is not None:
                return min(hinted, self._policy.max_retry_after)
        base = min(self._policy.backoff * (2 ** (attempt - 1)), self._policy.max_backoff)
        return base * (0.5 + random.random() / 2)

    def _should_retry_response(self, request: httpx.Request, response: httpx.Response) -> bool:
        if is_rate_limited(response):
            return True
        if request.method in SAFE_METHODS:
            return response.status_code >= 500
        return response.status_code == 503

    def _should_retry_error(self, request: httpx.Request, exc: httpx.TransportError) -> bool:
        if request.method in SAFE_METHODS:
            return True
        # Only failures before any byte was sent leave a POST certainly unprocessed.
        return isinstance(exc, (httpx.ConnectError, httpx.ConnectTimeout, httpx.PoolTimeout))

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        attempt = 0
        while True:
            attempt += 1
            try:
                response = self._inner.handle_request(request)
            except httpx.TransportError as exc:
                if attempt >= self._policy.attempts or not self._should_retry_error(request, exc):
                    raise
                delay = self._delay(attempt, None)
                log.warning(
                    "Canvas %s %s: %s; retry %d/%d in %.1fs",
                    request.method,
                    request.url.path,
                    type(exc).__name__,
                    attempt,
                    self._policy.attempts - 1,
                    delay,
                )
                self._policy.sleep(delay)
                continue
            if attempt >= self._policy.attempts or not self._should_retry_response(request, response):
                return response
            delay = self._delay(attempt, response)
            log.warning(
                "Canvas %s %s: HTTP %d%s; retry %d/%d in %.1fs",
                request.method,
                request.url.path,
                response.status_code,
                " (rate limited)" if is_rate_limited(response) else "",
                attempt,
                self._policy.attempts - 1,
                delay,
            )
            response.close()
            self._policy.sleep(delay)

    def close(self) -> None:
        self._inner.close()
