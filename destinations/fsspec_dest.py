"""Any fsspec filesystem as a destination (memory://, gcs://, abfs://, smb://, ...).

Generic filesystems promise no atomic no-overwrite rename, so `rename_noreplace` goes through
`destinations.move_noreplace`: a create-only claim file per final name guards the check-and-move,
so two writers racing for one name end with one file and one "already present".
"""

from __future__ import annotations

import threading
from collections.abc import Iterable
from pathlib import Path
from typing import TYPE_CHECKING

import fsspec
from fsspec.callbacks import Callback

from common.hashing import stream_hexdigest
from destinations.base import Destination
from destinations.connect import filesystem_for
from destinations.publish import move_noreplace

if TYPE_CHECKING:
    from destinations.config import DestinationConfig


class FsspecDestination(Destination):
    def __init__(self, name: str, config: DestinationConfig) -> None:
        super().__init__(name, config)
        self._lock = threading.Lock()
        self._fs: fsspec.AbstractFileSystem | None = None
        self._root: str | None = None

    # Connecting lazily: see Destination's docstring.
    def _connect(self) -> tuple[fsspec.AbstractFileSystem, str]:
        return filesystem_for(self.config, name=self.name, setting_prefix=self.setting_prefix)

    @property
    def fs(self) -> fsspec.AbstractFileSystem:
        if self._fs is None:
            with self._lock:
                if self._fs is None:
                    self._fs, self._root = self._connect()
        return self._fs

    @property
    def root(self) -> str:
        if self._root is None:
            _ = self.fs
        return self._root or ""

    def close(self) -> None:
        with self._lock:
            self._fs = None
            self.root_checked = False

    # ---- primitives -------------------------------------------------------------------------
    def put(self, local_path: Path, path: str, *, callback: Callback | None, create_only: bool) -> None:
        if create_only and self.fs.exists(path):
            raise FileExistsError(path)
        kwargs = {"callback": callback} if callback is not None else {}
        self.fs.put_file(str(local_path), path, **kwargs)

    def size_of(self, path: str) -> int | None:
        try:
            info = self.fs.info(path)
        except FileNotFoundError:
            return None
        if info.get("type") == "directory":
            raise IsADirectoryError(f"{path} is a folder")
        return int(info["size"])

    def rename_noreplace(self, src: str, dst: str) -> None:
        move_noreplace(self.fs, src, dst)

    def remove_folder(self, path: str) -> None:
        self.fs.rmdir(path)

    def root_exists(self) -> bool:
        root = self.root
        if not root or root == "/":
            return True
        try:
            self.fs.invalidate_cache(root)
            return self.fs.info(root).get("type") == "directory"
        except FileNotFoundError:
            return False

    def remove(self, path: str) -> None:
        self.fs.rm_file(path)

    def makedirs(self, path: str) -> None:
        self.fs.makedirs(path, exist_ok=True)

    def sha256_of(self, path: str) -> str:
        with self.fs.open(path, "rb") as fh:
            return stream_hexdigest(fh)

    def list_files(self, maxdepth: int) -> Iterable[tuple[str, str]]:
        self.fs.invalidate_cache()
        for path in self.fs.find(self.root, maxdepth=maxdepth, withdirs=False):
            yield path, path.rpartition("/")[2]
