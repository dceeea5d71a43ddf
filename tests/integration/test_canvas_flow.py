"""The canvas-sis-import flow in-process against the sandbox over real HTTP."""

from __future__ import annotations

import io
import zipfile
from pathlib import Path
from typing import Any
from uuid import UUID

import pytest
from prefect.client.orchestration import get_client
from prefect.client.schemas.filters import ArtifactFilter, ArtifactFilterFlowRunId

from canvas_tasks.api.models import Outcome
from canvas_tasks.sis_import.options import ImportOptions, build_options
from flows.canvas_sis_import import canvas_sis_import
from sandbox.canvas import CanvasSandbox
from tests.support.canvas_sandbox import FAST_POLL


def run_flow(source: Path | str, options: ImportOptions | None = None, **kwargs: Any) -> tuple[Outcome, UUID]:
    kwargs.setdefault("poll_interval", FAST_POLL)
    kwargs.setdefault("timeout", 30)
    state = canvas_sis_import(str(source), options=options, return_state=True, **kwargs)
    outcome = state.result(raise_on_failure=False)
    assert isinstance(outcome, Outcome), outcome
    assert state.state_details.flow_run_id is not None
    return outcome, state.state_details.flow_run_id


def artifacts_of(flow_run_id: UUID) -> dict[str, Any]:
    with get_client(sync_client=True) as client:
        found = client.read_artifacts(
            artifact_filter=ArtifactFilter(flow_run_id=ArtifactFilterFlowRunId(any_=[flow_run_id]))
        )
    return {a.key: a for a in found}


def test_csv_file_is_sent_as_exact_multipart_with_options(
    canvas_env: dict[str, str], canvas_sandbox: CanvasSandbox, clean_users_csv: Path
) -> None:
    options = build_options(
        override_sis_stickiness=True,
        add_sis_stickiness=True,
        skip_deletes=True,
        update_sis_id_if_login_claimed=True,
        diffing_data_set_identifier="nightly-users",
        diffing_drop_status="inactive",
        diffing_user_remove_status="suspended",
        diff_row_count_threshold=500,
        change_threshold=15,
    )
    outcome, _ = run_flow(clean_users_csv, options)
    assert (outcome.status, outcome.exit_code, outcome.counts["users"]) == ("imported", 0, 2)

    [sent] = canvas_sandbox.state.submissions()
    assert sent.path == f"/api/v1/accounts/{canvas_sandbox.account_id}/sis_imports"
    assert sent.content_type.startswith("multipart/form-data; boundary=")
    assert sent.fields == [
        ("import_type", "instructure_csv"),
        ("extension", "csv"),
        ("override_sis_stickiness", "true"),
        ("add_sis_stickiness", "true"),
        ("skip_deletes", "true"),
        ("update_sis_id_if_login_claimed", "true"),
        ("change_threshold", "15"),
        ("diffing_data_set_identifier", "nightly-users"),
        ("diffing_drop_status", "inactive"),
        ("diffing_user_remove_status", "suspended"),
        ("diff_row_count_threshold", "500"),
    ]
    assert sent.files == {"attachment": ("users.csv", "text/csv", clean_users_csv.read_bytes())}
    assert clean_users_csv.exists()  # the user's file is never moved or deleted


def test_folder_is_zipped_in_order_and_sent_with_batch_options(
    canvas_env: dict[str, str], canvas_sandbox: CanvasSandbox, sis_folder: Path
) -> None:
    options = build_options(
        batch_mode=True,
        batch_mode_term_id="sis_term_id:T2026F",
        change_threshold=10,
        batch_mode_enrollment_drop_status="completed",
    )
    outcome, _ = run_flow(sis_folder, options)
    assert outcome.exit_code == 0

    [sent] = canvas_sandbox.state.submissions()
    assert sent.fields == [
        ("import_type", "instructure_csv"),
        ("extension", "zip"),
        ("batch_mode", "true"),
        ("batch_mode_term_id", "sis_term_id:T2026F"),
        ("change_threshold", "10"),
        ("batch_mode_enrollment_drop_status", "completed"),
    ]
    filename, content_type, data = sent.files["attachment"]
    assert (filename, content_type) == ("sis_export.zip", "application/zip")
    with zipfile.ZipFile(io.BytesIO(data)) as zf:
        assert zf.namelist() == [
            "accounts.csv",
            "terms.csv",
            "courses.csv",
            "sections.csv",
            "users.csv",
            "enrollments.csv",
        ]
        for name in zf.namelist():
            assert zf.read(name) == (sis_folder / name).read_bytes()
    assert not list((Path(canvas_env["STATE_DIR"]) / "canvas" / "staging").rglob("*.zip"))  # staging cleared


@pytest.mark.parametrize(
    ("scenario", "kwargs", "status", "state", "code"),
    [
        ("succeed", {}, "imported", "imported", 0),
        ("with_warnings", {}, "imported_with_warnings", "imported_with_messages", 0),
        ("with_warnings", {"fail_on_warnings": True}, "failed_on_warnings", "imported_with_messages", 1),
        ("failed_with_messages", {}, "failed", "failed_with_messages", 1),
        ("failed", {}, "failed", "failed", 1),
        ("aborted", {}, "failed", "aborted", 1),
        ("queued", {}, "imported", "imported", 0),
        ("backwards", {}, "imported", "imported", 0),
    ],
)
def test_terminal_states_map_to_outcomes(
    canvas_env: dict[str, str],
    canvas_sandbox: CanvasSandbox,
    clean_users_csv: Path,
    scenario: str,
    kwargs: dict[str, Any],
    status: str,
    state: str,
    code: int,
) -> None:
    canvas_sandbox.state.default_scenario = scenario
    outcome, _ = run_flow(clean_users_csv, **kwargs)
    assert (outcome.status, outcome.workflow_state, outcome.exit_code) == (status, state, code)


def test_watch_timeout_leaves_the_import_running(
    canvas_env: dict[str, str], canvas_sandbox: CanvasSandbox, clean_users_csv: Path
) -> None:
    canvas_sandbox.state.default_scenario = "slow"
    outcome, _ = run_flow(clean_users_csv, timeout=0.3)
    assert outcome.exit_code == 1 and outcome.status == "still_running"
    assert f"import id {outcome.import_id}" in outcome.message
    record = canvas_sandbox.state.imports[outcome.import_id]
    assert not record.aborted
    assert not any(r.method == "PUT" for r in canvas_sandbox.state.requests)


def test_abort_on_timeout_aborts(
    canvas_env: dict[str, str], canvas_sandbox: CanvasSandbox, clean_users_csv: Path
) -> None:
    canvas_sandbox.state.default_scenario = "slow"
    outcome, _ = run_flow(clean_users_csv, timeout=0.3, abort_on_timeout=True)
    assert (outcome.status, outcome.workflow_state, outcome.exit_code) == ("aborted_after_timeout", "aborted", 1)
    assert canvas_sandbox.state.imports[outcome.import_id].aborted


def test_rate_limits_and_5xx_are_survived_without_a_second_import(
    canvas_env: dict[str, str], canvas_sandbox: CanvasSandbox, clean_users_csv: Path
) -> None:
    canvas_sandbox.state.rate_limit_next_n = 3  # the upload is throttled three times
    canvas_sandbox.state.retry_after = "0"
    outcome, _ = run_flow(clean_users_csv, watch=False)
    assert outcome.exit_code == 0 and outcome.status == "submitted"
    posts = [r for r in canvas_sandbox.state.requests if r.method == "POST"]
    assert len(posts) == 4 and len(canvas_sandbox.state.imports) == 1
    assert all(p.files["attachment"][2] == clean_users_csv.read_bytes() for p in posts)

    canvas_sandbox.state.fail_next_n_5xx = 2  # now the watch's GETs fail
    canvas_sandbox.state.fault_status = 502
    canvas_sandbox.state.fault_methods = frozenset({"GET"})
    outcome, _ = run_flow(clean_users_csv, resubmit=True)
    assert outcome.exit_code == 0 and len(canvas_sandbox.state.imports) == 2


def test_upload_that_may_have_landed_is_not_resent(
    canvas_env: dict[str, str], canvas_sandbox: CanvasSandbox, clean_users_csv: Path
) -> None:
    canvas_sandbox.state.fail_after_create_next_n = 1  # Canvas creates the import, then answers 500
    state = canvas_sis_import(str(clean_users_csv), poll_interval=FAST_POLL, return_state=True)
    assert state.is_failed()
    [created] = canvas_sandbox.state.imports
    assert len(canvas_sandbox.state.submissions()) == 1
    assert f"{created} (" in str(state.message)  # the message lists the import so the user can check it


def test_artifacts_carry_counts_and_messages_and_errors_csv_is_saved(
    canvas_env: dict[str, str], canvas_sandbox: CanvasSandbox, sis_folder: Path
) -> None:
    outcome, flow_run_id = run_flow(sis_folder)
    assert (outcome.status, outcome.exit_code) == ("imported_with_warnings", 0)
    artifacts = artifacts_of(flow_run_id)
    assert {
        "canvas-sis-import-progress",
        "canvas-sis-import-counts",
        "canvas-sis-import-messages",
        "canvas-sis-import-summary",
    } <= set(artifacts)

    counts = {row["object type"]: row["count"] for row in _table(artifacts["canvas-sis-import-counts"])}
    assert counts["users"] == 3 and counts["enrollments"] == 3 and counts["courses"] == 1
    messages = _table(artifacts["canvas-sis-import-messages"])
    assert {(m["severity"], m["file"]) for m in messages} == {("warning", "users.csv"), ("warning", "enrollments.csv")}
    assert any("U999" in m["message"] for m in messages)
    assert artifacts["canvas-sis-import-progress"].data == 100

    errors_csv = Path(outcome.errors_csv or "")
    assert errors_csv == Path(canvas_env["STATE_DIR"]) / "canvas" / str(outcome.import_id) / "errors.csv"
    assert "U999" in errors_csv.read_text()
    summary = str(artifacts["canvas-sis-import-summary"].data)
    assert str(errors_csv) in summary and "imported_with_warnings" in summary
    everything = " ".join(str(a.data) + str(a.description) for a in artifacts.values())
    assert canvas_sandbox.token not in everything
    assert "verifier=" not in everything


def _table(artifact: Any) -> list[dict[str, Any]]:
    import json

    data = artifact.data
    return json.loads(data) if isinstance(data, str) else data


def test_canvas_400_message_is_shown_when_submitting_to_a_sub_account(
    canvas_env: dict[str, str], canvas_sandbox: CanvasSandbox, clean_users_csv: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("CANVAS_ACCOUNT_ID", "2")  # the flow itself, without the CLI's preflight
    state = canvas_sis_import(str(clean_users_csv), poll_interval=FAST_POLL, return_state=True)
    assert state.is_failed()
    assert "SIS imports can only be executed on root accounts" in str(state.message)
    assert len(canvas_sandbox.state.requests) == 1  # a 400 is not retried


def test_rerun_follows_the_earlier_import_instead_of_uploading_again(
    canvas_env: dict[str, str], canvas_sandbox: CanvasSandbox, sis_folder: Path
) -> None:
    first, _ = run_flow(sis_folder, watch=False)  # e.g. the run was interrupted while watching
    second, _ = run_flow(sis_folder)  # same CSVs, same options: the zip is byte-identical
    assert second.import_id == first.import_id and second.reattached
    assert second.status == "imported_with_warnings" and "not uploaded again" in second.message
    assert len(canvas_sandbox.state.submissions()) == 1

    forced, _ = run_flow(sis_folder, resubmit=True)
    assert forced.import_id != first.import_id and not forced.reattached
    assert len(canvas_sandbox.state.submissions()) == 2

    other_options, _ = run_flow(sis_folder, build_options(skip_deletes=True))
    assert other_options.import_id not in (first.import_id, forced.import_id)


def test_failed_import_is_not_followed_again(
    canvas_env: dict[str, str], canvas_sandbox: CanvasSandbox, clean_users_csv: Path
) -> None:
    canvas_sandbox.state.default_scenario = "failed"
    first, _ = run_flow(clean_users_csv)
    canvas_sandbox.state.default_scenario = "succeed"
    second, _ = run_flow(clean_users_csv)
    assert first.exit_code == 1 and second.exit_code == 0 and second.import_id != first.import_id


def test_interrupted_upload_is_checked_before_uploading_again(
    canvas_env: dict[str, str], canvas_sandbox: CanvasSandbox, clean_users_csv: Path
) -> None:
    canvas_sandbox.state.fail_after_create_next_n = 1  # the import landed but we never heard back
    assert canvas_sis_import(str(clean_users_csv), poll_interval=FAST_POLL, return_state=True).is_failed()
    state = canvas_sis_import(str(clean_users_csv), poll_interval=FAST_POLL, return_state=True)
    assert state.is_failed() and "--resubmit" in str(state.message)
    assert len(canvas_sandbox.state.submissions()) == 1
    outcome, _ = run_flow(clean_users_csv, resubmit=True)
    assert outcome.exit_code == 0 and len(canvas_sandbox.state.submissions()) == 2


def test_token_from_a_prefect_secret_block(
    canvas_env: dict[str, str], canvas_sandbox: CanvasSandbox, clean_users_csv: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import uuid

    from prefect.blocks.system import Secret

    block = f"canvas-token-{uuid.uuid4().hex[:8]}"
    Secret(value=canvas_sandbox.token).save(block)
    monkeypatch.setenv("CANVAS_ACCESS_TOKEN", f"prefect-secret:{block}")
    outcome, flow_run_id = run_flow(clean_users_csv)
    assert outcome.exit_code == 0
    with get_client(sync_client=True) as client:
        run = client.read_flow_run(flow_run_id)
    assert canvas_sandbox.token not in str(run.parameters)


def test_losing_canvas_while_watching_reports_the_import_as_still_running(
    canvas_env: dict[str, str], canvas_sandbox: CanvasSandbox, clean_users_csv: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("CANVAS_RETRY_ATTEMPTS", "2")
    canvas_sandbox.state.fault_methods = frozenset({"GET"})
    canvas_sandbox.state.fail_next_n_5xx = 1000
    outcome, _ = run_flow(clean_users_csv)
    assert (outcome.status, outcome.exit_code) == ("still_running", 1)
    assert f"import id {outcome.import_id}" in outcome.message
    assert len(canvas_sandbox.state.imports) == 1
