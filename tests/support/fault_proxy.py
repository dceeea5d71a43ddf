"""A fault-injecting TCP proxy on loopback, for putting real network trouble between a flow and a server.

Sits in front of the SFTP test server (or the Encoura sandbox) and, on command, does what a
flaky network or firewall does: reset a connection in the middle of a transfer (after N bytes
sent upstream), stall (keep the connection open but forward nothing), throttle (a pause per
chunk, so a kill can land mid-upload), or refuse (reset every new connection at once: "down").

Protocol-agnostic on purpose: SSH/SFTP and HTTP see exactly what they would see from a real
network fault, so the product's own reconnect and retry code is what gets tested.

    with FaultProxy("127.0.0.1", sftp.port) as proxy:
        proxy.reset_after(500_000)        # the next connection dies after 500 kB upstream
        ... point the flow at proxy.port ...

All knobs are thread-safe and take effect immediately (also on live connections).
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
import struct
import threading
from dataclasses import dataclass, field
from types import TracebackType
from typing import Self

_CHUNK = 32 * 1024


@dataclass
class ProxyStats:
    accepted: int = 0
    refused: int = 0
    resets: int = 0
    bytes_up: int = 0  # client -> server
    bytes_down: int = 0  # server -> client


@dataclass(eq=False)  # identity-hashed: kept in a set of live connections
class _Conn:
    client: asyncio.StreamWriter
    upstream: asyncio.StreamWriter | None = None
    sent_up: int = 0
    sent_down: int = 0
    reset_at: int | None = None
    reset_down_at: int | None = None
    tasks: list[asyncio.Task[None]] = field(default_factory=list)


def _abort(writer: asyncio.StreamWriter | None) -> None:
    """Close with RST (SO_LINGER 0), not FIN: what a dropped NAT entry or a crashed middlebox does."""
    if writer is None:
        return
    sock = writer.get_extra_info("socket")
    if sock is not None:
        with contextlib.suppress(OSError):
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    writer.transport.abort()


class FaultProxy:
    def __init__(self, target_host: str, target_port: int, *, host: str = "127.0.0.1") -> None:
        self.target = (target_host, target_port)
        self.host = host
        self.port = 0
        self.stats = ProxyStats()
        self._lock = threading.Lock()
        self._refuse = False
        self._chunk_delay = 0.0
        self._pending_resets: list[int] = []  # byte thresholds for the next new connections
        self._pending_down_resets: list[int] = []
        self._conns: set[_Conn] = set()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._server: asyncio.AbstractServer | None = None

    # ---- lifecycle ---------------------------------------------------------------------------
    def start(self) -> Self:
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, name="fault-proxy", daemon=True)
        self._thread.start()
        self._server = self._call(self._serve())
        self.port = self._server.sockets[0].getsockname()[1]
        return self

    async def _serve(self) -> asyncio.AbstractServer:
        return await asyncio.start_server(self._handle, self.host, 0)

    def stop(self) -> None:
        if self._loop is None:
            return

        async def shutdown() -> None:
            assert self._server is not None
            self._server.close()
            for conn in list(self._conns):
                _abort(conn.client)
                _abort(conn.upstream)

        self._call(shutdown())
        self._loop.call_soon_threadsafe(self._loop.stop)
        assert self._thread is not None
        self._thread.join(timeout=10)
        self._loop.close()
        self._loop = None

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(self, et: type[BaseException] | None, e: BaseException | None, tb: TracebackType | None) -> None:
        self.stop()

    def _call(self, coro: object) -> object:
        assert self._loop is not None
        return asyncio.run_coroutine_threadsafe(coro, self._loop).result(timeout=30)  # type: ignore[arg-type]

    # ---- knobs -------------------------------------------------------------------------------
    def refuse(self, on: bool = True) -> None:
        """While on, every new connection is reset immediately (the server looks down)."""
        with self._lock:
            self._refuse = on

    def throttle(self, chunk_delay: float) -> None:
        """Pause `chunk_delay` seconds before forwarding each chunk (<= 32 KiB) in either direction."""
        with self._lock:
            self._chunk_delay = chunk_delay

    def reset_after(self, nbytes: int, *, connections: int = 1, direction: str = "up") -> None:
        """The next `connections` new connections are reset once `nbytes` have passed in `direction`
        ("up": client -> server, e.g. mid-upload; "down": server -> client, e.g. mid-answer)."""
        with self._lock:
            target = self._pending_resets if direction == "up" else self._pending_down_resets
            target.extend([nbytes] * connections)

    def clear(self) -> None:
        """Back to a transparent proxy."""
        with self._lock:
            self._refuse = False
            self._chunk_delay = 0.0
            self._pending_resets.clear()
            self._pending_down_resets.clear()

    # ---- data path ---------------------------------------------------------------------------
    def _reset(self, conn: _Conn) -> None:
        self.stats.resets += 1
        _abort(conn.client)
        _abort(conn.upstream)
        for task in conn.tasks:
            task.cancel()

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        with self._lock:
            refuse = self._refuse
            reset_at = self._pending_resets.pop(0) if (self._pending_resets and not refuse) else None
            reset_down_at = self._pending_down_resets.pop(0) if (self._pending_down_resets and not refuse) else None
        if refuse:
            self.stats.refused += 1
            _abort(writer)
            return
        self.stats.accepted += 1
        conn = _Conn(client=writer, reset_at=reset_at, reset_down_at=reset_down_at)
        try:
            up_reader, up_writer = await asyncio.open_connection(*self.target)
        except OSError:
            _abort(writer)
            return
        conn.upstream = up_writer
        self._conns.add(conn)
        conn.tasks = [
            asyncio.ensure_future(self._pump(conn, reader, up_writer, upstream=True)),
            asyncio.ensure_future(self._pump(conn, up_reader, writer, upstream=False)),
        ]
        try:
            await asyncio.gather(*conn.tasks, return_exceptions=True)
        finally:
            self._conns.discard(conn)
            _abort(writer)
            _abort(up_writer)

    async def _pump(
        self, conn: _Conn, reader: asyncio.StreamReader, writer: asyncio.StreamWriter, *, upstream: bool
    ) -> None:
        try:
            while True:
                data = await reader.read(_CHUNK)
                if not data:
                    break
                if self._chunk_delay:
                    await asyncio.sleep(self._chunk_delay)
                sent = conn.sent_up if upstream else conn.sent_down
                limit = conn.reset_at if upstream else conn.reset_down_at
                if limit is not None and sent + len(data) >= limit:
                    cut = max(limit - sent, 0)
                    if cut:
                        writer.write(data[:cut])
                        with contextlib.suppress(ConnectionError):
                            await writer.drain()
                    self._reset(conn)
                    return
                if upstream:
                    conn.sent_up += len(data)
                    self.stats.bytes_up += len(data)
                else:
                    conn.sent_down += len(data)
                    self.stats.bytes_down += len(data)
                writer.write(data)
                await writer.drain()
        except (ConnectionError, OSError):
            pass
        finally:
            # One side finished or failed: end the other too, as a real TCP peer would notice.
            if not writer.is_closing():
                with contextlib.suppress(OSError, RuntimeError):
                    writer.write_eof()
