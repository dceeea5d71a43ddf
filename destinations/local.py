"""Local folders and mounted network shares (`file:///mnt/slate-share/incoming`).

Uses the OS directly rather than fsspec's LocalFileSystem because the guarantees live in the
system calls: the temp file is created exclusively and fsynced, and the final name is made with
`os.link` (which fails if the name exists, atomically) followed by removing the temp. Shares that
cannot hard-link (some SMB/CIFS mounts) fall back to a rename under a create-only claim file
(O_EXCL), so two writers racing for one name still end with one file and one "already present".
"""

from __future__ import annotations

import errno
import os
from collections.abc import Iterable
from pathlib import Path

from fsspec.callbacks import Callback
from fsspec.implementations.local import LocalFileSystem

from common.hashing import file_hexdigest
from destinations.fsspec_dest import FsspecDestination
from destinations.publish import move_noreplace

_CHUNK = 1 << 20
_NO_HARDLINKS = {errno.EPERM, errno.ENOTSUP, errno.EOPNOTSUPP, errno.EXDEV, errno.EMLINK, errno.ENOSYS, errno.EACCES}


def _fsync_dir(path: str) -> None:
    try:
        fd = os.open(path or ".", os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass  # some shares cannot fsync a directory; the file itself was fsynced
    finally:
        os.close(fd)


class LocalDestination(FsspecDestination):
    cheap_readback = True

    def put(self, local_path: Path, path: str, *, callback: Callback | None, create_only: bool) -> None:
        flags = os.O_WRONLY | os.O_CREAT | (os.O_EXCL if create_only else os.O_TRUNC)
        fd = os.open(path, flags, 0o644)
        with os.fdopen(fd, "wb") as out, local_path.open("rb") as src:
            if callback is not None:
                callback.set_size(local_path.stat().st_size)
            for block in iter(lambda: src.read(_CHUNK), b""):
                out.write(block)
                if callback is not None:
                    callback.relative_update(len(block))
            out.flush()
            os.fsync(out.fileno())

    def size_of(self, path: str) -> int | None:
        try:
            st = os.stat(path)
        except FileNotFoundError:
            return None
        if not os.path.isfile(path):
            raise IsADirectoryError(errno.EISDIR, "exists and is not a regular file", path)
        return st.st_size

    def rename_noreplace(self, src: str, dst: str) -> None:
        try:
            os.link(src, dst)
        except FileExistsError:
            raise
        except OSError as exc:
            if exc.errno not in _NO_HARDLINKS:
                raise
            # No hard links on this share: rename under the create-only claim guard (O_EXCL).
            move_noreplace(LocalFileSystem(), src, dst)
        else:
            os.unlink(src)
        _fsync_dir(os.path.dirname(dst))

    def remove(self, path: str) -> None:
        os.unlink(path)

    def makedirs(self, path: str) -> None:
        os.makedirs(path, exist_ok=True)

    def remove_folder(self, path: str) -> None:
        os.rmdir(path)

    def root_exists(self) -> bool:
        return os.path.isdir(self.root or ".")

    def sha256_of(self, path: str) -> str:
        return file_hexdigest(path)

    def list_files(self, maxdepth: int) -> Iterable[tuple[str, str]]:
        root = self.root
        if not os.path.isdir(root):
            raise FileNotFoundError(root)
        base_depth = root.rstrip("/").count("/")
        for dirpath, dirnames, filenames in os.walk(root):
            if dirpath.rstrip("/").count("/") - base_depth >= maxdepth - 1:
                dirnames.clear()  # bounded walk
            for name in filenames:
                yield os.path.join(dirpath, name), name
