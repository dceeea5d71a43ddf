"""Pure decisions of the upload path: which ledger rows are settled, which are orphans to resume."""

from __future__ import annotations

from dataclasses import replace

from encoura_tasks.upload.source import candidate_names
from encoura_tasks.upload.steps import select_orphans, settled
from ledger import UploadRow

FOLDER = "sftp://slate@h:22/outgoing"
ROW = UploadRow(
    id=1, source=f"{FOLDER}/a.csv", name="a.csv", sha256="ab" * 32, size=10, product_type="enrollment",
    status="analyzing", encoura_file_id="f-1", error=None, archived_to=None,
)


def test_settled_states() -> None:
    assert settled(replace(ROW, status="archived"))
    assert settled(replace(ROW, status="failed"))
    assert settled(replace(ROW, status="canceled", archived_to="failed/a.csv"))
    assert not settled(replace(ROW, status="canceled"))  # still to be moved
    for status in ("new", "sending", "uploaded", "analyzing", "done", "failure", "fields_mapping_required"):
        assert not settled(replace(ROW, status=status))


def test_orphans_exclude_listed_files_other_sources_products_and_unsent() -> None:
    rows = [
        ROW,  # listed this run (its task failed, say): not an orphan
        replace(ROW, id=2, source=f"{FOLDER}/gone.csv", name="gone.csv"),  # orphan
        replace(ROW, id=3, source="file:///other/gone.csv"),  # another source's
        replace(ROW, id=4, source=f"{FOLDER}/b.csv", product_type="ematch"),  # another product's
        replace(ROW, id=5, source=f"{FOLDER}/c.csv", status="new", encoura_file_id=None),  # never sent
        replace(ROW, id=6, source=f"{FOLDER}/d.csv", status="archived"),  # finished
        replace(ROW, id=7, source=f"{FOLDER}2/e.csv"),  # a sibling folder sharing the prefix
    ]
    orphans = select_orphans(rows, product_type="enrollment", folder=FOLDER, listed={f"{FOLDER}/a.csv"})
    assert [r.id for r in orphans] == [2]


def test_archive_names_are_deterministic() -> None:
    names = candidate_names("enrollment.csv", "0123456789abcdef" * 4)
    assert names == ["enrollment.csv", "enrollment.0123456789ab.csv"]
