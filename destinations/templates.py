"""Path templates: where a file lands under a destination root.

A template is checked twice: once at start-up with sample values (so a typo or an escaping path
stops the run before anything is transferred) and again on every render (so a hostile or odd
value, e.g. a product key containing `..`, can never write outside the root).
"""

from __future__ import annotations

import string
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import PurePosixPath

PLACEHOLDERS = ("product_key", "filename", "stem", "suffix", "export_uid", "date")
# At least one of these makes each delivered name unique; Slate overwrites same-named files in
# /incoming/processed/, and we refuse to overwrite different content, so a constant name would fail.
_UNIQUE_PLACEHOLDERS = ("filename", "stem", "export_uid")
_FORBIDDEN_CHARS = set("\\\x00") | {chr(c) for c in range(32)} | {"\x7f"}


def _utc_now() -> datetime:
    return datetime.now(UTC)


@dataclass(frozen=True)
class PathContext:
    filename: str
    product_key: str = ""
    export_uid: str = ""
    date: datetime = field(default_factory=_utc_now)


def _fields(template: str) -> list[tuple[str, str]]:
    """(field name, format spec) for each placeholder; ValueError on malformed braces."""
    try:
        parsed = list(string.Formatter().parse(template))
    except ValueError as exc:
        raise ValueError(f"path template {template!r} is malformed ({exc}); use {{name}} placeholders") from None
    found: list[tuple[str, str]] = []
    for _literal, name, spec, conversion in parsed:
        if name is None:
            continue
        if name == "":
            raise ValueError(f"path template {template!r} has an empty {{}}; name a placeholder: {_allowed()}")
        if name not in PLACEHOLDERS:
            raise ValueError(f"path template {template!r} uses unknown placeholder {{{name}}}; allowed: {_allowed()}")
        if conversion:
            raise ValueError(f"path template {template!r}: conversions like !{conversion} are not supported")
        if spec and name != "date":
            raise ValueError(
                f"path template {template!r}: only {{date:...}} takes a format (e.g. {{date:%Y%m%d}}), "
                f"not {{{name}:{spec}}}"
            )
        if spec and "{" in spec:
            raise ValueError(f"path template {template!r}: nested placeholders are not supported")
        found.append((name, spec or ""))
    return found


def _allowed() -> str:
    return ", ".join("{" + p + (":%Y%m%d" if p == "date" else "") + "}" for p in PLACEHOLDERS)


def check_relative_path(path: str, *, what: str = "path") -> str:
    """Return `path` if it is a plain relative posix path that stays under the root, else ValueError."""
    if not path:
        raise ValueError(f"{what} is empty")
    bad = sorted({repr(c) for c in path if c in _FORBIDDEN_CHARS})
    if bad:
        raise ValueError(f"{what} {path!r} contains forbidden characters ({', '.join(bad)})")
    if path.startswith("/") or (len(path) > 1 and path[1] == ":"):
        raise ValueError(f"{what} {path!r} is absolute; it must be relative to the destination root")
    parts = path.split("/")
    if any(p in ("", ".", "..") for p in parts):
        raise ValueError(
            f"{what} {path!r} has an empty, '.' or '..' component; it must stay inside the destination root"
        )
    if any(p != p.strip() for p in parts):
        raise ValueError(f"{what} {path!r} has a component with leading or trailing spaces")
    return path


def validate_template(template: str) -> None:
    """Reject anything that is malformed, unknown, absolute, or could escape the root."""
    fields = _fields(template)
    names = {name for name, _ in fields}
    if not names & set(_UNIQUE_PLACEHOLDERS):
        raise ValueError(
            f"path template {template!r} must contain {{filename}}, {{stem}} or {{export_uid}} so every "
            "delivered file gets its own name"
        )
    for name, spec in fields:
        if name == "date":
            try:
                rendered = format(datetime(2024, 1, 2, 3, 4, 5, tzinfo=UTC), spec)
            except ValueError as exc:
                raise ValueError(f"path template {template!r}: bad date format {spec!r} ({exc})") from None
            if "/" in rendered or ".." in rendered:
                raise ValueError(f"path template {template!r}: date format {spec!r} must not produce '/' or '..'")
    # Render with harmless sample values: whatever remains structurally wrong is the template's fault.
    sample = PathContext(filename="sample.csv", product_key="product", export_uid="uid")
    rendered = _render_unchecked(template, sample)
    check_relative_path(rendered, what=f"path template {template!r} (rendered as {rendered!r})")


def _render_unchecked(template: str, ctx: PathContext) -> str:
    pure = PurePosixPath(ctx.filename)
    return template.format(
        product_key=ctx.product_key,
        filename=ctx.filename,
        stem=pure.stem,
        suffix=pure.suffix,
        export_uid=ctx.export_uid,
        date=ctx.date,
    )


def render_path(template: str, ctx: PathContext) -> str:
    """Render and re-check: values come from remote APIs, so they are not trusted to be path-safe."""
    _fields(template)
    rendered = _render_unchecked(template, ctx)
    return check_relative_path(rendered, what=f"rendered path for {ctx.filename!r}")
