"""How Canvas itself tells which SIS CSV a file is: the emulator's own copy of the importer's rules.

Deliberately not shared with `canvas_tasks`: the sandbox exists to catch the client's mistakes, and an
emulator that parses headers with the client's code would agree with any bug in it. The rules follow
Canvas's `SIS::CSV::*Importer.is_*_csv?` checks, tried in the importer's order.
"""

from __future__ import annotations

import csv
import io

# (kind, columns that must all be present, groups of which one column each must be present)
_RULES: tuple[tuple[str, frozenset[str], tuple[frozenset[str], ...]], ...] = (
    ("change_sis_id", frozenset({"old_id", "new_id"}), ()),
    ("account", frozenset({"account_id", "parent_account_id"}), ()),
    ("term", frozenset({"term_id", "name"}), ()),
    ("abstract_course", frozenset({"abstract_course_id", "short_name"}), ()),
    ("course", frozenset({"course_id", "short_name"}), ()),
    ("section", frozenset({"section_id", "name"}), ()),
    ("xlist", frozenset({"xlist_course_id"}), ()),
    (
        "login",
        frozenset({"user_id", "login_id"}),
        (frozenset({"existing_user_id", "existing_integration_id", "existing_canvas_user_id"}),),
    ),
    ("user", frozenset({"user_id", "login_id"}), ()),
    (
        "enrollment",
        frozenset(),
        (
            frozenset({"course_id", "section_id"}),
            frozenset({"user_id", "user_integration_id"}),
            frozenset({"role", "role_id"}),
        ),
    ),
    ("admin", frozenset({"user_id", "account_id"}), (frozenset({"role", "role_id"}),)),
    ("group_category", frozenset({"group_category_id", "category_name"}), ()),
    ("group", frozenset({"group_id", "name"}), ()),
    ("group_membership", frozenset({"group_id", "user_id"}), ()),
    ("grade_publishing_results", frozenset({"enrollment_id", "grade_publishing_status"}), ()),
    ("user_observer", frozenset({"observer_id", "student_id"}), ()),
)


def parse_header(first_line: str) -> frozenset[str]:
    row = next(csv.reader(io.StringIO(first_line.lstrip("\ufeff"))), [])
    return frozenset(col.strip().lower() for col in row if col.strip())


def kind_of(header: frozenset[str]) -> str | None:
    for kind, required, one_of_each in _RULES:
        if required <= header and all(group & header for group in one_of_each):
            return kind
    return None


def count_key(kind: str) -> str:
    """The key Canvas uses in `data.counts` for a kind (pluralised)."""
    return kind if kind.endswith("s") else f"{kind}s"
