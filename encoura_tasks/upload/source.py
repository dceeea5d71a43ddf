"""The folder upload files come from (Slate's SFTP /outgoing/, a share, S3...), through the destination layer.

Why through `destinations`: the source needs the same things a destination does (credentials,
host-key checking, one connection per run) plus moves that never overwrite and never fall back to
a shell (`sshfs.mv` would run `cp` on an SFTP-only server). Destinations already have those
primitives (`rename_noreplace`: posix-rename or plain SFTP rename, `os.link` locally) and the
atomic temp -> verify -> rename publish used here for the error notes.

Moves never overwrite: a name already taken in processed/ (Slate often writes the same file name
every day) gets the content hash added before the extension.
"""

from __future__ import annotations

import hashlib
import logging
import os
import secrets
import shutil
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

import fsspec

from common.errors import ConfigError
from common.hashing import file_hexdigest
from common.redaction import redact_text, redact_url
from destinations import (
    Destination,
    DestinationConfig,
    PublishError,
    open_destination,
)
from encoura_tasks.upload.settings import SOURCE_SETTING, UploadSettings

logger = logging.getLogger(__name__)
_CHUNK = 1 << 20


class UploadSourceError(Exception):
    """The source folder cannot be read or changed; the message names UPLOAD_SOURCE and never a secret."""

    def __init__(self, message: str) -> None:
        super().__init__(redact_text(message))


@dataclass(frozen=True)
class SourceFile:
    path: str  # full storage path (what fs methods take)
    relative: str  # relative to the source folder, e.g. "enrollment_2026.csv"
    size: int

    @property
    def name(self) -> str:
        return PurePosixPath(self.relative).name


def candidate_names(name: str, sha256: str) -> list[str]:
    """Names to try in processed/ or failed/, in order; deterministic so a re-run finds its own move."""
    pure = PurePosixPath(name)
    return [name, f"{pure.stem}.{sha256[:12]}{pure.suffix}"]


class UploadSource:
    """One per run: lists, reads and moves files under UPLOAD_SOURCE's folder."""

    def __init__(self, settings: UploadSettings, config: DestinationConfig) -> None:
        self.settings = settings
        self.config = config
        self.pattern = settings.spec.pattern
        # Our setting names in every message (UPLOAD_SOURCE_PASSWORD, not DESTINATIONS__...).
        self.dest: Destination = open_destination(SOURCE_SETTING, config, setting_prefix=f"{SOURCE_SETTING}_")

    def __repr__(self) -> str:
        return f"UploadSource({self.describe()!r})"

    @property
    def fs(self) -> fsspec.AbstractFileSystem:
        return self.dest.fs  # type: ignore[attr-defined]

    @property
    def root(self) -> str:
        return self.dest.root.rstrip("/") or "/"

    def describe(self) -> str:
        return redact_url(self.settings.source)

    def location(self, relative: str) -> str:
        return f"{self.folder_location()}/{relative}"

    def folder_location(self) -> str:
        """The source folder as recorded in the ledger (redacted): tells this source's uploads from others'."""
        return redact_url(self.config.url).rstrip("/")

    def close(self) -> None:
        self.dest.close()

    def full(self, relative: str) -> str:
        return f"{self.root.rstrip('/')}/{relative}"

    # ------------------------------------------------------------------ listing
    def _excluded(self, relative: str) -> bool:
        parts = PurePosixPath(relative).parts
        if any(p.startswith(".") for p in parts):
            return True  # hidden files, including our own in-flight temp names
        inside = "/" + "/".join(parts[:-1]) + "/"
        return any(f"/{folder}/" in inside for folder in (self.settings.archive_dir, self.settings.failed_dir))

    def list_files(self) -> list[SourceFile]:
        """Files matching the glob, oldest name first; processed/ and failed/ are never matched."""
        try:
            self.fs.invalidate_cache()
            found = self.fs.glob(self.full(self.pattern), detail=True)
        except FileNotFoundError:
            return []
        except (ConfigError, UploadSourceError, PublishError):
            raise  # PublishError: DestinationUnavailable / HostKeyError, already clear and typed for callers
        except Exception as exc:
            raise UploadSourceError(f"{SOURCE_SETTING}: cannot list {self.describe()} ({type(exc).__name__}: "
                                    f"{exc})") from None
        files = []
        prefix = self.root.rstrip("/") + "/"
        for path, info in sorted(found.items()):
            if info.get("type") != "file":
                continue
            relative = path[len(prefix) :] if path.startswith(prefix) else path.rpartition("/")[2]
            if self._excluded(relative):
                continue
            files.append(SourceFile(path=path, relative=relative, size=int(info.get("size") or 0)))
        return files

    # ------------------------------------------------------------------ reading
    def fetch(self, item: SourceFile, target: Path) -> tuple[int, str]:
        """Copy to `target` through a temp name; (size, sha256) of what was actually read."""
        target.parent.mkdir(parents=True, exist_ok=True)
        temp = target.with_name(f".{target.name}.{secrets.token_hex(4)}.part")
        try:
            self.fs.get_file(item.path, str(temp))
            size = temp.stat().st_size
            digest = file_hexdigest(temp)
            os.replace(temp, target)
        except FileNotFoundError:
            temp.unlink(missing_ok=True)
            raise UploadSourceError(f"{self.location(item.relative)} disappeared while being read") from None
        except Exception as exc:
            temp.unlink(missing_ok=True)
            raise UploadSourceError(
                f"cannot read {self.location(item.relative)} ({type(exc).__name__}: {exc})"
            ) from None
        return size, digest

    def fingerprint(self, relative: str, work_dir: Path) -> tuple[int, str] | None:
        """(size, sha256) of the file now at `relative`, or None when it is gone: checked before a move."""
        probe = work_dir / f".verify-{secrets.token_hex(4)}"
        try:
            size = self.dest.size_of(self.full(relative))
            if size is None:
                return None
            return self.fetch(SourceFile(self.full(relative), relative, size), probe)
        except UploadSourceError:
            if self.dest.size_of(self.full(relative)) is None:
                return None
            raise
        finally:
            probe.unlink(missing_ok=True)

    # ------------------------------------------------------------------ moving
    def target_folder(self, relative: str, folder: str) -> str:
        """processed/ (or failed/) beside the file: relative to the file's own folder."""
        parent = PurePosixPath(relative).parent.as_posix()
        return folder if parent in ("", ".") else f"{parent}/{folder}"

    def move(self, relative: str, folder: str, *, sha256: str) -> str:
        """Rename `relative` into `folder` beside it without overwriting anything; returns the new relative path."""
        target_dir = self.target_folder(relative, folder)
        name = PurePosixPath(relative).name
        try:
            self.dest.makedirs(self.full(target_dir))
        except Exception as exc:
            raise UploadSourceError(
                f"cannot create {self.location(target_dir)} ({type(exc).__name__}: {exc})"
            ) from None
        last: Exception | None = None
        for candidate in [*candidate_names(name, sha256), f"{PurePosixPath(name).stem}.{secrets.token_hex(4)}"
                          f"{PurePosixPath(name).suffix}"]:
            new_relative = f"{target_dir}/{candidate}"
            try:
                self._rename_noreplace(self.full(relative), self.full(new_relative))
            except FileExistsError as exc:
                last = exc
                continue
            except Exception as exc:
                raise UploadSourceError(
                    f"cannot move {self.location(relative)} to {target_dir}/ ({type(exc).__name__}: {exc})"
                ) from None
            return new_relative
        raise UploadSourceError(f"cannot move {self.location(relative)}: every name in {target_dir}/ is taken ({last})")

    def _rename_noreplace(self, src: str, dst: str) -> None:
        try:
            self.dest.rename_noreplace(src, dst)
        except NotImplementedError:
            # Object stores (S3) have no rename: copy, check the copy, and only then delete the original.
            if self.dest.size_of(dst) is not None:
                raise FileExistsError(dst) from None
            self.fs.copy(src, dst)
            copied, original = self.dest.size_of(dst), self.dest.size_of(src)
            if copied is None or copied != original:
                raise OSError(f"the copy has {copied} bytes, the original {original}; original kept") from None
            self.fs.rm_file(src)

    def find_moved(self, relative: str, folder: str, *, size: int, sha256: str, work_dir: Path) -> str | None:
        """After a crash between the move and the ledger update: where our file went, if it did."""
        target_dir = self.target_folder(relative, folder)
        for candidate in candidate_names(PurePosixPath(relative).name, sha256):
            moved = f"{target_dir}/{candidate}"
            if self.dest.size_of(self.full(moved)) == size and self.fingerprint(moved, work_dir) == (size, sha256):
                return moved
        return None

    def write_note(self, relative: str, text: str, work_dir: Path) -> str:
        """Save a small text file (e.g. Encoura's error) atomically: temp name, verify, rename."""
        work_dir.mkdir(parents=True, exist_ok=True)
        local = work_dir / f".note-{secrets.token_hex(4)}"
        data = text.encode("utf-8")
        local.write_bytes(data)
        try:
            receipt = self.dest.publish(local, relative, sha256=hashlib.sha256(data).hexdigest(), size=len(data))
        finally:
            local.unlink(missing_ok=True)
        return receipt.relative_path


def clear_dir(path: Path) -> None:
    shutil.rmtree(path, ignore_errors=True)
