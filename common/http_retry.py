"""An httpx transport that retries what is safe to retry, so API clients never hand-roll retry loops.

Retried: connection errors, timeouts, 429 and 5xx (honouring Retry-After). Never retried: other
4xx (a bad request or bad credentials does not get better by asking again).
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
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self.wrapped = wrapped or httpx.HTTPTransport()
        self.max_attempts = max(1, max_attempts)
        self.backoff_base = backoff_base
        self.backoff_cap = backoff_cap
        self.should_retry = should_retry or (lambda r: r.status_code in RETRY_STATUSES)
        self.sleep = sleep

    def _wait(self, attempt: int, response: httpx.Response | None) -> float:
        hinted = retry_after_seconds(response) if response is not None else None
        if hinted is not None:
            return min(hinted, self.backoff_cap)
        return random.uniform(0, min(self.backoff_cap, self.backoff_base * 2**attempt))

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        for attempt in range(self.max_attempts):
            last = attempt == self.max_attempts - 1
            try:
                response = self.wrapped.handle_request(request)
            except (httpx.TransportError, httpx.TimeoutException) as exc:
                if last:
                    raise
                wait = self._wait(attempt, None)
                logger.info(
                    "%s %s failed (%s); retrying in %.1fs", request.method, request.url.path, type(exc).__name__, wait
                )
                self.sleep(wait)
                continue
            if last or not self.should_retry(response):
                return response
            wait = self._wait(attempt, response)
            response.close()
            logger.info(
                "%s %s answered %s; retrying in %.1fs", request.method, request.url.path, response.status_code, wait
            )
            self.sleep(wait)
        raise AssertionError("unreachable")

    def close(self) -> None:
        self.wrapped.close()
