import re

import pytest

from encoura_tasks.api.models import source_name_from_url
from encoura_tasks.export.naming import MAX_NAME_BYTES, fallback_stem, sanitize_filename, unique_variant


@pytest.mark.parametrize(
    ("url", "expected"),
    [
        ("https://s3.amazonaws.com/b/score-reporter/ACT-Org-0331-81457.csv?Signature=x", "ACT-Org-0331-81457.csv"),
        ("https://h/b/Fall%202026%20Prospects.csv", "Fall_2026_Prospects.csv"),
        ("https://h/b/..%2F..%2Fetc%2Fpasswd", "passwd"),
        ("https://h/b/..%5C..%5Cwindows%5Cwin.ini", "win.ini"),
        ("https://h/b/%2e%2e", "encoura-export-u1"),
        ("https://h/b/.hidden.csv", "hidden.csv"),
        ("https://h/b/bad%0Aname%00.csv", "badname.csv"),
        # rule changed (issue 14 §5): Unicode \w is kept, as the official sample keeps it
        ("https://h/b/Caf%C3%A9.csv", "Café.csv"),
        ("https://h/b/Cafe%CC%81.csv", "Café.csv"),  # NFD input gives the same (NFC) bytes
        ("https://h/b/%E4%B8%AD%E6%96%87.CSV", "中文.CSV"),
        ("https://h/b/%23%26%25.CSV", "encoura-export-u1.CSV"),  # nothing readable left: fallback stem
        ("https://h/b/NUL.csv", "NUL_.csv"),  # Windows device name
        ("https://h/b/x%3Ay%3F%2A%22%3C%3E%7C.csv", "xy.csv"),  # Windows-forbidden characters
        ("https://h/b/", "encoura-export-u1"),
        ("https://h/b/a..b.csv", "a.b.csv"),
    ],
)
def test_names_from_urls_are_safe(url: str, expected: str) -> None:
    assert sanitize_filename(source_name_from_url(url), fallback=fallback_stem("u1")) == expected


def test_long_names_keep_their_suffix_and_fit() -> None:
    name = sanitize_filename("A" * 1000 + ".csv", fallback="x")
    assert name.endswith(".csv") and len(name.encode()) <= MAX_NAME_BYTES


def test_unique_variant_differs_and_keeps_suffix() -> None:
    assert unique_variant("Prospects.csv", "1e6c6d8e-af30-43ca") == "Prospects_1e6c6d8e.csv"
    assert unique_variant("A" * 300 + ".csv", "abcdef12").endswith("_abcdef12.csv")


@pytest.mark.parametrize(
    ("name", "expected"),
    [
        # the example: the sample removes `&` and `#` (so two `_` remain) and keeps `.CSV`
        ("Prospects & Inquiries #2.CSV", "Prospects__Inquiries_2.CSV"),
        ("  Fall 2026 Prospects.csv ", "Fall_2026_Prospects.csv"),
        ("ACT-Org (copy).TXT", "ACT-Org_copy.TXT"),
        ("score+reporter@v2.csv", "scorereporterv2.csv"),
        ("_leading_underscore.csv", "_leading_underscore.csv"),
    ],
)
def test_names_match_the_official_sample(name: str, expected: str) -> None:
    """Where no safety property intervenes, the result is exactly the sample's `get_valid_filename`."""
    sample = re.sub(r"(?u)[^-\w.]", "", str(name).strip().replace(" ", "_"))  # nrccua/file_export_sample
    assert sanitize_filename(name, fallback="x") == expected == sample


def test_multibyte_names_are_cut_on_character_boundaries() -> None:
    name = sanitize_filename("é" * 200 + ".csv", fallback="x")
    assert name.endswith(".csv") and len(name.encode()) <= MAX_NAME_BYTES
    name.encode().decode()  # no half character left
