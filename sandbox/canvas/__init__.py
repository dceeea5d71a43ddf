"""A Canvas SIS import emulator over real HTTP, for tests and for `--sandbox` demos."""

from sandbox.canvas.server import CanvasSandbox
from sandbox.canvas.state import SCENARIOS, SandboxState

__all__ = ["SCENARIOS", "CanvasSandbox", "SandboxState"]
