"""The rest of the SIS import API over real HTTP against the Canvas sandbox: true message totals,
list filters with Link pagination, importing, abort (and its race with completion), abort_all_pending,
restore_states and the errors CSV of a past import, through the client and `python -m flows.canvas_admin`."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from canvas_tasks.api.client import CanvasSisClient
from canvas_tasks.api.models import SisImport
from canvas_tasks.api.transport import RetryPolicy
from common.cli import run_cli
from flows import canvas_admin
from sandbox.canvas import CanvasSandbox


def admin(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str, str]:
    with pytest.raises(SystemExit) as info:
        run_cli(lambda: canvas_admin.main(list(args)))
    out, err = capsys.readouterr()
    return int(info.value.code or 0), out, err


@pytest.fixture
def client(canvas_sandbox: CanvasSandbox) -> Iterator[CanvasSisClient]:
    c = CanvasSisClient(
        canvas_sandbox.base_url, canvas_sandbox.account_id, lambda: canvas_sandbox.token,
        retry=RetryPolicy(attempts=2, backoff=0.01),
    )  # fmt: skip
    yield c
    c.close()


def _submit(client: CanvasSisClient, tmp_path: Path, name: str, body: str, fields: list[tuple[str, str]] = []) -> int:  # noqa: B006
    path = tmp_path / name
    path.write_text(body)
    return client.submit(path, name, "text/csv", [("extension", "csv"), *fields]).id


def _finish(client: CanvasSisClient, import_id: int) -> SisImport:
    for _ in range(50):
        imp = client.get_import(import_id)
        if imp.is_terminal:
            return imp
    raise AssertionError(f"import {import_id} never finished")


USERS_HEADER = "user_id,login_id,first_name,last_name,status\n"


def _users(n_bad: int) -> str:
    return USERS_HEADER + "".join(f"U{i},u{i},F,L,{'bogus' if i < n_bad else 'active'}\n" for i in range(n_bad + 2))


def test_totals_come_from_counts_not_the_capped_lists(client: CanvasSisClient, tmp_path: Path) -> None:
    imp = _finish(client, _submit(client, tmp_path, "users.csv", _users(30)))
    assert imp.workflow_state == "imported_with_messages"
    # Canvas's shape: 24 rows, then one "and N more" row; the true total is in data.counts.
    assert len(imp.processing_warnings or []) == 25
    assert imp.processing_warnings[-1] == ["", "There were 6 more warnings"]
    assert (imp.warning_count, imp.error_count) == (30, 0)
    assert imp.counts["users"] == 32 and "warning_count" not in imp.counts  # object counts only


def test_flow_reports_the_true_warning_total(
    canvas_env: dict[str, str], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from flows.canvas_sis_import import main

    source = tmp_path / "users.csv"
    source.write_text(_users(30))
    with pytest.raises(SystemExit) as info:
        run_cli(lambda: main([str(source), "--poll-interval", "0.05"]))
    out, _ = capsys.readouterr()
    assert info.value.code == 0
    assert "with 30 warning(s) and 0 error(s)" in out
    assert "warning_count" not in out and "users=32" in out


def test_list_filters_and_follows_link_pages(
    client: CanvasSisClient, canvas_sandbox: CanvasSandbox, tmp_path: Path, capsys: pytest.CaptureFixture[str],
    canvas_env: dict[str, str],
) -> None:
    ids = [_submit(client, tmp_path, f"users_{i}.csv", _users(0)) for i in range(5)]
    failed = _submit(client, tmp_path, "users_failed.csv", _users(0))
    for i in [*ids, failed]:
        _finish(client, i)
    before = canvas_sandbox.state.request_count
    found = client.list_imports(per_page=2)
    assert [i.id for i in found] == sorted([*ids, failed], reverse=True)
    pages = [r for r in canvas_sandbox.state.requests[before:] if r.path.endswith("/sis_imports")]
    assert len(pages) == 3  # 6 imports, 2 per page, every page followed through the Link header
    assert [i.id for i in client.list_imports(workflow_states=["failed"], per_page=2)] == [failed]
    assert {i.id for i in client.list_imports(workflow_states=["imported", "failed"])} == {*ids, failed}
    soon = datetime.now(UTC) + timedelta(minutes=5)
    assert client.list_imports(created_since=soon) == []
    assert client.list_imports(created_before=datetime.now(UTC) - timedelta(minutes=5)) == []
    assert len(client.list_imports(created_before=soon, per_page=1, limit=3)) == 3

    code, out, _ = admin(capsys, "list", "--state", "failed")
    assert code == 0 and out.split("\t")[:2] == [str(failed), "failed"]


def test_importing_abort_all_pending_and_the_abort_race(
    client: CanvasSisClient, canvas_env: dict[str, str], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    slow = _submit(client, tmp_path, "users_slow.csv", _users(0))
    queued = _submit(client, tmp_path, "users_queued.csv", _users(0))
    client.get_import(slow)
    client.get_import(slow)  # the sandbox moves one step per poll: now importing
    assert [i.id for i in client.importing()] == [slow]
    code, out, _ = admin(capsys, "importing")
    assert code == 0 and out.startswith(f"{slow}\timporting")

    code, out, _ = admin(capsys, "abort-all-pending")
    assert code == 0, out
    assert client.get_import(slow).workflow_state == "aborted"
    assert client.get_import(queued).workflow_state == "aborted"

    # An abort that arrives after completion: Canvas says 404; that is "finished before the abort", exit 0.
    done = _finish(client, _submit(client, tmp_path, "users_done.csv", _users(0)))
    raced = client.abort(done.id)
    assert raced.finished_before_abort and raced.workflow_state == "imported"
    code, out, err = admin(capsys, "abort", str(done.id))
    assert code == 0, err
    assert "finished before the abort" in out
    # A really unknown id is still a refusal (exit 2).
    code, _, err = admin(capsys, "abort", "999999")
    assert code == 2 and "404" in err


def test_restore_states_sends_its_options(
    client: CanvasSisClient, canvas_sandbox: CanvasSandbox, canvas_env: dict[str, str], tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    batch = [("batch_mode", "true"), ("batch_mode_term_id", "T2026F")]
    imp = _finish(client, _submit(client, tmp_path, "users.csv", _users(0), batch))
    code, out, err = admin(capsys, "restore", str(imp.id), "--batch-mode", "--undelete-only")
    assert code == 0, err
    assert f"restore of import {imp.id} started" in out
    record = canvas_sandbox.state.imports[imp.id]
    assert record.restore_params == {"batch_mode": "true", "undelete_only": "true"}
    assert client.get_import(imp.id).workflow_state == "restored"
    code, _, err = admin(capsys, "restore", str(imp.id), "--undelete-only", "--unconclude-only")
    assert code == 2


def test_errors_csv_of_a_past_import(
    client: CanvasSisClient, canvas_env: dict[str, str], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    imp = _finish(client, _submit(client, tmp_path, "users.csv", _users(30)))
    out_file = tmp_path / "errs.csv"
    code, out, err = admin(capsys, "errors", str(imp.id), "--out", str(out_file))
    assert code == 0, err
    rows = out_file.read_text().splitlines()
    assert len(rows) == 1 + 30  # header + every warning, not just the 24 the API lists
    clean = _finish(client, _submit(client, tmp_path, "users_ok.csv", _users(0)))
    code, out, _ = admin(capsys, "errors", str(clean.id))
    assert code == 0 and "has no errors attachment" in out


def test_flow_abort_on_timeout_that_loses_the_race_is_not_a_failure(
    canvas_env: dict[str, str], canvas_sandbox: CanvasSandbox, clean_users_csv: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    from flows.canvas_sis_import import main

    canvas_sandbox.state.abort_loses_race = True  # the import completes as our abort arrives: Canvas says 404
    with pytest.raises(SystemExit) as info:
        run_cli(lambda: main([str(clean_users_csv), "--timeout", "0.01", "--abort-on-timeout"]))
    out, err = capsys.readouterr()
    assert info.value.code == 0, out + err
    assert "imported (it finished before the abort)" in out
    [record] = canvas_sandbox.state.imports.values()
    assert not record.aborted
