"""Synthetic, deterministic export files (fake students only) in the layouts Slate expects.

The rows carry what breaks naive handling in real files: leading-zero ZIPs and IDs as quoted text,
a comma inside a field, an apostrophe, non-ASCII names and CRLF line ends. A flow that rewrites a
file instead of copying its bytes shows up as a checksum mismatch.
"""

from __future__ import annotations

import csv
import io
import random
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime

_FIRST = ["Avery", "Jordan", "José", "Mía", "Taylor", "Riley", "Chloé", "Noah", "Zoë", "Liam", "Amara", "Kenji"]
_LAST = ["O'Connor", "Nguyen", "García", "Smith", "Okafor", "Larsen", "Kowalski", "Haddad", "Fernández", "Lee"]
_CITIES = [
    ("Springfield", "MO", "65801"),
    ("Amherst", "MA", "01002"),
    ("Newark", "NJ", "07102"),
    ("St. Louis", "MO", "63101"),
    ("Portland", "ME", "04101"),
    ("Austin", "TX", "78701"),
]
_STREETS = ["Sample St", "Test Ave", "Example Rd", "Placeholder Ln", "Fictional Blvd"]

Row = list[str | int]


def _person(rng: random.Random, n: int) -> dict[str, str | int]:
    city, state, zip_code = rng.choice(_CITIES)
    first, last = rng.choice(_FIRST), rng.choice(_LAST)
    street = f"{rng.randint(1, 9999)} {rng.choice(_STREETS)}"
    if n % 7 == 3:
        street += f", Apt {rng.randint(1, 40)}"  # a comma that must stay inside its quotes
    return {
        "id": f"{rng.randint(0, 99_999_999):08d}",
        "first": first,
        "last": last,
        "street": street,
        "city": city,
        "state": state,
        "zip": zip_code,
        "email": f"{first.lower()[:3]}.{n}@example.com",
        "birth": f"{rng.randint(1, 12):02d}/{rng.randint(1, 28):02d}/{rng.randint(2006, 2009)}",
        "ceeb": f"{rng.randint(0, 999_999):06d}",
        "grad": rng.randint(2026, 2029),
    }


def _prospect(p: dict[str, str | int], rng: random.Random) -> Row:
    return [
        p["id"],
        p["first"],
        p["last"],
        p["street"],
        p["city"],
        p["state"],
        p["zip"],
        p["email"],
        p["ceeb"],
        p["grad"],
        rng.choice(["F", "M", "X"]),
        p["birth"],
    ]


def _act(p: dict[str, str | int], rng: random.Random) -> Row:
    scores = [rng.randint(12, 36) for _ in range(4)]
    return [
        p["id"],
        p["last"],
        p["first"],
        p["street"],
        p["city"],
        p["state"],
        p["zip"],
        p["birth"],
        p["ceeb"],
        round(sum(scores) / 4),
        *scores,
        f"{rng.choice(['02', '04', '06', '07', '09', '10', '12'])}/2025",
    ]


def _inquiry(p: dict[str, str | int], rng: random.Random) -> Row:
    return [
        p["id"],
        p["first"],
        p["last"],
        p["email"],
        p["zip"],
        p["grad"],
        rng.choice(["Biology", "Nursing", "Undeclared", "Computer Science", "Music"]),
        f"2025-{rng.randint(1, 12):02d}-{rng.randint(1, 28):02d}",
    ]


def _declared(p: dict[str, str | int], rng: random.Random) -> Row:
    return [
        p["id"],
        p["first"],
        p["last"],
        p["email"],
        p["state"],
        p["zip"],
        p["grad"],
        rng.choice(["Early Decision", "Early Action", "Regular"]),
    ]


@dataclass(frozen=True)
class Layout:
    header: list[str]
    row: Callable[[dict[str, str | int], random.Random], Row]


_ENCOURA = [
    "Encoura ID",
    "First Name",
    "Last Name",
    "Address 1",
    "City",
    "State",
    "ZIP",
    "Email",
    "High School CEEB",
    "Graduation Year",
    "Gender",
    "Birth Date",
]
LAYOUTS: dict[str, Layout] = {
    "prospect": Layout(_ENCOURA, _prospect),
    "score-reporter": Layout(
        [
            "ACT ID",
            "Last Name",
            "First Name",
            "Street Address",
            "City",
            "State",
            "ZIP Code",
            "Date of Birth",
            "High School Code",
            "Composite",
            "English",
            "Math",
            "Reading",
            "Science",
            "Test Date",
        ],
        _act,
    ),
    "inquiry": Layout(
        ["Encoura ID", "First Name", "Last Name", "Email", "ZIP", "Graduation Year", "Intended Major", "Inquiry Date"],
        _inquiry,
    ),
    "declared": Layout(
        ["Encoura ID", "First Name", "Last Name", "Email", "State", "ZIP", "Graduation Year", "Decision Plan"],
        _declared,
    ),
}


def _layout(product_key: str) -> Layout:
    # Products without a layout of their own use the Encoura export layout, as Slate's source format does.
    return LAYOUTS.get(product_key, LAYOUTS["prospect"])


def _encode(rows: list[Row]) -> bytes:
    buf = io.StringIO(newline="")
    # Strings quoted, numbers bare: leading zeros survive only because they are quoted text.
    csv.writer(buf, quoting=csv.QUOTE_NONNUMERIC, lineterminator="\r\n").writerows(rows)
    return buf.getvalue().encode("utf-8")


def sample_csv(product_key: str, rows: int, seed: int | str = 0) -> bytes:
    """A CSV with a header and `rows` fake students, identical for the same arguments."""
    rng = random.Random(f"{product_key}:{seed}")
    layout = _layout(product_key)
    return _encode([layout.header] + [layout.row(_person(rng, n), rng) for n in range(rows)])


def sized_csv(product_key: str, size: int, seed: int | str = 0) -> bytes:
    """Exactly `size` bytes of CSV (the last row may be cut), for transfer and benchmark tests.

    Rows repeat a 200-row block: generating millions of distinct rows in Python would make a large
    test file cost seconds before the test even starts.
    """
    block = sample_csv(product_key, 200, seed)
    header_end = block.index(b"\r\n") + 2
    header, body = block[:header_end], block[header_end:]
    repeats = max(0, size - len(header)) // len(body) + 1
    return (header + body * repeats)[:size]


def act_filename(org: str, created: datetime) -> str:
    """ACT's own naming: ACT-[Org]-[CreatedDate]-[CreatedTime].csv."""
    return f"ACT-{org}-{created:%m%d%Y}-{created:%H%M%S}.csv"


@dataclass(frozen=True)
class SampleExport:
    product_key: str
    filename: str
    content: bytes
    created: datetime


def seed_exports() -> list[SampleExport]:
    """The standard set: several products, two identical names in different products, one name with spaces."""
    t = datetime(2026, 3, 2, 8, 14, 57, tzinfo=UTC)
    t2 = datetime(2026, 3, 9, 16, 5, 3, tzinfo=UTC)
    return [
        SampleExport("prospect", "Prospects 2026.csv", sample_csv("prospect", 120, 1), t),
        SampleExport("score-reporter", act_filename("SANDBOX-UNIVERSITY", t), sample_csv("score-reporter", 40, 1), t),
        SampleExport("score-reporter", act_filename("SANDBOX-UNIVERSITY", t2), sample_csv("score-reporter", 25, 2), t2),
        SampleExport("inquiry", "export.csv", sample_csv("inquiry", 60, 1), t),
        SampleExport("declared", "export.csv", sample_csv("declared", 30, 1), t2),
        SampleExport("prospect", "prospect_search_fall.csv", sample_csv("prospect", 200, 2), t2),
    ]


def export_content(product_key: str, content: bytes | None, *, size: int | None = None, seed: int = 0) -> bytes:
    """The bytes for a new export: given ones, else `size` bytes of CSV, else a small sample file."""
    if content is not None:
        return bytes(content)
    if size is not None:
        return sized_csv(product_key, size, seed)
    return sample_csv(product_key, 50, seed)
