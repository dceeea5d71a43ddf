"""A TCP proxy that makes loopback look like the internet: added latency and one shared bandwidth cap.

    python -m bench.proxy --target 127.0.0.1:2222 [--latency-ms 20] [--bandwidth-mbit 100]

It prints `PORT <n>` once it listens. Why it is built this way:
- Latency is a delay line, not a sleep per read: every chunk is stamped when it arrives and is
  forwarded `latency` later, so many chunks are in flight at once, as on a real path. Sleeping
  between reads would cap each connection at chunk/latency and measure the proxy, not the product.
- The bandwidth cap is one FIFO "virtual clock" per direction, shared by every connection, like
  the access link of a campus: eight parallel transfers share 100 Mbit/s, they do not get 100 each.
  The two directions are independent (links are full duplex).
- Each direction's in-flight bytes are bounded by a queue, so the proxy's memory stays small and
  a slow receiver pushes back on the sender through TCP, as a real path does.
The loopback kernel acknowledges TCP segments to the proxy at once, so TCP's own window dynamics
over a long path are not modelled; SSH channel windows and SFTP request round trips, which decide
SFTP throughput, are.

Round trips are counted here, because SSH is encrypted and no SFTP packet can be read. A *turnaround*
is a client->server burst that starts after the client sat waiting for the server: the last chunk
seen on the connection went server->client, and the client had sent nothing for at least
`--turnaround-gap-ms` (default: 1.5 x the one-way delay, i.e. three quarters of the emulated round
trip; a client that waits for an answer is silent for at least the full round trip, a client that
pipelines keeps sending and is never counted). With `--stats-file`, every connection appends one JSON
line when it opens and one when it closes (bytes, chunks, turnarounds each way), so the benchmark can
count per run.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import signal
import socket
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

CHUNK = 64 * 1024
MAX_IN_FLIGHT_CHUNKS = 256  # bounds memory; 16 MiB per direction per connection at most
BUCKET_SECONDS = 0.05  # token-bucket depth: 625 kB at 100 Mbit/s
BULK_CHUNK = 16 * 1024  # an upload's data: SFTP writes arrive in reads this big, requests and acks in far smaller


class SharedLink:
    """One direction of the emulated link: a token bucket, as a virtual clock shared by every connection.

    `_next_free` is when the link will have sent everything admitted so far. It may lag `now` by
    at most BUCKET_SECONDS: that is the bucket's depth, the credit an idle or briefly starved link
    keeps. Without it, every late timer wake-up on a busy machine would be bandwidth lost for good
    and the proxy would deliver less than its cap; with it, any interval T carries at most
    rate * (T + BUCKET_SECONDS) bytes. asyncio is single-threaded, so no lock is needed.
    """

    def __init__(self, bytes_per_second: float | None) -> None:
        self.rate = bytes_per_second
        self._next_free = 0.0

    async def transmit(self, size: int) -> None:
        """Wait until `size` more bytes fit through the link after everything admitted before them."""
        if not self.rate:
            return
        now = asyncio.get_running_loop().time()
        self._next_free = max(self._next_free, now - BUCKET_SECONDS) + size / self.rate
        wait = self._next_free - now
        if wait > 0:
            await asyncio.sleep(wait)


@dataclass
class ConnectionStats:
    """What one proxied connection carried; `turnarounds` counts client waits for the server (see above)."""

    conn: int
    opened: float = field(default_factory=time.time)
    closed: float | None = None
    up_bytes: int = 0
    down_bytes: int = 0
    up_chunks: int = 0
    down_chunks: int = 0
    turnarounds: int = 0
    gap: float = 0.03
    last_direction: str = ""
    last_up: float = 0.0
    # Wall-clock times of the first and last bulk upload read: when file data started and stopped
    # moving, so a run's fixed costs (start-up, login, listing, tear-down) can be told from its transfer.
    bulk_first: float | None = None
    bulk_last: float | None = None

    def seen(self, direction: str, size: int, now: float) -> None:
        """Record one chunk read from either side, in the order the proxy read them."""
        if direction == "up":
            if self.last_direction == "down" and now - self.last_up >= self.gap:
                self.turnarounds += 1
            self.up_bytes += size
            self.up_chunks += 1
            self.last_up = now
            if size >= BULK_CHUNK:
                wall = time.time()
                self.bulk_first = self.bulk_first or wall
                self.bulk_last = wall
        else:
            self.down_bytes += size
            self.down_chunks += 1
        self.last_direction = direction

    def record(self) -> dict[str, object]:
        out = asdict(self)
        for key in ("gap", "last_direction", "last_up"):
            out.pop(key)
        return out


async def _pump(
    reader: asyncio.StreamReader,
    writer: asyncio.StreamWriter,
    link: SharedLink,
    latency: float,
    stats: ConnectionStats | None = None,
    direction: str = "up",
) -> None:
    loop = asyncio.get_running_loop()
    queue: asyncio.Queue[tuple[float, bytes] | None] = asyncio.Queue(maxsize=MAX_IN_FLIGHT_CHUNKS)

    async def feed() -> None:
        try:
            while data := await reader.read(CHUNK):
                if stats is not None:
                    stats.seen(direction, len(data), loop.time())
                await link.transmit(len(data))
                await queue.put((loop.time() + latency, data))
        except (ConnectionError, OSError):
            pass
        finally:
            await queue.put(None)

    async def deliver() -> None:
        try:
            while (item := await queue.get()) is not None:
                due, data = item
                wait = due - loop.time()
                if wait > 0:
                    await asyncio.sleep(wait)
                writer.write(data)
                await writer.drain()
            if writer.can_write_eof():
                writer.write_eof()
        except (ConnectionError, OSError):
            pass

    feeder = asyncio.create_task(feed())
    try:
        await deliver()
    finally:
        feeder.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await feeder


def _nodelay(writer: asyncio.StreamWriter) -> None:
    sock = writer.get_extra_info("socket")
    if sock is not None:
        with contextlib.suppress(OSError):
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)


class LatencyProxy:
    def __init__(
        self,
        target: tuple[str, int],
        *,
        latency_ms: float,
        bandwidth_mbit: float | None,
        stats_file: Path | None = None,
        turnaround_gap_ms: float | None = None,
    ) -> None:
        self.target = target
        self.latency = latency_ms / 1000.0
        self.stats_file = stats_file
        self.gap = (turnaround_gap_ms if turnaround_gap_ms is not None else 1.5 * latency_ms) / 1000.0
        self.closed: list[ConnectionStats] = []
        self.opened: list[ConnectionStats] = []  # every connection, open or closed, counted live
        rate = bandwidth_mbit * 1_000_000 / 8 if bandwidth_mbit else None
        self.up = SharedLink(rate)  # client -> server
        self.down = SharedLink(rate)  # server -> client
        self.connections = 0

    def turnarounds(self) -> int:
        """Client waits counted so far on every connection (a test reads it before and after a batch)."""
        return sum(stats.turnarounds for stats in self.opened)

    def _log(self, event: str, stats: ConnectionStats) -> None:
        if self.stats_file is not None:
            with open(self.stats_file, "a") as fh:
                fh.write(json.dumps({"event": event, **stats.record()}) + "\n")

    async def handle(self, client_reader: asyncio.StreamReader, client_writer: asyncio.StreamWriter) -> None:
        self.connections += 1
        stats = ConnectionStats(self.connections, gap=self.gap)
        self.opened.append(stats)
        self._log("open", stats)
        try:
            server_reader, server_writer = await asyncio.open_connection(*self.target)
        except OSError:
            client_writer.close()
            stats.closed = time.time()
            self._log("close", stats)
            return
        _nodelay(client_writer)
        _nodelay(server_writer)
        try:
            await asyncio.gather(
                _pump(client_reader, server_writer, self.up, self.latency, stats, "up"),
                _pump(server_reader, client_writer, self.down, self.latency, stats, "down"),
            )
        except asyncio.CancelledError:
            pass  # shutting down
        finally:
            for w in (client_writer, server_writer):
                w.close()
                with contextlib.suppress(Exception):
                    await w.wait_closed()
            stats.closed = time.time()
            self.closed.append(stats)
            self._log("close", stats)


async def serve(
    target: tuple[str, int],
    *,
    port: int,
    latency_ms: float,
    bandwidth_mbit: float | None,
    stats_file: Path | None = None,
    turnaround_gap_ms: float | None = None,
) -> None:
    proxy = LatencyProxy(
        target,
        latency_ms=latency_ms,
        bandwidth_mbit=bandwidth_mbit,
        stats_file=stats_file,
        turnaround_gap_ms=turnaround_gap_ms,
    )
    server = await asyncio.start_server(proxy.handle, "127.0.0.1", port)
    bound = server.sockets[0].getsockname()[1]
    print(f"PORT {bound}", flush=True)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    async with server:
        await stop.wait()


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.proxy", description=__doc__.split("\n")[0])
    parser.add_argument("--target", required=True, help="host:port to forward to")
    parser.add_argument("--port", type=int, default=0, help="listen port on 127.0.0.1 (default: any free one)")
    parser.add_argument("--latency-ms", type=float, default=20.0, help="added delay each way (default 20)")
    parser.add_argument(
        "--bandwidth-mbit", type=float, default=100.0, help="shared cap per direction, 0 = none (default 100)"
    )
    parser.add_argument("--stats-file", type=Path, default=None, help="append per-connection JSON lines here")
    parser.add_argument(
        "--turnaround-gap-ms",
        type=float,
        default=None,
        help="client silence that makes a server->client->server change a round trip (default 1.5 x latency)",
    )
    args = parser.parse_args(argv)
    host, _, port = args.target.rpartition(":")
    asyncio.run(
        serve(
            (host, int(port)),
            port=args.port,
            latency_ms=args.latency_ms,
            bandwidth_mbit=args.bandwidth_mbit or None,
            stats_file=args.stats_file,
            turnaround_gap_ms=args.turnaround_gap_ms,
        )
    )


if __name__ == "__main__":
    main()
