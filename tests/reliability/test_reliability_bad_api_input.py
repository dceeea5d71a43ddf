"""Bad input from the export API: garbage listings, entries without a uid, empty and non-CSV files,
and hostile or odd file names. Each gets its documented handling; nothing lands outside staging or
the destination roots; the other exports are not held back."""

from __future__ import annotations

import io
import re
import zipfile
from pathlib import Path

import pytest

from ledger import Ledger
from tests.reliability.harness import FinalNameWatcher, Rig, assert_invariants, run_in_process


def _report(state) -> dict:  # type: ignore[no-untyped-def]
    report = state.result(raise_on_failure=False)
    assert isinstance(report, dict), report
    return report


@pytest.mark.timeout(300)
@pytest.mark.parametrize(
    ("mode", "words"),
    [
        ("malformed_json", "malformed JSON"),
        ("html_200", "HTML page"),
        ("non_list", "expected a JSON list"),
    ],
)
def test_garbage_listing_is_a_clear_problem_and_consumed_exports_are_recovered(rig: Rig, mode: str, words: str) -> None:
    """The gateway answers 200 with garbage after consuming the exports (bad_listing_consumes):
    the run fails naming the problem, and the next run recovers them from status=Delivered."""
    uids = [rig.add_export("prospect", size=3_000) for _ in range(2)]
    rig.sandbox.configure(listing_mode=mode, bad_listing_consumes=True)
    env = rig.full_env(ENCOURA_PRODUCT_KEYS="prospect")
    bad = run_in_process(env)
    assert bad.is_failed()
    problems = _report(bad)["problems"]
    assert any(words in p and "prospect" in p for p in problems), problems
    assert all(rig.sandbox.state.exports[u].status == "Delivered" for u in uids)  # consumed
    rig.sandbox.configure(listing_mode="normal", bad_listing_consumes=False)
    final = run_in_process(env)
    assert final.is_completed(), final.message
    assert_invariants(rig, product_keys=("prospect",))


@pytest.mark.timeout(300)
def test_empty_listing_is_a_quiet_success(rig: Rig) -> None:
    rig.sandbox.configure(listing_mode="empty")
    state = run_in_process(rig.full_env())
    assert state.is_completed(), state.message
    assert _report(state)["exports"] == []
    assert_invariants(rig)


ODD_NAMES = {
    "traversal": "../../../../etc/cron.d/evil.csv",
    "backslash-traversal": "..\\..\\windows\\evil2.csv",
    # (no "\n": the sandbox's S3 route cannot match a key containing a newline)
    "control-chars": "Prospects\x07\r\x1bInjected: header\t.csv",
    "very-long": "P" * 400 + ".csv",
    "non-ascii": "Interessenten-Zoë-Ñandú.csv",
    "only-cjk": "学生名单.csv",
    "dot-file": ".hidden.csv",
    "spaces": "  Spring   Prospects  .csv",
}


@pytest.mark.timeout(300)
def test_bad_entries_empty_and_zip_files_and_odd_names(rig: Rig, tmp_path: Path) -> None:
    sb = rig.sandbox
    normal = [rig.add_export("prospect", size=3_000) for _ in range(2)]
    no_uid = sb.add_export("prospect", "no-uid.csv", b"id\n1\n", listing_overrides={"uid": None})
    empty = sb.add_export("prospect", "empty.csv", b"")
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as zf:
        zf.writestr("inside.csv", 'id,zip\n1,"01234"\n')
    zipped = sb.add_export("aos", "Encoura-AOS.zip", buf.getvalue())
    odd = {label: sb.add_export("aos", name, f"id,label\n1,{label}\n".encode()) for label, name in ODD_NAMES.items()}
    before = {p for p in tmp_path.rglob("*")}

    with FinalNameWatcher(sb, [v.root for v in rig.views if v.root is not None]) as watcher:
        first = run_in_process(rig.full_env())
        report = _report(first)
        final = run_in_process(rig.full_env())
    watcher.assert_clean()

    # The uid-less entry: one clear problem naming the entry, the rest not held back.
    assert any("no usable uid" in p for p in report["problems"]), report["problems"]
    rows = {r["export_uid"]: r for r in report["exports"]}
    for uid in normal:
        assert rows[uid]["status"] == "delivered", rows[uid]
    # 0-byte file: rejected with a message that says so; never retried into a delivery.
    assert rows[empty]["status"] == "rejected"
    assert "empty (0 bytes)" in rows[empty]["error"], rows[empty]
    # zip: delivered unchanged (a warning is logged, contents never rewritten).
    assert rows[zipped]["status"] == "delivered", rows[zipped]
    assert final.is_completed(), final.message  # the rejected export is reported once, not forever

    result = assert_invariants(rig, rejected={empty, no_uid})
    ledger = Ledger(rig.ledger_url)
    try:
        assert ledger.get_export(no_uid) is None
        names = {label: ledger.get_export(uid).file_name for label, uid in odd.items()}
        assert ledger.get_export(empty).status == "rejected"
    finally:
        ledger.close()
    for label, name in names.items():
        assert name and "/" not in name and "\\" not in name and ".." not in name, (label, name)
        # The official sample's rule (issue 14): only [-\w.] (Unicode word characters), never a dot file.
        assert not name.startswith(".") and re.fullmatch(r"[-\w.]+", name) and name.isprintable(), (label, name)
        assert len(name.encode()) <= 180, (label, len(name))
        assert name.endswith(".csv"), (label, name)
    for view_files in result.files.values():
        assert {p.rsplit("/", 1)[-1] for p in view_files} >= set(names.values())

    # Nothing was written anywhere except staging and the destination roots.
    allowed = [rig.state_dir] + [v.root for v in rig.views if v.root is not None]
    created = {p for p in tmp_path.rglob("*") if p.is_file()} - before
    outside = sorted(str(p) for p in created if not any(p.is_relative_to(a) for a in allowed))
    assert not outside, outside
    assert not any(p.name in ("evil.csv", "evil2.csv") for p in Path("/etc").rglob("evil*.csv"))
