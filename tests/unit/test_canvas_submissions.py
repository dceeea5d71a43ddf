"""The submission record: atomic, keyed by everything that makes two uploads the same import."""

from __future__ import annotations

from pathlib import Path

import pytest

from canvas_tasks.sis_import.submissions import SubmissionStore, submission_key


def test_key_changes_with_any_part() -> None:
    base = submission_key("https://c", "1", "abc", [("import_type", "instructure_csv")])
    assert base == submission_key("https://c", "1", "abc", [("import_type", "instructure_csv")])
    assert base != submission_key("https://c", "2", "abc", [("import_type", "instructure_csv")])
    assert base != submission_key("https://c", "1", "abd", [("import_type", "instructure_csv")])
    assert base != submission_key(
        "https://c", "1", "abc", [("import_type", "instructure_csv"), ("skip_deletes", "true")]
    )


def test_only_one_run_can_start_a_submission(tmp_path: Path) -> None:
    store = SubmissionStore(tmp_path)
    record = store.start("k", "users.csv", "abc", replace=False)
    with pytest.raises(FileExistsError):
        store.start("k", "users.csv", "abc", replace=False)
    store.put(record.model_copy(update={"import_id": 42}))
    got = store.get("k")
    assert got is not None and got.import_id == 42
    assert store.start("k", "users.csv", "abc", replace=True).import_id is None
    store.forget("k")
    assert store.get("k") is None
