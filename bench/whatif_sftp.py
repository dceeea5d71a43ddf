"""What-if: the export flow with SFTP round trips trimmed (a proposal for destinations/sftp.py).

    python -m bench.whatif_sftp      (same arguments and environment as python -m flows.encoura_export)

Measured, not shipped: the benchmark runs this beside the real flow so the report can show what
the proposed change would buy. Two changes, both about round trips on a 40 ms path:
- `_makedirs` remembers folders it made (or found) on the current connection: asyncssh's
  makedirs costs two round trips per path component (mkdir, then stat when it exists), and the
  publish path asked for the same folder once per file.
- `_put` uploads through an sshfs pool channel directly: `fs.put_file` runs makedirs on the
  parent again first, which the publish path has just done.
"""

from __future__ import annotations

from typing import Any

from fsspec.asyn import sync

from destinations.sftp import SFTPDestination


def _makedirs(self: SFTPDestination, path: str) -> None:
    known: set[tuple[int, str]] = self.__dict__.setdefault("_known_dirs", set())
    key = (self._generation, path)
    if key in known:
        return
    self.fs.makedirs(path, exist_ok=True)
    known.add(key)


def _put(self: SFTPDestination, local_path: Any, path: str, *, callback: Any, create_only: bool) -> None:
    from sshfs.utils import WRITE_BLOCK_SIZE, as_progress_handler

    fs = self.fs

    async def put() -> None:
        async with fs._pool.get() as channel:
            await channel.put(
                str(local_path), path, block_size=WRITE_BLOCK_SIZE, progress_handler=as_progress_handler(callback)
            )

    sync(fs.loop, put)


def apply() -> None:
    SFTPDestination._makedirs = _makedirs  # type: ignore[method-assign]
    SFTPDestination._put = _put  # type: ignore[method-assign]


if __name__ == "__main__":
    apply()
    from common.cli import run_cli
    from flows.encoura_export import main

    run_cli(main)
