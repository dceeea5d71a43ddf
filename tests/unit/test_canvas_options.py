"""Option rules: every refused combination names the options involved, on the command line's spelling."""

from __future__ import annotations

import pytest

from canvas_tasks.sis_import.options import ImportOptions, build_options
from common.errors import ConfigError


def problems_of(**values: object) -> list[str]:
    with pytest.raises(ConfigError) as info:
        build_options(**values)
    return info.value.problems


@pytest.mark.parametrize(
    ("values", "names"),
    [
        ({"batch_mode": True}, ["--batch-mode", "--batch-mode-term-id"]),
        ({"batch_mode_term_id": "T1"}, ["--batch-mode-term-id", "--batch-mode"]),
        ({"multi_term_batch_mode": True}, ["--multi-term-batch-mode", "--change-threshold"]),
        (
            {"multi_term_batch_mode": True, "change_threshold": 5, "batch_mode": True, "batch_mode_term_id": "T1"},
            ["--multi-term-batch-mode", "--batch-mode-term-id"],
        ),
        ({"add_sis_stickiness": True}, ["--add-sis-stickiness", "--override-sis-stickiness"]),
        ({"clear_sis_stickiness": True}, ["--clear-sis-stickiness", "--override-sis-stickiness"]),
        (
            {"override_sis_stickiness": True, "add_sis_stickiness": True, "clear_sis_stickiness": True},
            ["--add-sis-stickiness", "--clear-sis-stickiness"],
        ),
        (
            {"batch_mode": True, "batch_mode_term_id": "T1", "diffing_data_set_identifier": "nightly"},
            ["--diffing-data-set-identifier", "--batch-mode"],
        ),
        ({"diffing_drop_status": "completed"}, ["--diffing-drop-status", "--diffing-data-set-identifier"]),
        ({"diffing_user_remove_status": "suspended"}, ["--diffing-user-remove-status"]),
        ({"diffing_remaster_data_set": True}, ["--diffing-remaster-data-set"]),
        ({"diff_row_count_threshold": 10}, ["--diff-row-count-threshold"]),
        ({"batch_mode_enrollment_drop_status": "inactive"}, ["--batch-mode-enrollment-drop-status", "--batch-mode"]),
        ({"change_threshold": 10}, ["--change-threshold"]),
    ],
)
def test_refused_combinations_name_the_options(values: dict[str, object], names: list[str]) -> None:
    text = "\n".join(problems_of(**values))
    for name in names:
        assert name in text


@pytest.mark.parametrize(
    ("values", "name"),
    [
        ({"diffing_data_set_identifier": "x", "diffing_drop_status": "gone"}, "--diffing-drop-status"),
        (
            {"diffing_data_set_identifier": "x", "diffing_user_remove_status": "inactive"},
            "--diffing-user-remove-status",
        ),
        (
            {"batch_mode": True, "batch_mode_term_id": "T", "batch_mode_enrollment_drop_status": "x"},
            "--batch-mode-enrollment-drop-status",
        ),
        ({"batch_mode": True, "batch_mode_term_id": "T", "change_threshold": 0}, "--change-threshold"),
        ({"batch_mode": True, "batch_mode_term_id": "T", "change_threshold": 101}, "--change-threshold"),
        ({"diffing_data_set_identifier": "x", "diff_row_count_threshold": 0}, "--diff-row-count-threshold"),
        ({"import_type": "Robert'); DROP"}, "--import-type"),
        ({"extension": "tar"}, "--extension"),
    ],
)
def test_values_out_of_range_or_enum_are_refused(values: dict[str, object], name: str) -> None:
    assert any(name in p for p in problems_of(**values))


def test_all_problems_are_reported_at_once() -> None:
    problems = problems_of(batch_mode=True, add_sis_stickiness=True, change_threshold=500)
    # field errors first pass; the combination pass only runs on valid fields, so fix order is clear
    assert any("--change-threshold" in p for p in problems)
    problems = problems_of(batch_mode=True, add_sis_stickiness=True)
    assert len(problems) == 2


def test_form_fields_send_only_what_is_set_and_true() -> None:
    options = build_options(
        batch_mode=True,
        batch_mode_term_id="sis_term_id:T2026F",
        change_threshold=10,
        batch_mode_enrollment_drop_status="completed",
        override_sis_stickiness=True,
        clear_sis_stickiness=True,
        skip_deletes=False,
    )
    assert options.form_fields("zip") == [
        ("import_type", "instructure_csv"),
        ("extension", "zip"),
        ("batch_mode", "true"),
        ("override_sis_stickiness", "true"),
        ("clear_sis_stickiness", "true"),
        ("batch_mode_term_id", "sis_term_id:T2026F"),
        ("change_threshold", "10"),
        ("batch_mode_enrollment_drop_status", "completed"),
    ]


def test_multi_term_batch_mode_with_threshold_and_diffing_options_are_accepted() -> None:
    assert build_options(multi_term_batch_mode=True, change_threshold=5).in_batch_mode
    opts = build_options(
        diffing_data_set_identifier="nightly",
        diffing_remaster_data_set=True,
        diffing_drop_status="inactive",
        diffing_user_remove_status="suspended",
        diff_row_count_threshold=5000,
        change_threshold=20,
    )
    assert ("diffing_user_remove_status", "suspended") in opts.form_fields("csv")


def test_defaults_send_import_type_and_extension_only() -> None:
    assert ImportOptions().form_fields("csv") == [("import_type", "instructure_csv"), ("extension", "csv")]
