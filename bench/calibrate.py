"""What the emulated link really delivers right now: raw TCP through a proxy with the same settings.

The nominal floor (bytes / cap) assumes the proxy forwards exactly at its cap. On a busy machine a
Python proxy loses some of that to late timer wake-ups, and then no tool can reach the nominal
floor. Timing plain TCP streams (no SSH, no SFTP, 8 in parallel) through an identical proxy gives
the floor actually on offer, so the report can tell protocol overhead from a starved proxy.
"""

from __future__ import annotations

import socket
import threading
import time
from typing import Any

from bench.infra import Proxy

CHUNK = 1 << 16


def measure_link(
    *, latency_ms: float, bandwidth_mbit: float | None, total_bytes: int, streams: int = 8, timeout: float = 300.0
) -> dict[str, Any]:
    """Seconds until the receiving side has read `total_bytes` sent over `streams` parallel connections."""
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen(streams)
    per_stream = total_bytes // streams
    wanted = per_stream * streams
    state = {"received": 0, "done_at": 0.0}
    lock = threading.Lock()
    all_in = threading.Event()

    def drain(conn: socket.socket) -> None:
        with conn:
            while data := conn.recv(1 << 20):
                with lock:
                    state["received"] += len(data)
                    if state["received"] >= wanted and not all_in.is_set():
                        state["done_at"] = time.monotonic()
                        all_in.set()

    def accept() -> None:
        # Not just `streams` connections: the proxy's readiness probe makes one more.
        while True:
            try:
                conn, _ = server.accept()
            except OSError:
                return  # closed: calibration is over
            threading.Thread(target=drain, args=(conn,), daemon=True).start()

    threading.Thread(target=accept, daemon=True).start()
    proxy = Proxy(server.getsockname()[1], latency_ms, bandwidth_mbit).start()
    block = b"x" * CHUNK

    def send() -> None:
        with socket.create_connection(("127.0.0.1", proxy.port)) as conn:
            left = per_stream
            while left > 0:
                conn.sendall(block[: min(CHUNK, left)])
                left -= min(CHUNK, left)
            all_in.wait(timeout)  # keep the connection open until everything has arrived

    try:
        started = time.monotonic()
        for _ in range(streams):
            threading.Thread(target=send, daemon=True).start()
        arrived = all_in.wait(timeout)
        seconds = (state["done_at"] if arrived else time.monotonic()) - started
    finally:
        proxy.stop()
        server.close()
    moved = int(state["received"])
    return {
        "bytes": moved,
        "streams": streams,
        "complete": arrived,
        "seconds": round(seconds, 3),
        "mb_per_s": round(moved / 1e6 / seconds, 2) if seconds > 0 else None,
        "share_of_cap": round(moved / seconds / (bandwidth_mbit * 1e6 / 8), 3) if bandwidth_mbit else None,
    }
