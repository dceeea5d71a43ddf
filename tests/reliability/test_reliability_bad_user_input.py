"""Bad input from users: every mistake gives one clear message naming the setting, exit code 2, no
traceback, and no network call (sandbox counters stay 0, the SFTP server sees no connection).
Wrong credentials: exactly one login attempt per run, never a retry storm that locks the account."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

from tests.reliability.harness import Rig, Zygote, run_cli
from tests.support.fault_proxy import FaultProxy

Env = dict[str, str]


def _without(*names: str) -> Callable[[Env, Path], Env]:
    return lambda env, _tmp: {k: v for k, v in env.items() if k not in names}


def _with(**values: str) -> Callable[[Env, Path], Env]:
    return lambda env, _tmp: {**env, **values}


def _no_destinations(env: Env, _tmp: Path) -> Env:
    return {k: v for k, v in env.items() if not k.startswith("DESTINATIONS__")}


def _key_file(kind: str) -> Callable[[Env, Path], Env]:
    def make(env: Env, tmp: Path) -> Env:
        path = tmp / "keys" / "id_slate"
        path.parent.mkdir(exist_ok=True)
        if kind == "directory":
            path.mkdir()
        elif kind == "garbage":
            path.write_text("this is not a private key\n")
        return {**env, "DESTINATIONS__SLATE__CLIENT_KEY": str(path)}

    return make


CASES: dict[str, tuple[Callable[[Env, Path], Env], str]] = {
    "missing-api-key": (_without("ENCOURA_API_KEY"), "ENCOURA_API_KEY"),
    "missing-username": (_without("ENCOURA_USERNAME"), "ENCOURA_USERNAME"),
    "missing-password": (_without("ENCOURA_PASSWORD"), "ENCOURA_PASSWORD"),
    "no-destination": (_no_destinations, "DESTINATIONS__"),
    "base-url-not-a-url": (_with(ENCOURA_BASE_URL="api-datalab.encoura.org/v1"), "ENCOURA_BASE_URL"),
    "base-url-plain-http": (_with(ENCOURA_BASE_URL="http://api-datalab.encoura.org/v1"), "ENCOURA_BASE_URL"),
    "destination-url-bad-port": (
        _with(DESTINATIONS__SLATE__URL="sftp://slate@127.0.0.1:port/incoming"),
        "DESTINATIONS__SLATE__URL",
    ),
    "destination-url-unknown-protocol": (
        _with(DESTINATIONS__SLATE__URL="slate-ftp://ft.technolutions.net/incoming"),
        "DESTINATIONS__SLATE__URL",
    ),
    "destination-url-password-inline": (
        _with(DESTINATIONS__SLATE__URL="sftp://slate:hunter2@127.0.0.1/incoming"),
        "DESTINATIONS__SLATE__URL",
    ),
    "key-file-missing": (_key_file("missing"), "DESTINATIONS__SLATE__CLIENT_KEY"),
    "key-file-is-a-directory": (_key_file("directory"), "DESTINATIONS__SLATE__CLIENT_KEY"),
    "key-file-not-a-key": (_key_file("garbage"), "DESTINATIONS__SLATE__CLIENT_KEY"),
    "host-key-garbage": (
        _with(DESTINATIONS__SLATE__HOST_KEY="ssh-ed25519 not-base64!"),
        "DESTINATIONS__SLATE__HOST_KEY",
    ),
    "storage-options-not-json": (
        _with(DESTINATIONS__SHARE__STORAGE_OPTIONS="{key: 1"),
        "DESTINATIONS__SHARE__STORAGE_OPTIONS",
    ),
    "unknown-product-key": (_with(ENCOURA_PRODUCT_KEYS="prospect,prospects"), "ENCOURA_PRODUCT_KEYS"),
    "retries-not-a-number": (_with(TASK_RETRIES="three"), "TASK_RETRIES"),
    "config-file-missing": (_with(ENCOURA_SLATE_CONFIG="/nonexistent/encoura-slate.toml"), "ENCOURA_SLATE_CONFIG"),
}


def _assert_no_network(rig: Rig, sftp_server, proxy: FaultProxy) -> None:  # type: ignore[no-untyped-def]
    snap = rig.sandbox.snapshot()
    assert snap["counters"] == {} and snap["login_attempts"] == 0, snap["counters"]
    assert sftp_server.connections_opened == 0 and proxy.stats.accepted == 0


def _assert_clear(code: int, stdout: str, stderr: str, setting: str) -> None:
    assert code == 2, (code, stdout[-1500:], stderr[-1500:])
    assert "Traceback" not in stderr and "Traceback" not in stdout, stderr
    assert setting in stderr, stderr
    assert len(stderr.strip().splitlines()) <= 12, stderr  # one message, not a dump


@pytest.mark.timeout(300)
def test_each_user_mistake_is_one_clear_message_exit_2_and_no_network(
    rig: Rig,
    zygote: Zygote,
    sftp_server,
    sftp_proxy: FaultProxy,
    tmp_path: Path,  # type: ignore[no-untyped-def]
) -> None:
    rig.add_export("prospect", size=2_000)
    failures: list[str] = []
    for label, (change, setting) in CASES.items():
        rig.sandbox.reset()  # counters back to 0, so each case is judged on its own
        sftp_server.connections_opened = 0
        sftp_proxy.stats.accepted = 0
        out = tmp_path / label
        out.mkdir()
        env = change(rig.full_env(), out)
        code = zygote.wait(zygote.spawn(env, [], out))
        stdout = (out / "stdout.txt").read_text()
        stderr = (out / "stderr.txt").read_text()
        try:
            _assert_clear(code, stdout, stderr, setting)
            _assert_no_network(rig, sftp_server, sftp_proxy)
        except AssertionError as exc:
            failures.append(f"{label}: {exc}")
    assert not failures, "\n\n".join(failures)


@pytest.mark.timeout(300)
def test_cli_missing_setting_as_a_scheduler_sees_it(rig: Rig, sftp_server, sftp_proxy: FaultProxy) -> None:  # type: ignore[no-untyped-def]
    env = {k: v for k, v in rig.full_env().items() if k != "ENCOURA_PASSWORD"}
    done = run_cli(env)
    _assert_clear(done.returncode, done.stdout, done.stderr, "ENCOURA_PASSWORD")
    _assert_no_network(rig, sftp_server, sftp_proxy)


@pytest.mark.timeout(300)
def test_wrong_credentials_one_login_attempt_per_run(
    rig: Rig,
    zygote: Zygote,
    sftp_server,
    sftp_proxy: FaultProxy,
    tmp_path: Path,  # type: ignore[no-untyped-def]
) -> None:
    rig.add_export("prospect", size=2_000)
    rig.sandbox.configure(fail_rate=0.0)
    for run in (1, 2, 3):
        out = tmp_path / f"run{run}"
        out.mkdir()
        code = zygote.wait(zygote.spawn(rig.full_env(ENCOURA_PASSWORD="wrong-password"), [], out))
        stderr = (out / "stderr.txt").read_text()
        assert code in (1, 2), (code, stderr[-1500:])
        assert "Traceback" not in stderr
        assert "ENCOURA_PASSWORD" in stderr + (out / "stdout.txt").read_text()
        assert rig.sandbox.snapshot()["login_attempts"] == run, "more than one login attempt in a run"
    assert sftp_server.connections_opened == 0  # nothing else was attempted either
    assert all(e.status == "NotDelivered" for e in rig.sandbox.state.exports.values())  # nothing consumed
