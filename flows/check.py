"""Preflight: is everything this machine needs reachable and usable? Moves no data.

    python -m flows.check

Validates every setting first (exit 2 and one message naming each bad variable), then tries each
peer once: logs in to Encoura and lists the organizations the account can see; on each destination
and the upload source (host key verified) runs the whole publish path on a probe file: the root
folder exists, a PATH_TEMPLATE subfolder can be made, a temp file is written, renamed to a probe
name, stat'ed and both removed (an account without rename rights fails here, not on the first
night); prints each SSH server's host key as a key line and as SHA256 and MD5 fingerprints (to pin
in HOST_KEY); checks the Canvas token when CANVAS_* is configured. Prints ONE table: what works,
what does not, and the fix for each failure. Exit 0 when everything works, 2 when anything does not.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from common import exit_codes
from common.cli import run_cli
from common.errors import ConfigError, merge_config_errors
from common.redaction import redact_text


@dataclass
class CheckRow:
    check: str
    target: str
    ok: bool
    detail: str
    fix: str = ""


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip() or type(exc).__name__
    return redact_text(text.splitlines()[0])


# ----------------------------------------------------------------------------- fixes
def destination_fix(exc: BaseException, prefix: str, url_setting: str) -> str:
    """The one thing to change for a destination/source failure, naming the setting."""
    from destinations import DestinationUnavailable, HostKeyError, RootFolderMissing

    text = str(exc).lower()
    if isinstance(exc, RootFolderMissing) or "does not exist on" in text:
        return (
            f"Fix the folder in {url_setting} (compare it with the folder the server's operator gave you); "
            "the root folder is never created, because nothing would watch a new folder"
        )
    if "rename refused" in text or ("rename" in text and "permission" in text):
        return (
            "The account may write but not rename: ask the server's operator for rename rights in that folder "
            "(files are uploaded under a temporary name and renamed, so no half file is ever imported)"
        )
    if isinstance(exc, HostKeyError) or "host key" in text:
        return (
            f"Compare the fingerprint shown with the one the server's operator publishes; if it matches, put the "
            f"key in {prefix}HOST_KEY or {prefix}KNOWN_HOSTS, otherwise do not connect"
        )
    if "authentication failed" in text or "permission denied (publickey" in text or "decrypt" in text:
        return f"Check the user name in {url_setting} and {prefix}PASSWORD / {prefix}CLIENT_KEY (+ {prefix}PASSPHRASE)"
    if "permission denied" in text or "not writable" in text or "read-only" in text or "access denied" in text:
        return (
            f"The account cannot write there: ask the server's operator for write access to that folder, "
            f"or point {url_setting} at a folder it may write to"
        )
    if isinstance(exc, DestinationUnavailable):
        return f"Check the host and port in {url_setting} and that this machine can reach the server (firewall, VPN)"
    if isinstance(exc, ConfigError):
        return "Fix the setting named in the detail"
    return "See the detail; run again after fixing it"


def encoura_fix(exc: BaseException) -> str:
    from encoura_tasks.api.errors import EncouraAuthError

    if isinstance(exc, EncouraAuthError):
        return (
            "Check ENCOURA_USERNAME, ENCOURA_PASSWORD and ENCOURA_API_KEY (and ENCOURA_ORGANIZATION_UID "
            "when the account sees several organizations)"
        )
    if isinstance(exc, ConfigError):
        return "Fix the setting named in the detail"
    return "Check ENCOURA_BASE_URL and that this machine can reach it; retry later if Encoura is down"


# ----------------------------------------------------------------------------- checks
def check_encoura() -> CheckRow:
    from encoura_tasks.api.client import EncouraClient
    from encoura_tasks.api.settings import load_encoura_settings

    settings = load_encoura_settings()
    target = settings.base_url
    try:
        with EncouraClient(settings) as client:
            orgs = client.login()
            chosen = client.auth.organization
    except Exception as exc:
        return CheckRow("Encoura login", target, False, _first_line(exc), encoura_fix(exc))
    names = ", ".join(f"{o.uid}{f' ({o.name})' if o.name else ''}" for o in orgs) or "none"
    detail = f"organizations: {names}"
    if chosen is not None:
        detail += f"; using {chosen.uid}"
    return CheckRow("Encoura login", target, True, detail)


def host_key_lines(host_key: dict[str, str] | None) -> str:
    """The server's host key as people compare it: the key line (for HOST_KEY), SHA256 and MD5."""
    if not host_key:
        return ""
    return f"\nhost key: {host_key['key']}\n{host_key['sha256']}  {host_key['md5']}"


def probe_destination(name: str, config: object) -> CheckRow:
    from destinations import open_destination, probe

    prefix = f"DESTINATIONS__{name.upper()}__"
    dest = None
    try:
        dest = open_destination(name, config)  # type: ignore[arg-type]
        target = dest.describe()
        report = probe(dest)
    except Exception as exc:
        target = dest.describe() if dest is not None else name
        return CheckRow(
            f"Destination {name}", target, False, _first_line(exc), destination_fix(exc, prefix, f"{prefix}URL")
        )
    finally:
        if dest is not None:
            dest.close()
    detail = "connected, wrote and removed a probe file (" + ", ".join(report.steps) + ")"
    return CheckRow(f"Destination {name}", target, True, detail + host_key_lines(report.host_key))


def check_upload_source(settings: object, config: object) -> CheckRow:
    from destinations import probe
    from encoura_tasks.upload.source import UploadSource

    source = None
    try:
        source = UploadSource(settings, config)  # type: ignore[arg-type]
        files = source.list_files()
        report = probe(source.dest)
    except Exception as exc:
        target = source.describe() if source is not None else "UPLOAD_SOURCE"
        return CheckRow(
            "Upload source", target, False, _first_line(exc), destination_fix(exc, "UPLOAD_SOURCE_", "UPLOAD_SOURCE")
        )
    finally:
        if source is not None:
            source.close()
    return CheckRow(
        "Upload source",
        source.describe(),
        True,
        f"{len(files)} file(s) waiting; wrote and removed a probe file" + host_key_lines(report.host_key),
    )


def check_canvas(settings: object) -> CheckRow:
    import httpx

    from canvas_tasks.api.auth import CanvasTokenAuth

    base_url: str = settings.base_url  # type: ignore[attr-defined]
    account: str = settings.account_id  # type: ignore[attr-defined]
    target = f"{base_url} account {account}"
    try:
        auth = CanvasTokenAuth(settings.token, base_url)  # type: ignore[attr-defined]
        with httpx.Client(auth=auth, timeout=httpx.Timeout(20.0)) as http:
            response = http.get(f"{base_url}/api/v1/accounts/{account}", headers={"Accept": "application/json"})
    except Exception as exc:
        fix = "Check CANVAS_BASE_URL and that this machine can reach it"
        if isinstance(exc, ConfigError):
            fix = "Fix the setting named in the detail"
        return CheckRow("Canvas token", target, False, _first_line(exc), fix)
    if response.status_code == 401:
        return CheckRow(
            "Canvas token",
            target,
            False,
            "HTTP 401: the token was rejected",
            "Create a new access token (Account > Settings > New access token) and put it in CANVAS_ACCESS_TOKEN",
        )
    if response.status_code in (403, 404):
        return CheckRow(
            "Canvas token",
            target,
            False,
            f"HTTP {response.status_code}: no access to account {account}",
            "Set CANVAS_ACCOUNT_ID to the root account id, and use a token of an account administrator",
        )
    if response.status_code >= 400:
        return CheckRow(
            "Canvas token",
            target,
            False,
            f"HTTP {response.status_code}",
            "Check CANVAS_BASE_URL; retry later if Canvas is down",
        )
    body = response.json() if response.headers.get("content-type", "").startswith("application/json") else {}
    name = body.get("name") if isinstance(body, dict) else None
    return CheckRow("Canvas token", target, True, f"token accepted for account {name or account}")


# ----------------------------------------------------------------------------- settings
CANVAS_SETTINGS = ("CANVAS_BASE_URL", "CANVAS_ACCOUNT_ID", "CANVAS_ACCESS_TOKEN")


def _configured(names: tuple[str, ...]) -> bool:
    """Set in the environment or in .env (where the settings classes also look)."""
    from dotenv import dotenv_values

    values = {k.upper(): v for k, v in os.environ.items()}
    if os.path.isfile(".env"):
        values.update({k.upper(): v for k, v in dotenv_values(".env").items() if v})
    return any(values.get(name) for name in names)


def _canvas_configured() -> bool:
    # Only the connection settings: CANVAS_SIS_SOURCE alone (used by `prefect deploy`) is not a Canvas setup.
    return _configured(CANVAS_SETTINGS)


def _upload_configured() -> bool:
    if _configured(("UPLOAD_SOURCE",)):
        return True
    # Named sources (UPLOAD_SOURCES__<NAME>__URL) count too.
    return any(k.upper().startswith("UPLOAD_SOURCES__") for k in os.environ) or (
        os.path.isfile(".env") and "UPLOAD_SOURCES__" in Path(".env").read_text(encoding="utf-8").upper()
    )


@dataclass
class Plan:
    """Everything validated up front: the checks to run, or one ConfigError listing every problem."""

    checks: list[Callable[[], CheckRow]]


def plan_checks() -> Plan:
    from encoura_tasks.export.settings import load_export_settings

    errors: list[ConfigError] = []
    checks: list[Callable[[], CheckRow]] = []
    try:
        _, run = load_export_settings(require_destinations=False)
    except ConfigError as exc:
        errors.append(exc)
    else:
        checks.append(check_encoura)
        for name, config in sorted(run.destinations.items()):
            checks.append(lambda name=name, config=config: probe_destination(name, config))
    if _upload_configured():
        from encoura_tasks.upload.settings import load_upload_sources

        try:
            sources = load_upload_sources()  # `default` (UPLOAD_SOURCE) and every UPLOAD_SOURCES__<NAME>
        except ConfigError as exc:
            errors.append(exc)
        else:
            for upload, source_config in sources:
                checks.append(lambda u=upload, c=source_config: check_upload_source(u, c))
    if _canvas_configured():
        from canvas_tasks.sis_import.settings import load_canvas_settings

        try:
            canvas = load_canvas_settings()
        except ConfigError as exc:
            errors.append(exc)
        else:
            checks.append(lambda: check_canvas(canvas))
    merged = merge_config_errors(errors)
    if merged:
        raise merged
    return Plan(checks)


# ----------------------------------------------------------------------------- output
def render_table(rows: list[CheckRow]) -> str:
    headers = ("Check", "Target", "Result", "Detail / fix")
    body = []
    for row in rows:
        detail = row.detail if row.ok else f"{row.detail}\nFIX: {row.fix}"
        body.append((row.check, row.target, "OK" if row.ok else "FAILED", detail))
    widths = [
        max(len(h), *(max(len(line) for line in str(cell[i]).splitlines() or [""]) for cell in body))
        if body
        else len(h)
        for i, h in enumerate(headers)
    ]
    widths[3] = min(widths[3], 110)

    def line(cells: tuple[str, ...]) -> list[str]:
        split = [str(c).splitlines() or [""] for c in cells]
        height = max(len(s) for s in split)
        out = []
        for n in range(height):
            parts = [(s[n] if n < len(s) else "").ljust(widths[i]) for i, s in enumerate(split)]
            out.append("  ".join(parts).rstrip())
        return out

    sep = "  ".join("-" * w for w in widths)
    lines = [*line(headers), sep]
    for cells in body:
        lines.extend(line(cells))
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    plan = plan_checks()  # ConfigError -> exit 2 before anything touches the network
    rows = [check() for check in plan.checks]
    print(render_table(rows))
    failed = [r for r in rows if not r.ok]
    summary = f"{len(rows) - len(failed)} of {len(rows)} check(s) passed"
    print(summary if not failed else f"{summary}; fix the FAILED row(s) above and run again", file=sys.stdout)
    # Exit 2: a preflight problem is something to fix before a real run (settings, rights, reachability).
    return exit_codes.CONFIG_ERROR if failed else exit_codes.OK


if __name__ == "__main__":
    run_cli(main)
