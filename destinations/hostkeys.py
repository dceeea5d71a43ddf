"""Host key verification for SFTP: always on, from a known_hosts file or a pinned key.

sshfs passes `known_hosts=None` to asyncssh unless told otherwise, which silently accepts any server.
Everything here exists so that never happens, and so that a refusal tells the operator which
fingerprint the server presented (to compare with the one Technolutions publishes).
"""

from __future__ import annotations

from typing import Any

import asyncssh

_KEY_TYPE_PREFIXES = ("ssh-", "ecdsa-", "sk-", "rsa-sha2-")


def _key_lines(value: str) -> list[str]:
    return [line.strip() for line in value.replace("\\n", "\n").splitlines() if line.strip()]


def parse_pinned_key(value: str) -> list[asyncssh.SSHKey]:
    """Parse one or more `[host] keytype base64 [comment]` lines (ssh-keyscan output works as is)."""
    keys: list[asyncssh.SSHKey] = []
    lines = _key_lines(value)
    if not lines:
        raise ValueError("is empty; expected a public key line such as 'ssh-ed25519 AAAA...'")
    for number, line in enumerate(lines, start=1):
        if line.startswith("#"):
            continue
        tokens = line.split()
        if tokens and not tokens[0].startswith(_KEY_TYPE_PREFIXES):
            tokens = tokens[1:]  # a host pattern, as ssh-keyscan prints it
        if len(tokens) < 2:
            raise ValueError(f"line {number} is not a public key line; expected 'ssh-ed25519 AAAA...'")
        try:
            keys.append(asyncssh.import_public_key(f"{tokens[0]} {tokens[1]}"))
        except (asyncssh.KeyImportError, ValueError):
            raise ValueError(f"line {number} is not a valid {tokens[0]!r} public key") from None
    if not keys:
        raise ValueError("contains no public key line")
    return keys


def known_hosts_option(known_hosts: str | None, host_key: str | None) -> Any:
    """The `known_hosts` argument for asyncssh.connect; never None (None disables checking)."""
    if host_key:
        # Lists of (trusted host keys, trusted CA keys, revoked keys): no host-name matching, the
        # pinned key must simply be the one presented.
        return (parse_pinned_key(host_key), [], [])
    if known_hosts:
        return asyncssh.read_known_hosts(known_hosts)
    raise ValueError("host key verification needs a known_hosts file or a pinned host key")


def fingerprint(key: asyncssh.SSHKey) -> str:
    return f"{key.get_algorithm()} {key.get_fingerprint('sha256')}"


async def fetch_server_fingerprint(host: str, port: int, *, wait: float) -> str | None:
    """Connect only far enough to see the server's host key, for the error message; None if that fails.

    The connection stops after key exchange: nothing is authenticated or sent, so reading an
    untrusted key here is safe (asyncssh's helper skips known_hosts for exactly this purpose).
    """
    try:
        key = await asyncssh.get_server_host_key(
            host, port, options=asyncssh.SSHClientConnectionOptions(connect_timeout=wait)
        )
    except (OSError, asyncssh.Error):
        return None
    return fingerprint(key) if key is not None else None
