"""Encoura failures, split by what the caller should do about them."""

from __future__ import annotations


class EncouraError(Exception):
    """Something went wrong talking to Encoura; the message is safe to show (no tokens, no signatures)."""


class EncouraAuthError(EncouraError):
    """Login refused: retrying cannot help, and retry storms can lock the account."""


class EncouraResponseError(EncouraError):
    """Encoura answered with something we cannot use (HTML, malformed JSON, wrong shape)."""


class DownloadError(EncouraError):
    """A download failed in a way a fresh one-time URL may fix (expired, truncated, network)."""


class ExportRejected(EncouraError):
    """The export itself is unusable (e.g. empty); retrying will not change it."""
