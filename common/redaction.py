"""Keep signatures, passwords and tokens out of logs, artifacts and error messages."""

from __future__ import annotations

import logging
import re
from urllib.parse import urlsplit, urlunsplit

# httpx and httpcore log every request URL at INFO/DEBUG; a presigned URL's query string is a credential.
_NOISY_LOGGERS = ("httpx", "httpcore", "hpack", "asyncssh", "botocore", "s3fs", "aiobotocore")


def redact_url(url: str) -> str:
    """Drop the query string and any password in the authority: `https://h/p?X-Amz-Signature=..` -> `https://h/p?…`."""
    try:
        parts = urlsplit(str(url))
    except ValueError:
        return "<unparseable URL>"
    netloc = parts.netloc
    if "@" in netloc:
        userinfo, host = netloc.rsplit("@", 1)
        user = userinfo.split(":", 1)[0]
        netloc = f"{user}@{host}"
    query = "…" if parts.query else ""
    return urlunsplit((parts.scheme, netloc, parts.path, query, ""))


_URL_RE = re.compile(r"https?://[^\s'\"<>]+")


def redact_text(text: str) -> str:
    """Redact every URL found in free text (exception messages often embed the request URL)."""
    return _URL_RE.sub(lambda m: redact_url(m.group(0)), text)


def quiet_noisy_loggers(level: int = logging.WARNING) -> None:
    for name in _NOISY_LOGGERS:
        logging.getLogger(name).setLevel(level)
