"""The one publish path shared by every protocol: temp name -> verify -> rename into place.

Why each step:
- The temp name (`.~inflight.<unix time>.<pid>-<random>.part`, a dot-file beside the final
  name) cannot match a Slate source-format mask: masks need a meaningful prefix or suffix, and
  this name carries neither the file's name, nor its extension, nor a product name. Slate
  therefore never imports a half file.
- The size (and sha256 where reading back is cheap) is checked on the temp file, before the final
  name exists, so a short write never becomes visible.
- The rename never overwrites: if the final name exists, its content is compared and either
  reported as already present (a re-run after a crash between rename and ledger update) or refused.
- The unix time and pid in the temp name let `sweep` remove only temps old enough to be orphans,
  never the in-flight temp of a concurrent run.

Storages where a single upload becomes visible atomically (S3) set `atomic_put`: they upload
straight to the final key with a create-only condition and verify afterwards; see destinations.s3.
"""

from __future__ import annotations

import contextlib
import os
import re
import secrets
import time
from collections.abc import Callable, Collection
from pathlib import Path
from typing import TYPE_CHECKING

from fsspec.callbacks import Callback

from common.crashpoints import crashpoint
from common.hashing import file_hexdigest
from destinations.base import PublishError, Receipt

if TYPE_CHECKING:
    from destinations.base import Destination

TEMP_PREFIX = ".~inflight."
TEMP_SUFFIX = ".part"
TEMP_RE = re.compile(r"^\.~inflight\.(?P<ts>\d{9,12})\.(?P<pid>\d+)-(?P<rand>[0-9a-f]{8})\.part$")
PROBE_BYTES = b"encoura-slate destination probe\n"


def temp_name(now: float | None = None) -> str:
    ts = int(time.time() if now is None else now)
    return f"{TEMP_PREFIX}{ts}.{os.getpid()}-{secrets.token_hex(4)}{TEMP_SUFFIX}"


def temp_age(name: str, now: float | None = None) -> float | None:
    """Seconds since the temp was started, or None when `name` is not one of our temp names."""
    match = TEMP_RE.match(name)
    if match is None:
        return None
    return (time.time() if now is None else now) - int(match["ts"])


def sibling(path: str, name: str) -> str:
    parent, _, _ = path.rpartition("/")
    return f"{parent}/{name}" if parent or path.startswith("/") else name


def parent_of(path: str) -> str:
    return path.rpartition("/")[0]


def _error(dest: Destination, relative_path: str, message: str) -> PublishError:
    return PublishError(
        f"{dest.name}: {relative_path}: {message} ({dest.location(relative_path)})",
        destination=dest.name,
        relative_path=relative_path,
    )


def _check_local(dest: Destination, local_path: Path, relative_path: str, size: int) -> None:
    try:
        actual = local_path.stat().st_size
    except OSError as exc:
        raise _error(dest, relative_path, f"local file {str(local_path)!r} cannot be read ({exc.strerror})") from None
    if actual != size:
        raise _error(dest, relative_path, f"local file {str(local_path)!r} has {actual} bytes, expected {size}")


def _existing(
    dest: Destination, local_path: Path, relative_path: str, final: str, existing_size: int, *, size: int, sha256: str
) -> Receipt:
    """Same content -> already present (exactly-once across crashes); anything else -> refuse."""
    differs = _error(dest, relative_path, "exists with different content; not overwritten")
    if existing_size != size:
        raise differs
    checksum = dest._remote_checksum(final)
    if checksum is not None and checksum.startswith("md5:"):
        if checksum[4:] != file_hexdigest(local_path, "md5"):
            raise differs
        return _receipt(dest, relative_path, size, None, checksum, already_present=True)
    # No cheap checksum: read it back. Rare (only after a crash between rename and bookkeeping).
    remote_sha = dest._sha256(final)
    if remote_sha != sha256:
        raise differs
    return _receipt(dest, relative_path, size, remote_sha, checksum, already_present=True)


def _receipt(
    dest: Destination, relative_path: str, size: int, sha256: str | None, checksum: str | None, *, already_present: bool
) -> Receipt:
    return Receipt(
        destination=dest.name,
        final_path=dest.location(relative_path),
        relative_path=relative_path,
        size=size,
        sha256=sha256,
        checksum=checksum,
        already_present=already_present,
    )


# Called right before the final name appears: (temp path or None for a create-only put, final path),
# both relative to the destination root. The export records its publish intent here; raising stops
# the publish before the rename (a run that lost its claim).
BeforeRename = Callable[[str | None, str], None]


def publish_file(
    dest: Destination,
    local_path: Path,
    relative_path: str,
    *,
    sha256: str,
    size: int,
    callback: Callback | None = None,
    before_rename: BeforeRename | None = None,
) -> Receipt:
    _check_local(dest, local_path, relative_path, size)
    final = dest.full_path(relative_path)
    existing = dest._size(final)
    if existing is not None:
        return _existing(dest, local_path, relative_path, final, existing, size=size, sha256=sha256)
    parent = parent_of(final)
    if parent:
        dest._makedirs(parent)
    if dest.atomic_put:
        if before_rename is not None:
            before_rename(None, relative_path)
        return _publish_atomic_put(dest, local_path, relative_path, final, sha256=sha256, size=size, callback=callback)

    temp = sibling(final, temp_name())
    renamed = False
    intended = False  # once the intent is recorded, the temp belongs to it: only settling removes it
    try:
        dest._put(local_path, temp, callback=callback, create_only=True)
        verified_sha = _verify(dest, relative_path, temp, sha256=sha256, size=size)
        if before_rename is not None:
            before_rename(dest.relative_to_root(temp), relative_path)
            intended = True
        try:
            crashpoint("publish.before_rename")  # complete, verified temp; final name absent
            dest._rename_noreplace(temp, final)
            renamed = True
            crashpoint("publish.after_rename")  # final name visible; the ledger does not know yet
        except FileExistsError:
            # Someone (an earlier attempt whose reply was lost, typically) got there first.
            existing = dest._size(final)
            if existing is None:
                raise
            _discard(dest, temp)  # certainly not renamed: the final name was taken
            return _existing(dest, local_path, relative_path, final, existing, size=size, sha256=sha256)
    finally:
        # A failed rename after the intent may still have happened (a lost reply): leave the temp
        # for the intent's settlement, which can tell "renamed" from "never renamed" only if a
        # missing temp always means the rename happened.
        if not renamed and not intended:
            _discard(dest, temp)
    return _receipt(dest, relative_path, size, verified_sha, None, already_present=False)


def _publish_atomic_put(
    dest: Destination,
    local_path: Path,
    relative_path: str,
    final: str,
    *,
    sha256: str,
    size: int,
    callback: Callback | None,
) -> Receipt:
    try:
        dest._put(local_path, final, callback=callback, create_only=True)
    except FileExistsError:
        existing = dest._size(final)
        if existing is None:
            raise
        return _existing(dest, local_path, relative_path, final, existing, size=size, sha256=sha256)
    except BaseException:
        # The put was create-only and the key was absent before, so whatever is there now is ours:
        # a failure after the bytes landed (e.g. a lost response) must not leave an unrecorded file.
        _discard(dest, final)
        raise
    # From here on the object is ours (create-only put): remove it if it does not verify.
    try:
        actual = dest._size(final)
        if actual != size:
            raise _error(dest, relative_path, f"arrived with {actual} bytes, expected {size}; removed")
        checksum = dest._remote_checksum(final)
        if checksum is not None and checksum.startswith("md5:") and checksum[4:] != file_hexdigest(local_path, "md5"):
            raise _error(dest, relative_path, "arrived with a different MD5 than was sent; removed")
    except BaseException:
        _discard(dest, final)
        raise
    crashpoint("publish.after_put")  # S3's equivalent of after_rename: final key visible, the ledger does not know yet
    return _receipt(dest, relative_path, size, None, checksum, already_present=False)


def _verify(dest: Destination, relative_path: str, temp: str, *, sha256: str, size: int) -> str | None:
    actual = dest._size(temp)
    if actual != size:
        raise _error(dest, relative_path, f"upload arrived with {actual} bytes, expected {size}; not published")
    if not dest.cheap_readback:
        return None
    remote_sha = dest._sha256(temp)
    if remote_sha != sha256:
        raise _error(dest, relative_path, "upload arrived with a different sha256; not published")
    return remote_sha


def _discard(dest: Destination, path: str) -> None:
    """Best effort: a temp we cannot remove now is retried after a reconnect, else swept next run."""
    try:
        dest._remove(path)
    except FileNotFoundError:
        pass
    except Exception:
        dest.pending_cleanup.append(path)


def retry_cleanup(dest: Destination) -> None:
    """Remove temps a failed attempt could not (typically: the connection had just dropped)."""
    while dest.pending_cleanup:
        path = dest.pending_cleanup.pop()
        with contextlib.suppress(Exception):
            dest._remove(path)


def settle_intent(
    dest: Destination,
    local_path: Path | None,
    temp_relative: str | None,
    relative_path: str,
    *,
    sha256: str,
    size: int,
) -> tuple[str, Receipt | None]:
    """Finish a rename that a killed run had recorded as about to happen. Returns (outcome, receipt):

    - "renamed": the temp was still there, verified by size and sha256 read back, and renamed now;
    - "present": the final name holds identical content (the rename happened, the ledger missed it);
    - "taken": neither is there after a verified temp: the rename happened and Slate's importer took
      the file away. Delivered: sending it again would import it twice;
    - "absent": nothing to settle (S3: the create-only put never landed; or the temp differs and was
      removed): publish normally.
    A final name holding different content raises PublishError (never overwritten).
    """
    final = dest.full_path(relative_path)
    existing = dest._size(final)
    if existing is not None:
        if local_path is None or not local_path.is_file():
            if existing != size or dest._sha256(final) != sha256:
                raise _error(dest, relative_path, "exists with different content; not overwritten")
            receipt = _receipt(dest, relative_path, size, sha256, None, already_present=True)
        else:
            receipt = _existing(dest, local_path, relative_path, final, existing, size=size, sha256=sha256)
        if temp_relative is not None:
            _discard(dest, dest.full_path(temp_relative))
        return "present", receipt
    if temp_relative is None:
        return "absent", None  # create-only put: an absent key means the put never landed
    temp = dest.full_path(temp_relative)
    temp_size = dest._size(temp)
    if temp_size is None:
        return "taken", None
    if temp_size != size or dest._sha256(temp) != sha256:
        _discard(dest, temp)
        return "absent", None
    try:
        dest._rename_noreplace(temp, final)
    except FileExistsError:
        return settle_intent(dest, local_path, temp_relative, relative_path, sha256=sha256, size=size)
    except FileNotFoundError:
        # Another process renamed it a moment ago (a run that stalled and woke up): settle again.
        return settle_intent(dest, local_path, temp_relative, relative_path, sha256=sha256, size=size)
    crashpoint("publish.after_settle_rename")
    return "renamed", _receipt(dest, relative_path, size, sha256, None, already_present=False)


def sweep_temps(dest: Destination, *, older_than: float, keep: Collection[str] = ()) -> list[str]:
    """Remove our temp files older than `older_than` seconds, except those in `keep` (relative
    paths of temps an open publish intent still owns: settling, not sweeping, decides about them)."""
    removed: list[str] = []
    now = time.time()
    try:
        files = list(dest._list_files(dest.sweep_depth()))
    except FileNotFoundError:
        return removed  # nothing delivered yet
    for path, base in files:
        age = temp_age(base, now)
        if age is None or age < older_than or dest.relative_to_root(path) in keep:
            continue
        with contextlib.suppress(FileNotFoundError):
            dest._remove(path)
            removed.append(dest.relative_to_root(path))
    return sorted(removed)


def probe(dest: Destination) -> None:
    import tempfile

    with tempfile.TemporaryDirectory(prefix="encoura-probe-") as tmp:
        local = Path(tmp) / "probe"
        local.write_bytes(PROBE_BYTES)
        root = dest.root
        if root:
            dest._makedirs(root)
        path = dest.full_path(temp_name())
        try:
            dest._put(local, path, callback=None, create_only=True)
            if dest._size(path) != len(PROBE_BYTES):
                raise PublishError(
                    f"{dest.name}: probe file did not arrive intact ({dest.describe()})", destination=dest.name
                )
        finally:
            _discard(dest, path)
