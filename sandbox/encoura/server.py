"""Run the sandbox on a real loopback socket in a background thread.

Tests talk to it over real HTTP, exactly like the production client talks to Encoura. The socket is
bound before uvicorn starts, so the port (and every URL the sandbox hands out) is known at once,
and `stop()`/`start()` come back on the same port with the same state, like a service restart.
"""

from __future__ import annotations

import socket
import threading
import time
from types import TracebackType
from typing import Any, Self

import uvicorn

from sandbox.encoura.app import build_app
from sandbox.encoura.config import SANDBOX_CREDENTIALS, SandboxConfig
from sandbox.encoura.s3 import quiet_truncation_errors
from sandbox.encoura.state import SandboxState

_START_TIMEOUT = 10.0


class SandboxServer:
    """The sandbox as a context manager: `with SandboxServer(cfg, seed_samples=True) as sb: ...`.

    `sb.state` is the live, lock-protected state (exports, counters, uploads received);
    `sb.configure(**faults)` changes faults while it runs; `sb.env()` points our flows at it.
    """

    def __init__(self, config: SandboxConfig | None = None, *, seed_samples: bool = False) -> None:
        self.state = SandboxState(config or SandboxConfig(), seed_samples=seed_samples)
        self._app = build_app(self.state)
        self._port = self.config.port
        self._server: uvicorn.Server | None = None
        self._thread: threading.Thread | None = None
        self._socket: socket.socket | None = None

    # ------------------------------------------------------------------ lifecycle
    def start(self) -> Self:
        if self._thread is not None:
            return self
        # IPPROTO_TCP explicitly: asyncio only sets TCP_NODELAY on sockets whose proto says TCP, and
        # without it every keep-alive response waits ~40 ms for a delayed ACK.
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM, socket.IPPROTO_TCP)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((self.config.host, self._port))
        except OSError:
            sock.close()
            raise
        self._port = sock.getsockname()[1]
        self._socket = sock
        self.state.root_url = self.root_url
        quiet_truncation_errors()
        server = uvicorn.Server(
            uvicorn.Config(
                self._app,
                http="h11",  # its behaviour on a short body (close the connection) is what truncation relies on
                lifespan="off",
                log_config=None,  # leave the host process's logging alone
                log_level="warning",
                access_log=False,  # access lines would carry presigned query strings
                timeout_graceful_shutdown=1,
            )
        )
        thread = threading.Thread(
            target=server.run, kwargs={"sockets": [sock]}, daemon=True, name=f"encoura-sandbox-{self._port}"
        )
        thread.start()
        deadline = time.monotonic() + _START_TIMEOUT
        while not server.started:
            if not thread.is_alive() or time.monotonic() > deadline:
                server.should_exit = True
                sock.close()
                raise RuntimeError(f"Encoura sandbox did not start on {self.config.host}:{self._port}")
            time.sleep(0.005)
        self._server, self._thread = server, thread
        return self

    def stop(self) -> None:
        if self._server is None or self._thread is None:
            return
        self._server.should_exit = True
        self._thread.join(timeout=_START_TIMEOUT)
        if self._socket is not None:
            self._socket.close()
        self._server = self._thread = self._socket = None

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()

    # ------------------------------------------------------------------ addresses and credentials
    @property
    def config(self) -> SandboxConfig:
        """The live configuration (faults changed by `configure()` included)."""
        return self.state.config

    @property
    def port(self) -> int:
        return self._port

    @property
    def root_url(self) -> str:
        host = "127.0.0.1" if self.config.host in ("0.0.0.0", "") else self.config.host
        return f"http://{host}:{self._port}"

    @property
    def base_url(self) -> str:
        return f"{self.root_url}/v1"

    @property
    def credentials(self) -> dict[str, str]:
        return dict(SANDBOX_CREDENTIALS)

    def env(self) -> dict[str, str]:
        """Environment for our flows (also in subprocesses) to talk to this sandbox."""
        creds = SANDBOX_CREDENTIALS
        return {
            "ENCOURA_BASE_URL": self.base_url,
            "ENCOURA_API_KEY": creds["api_key"],
            "ENCOURA_USERNAME": creds["username"],
            "ENCOURA_PASSWORD": creds["password"],
            "ENCOURA_ORGANIZATION_UID": creds["organization_uid"],
        }

    # ------------------------------------------------------------------ test control
    def add_export(
        self,
        product_key: str = "prospect",
        filename: str | None = None,
        content: bytes | None = None,
        listing_overrides: dict[str, Any] | None = None,
        *,
        size: int | None = None,
        seed: int = 0,
        status: str = "NotDelivered",
        organization_uid: str | None = None,
    ) -> str:
        """Make an export available; content defaults to a small synthetic CSV, or `size` bytes of CSV."""
        return self.state.add_export(
            product_key,
            filename,
            content,
            size=size,
            seed=seed,
            listing_overrides=listing_overrides,
            status=status,
            organization_uid=organization_uid,
        )

    def configure(self, **fault_fields: Any) -> SandboxConfig:
        """Change faults live, e.g. `sb.configure(fail_rate=0.3, seed=7)`; unknown names raise ValueError."""
        return self.state.configure(**fault_fields)

    def expire_tokens(self) -> None:
        self.state.expire_tokens()

    def reset(self) -> None:
        self.state.reset()

    def snapshot(self) -> dict[str, Any]:
        return self.state.snapshot()
