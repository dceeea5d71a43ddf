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
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypedDict

import fsspec
from fsspec.callbacks import Callback

from common.crashpoints import crashpoint
from common.errors import ConfigError
from common.hashing import file_hexdigest
from destinations.errors import DestinationUnavailable, PublishError, Receipt
from destinations.interface import Storage as Destination
from destinations.sftpfs import CLAIM_WAIT_SECONDS, STALE_CLAIM_SECONDS, claim_name

TEMP_PREFIX = ".~inflight."
TEMP_SUFFIX = ".part"
TEMP_RE = re.compile(r"^\.~inflight\.(?P<ts>\d{9,12})\.(?P<pid>\d+)-(?P<rand>[0-9a-f]{8})\.part$")
PROBE_BYTES = b"encoura-slate destination probe\n"
PROBE_PREFIX = ".~probe."


class RootFolderMissing(DestinationUnavailable):
    """The destination's root folder does not exist: a settings mistake (a typo in the URL's folder),
    never silently created, since nothing on the server would watch a new folder."""


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
    checksum = dest.remote_checksum(final)
    if checksum is not None and checksum.startswith("md5:"):
        if checksum[4:] != file_hexdigest(local_path, "md5"):
            raise differs
        return _receipt(dest, relative_path, size, None, checksum, already_present=True)
    # No cheap checksum: read it back. Rare (only after a crash between rename and bookkeeping).
    remote_sha = dest.sha256_of(final)
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


class PublishOptions(TypedDict, total=False):
    """The optional knobs of one publish, declared once: `Destination.publish` forwards them to
    `publish_file` untouched (see publish_file for what each does)."""

    callback: Callback | None
    first_attempt: bool
    before_rename: BeforeRename | None


def publish_file(
    dest: Destination,
    local_path: Path,
    relative_path: str,
    *,
    sha256: str,
    size: int,
    callback: Callback | None = None,
    first_attempt: bool = False,
    before_rename: BeforeRename | None = None,
) -> Receipt:
    _check_local(dest, local_path, relative_path, size)
    final = dest.full_path(relative_path)
    if not first_attempt:  # a retry may find its own earlier delivery: compare before uploading again
        existing = dest.size_of(final)
        if existing is not None:
            return _existing(dest, local_path, relative_path, final, existing, size=size, sha256=sha256)
    parent = parent_of(final)
    if parent:
        # Folders from PATH_TEMPLATE. The root itself must exist: flows call `check_root` (or
        # `reachable`) before listing, which refuses a missing root as a settings error.
        dest.makedirs(parent)
    if dest.atomic_put:
        if before_rename is not None:
            before_rename(None, relative_path)
        return _publish_atomic_put(dest, local_path, relative_path, final, sha256=sha256, size=size, callback=callback)

    temp = sibling(final, temp_name())
    renamed = False
    intended = False  # once the intent is recorded, the temp belongs to it: only settling removes it
    try:
        reported = dest.put(local_path, temp, callback=callback, create_only=True)
        verified_sha = _verify(dest, relative_path, temp, sha256=sha256, size=size, reported=reported)
        if before_rename is not None:
            before_rename(dest.relative_to_root(temp), relative_path)
            intended = True
        try:
            crashpoint("publish.before_rename")  # complete, verified temp; final name absent
            dest.rename_noreplace(temp, final)
            renamed = True
            crashpoint("publish.after_rename")  # final name visible; the ledger does not know yet
        except FileExistsError:
            # Someone (an earlier attempt whose reply was lost, typically) got there first.
            existing = dest.size_of(final)
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
        dest.put(local_path, final, callback=callback, create_only=True)
    except FileExistsError:
        existing = dest.size_of(final)
        if existing is None:
            raise
        return _existing(dest, local_path, relative_path, final, existing, size=size, sha256=sha256)
    except BaseException:
        # A failure after the bytes may have landed (a lost response, a store ignoring the condition).
        # Whatever is under the final key now may be another writer's object: never delete it. Compare
        # its content instead: ours (identical) counts as delivered; anything else is left alone.
        receipt = _settle_after_failed_put(dest, local_path, relative_path, final, sha256=sha256, size=size)
        if receipt is None:
            raise
        return receipt
    # From here on the object is ours (create-only put): remove it if it does not verify.
    try:
        actual = dest.size_of(final)
        if actual != size:
            raise _error(dest, relative_path, f"arrived with {actual} bytes, expected {size}; removed")
        checksum = dest.remote_checksum(final)
        if checksum is not None and checksum.startswith("md5:") and checksum[4:] != file_hexdigest(local_path, "md5"):
            raise _error(dest, relative_path, "arrived with a different MD5 than was sent; removed")
    except BaseException:
        _discard(dest, final)
        raise
    crashpoint("publish.after_put")  # S3's equivalent of after_rename: final key visible, the ledger does not know yet
    return _receipt(dest, relative_path, size, None, checksum, already_present=False)


def _settle_after_failed_put(
    dest: Destination, local_path: Path, relative_path: str, final: str, *, sha256: str, size: int
) -> Receipt | None:
    try:
        existing = dest.size_of(final)
        if existing is None:
            return None
        return _existing(dest, local_path, relative_path, final, existing, size=size, sha256=sha256)
    except Exception:
        return None  # unreadable or different: report the original failure, touch nothing


def _verify(
    dest: Destination, relative_path: str, temp: str, *, sha256: str, size: int, reported: int | None = None
) -> str | None:
    """Size (and sha256 where reading back is cheap) of the temp, before the final name exists.
    `reported`: the size the storage gave with the upload itself (no extra round trip); else a stat."""
    actual = reported if reported is not None else dest.size_of(temp)
    if actual != size:
        raise _error(dest, relative_path, f"upload arrived with {actual} bytes, expected {size}; not published")
    if not dest.cheap_readback:
        return None
    remote_sha = dest.sha256_of(temp)
    if remote_sha != sha256:
        raise _error(dest, relative_path, "upload arrived with a different sha256; not published")
    return remote_sha


def _discard(dest: Destination, path: str) -> None:
    """Best effort: a temp we cannot remove now is retried after a reconnect, else swept next run."""
    try:
        dest.remove(path)
    except FileNotFoundError:
        pass
    except Exception:
        dest.pending_cleanup.append(path)


def retry_cleanup(dest: Destination) -> None:
    """Remove temps a failed attempt could not (typically: the connection had just dropped)."""
    while dest.pending_cleanup:
        path = dest.pending_cleanup.pop()
        with contextlib.suppress(Exception):
            dest.remove(path)


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
    existing = dest.size_of(final)
    if existing is not None:
        if local_path is None or not local_path.is_file():
            if existing != size or dest.sha256_of(final) != sha256:
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
    temp_size = dest.size_of(temp)
    if temp_size is None:
        return "taken", None
    if temp_size != size or dest.sha256_of(temp) != sha256:
        _discard(dest, temp)
        return "absent", None
    try:
        dest.rename_noreplace(temp, final)
    except (FileExistsError, FileNotFoundError):
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
        files = list(dest.list_files(dest.sweep_depth()))
    except FileNotFoundError:
        return removed  # nothing delivered yet
    for path, base in files:
        age = temp_age(base, now)
        if age is None or age < older_than or dest.relative_to_root(path) in keep:
            continue
        with contextlib.suppress(FileNotFoundError):
            dest.remove(path)
            removed.append(dest.relative_to_root(path))
    return sorted(removed)


def root_problem(dest: Destination) -> str | None:
    """None when the root folder exists; else the sentence that names the folder and the host."""
    if dest.root_exists():
        return None
    return (
        f"{dest.name}: the folder {dest.root_display()!r} does not exist on {dest.host_display()}; "
        f"check the folder in {dest.setting_prefix}URL (it is never created: a new folder is watched by nothing)"
    )


def ensure_root(dest: Destination) -> None:
    """Once per connection, before the first publish: the root must exist (subfolders are created)."""
    if dest.root_checked:
        return
    problem = root_problem(dest)
    if problem is not None:
        raise RootFolderMissing(problem, destination=dest.name)
    dest.root_checked = True


def check_root(dest: Destination) -> None:
    """The export flow's "root folder must exist" check: ConfigError (exit 2) naming folder and host.

    Connection problems raise DestinationUnavailable (exit 1) as usual.
    """
    try:
        ensure_root(dest)
    except RootFolderMissing as exc:
        raise ConfigError(str(exc)) from None


def reachable(dest: Destination) -> str | None:
    """None when `dest` can be connected to (and its root folder exists); else one line saying why not.

    For "no listing without a receiver": call it for every destination before listing. A missing root
    folder is a settings error and is raised as ConfigError (exit 2), not returned.
    """
    try:
        dest.connect_check()
        check_root(dest)
    except ConfigError:
        raise
    except PublishError as exc:
        return str(exc)
    except Exception as exc:
        return f"{dest.name}: {type(exc).__name__}: {exc} ({dest.describe()})"
    return None


@dataclass
class ProbeReport:
    """What the preflight proved, step by step, and the server's host key (SFTP) in three forms."""

    steps: list[str] = field(default_factory=list)
    host_key: dict[str, str] | None = None


def probe(dest: Destination) -> ProbeReport:
    """The whole publish path on a probe file: root exists, a PATH_TEMPLATE subfolder can be made, a temp
    file is written, renamed (never replacing) to a probe name, stat'ed, and both names removed.

    An account without rename or mkdir rights fails here rather than on the first night.
    """
    import tempfile

    report = ProbeReport()
    dest.connect_check()
    report.host_key = dest.server_host_key()
    ensure_root(dest)
    report.steps.append("root folder exists")
    if "/" in dest.config.path_template and not dest.atomic_put:
        folder = dest.full_path(f"{PROBE_PREFIX}dir.{secrets.token_hex(4)}")
        dest.makedirs(folder)
        with contextlib.suppress(Exception):
            dest.remove_folder(folder)
        report.steps.append("made a subfolder")
    with tempfile.TemporaryDirectory(prefix="encoura-probe-") as tmp:
        local = Path(tmp) / "probe"
        local.write_bytes(PROBE_BYTES)
        temp = dest.full_path(temp_name())
        final = dest.full_path(f"{PROBE_PREFIX}{int(time.time())}.{secrets.token_hex(4)}")
        try:
            dest.put(local, temp if not dest.atomic_put else final, callback=None, create_only=True)
            report.steps.append("wrote a temp file")
            if not dest.atomic_put:
                dest.rename_noreplace(temp, final)
                report.steps.append("renamed it")
            if dest.size_of(final) != len(PROBE_BYTES):
                raise PublishError(
                    f"{dest.name}: probe file did not arrive intact ({dest.describe()})", destination=dest.name
                )
            report.steps.append("stat")
        finally:
            _discard(dest, temp)
            _discard(dest, final)
        report.steps.append("removed both")
    return report


def _claim_path(dst: str) -> str:
    parent, _, name = dst.rpartition("/")
    return f"{parent}/{claim_name(name)}" if parent or dst.startswith("/") else claim_name(name)


def move_noreplace(fs: fsspec.AbstractFileSystem, src: str, dst: str) -> None:
    """Rename `src` to `dst` on any fsspec filesystem, never replacing: FileExistsError if `dst` exists.

    A filesystem with an atomic no-replace rename of its own (SlateSFTPFileSystem) uses it. Others get
    a create-only guard: the writer that exclusively creates the final name's claim file (`open(.., "xb")`)
    is the only one that may check-and-move, so two racers cannot both see the name free.
    """
    own: Any = getattr(fs, "rename_noreplace", None)
    if callable(own):
        own(src, dst)
        return
    claim = _claim_path(dst)
    deadline = time.monotonic() + CLAIM_WAIT_SECONDS
    while True:
        try:
            with fs.open(claim, "xb"):
                break
        except FileExistsError:
            if fs.exists(dst):
                raise FileExistsError(dst) from None
            with contextlib.suppress(Exception):
                modified = fs.modified(claim).timestamp()
                if time.time() - modified > STALE_CLAIM_SECONDS:
                    fs.rm_file(claim)  # left by a writer killed mid-move
                    continue
            if time.monotonic() > deadline:
                raise OSError(f"another writer holds {claim} for more than {CLAIM_WAIT_SECONDS:.0f} s") from None
            time.sleep(0.05)
    try:
        fs.invalidate_cache(dst)
        if fs.exists(dst):
            raise FileExistsError(dst)
        fs.mv(src, dst)
    finally:
        with contextlib.suppress(Exception):
            fs.rm_file(claim)


def sweep(dest: Destination, *, older_than: float | None = None) -> list[str]:
    """Remove our temp files older than `older_than` s (default: the destination's grace)."""
    return dest.sweep(older_than=older_than)
