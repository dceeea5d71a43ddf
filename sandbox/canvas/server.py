"""Run the sandbox app with uvicorn in a background thread on 127.0.0.1, port chosen by the OS."""

from __future__ import annotations

import socket
import threading
import time
from types import TracebackType

import uvicorn

from sandbox.canvas.app import create_app
from sandbox.canvas.state import SandboxState


class CanvasSandbox:
    """A Canvas stand-in for tests and demos.

    with CanvasSandbox() as sb:
        sb.base_url, sb.token, sb.account_id      # point CANVAS_* settings here
        sb.state.rate_limit_next_n = 2            # fault knobs, see SandboxState
        sb.state.submissions()[0].fields          # what a client actually sent
    """

    def __init__(self, host: str = "127.0.0.1", port: int = 0, *, account_id: str = "1", token: str | None = None):
        self.state = SandboxState(account_id=account_id, token=token)
        self._host = host
        self._port = port
        self._server: uvicorn.Server | None = None
        self._thread: threading.Thread | None = None
        self._socket: socket.socket | None = None

    @property
    def token(self) -> str:
        return self.state.token

    @property
    def account_id(self) -> str:
        return self.state.account_id

    @property
    def port(self) -> int:
        assert self._socket is not None, "sandbox not started"
        return int(self._socket.getsockname()[1])

    @property
    def base_url(self) -> str:
        return f"http://{self._host}:{self.port}"

    def __repr__(self) -> str:
        return f"CanvasSandbox(base_url={self.base_url if self._socket else None!r}, account_id={self.account_id!r})"

    def start(self) -> CanvasSandbox:
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind((self._host, self._port))
        self._socket = sock
        config = uvicorn.Config(create_app(self.state), log_level="warning", access_log=False, lifespan="off")
        self._server = uvicorn.Server(config)
        self._thread = threading.Thread(
            target=self._server.run, kwargs={"sockets": [sock]}, name="canvas-sandbox", daemon=True
        )
        self._thread.start()
        deadline = time.monotonic() + 10
        while not self._server.started:
            if not self._thread.is_alive() or time.monotonic() > deadline:
                raise RuntimeError("Canvas sandbox did not start")
            time.sleep(0.01)
        return self

    def stop(self) -> None:
        if self._server is not None:
            self._server.should_exit = True
        if self._thread is not None:
            self._thread.join(timeout=10)
        if self._socket is not None:
            self._socket.close()

    def __enter__(self) -> CanvasSandbox:
        return self.start()

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()

    def serve_forever(self) -> None:
        assert self._thread is not None
        self._thread.join()
