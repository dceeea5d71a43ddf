"""One retry policy for every API client: an httpx transport that retries only what is safe to repeat.

The rule depends on whether the request may already have taken effect:

- Idempotent methods (GET, HEAD, OPTIONS, PUT, DELETE, TRACE), and any request marked
  `extensions={IDEMPOTENT: True}` (a login, say), are retried on connection errors, timeouts,
  429 and 5xx, honouring Retry-After.
- Anything else (POST, PATCH) may have created something on the server. It is repeated only when the
  request provably never left this machine (`NOT_SENT_ERRORS`), or when the caller's
  `retry_unsafe_response` says the answer proves it was not acted on (Canvas's rate-limit 403, say).
  A read timeout, a dropped connection after sending, or a 5xx reaches the caller, which recovers by
  reading state (Encoura's `GET /files/{id}`, Canvas's import list) instead of sending again blindly.

Never retried: other 4xx (a bad request or bad credentials does not get better by asking again).
"""

from __future__ import annotations

import email.utils
import logging
import random
import time
from collections.abc import Callable
from datetime import UTC, datetime

import httpx

logger = logging.getLogger(__name__)

RETRY_STATUSES = frozenset({429, 500, 502, 503, 504})
IDEMPOTENT_METHODS = frozenset({"GET", "HEAD", "OPTIONS", "PUT", "DELETE", "TRACE"})
# Request extension a caller sets on a non-idempotent method that is nonetheless safe to repeat.
IDEMPOTENT = "encoura_slate_idempotent"
# Failures that happen before a single byte of the request left this machine: the server cannot have
# acted on the request, so even a non-idempotent call may be repeated (and nothing is "uncertain").
NOT_SENT_ERRORS: tuple[type[httpx.TransportError], ...] = (httpx.ConnectError, httpx.ConnectTimeout, httpx.PoolTimeout)


def retry_after_seconds(response: httpx.Response) -> float | None:
    value = response.headers.get("Retry-After")
    if not value:
        return None
    try:
        return max(float(value), 0.0)
    except ValueError:
        try:
            when = email.utils.parsedate_to_datetime(value)
        except (TypeError, ValueError):
            return None
        return max((when - datetime.now(UTC)).total_seconds(), 0.0)


def is_idempotent(request: httpx.Request) -> bool:
    return request.method in IDEMPOTENT_METHODS or bool(request.extensions.get(IDEMPOTENT))


def _never(response: httpx.Response) -> bool:
    return False


class RetryTransport(httpx.BaseTransport):
    """Wraps another transport; backs off exponentially with full jitter, capped per wait."""

    def __init__(
        self,
        wrapped: httpx.BaseTransport | None = None,
        *,
        max_attempts: int = 5,
        backoff_base: float = 0.5,
        backoff_cap: float = 30.0,
        should_retry: Callable[[httpx.Response], bool] | None = None,
        retry_unsafe_response: Callable[[httpx.Response], bool] = _never,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self.wrapped = wrapped or httpx.HTTPTransport()
        self.max_attempts = max(1, max_attempts)
        self.backoff_base = backoff_base
        self.backoff_cap = backoff_cap
        self.should_retry = should_retry or (lambda r: r.status_code in RETRY_STATUSES)
        self.retry_unsafe_response = retry_unsafe_response
        self.sleep = sleep

    def _wait(self, attempt: int, response: httpx.Response | None) -> float:
        hinted = retry_after_seconds(response) if response is not None else None
        if hinted is not None:
            return min(hinted, self.backoff_cap)
        return random.uniform(0, min(self.backoff_cap, self.backoff_base * 2**attempt))

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        safe = is_idempotent(request)
        retryable_errors = (httpx.TransportError,) if safe else NOT_SENT_ERRORS
        retry_response = self.should_retry if safe else self.retry_unsafe_response
        attempt = 0
        while True:
            last = attempt >= self.max_attempts - 1
            try:
                response = self.wrapped.handle_request(request)
            except retryable_errors as exc:
                if last:
                    raise
                wait = self._wait(attempt, None)
                logger.info(
                    "%s %s failed (%s); retrying in %.1fs", request.method, request.url.path, type(exc).__name__, wait
                )
            else:
                if last or not retry_response(response):
                    return response
                wait = self._wait(attempt, response)
                response.close()
                logger.info(
                    "%s %s answered %s; retrying in %.1fs", request.method, request.url.path, response.status_code, wait
                )
            self.sleep(wait)
            attempt += 1

    def close(self) -> None:
        self.wrapped.close()
