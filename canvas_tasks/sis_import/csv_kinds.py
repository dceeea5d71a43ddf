"""Which SIS CSV a file is, told from its header row the way Canvas tells it, and the order Canvas
imports them in (accounts before terms and courses, courses before sections, users before
enrollments ...). Zips built from a folder list their files in this order."""

from __future__ import annotations

import csv
import io
from collections.abc import Callable

Header = frozenset[str]


def _all(*cols: str) -> Callable[[Header], bool]:
    return lambda h: all(c in h for c in cols)


def _enrollment(h: Header) -> bool:
    return (
        bool(h & {"course_id", "section_id"})
        and bool(h & {"user_id", "user_integration_id"})
        and bool(h & {"role", "role_id"})
    )


def _login(h: Header) -> bool:
    return (
        "user_id" in h
        and "login_id" in h
        and bool(h & {"existing_user_id", "existing_integration_id", "existing_canvas_user_id"})
    )


def _admin(h: Header) -> bool:
    return "user_id" in h and "account_id" in h and bool(h & {"role", "role_id"})


# Canvas's importer order (SIS::CSV IMPORTERS); the first matching rule names the file's kind.
KINDS: tuple[tuple[str, Callable[[Header], bool]], ...] = (
    ("change_sis_id", _all("old_id", "new_id")),
    ("account", _all("account_id", "parent_account_id")),
    ("term", _all("term_id", "name")),
    ("abstract_course", _all("abstract_course_id", "short_name")),
    ("course", _all("course_id", "short_name")),
    ("section", _all("section_id", "name")),
    ("xlist", _all("xlist_course_id")),
    ("login", _login),
    ("user", _all("user_id", "login_id")),
    ("enrollment", _enrollment),
    ("admin", _admin),
    ("group_category", _all("group_category_id", "category_name")),
    ("group", _all("group_id", "name")),
    ("group_membership", _all("group_id", "user_id")),
    ("grade_publishing_results", _all("enrollment_id", "grade_publishing_status")),
    ("user_observer", _all("observer_id", "student_id")),
)
ORDER = {name: index for index, (name, _) in enumerate(KINDS)}


def parse_header(first_line: str) -> Header:
    row = next(csv.reader(io.StringIO(first_line.lstrip("\ufeff"))), [])
    return frozenset(col.strip().lower() for col in row if col.strip())


def kind_of(header: Header) -> str | None:
    for name, matches in KINDS:
        if matches(header):
            return name
    return None


def count_key(kind: str) -> str:
    """The key Canvas uses in `data.counts` for a kind (pluralised)."""
    return kind if kind.endswith("s") else f"{kind}s"
