"""The sandbox is faithful enough for the canvasapi library (a client we did not write)."""

from __future__ import annotations

import warnings
from pathlib import Path

import pytest
from canvasapi import Canvas
from canvasapi.exceptions import BadRequest, InvalidAccessToken

from sandbox.canvas import CanvasSandbox


@pytest.fixture
def canvas(canvas_sandbox: CanvasSandbox) -> Canvas:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # canvasapi warns about plain-http base URLs
        return Canvas(canvas_sandbox.base_url, canvas_sandbox.token)


def test_create_and_follow_an_import(canvas: Canvas, canvas_sandbox: CanvasSandbox, sis_folder: Path) -> None:
    account = canvas.get_account(int(canvas_sandbox.account_id))
    created = account.create_sis_import(
        str(sis_folder / "users.csv"), batch_mode=True, batch_mode_term_id="T2026F", override_sis_stickiness=True
    )
    assert created.workflow_state == "created"

    [sent] = canvas_sandbox.state.submissions()
    assert sent.files["attachment"][0] == "users.csv"
    assert sent.files["attachment"][2] == (sis_folder / "users.csv").read_bytes()
    assert ("batch_mode", "true") in sent.fields and ("batch_mode_term_id", "T2026F") in sent.fields

    state = created
    for _ in range(10):
        state = account.get_sis_import(created.id)
        if state.workflow_state not in ("created", "importing", "cleanup_batch"):
            break
    assert state.workflow_state == "imported_with_messages"
    assert state.data["counts"]["users"] == 3
    assert state.processing_warnings[0][0] == "users.csv"


def test_abort_and_errors_through_canvasapi(canvas: Canvas, canvas_sandbox: CanvasSandbox, sis_folder: Path) -> None:
    canvas_sandbox.state.default_scenario = "slow"
    account = canvas.get_account(1)
    running = account.create_sis_import(str(sis_folder / "users.csv"))
    assert running.abort().workflow_state == "aborted"

    with pytest.raises(BadRequest, match="root accounts"):
        canvas.get_account(2).create_sis_import(str(sis_folder / "users.csv"))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        wrong = Canvas(canvas_sandbox.base_url, "not-the-token")
    with pytest.raises(InvalidAccessToken):
        wrong.get_account(1).get_sis_import(running.id)
