"""Host key verification for SFTP: always on, from a known_hosts file, a pinned key or a pinned fingerprint.

sshfs passes `known_hosts=None` to asyncssh unless told otherwise, which silently accepts any server.
Everything here exists so that never happens, and so that a refusal tells the operator which
fingerprint the server presented (to compare with the one the operator publishes: Technolutions
publishes only the MD5 fingerprint of its RSA key, so a pin may be `MD5:35:7a:...` as well as a key
line or `SHA256:...`).
"""

from __future__ import annotations

import functools
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import asyncssh

_KEY_TYPE_PREFIXES = ("ssh-", "ecdsa-", "sk-", "rsa-sha2-")
_MD5_HEX = re.compile(r"^(?:md5:)?((?:[0-9a-f]{2}:){15}[0-9a-f]{2})$", re.IGNORECASE)
_SHA256 = re.compile(r"^sha256:([A-Za-z0-9+/]{43})=?$", re.IGNORECASE)
DEFAULT_KNOWN_HOSTS = Path("~/.ssh/known_hosts")


def default_known_hosts() -> Path | None:
    """~/.ssh/known_hosts when it exists (the file OpenSSH itself would read), else None."""
    path = DEFAULT_KNOWN_HOSTS.expanduser()
    return path if path.is_file() else None


def _key_lines(value: str) -> list[str]:
    return [line.strip() for line in value.replace("\\n", "\n").splitlines() if line.strip()]


def _fingerprint_token(token: str) -> str | None:
    """Normalised 'SHA256:<b64>' / 'MD5:<hex pairs>' for a fingerprint token, else None."""
    md5 = _MD5_HEX.match(token)
    if md5:
        return f"MD5:{md5[1].lower()}"
    sha = _SHA256.match(token)
    if sha:
        return f"SHA256:{sha[1]}"
    return None


@dataclass(frozen=True)
class HostKeyPin:
    """What HOST_KEY pins: public keys (key lines) and/or fingerprints; any one of them must match."""

    keys: list[asyncssh.SSHKey] = field(default_factory=list)
    fingerprints: list[str] = field(default_factory=list)
    # Key types named beside fingerprints ("ssh-rsa 2048 aa:bb:..."): the server is asked for that key
    # type, since a server holding several keys would otherwise present its preferred (e.g. ed25519) one.
    fingerprint_key_types: list[str] = field(default_factory=list)

    def matches(self, key: asyncssh.SSHKey) -> bool:
        if any(pinned.public_data == key.public_data for pinned in self.keys):
            return True
        seen = {key.get_fingerprint("md5").lower(), key.get_fingerprint("sha256").rstrip("=")}
        return any((fp.lower() if fp.startswith("MD5:") else fp) in seen for fp in self.fingerprints)


def parse_pinned_key(value: str) -> HostKeyPin:
    """Parse HOST_KEY: key lines (`[host] keytype base64 [comment]`, ssh-keyscan output works as is)
    or fingerprints (`SHA256:...`, `MD5:aa:bb:...`, or Technolutions' `ssh-rsa 2048 aa:bb:...`)."""
    keys: list[asyncssh.SSHKey] = []
    fingerprints: list[str] = []
    key_types: list[str] = []
    lines = _key_lines(value)
    if not lines:
        raise ValueError("is empty; expected a public key line such as 'ssh-ed25519 AAAA...' or 'SHA256:...'")
    for number, line in enumerate(lines, start=1):
        if line.startswith("#"):
            continue
        tokens = line.split()
        found = [fp for fp in (_fingerprint_token(t) for t in tokens) if fp]
        if found:
            fingerprints.extend(found)
            key_types.extend(t for t in tokens[:1] if t.startswith(_KEY_TYPE_PREFIXES))
            continue
        if tokens and not tokens[0].startswith(_KEY_TYPE_PREFIXES):
            tokens = tokens[1:]  # a host pattern, as ssh-keyscan prints it
        if len(tokens) < 2:
            raise ValueError(
                f"line {number} is neither a public key line ('ssh-ed25519 AAAA...') "
                "nor a fingerprint ('SHA256:...' or 'MD5:aa:bb:...')"
            )
        try:
            keys.append(asyncssh.import_public_key(f"{tokens[0]} {tokens[1]}"))
        except (asyncssh.KeyImportError, ValueError):
            raise ValueError(f"line {number} is not a valid {tokens[0]!r} public key") from None
    if not keys and not fingerprints:
        raise ValueError("contains no public key line or fingerprint")
    return HostKeyPin(keys=keys, fingerprints=fingerprints, fingerprint_key_types=key_types)


def host_key_algorithms(key_types: list[str]) -> list[str]:
    """Signature algorithms to ask the server for, for pinned key types (RSA keys sign as rsa-sha2-*)."""
    algs: list[str] = []
    for key_type in key_types:
        names = ["rsa-sha2-512", "rsa-sha2-256", "ssh-rsa"] if key_type == "ssh-rsa" else [key_type]
        algs.extend(name for name in names if name not in algs)
    return algs


class PinnedFingerprintClient(asyncssh.SSHClient):
    """asyncssh asks the client about a host key that is not in the trusted list: say yes only
    when it matches the pin. Used with an empty (not None) trusted list, so checking stays on."""

    def __init__(self, pin: HostKeyPin) -> None:
        self.pin = pin

    def validate_host_public_key(self, host: str, addr: tuple[str, int], port: int, key: asyncssh.SSHKey) -> bool:
        return self.pin.matches(key)


def host_key_options(known_hosts: str | Path | None, host_key: str | None) -> dict[str, Any]:
    """asyncssh.connect options that verify the host key; `known_hosts` is never None (None disables
    checking). Raises ValueError when there is nothing to verify against."""
    if host_key:
        pin = parse_pinned_key(host_key)
        # (trusted host keys, trusted CA keys, revoked keys): no host-name matching, the pinned key must
        # simply be the one presented; fingerprints are checked by the client callback.
        options: dict[str, Any] = {"known_hosts": (list(pin.keys), [], [])}
        if pin.fingerprints:
            options["client_factory"] = functools.partial(PinnedFingerprintClient, pin)
            if pin.fingerprint_key_types and not pin.keys:
                options["server_host_key_algs"] = host_key_algorithms(pin.fingerprint_key_types)
        return options
    path = known_hosts if known_hosts else default_known_hosts()
    if path:
        return {"known_hosts": asyncssh.read_known_hosts(str(Path(path).expanduser()))}
    raise ValueError(
        "host key verification needs a known_hosts file or a pinned host key (key line or SHA256:/MD5: fingerprint); "
        "host key checking is never disabled"
    )


def fingerprint(key: asyncssh.SSHKey) -> str:
    return f"{key.get_algorithm()} {key.get_fingerprint('sha256')}"


def describe_key(key: asyncssh.SSHKey) -> dict[str, str]:
    """The three forms people compare: the key line (for HOST_KEY/known_hosts), SHA256 and MD5."""
    line = key.export_public_key("openssh").decode().split()
    return {
        "key": f"{line[0]} {line[1]}",
        "sha256": key.get_fingerprint("sha256"),
        "md5": key.get_fingerprint("md5"),
    }


async def fetch_server_key(host: str, port: int, *, wait: float) -> asyncssh.SSHKey | None:
    """Connect only far enough to see the server's host key; None if that fails.

    The connection stops after key exchange: nothing is authenticated or sent, so reading an
    untrusted key here is safe (asyncssh's helper skips known_hosts for exactly this purpose).
    """
    try:
        return await asyncssh.get_server_host_key(
            host, port, options=asyncssh.SSHClientConnectionOptions(connect_timeout=wait)
        )
    except (OSError, asyncssh.Error):
        return None


async def fetch_server_fingerprint(host: str, port: int, *, wait: float) -> str | None:
    """SHA256 and MD5 fingerprints of the presented key, for error messages; None if it cannot be read."""
    key = await fetch_server_key(host, port, wait=wait)
    if key is None:
        return None
    return f"{fingerprint(key)} (MD5 {key.get_fingerprint('md5')[4:]})"
