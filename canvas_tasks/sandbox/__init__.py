"""A Canvas SIS import emulator over real HTTP, for tests and for `--sandbox` demos."""

from canvas_tasks.sandbox.server import CanvasSandbox
from canvas_tasks.sandbox.state import SCENARIOS, SandboxState

__all__ = ["SCENARIOS", "CanvasSandbox", "SandboxState"]
