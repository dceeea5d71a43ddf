"""No credential leaks: a full run with faults and failures is captured everywhere it can leave a
trace (stdout/stderr, Prefect logs and artifacts read back through the API, flow run records,
error messages, the ledger database file) and searched for every secret the run handled: the API
key, the Encoura password, every session token and presigned URL signature the sandbox issued,
the SFTP password and the S3 secret key. Settings reprs must show secrets masked."""

from __future__ import annotations

import json
import os
from datetime import UTC, datetime, timedelta
from pathlib import Path
from urllib.parse import quote, quote_plus

import httpx
import pytest

from tests.reliability.harness import Rig, S3View, patched_environ, run_cli, s3_env


def _prefect_records(since: datetime) -> list[str]:
    """Everything the Prefect server keeps about flow runs created since `since`, as JSON text."""
    api = os.environ["PREFECT_API_URL"]
    with httpx.Client(base_url=api, timeout=30) as client:
        runs = (
            client.post("/flow_runs/filter", json={"sort": "EXPECTED_START_TIME_DESC", "limit": 50})
            .raise_for_status()
            .json()
        )
        runs = [r for r in runs if datetime.fromisoformat(r["created"]) >= since]
        ids = [r["id"] for r in runs]
        assert ids, "no flow run was recorded"
        texts = [json.dumps(runs)]
        offset = 0
        while True:
            logs = (
                client.post(
                    "/logs/filter",
                    json={
                        "logs": {"flow_run_id": {"any_": ids}},
                        "limit": 200,
                        "offset": offset,
                        "sort": "TIMESTAMP_ASC",
                    },
                )
                .raise_for_status()
                .json()
            )
            texts.append(json.dumps(logs))
            if len(logs) < 200:
                break
            offset += 200
        artifacts = (
            client.post("/artifacts/filter", json={"artifacts": {"flow_run_id": {"any_": ids}}, "limit": 200})
            .raise_for_status()
            .json()
        )
        texts.append(json.dumps(artifacts))
        task_runs = (
            client.post("/task_runs/filter", json={"flow_runs": {"id": {"any_": ids}}, "limit": 200})
            .raise_for_status()
            .json()
        )
        texts.append(json.dumps(task_runs))
    assert any('"message"' in t for t in texts[1:-2]), "no logs were read back"
    assert artifacts, "no artifacts were read back"
    return texts


def _secrets(rig: Rig, sftp_server, s3_server) -> dict[str, str]:  # type: ignore[no-untyped-def]
    creds = rig.sandbox.credentials
    found = {
        "ENCOURA_API_KEY": creds["api_key"],
        "ENCOURA_PASSWORD": creds["password"],
        "SFTP password": sftp_server.password,
        "S3 secret key": s3_server.secret,
    }
    with rig.sandbox.state.lock:
        tokens = list(rig.sandbox.state.tokens)
        signatures = list(rig.sandbox.state.presigned)
    assert len(tokens) >= 2 and signatures, (len(tokens), len(signatures))
    for n, token in enumerate(tokens):
        found[f"session token #{n}"] = token
    for n, sig in enumerate(signatures):
        found[f"URL signature #{n}"] = sig
        found[f"URL signature #{n} (url-encoded)"] = quote_plus(sig)
        found[f"URL signature #{n} (%-encoded)"] = quote(sig, safe="")
    return found


@pytest.mark.timeout(300)
def test_a_full_run_leaks_no_credential_anywhere(rig: Rig, sftp_server, s3_server, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    rig.env.update(s3_env("bucket", s3_server, "incoming"))
    rig.views.append(S3View("bucket", s3_server, "incoming"))
    rig.env["DESTINATIONS__SLATE__PATH_TEMPLATE"] = "{product_key}/{filename}"
    for i in range(6):
        rig.add_export(("prospect", "aos")[i % 2], size=60_000)
    sftp_server.deny_write.append("incoming/aos")  # error messages from a failing destination, too
    rig.sandbox.configure(
        fail_rate=0.25,
        retry_after_seconds=0,
        # Tokens still expire during the run (every issued token is searched for), but a single retry
        # chain no longer outlives one, as with Encoura's real 20-minute tokens: with a 1 s token the
        # listing could fail with 401 after its re-login, and the expected report depended on timing.
        token_ttl_seconds=3.0,
        truncate_rate=0.3,
        quote_session_token=True,
        seed=5,
    )
    since = datetime.now(UTC) - timedelta(seconds=1)
    env = rig.full_env(ENCOURA_TOKEN_LIFETIME_SECONDS="4", TASK_RETRIES="6", PREFECT_LOGGING_LEVEL="DEBUG")
    faulty = run_cli(env)
    sftp_server.deny_write.clear()
    rig.sandbox.configure(fail_rate=0.0, truncate_rate=0.0)
    clean = run_cli(env)
    assert clean.returncode == 0, clean.stderr[-3000:]
    assert faulty.returncode == 1 and "Traceback" not in faulty.stderr, faulty.stderr[-3000:]
    assert "ermission" in faulty.stdout + faulty.stderr  # the failure was reported (and so searched)

    haystacks = {
        "stdout/stderr": faulty.stdout + faulty.stderr + clean.stdout + clean.stderr,
        "prefect": "\n".join(_prefect_records(since)),
    }
    for path in sorted(rig.state_dir.glob("ledger.sqlite3*")):
        haystacks[f"ledger file {path.name}"] = path.read_bytes().decode("latin-1")
    leaks = [
        f"{what} found in {where}"
        for what, secret in _secrets(rig, sftp_server, s3_server).items()
        for where, text in haystacks.items()
        if secret in text
    ]
    assert not leaks, leaks


def test_settings_reprs_mask_secrets(rig: Rig, sftp_server, s3_server, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    from encoura_tasks.export.settings import load_export_settings

    key = tmp_path / "id_slate"
    key.write_bytes(sftp_server.encrypted_client_key_path.read_bytes())
    env = rig.full_env(
        **s3_env("bucket", s3_server, "incoming"),
        DESTINATIONS__SLATE__CLIENT_KEY=str(key),
        DESTINATIONS__SLATE__PASSPHRASE=sftp_server.key_passphrase,
    )
    with patched_environ(env):
        encoura, run = load_export_settings()
    texts = [repr(encoura), str(encoura), repr(run), str(run), repr(run.destinations), str(encoura.model_dump())]
    texts += [repr(d) for d in run.destinations.values()]
    secrets = [
        rig.sandbox.credentials["api_key"],
        rig.sandbox.credentials["password"],
        rig.sandbox.credentials["username"],
        sftp_server.password,
        sftp_server.key_passphrase,
        s3_server.secret,
    ]
    for text in texts:
        for secret in secrets:
            assert secret not in text, (secret, text[:300])
    assert "**********" in repr(encoura) and "**********" in repr(run)
