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
        ("https://h/b/Caf%C3%A9.csv", "Cafe.csv"),
        ("https://h/b/%E4%B8%AD%E6%96%87.CSV", "encoura-export-u1.csv"),
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
