"""Deterministic fault decisions.

Each kind of fault draws from its own RNG seeded from `config.seed`, so turning on truncation does
not shift which API calls fail: a failing reliability scenario replays exactly with the same seed.
"""

from __future__ import annotations

import random
from dataclasses import dataclass

from sandbox.encoura.config import SandboxConfig

# Bodies shaped like AWS API Gateway's own error responses.
_FAULT_MESSAGES = {
    429: "Too Many Requests",
    500: "Internal server error",
    502: "Bad Gateway",
    503: "Service Unavailable",
    504: "Endpoint request timed out",
}


@dataclass(frozen=True)
class Fault:
    status: int
    message: str
    headers: dict[str, str]


class FaultPlan:
    """Not thread-safe on its own: SandboxState calls it under its lock."""

    def __init__(self, config: SandboxConfig) -> None:
        self.config = config
        self._fail = random.Random(f"{config.seed}:fail")
        self._slow = random.Random(f"{config.seed}:slow")
        self._truncate = random.Random(f"{config.seed}:truncate")

    def api_fault(self, endpoint: str) -> Fault | None:
        cfg = self.config
        if cfg.fail_rate <= 0 or (cfg.fail_endpoints and endpoint not in cfg.fail_endpoints):
            return None
        if self._fail.random() >= cfg.fail_rate:
            return None
        status = self._fail.choice(cfg.fail_statuses)
        headers = {"Retry-After": str(cfg.retry_after_seconds)} if status in (429, 503) else {}
        return Fault(status, _FAULT_MESSAGES.get(status, "Injected sandbox fault"), headers)

    def delay(self) -> float:
        cfg = self.config
        if cfg.slow_rate <= 0 or cfg.slow_seconds <= 0 or self._slow.random() >= cfg.slow_rate:
            return 0.0
        return cfg.slow_seconds

    def truncate(self) -> bool:
        cfg = self.config
        return cfg.truncate_rate > 0 and self._truncate.random() < cfg.truncate_rate
