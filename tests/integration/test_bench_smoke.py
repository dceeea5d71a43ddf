"""Smoke test for the benchmark's own machinery (not a benchmark: no timing is asserted).

The proxy must forward every byte unchanged in both directions under many parallel connections,
or the benchmark would measure a broken network; and the report must render from a results file
with scenarios missing, since `--only` runs produce those.
"""

from __future__ import annotations

import asyncio
import hashlib
import os

from bench.proxy import LatencyProxy
from bench.report import evaluate_targets, markdown_table


async def _echo(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    while data := await reader.read(65536):
        writer.write(data)
        await writer.drain()
    writer.close()


async def _round_trip(port: int, payload: bytes) -> bytes:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)

    async def send() -> None:
        for start in range(0, len(payload), 50_000):
            writer.write(payload[start : start + 50_000])
            await writer.drain()
        writer.write_eof()

    sender = asyncio.create_task(send())
    received = await reader.read(-1)
    await sender
    writer.close()
    return received


def test_proxy_forwards_every_byte_over_parallel_connections() -> None:
    async def scenario() -> None:
        echo = await asyncio.start_server(_echo, "127.0.0.1", 0)
        target = echo.sockets[0].getsockname()[1]
        proxy = LatencyProxy(("127.0.0.1", target), latency_ms=5, bandwidth_mbit=400)
        front = await asyncio.start_server(proxy.handle, "127.0.0.1", 0)
        port = front.sockets[0].getsockname()[1]
        payloads = [os.urandom(300_000 + n) for n in range(6)]
        async with echo, front:
            results = await asyncio.gather(*(_round_trip(port, p) for p in payloads))
        assert [hashlib.sha256(r).hexdigest() for r in results] == [hashlib.sha256(p).hexdigest() for p in payloads]
        assert proxy.connections == len(payloads)

    asyncio.run(asyncio.wait_for(scenario(), timeout=30))


def test_report_renders_partial_results() -> None:
    results = {
        "started_at": "2026-01-01T00:00:00+00:00",
        "machine": {"cpu_model": "test", "cpu_cores": 2},
        "orchestration": {
            "runs": [
                {"files": 2, "seconds": 1.0, "ms_per_file_wall": 500.0, "returncode": 0, "verify": {"ok": True}},
                {"files": 4, "seconds": 1.5, "ms_per_file_wall": 375.0, "returncode": 0, "verify": {"ok": False}},
            ],
            "ms_per_file_marginal": 40.0,
            "cpu_ms_per_file_marginal": 20.0,
        },
    }
    results["targets"] = evaluate_targets(results)
    table = markdown_table(results)
    assert results["targets"]["orchestration_ms_per_file"]["met"] is True
    assert "NOT VERIFIED" in table
    assert "Export" not in table  # the throughput scenario did not run
