"""Every documented SIS import option, checked together before anything is sent to Canvas.

Canvas silently ignores several combinations (diffing in batch mode, stickiness flags without
override, drop statuses without the mode they belong to). A silent ignore on a job that can delete
enrollments is worse than a refusal, so each of those is refused here with the options named.
"""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from common.errors import ConfigError

DropStatus = Literal["deleted", "completed", "inactive"]
UserRemoveStatus = Literal["deleted", "suspended"]
Extension = Literal["csv", "zip", "xml"]

_BOOLEAN_FIELDS = (
    "batch_mode",
    "multi_term_batch_mode",
    "override_sis_stickiness",
    "add_sis_stickiness",
    "clear_sis_stickiness",
    "diffing_remaster_data_set",
    "skip_deletes",
    "update_sis_id_if_login_claimed",
)
VALUE_FIELDS = (
    "batch_mode_term_id",
    "change_threshold",
    "diffing_data_set_identifier",
    "diffing_drop_status",
    "diffing_user_remove_status",
    "batch_mode_enrollment_drop_status",
    "diff_row_count_threshold",
)


def flag(name: str) -> str:
    """How an option is spelled on the command line; errors name both spellings."""
    return "--" + name.replace("_", "-")


def _n(name: str) -> str:
    return f"{name} ({flag(name)})"


class ImportOptions(BaseModel):
    """Options for POST /accounts/:id/sis_imports. Booleans are sent only when true (Canvas treats
    the mere presence of `multi_term_batch_mode` as on, whatever its value)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    import_type: str = Field(default="instructure_csv", pattern=r"^[a-z][a-z0-9_]*$")
    extension: Extension | None = Field(default=None, description="override; otherwise derived from the input")
    batch_mode: bool = False
    batch_mode_term_id: str | None = Field(default=None, min_length=1)
    multi_term_batch_mode: bool = False
    change_threshold: int | None = Field(default=None, ge=1, le=100, description="percent")
    override_sis_stickiness: bool = False
    add_sis_stickiness: bool = False
    clear_sis_stickiness: bool = False
    update_sis_id_if_login_claimed: bool = False
    diffing_data_set_identifier: str | None = Field(default=None, min_length=1)
    diffing_remaster_data_set: bool = False
    diffing_drop_status: DropStatus | None = None
    diffing_user_remove_status: UserRemoveStatus | None = None
    batch_mode_enrollment_drop_status: DropStatus | None = None
    diff_row_count_threshold: int | None = Field(default=None, ge=1)
    skip_deletes: bool = False

    @property
    def in_batch_mode(self) -> bool:
        return self.batch_mode or self.multi_term_batch_mode

    @property
    def diffing(self) -> bool:
        return self.diffing_data_set_identifier is not None

    def combination_problems(self) -> list[str]:
        problems: list[str] = []
        if self.batch_mode and not self.batch_mode_term_id and not self.multi_term_batch_mode:
            problems.append(
                f"{_n('batch_mode')} requires {_n('batch_mode_term_id')}: the term whose missing data is deleted"
            )
        if self.batch_mode_term_id and not self.batch_mode:
            problems.append(f"{_n('batch_mode_term_id')} only applies with {_n('batch_mode')}; add it or drop the term")
        if self.multi_term_batch_mode and self.change_threshold is None:
            problems.append(f"{_n('multi_term_batch_mode')} requires {_n('change_threshold')} (a percentage, 1-100)")
        if self.multi_term_batch_mode and self.batch_mode_term_id:
            problems.append(
                f"{_n('multi_term_batch_mode')} and {_n('batch_mode_term_id')} contradict each other: "
                "one covers every term in terms.csv, the other a single term"
            )
        for name in ("add_sis_stickiness", "clear_sis_stickiness"):
            if getattr(self, name) and not self.override_sis_stickiness:
                problems.append(f"{_n(name)} requires {_n('override_sis_stickiness')}")
        if self.add_sis_stickiness and self.clear_sis_stickiness:
            problems.append(f"{_n('add_sis_stickiness')} and {_n('clear_sis_stickiness')} cannot both be set")
        if self.diffing and self.in_batch_mode:
            mode = "multi_term_batch_mode" if self.multi_term_batch_mode else "batch_mode"
            problems.append(
                f"{_n('diffing_data_set_identifier')} cannot be used with {_n(mode)}: Canvas ignores diffing in "
                "batch mode and would run a full batch (with deletions) instead"
            )
        for name in (
            "diffing_remaster_data_set",
            "diffing_drop_status",
            "diffing_user_remove_status",
            "diff_row_count_threshold",
        ):
            if getattr(self, name) not in (None, False) and not self.diffing:
                problems.append(f"{_n(name)} only applies with {_n('diffing_data_set_identifier')}")
        if self.batch_mode_enrollment_drop_status and not self.in_batch_mode:
            problems.append(
                f"{_n('batch_mode_enrollment_drop_status')} only applies with {_n('batch_mode')} "
                f"or {_n('multi_term_batch_mode')}"
            )
        if self.change_threshold is not None and not (self.in_batch_mode or self.diffing):
            problems.append(
                f"{_n('change_threshold')} only applies with {_n('batch_mode')}, {_n('multi_term_batch_mode')} "
                f"or {_n('diffing_data_set_identifier')}"
            )
        return problems

    @model_validator(mode="after")
    def _check_combinations(self) -> ImportOptions:
        problems = self.combination_problems()
        if problems:
            raise ValueError("\n".join(problems))
        return self

    def form_fields(self, extension: str) -> list[tuple[str, str]]:
        """The multipart form fields, in a stable order; false booleans and unset values are left out."""
        fields: list[tuple[str, str]] = [("import_type", self.import_type), ("extension", extension)]
        for name in _BOOLEAN_FIELDS:
            if getattr(self, name):
                fields.append((name, "true"))
        for name in VALUE_FIELDS:
            value = getattr(self, name)
            if value is not None:
                fields.append((name, str(value)))
        return fields


def build_options(**values: object) -> ImportOptions:
    """Validate options, reporting every problem at once as a ConfigError (exit 2) naming the options."""
    cleaned = {k: v for k, v in values.items() if v is not None}
    try:
        return ImportOptions(**cleaned)  # type: ignore[arg-type]
    except ValidationError as exc:
        problems: list[str] = []
        for err in exc.errors(include_input=False, include_url=False):
            msg = err["msg"].removeprefix("Value error, ")
            if err["loc"]:
                name = str(err["loc"][0])
                problems.append(f"{_n(name)}: {'is not a known option' if err['type'] == 'extra_forbidden' else msg}")
            else:
                problems.extend(msg.split("\n"))
        raise ConfigError(problems, heading="Invalid SIS import options") from None
