"""Path templates and temp names: pure logic, so plain unit tests."""

from __future__ import annotations

import fnmatch
from datetime import UTC, datetime

import pytest

from destinations import PathContext, render_path, validate_template
from destinations.publish import TEMP_RE, temp_age, temp_name

CTX = PathContext(
    filename="ACT-Org-20240102-0304.csv",
    product_key="score-reporter",
    export_uid="e-123",
    date=datetime(2024, 1, 2, 3, 4, 5, tzinfo=UTC),
)


@pytest.mark.parametrize(
    ("template", "expected"),
    [
        ("{filename}", "ACT-Org-20240102-0304.csv"),
        ("{product_key}/{filename}", "score-reporter/ACT-Org-20240102-0304.csv"),
        (
            "{product_key}/Encoura_{product_key}_{date:%Y%m%d}_{filename}",
            "score-reporter/Encoura_score-reporter_20240102_ACT-Org-20240102-0304.csv",
        ),
        ("{stem}_{export_uid}{suffix}", "ACT-Org-20240102-0304_e-123.csv"),
        ("archive/{date:%Y}/{date:%m}/{filename}", "archive/2024/01/ACT-Org-20240102-0304.csv"),
    ],
)
def test_render(template: str, expected: str) -> None:
    validate_template(template)
    assert render_path(template, CTX) == expected


@pytest.mark.parametrize(
    ("template", "message"),
    [
        ("../{filename}", r"'\.\.' component"),
        ("a/../../{filename}", r"'\.\.' component"),
        ("/incoming/{filename}", "absolute"),
        ("C:/x/{filename}", "absolute"),
        ("{product}/{filename}", r"unknown placeholder \{product\}"),
        ("{filename!r}", "conversions"),
        ("{filename:>20}", r"only \{date:...\} takes a format"),
        ("{date.year}/{filename}", "unknown placeholder"),
        ("{filename[0]}", "unknown placeholder"),
        ("{}", "empty"),
        ("{filename", "malformed"),
        ("a//{filename}", "empty"),
        ("a\\{filename}", "forbidden characters"),
        ("{product_key}/latest.csv", "must contain"),
        ("{date:%Y/%m}/{filename}", "must not produce '/'"),
    ],
)
def test_validate_refuses(template: str, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        validate_template(template)


@pytest.mark.parametrize(
    "ctx",
    [
        PathContext(filename="x.csv", product_key=".."),
        PathContext(filename="../../etc/passwd"),
        PathContext(filename="a/../../b.csv"),
        PathContext(filename="/etc/passwd"),
        PathContext(filename="bad\nname.csv"),
    ],
)
def test_render_rechecks_values_from_outside(ctx: PathContext) -> None:
    with pytest.raises(ValueError, match="rendered path"):
        render_path("{product_key}/{filename}" if ctx.product_key else "{filename}", ctx)


def test_literal_braces_in_values_are_not_reinterpreted() -> None:
    assert render_path("{filename}", PathContext(filename="{product_key}.csv")) == "{product_key}.csv"


def test_default_date_is_now_utc() -> None:
    assert PathContext(filename="a").date.tzinfo is UTC


# Masks a Slate source format could reasonably use; none may match a temp name.
SLATE_MASKS = ["Encoura_*", "*.csv", "*.txt", "ACT-*", "*encoura*", "score-reporter*", "*_*.csv", "*.zip"]


def test_temp_names_match_no_slate_mask_and_are_recognised() -> None:
    name = temp_name()
    assert TEMP_RE.match(name)
    assert name.startswith(".")
    for mask in SLATE_MASKS:
        assert not fnmatch.fnmatch(name, mask), mask
    assert temp_age(name) is not None and 0 <= temp_age(name) < 60  # type: ignore[operator]
    assert temp_age("ACT-Org.csv") is None
    assert temp_age(".~inflight.notanumber.1-abcdef01.part") is None


def test_temp_age_comes_from_the_name() -> None:
    assert temp_age(temp_name(now=1_000_000_000), now=1_000_003_600) == 3600
