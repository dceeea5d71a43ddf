"""A local emulator of the Encoura Data Lab API (exports, downloads, uploads) with fault injection.

    from sandbox.encoura import SandboxServer, SandboxConfig, SANDBOX_CREDENTIALS

    with SandboxServer(SandboxConfig(fail_rate=0.2), seed_samples=True) as sb:
        run_flow(env=sb.env())
        assert sb.state.counters["list_exports"] >= 1

It speaks the real wire protocol over loopback HTTP, so the production client is tested unchanged.
"""

from sandbox.encoura.config import SANDBOX_CREDENTIALS, SandboxConfig
from sandbox.encoura.server import SandboxServer

__all__ = ["SANDBOX_CREDENTIALS", "SandboxConfig", "SandboxServer"]
