"""Baseline: the rig delivers a clean run, and the invariants hold (everything else builds on this)."""

from __future__ import annotations

from tests.reliability.harness import FinalNameWatcher, Rig, assert_invariants, run_in_process


def test_clean_run_satisfies_invariants(rig: Rig) -> None:
    for i in range(3):
        rig.add_export("prospect" if i % 2 else "aos", size=20_000)
    with FinalNameWatcher(rig.sandbox, [v.root for v in rig.views]) as watcher:
        state = run_in_process(rig.full_env())
    assert state.is_completed(), state.message
    watcher.assert_clean()
    assert_invariants(rig)


def test_slow_upload_never_shows_a_partial_file_under_its_final_name(rig: Rig, sftp_proxy) -> None:  # type: ignore[no-untyped-def]
    """The watcher looks while a throttled SFTP upload is in flight (it must see the temp file);
    what it must never see is a final name holding fewer bytes than the export."""
    for i in range(2):
        rig.add_export(("prospect", "aos")[i % 2], size=500_000)
    sftp_proxy.throttle(0.01)
    with FinalNameWatcher(rig.sandbox, [v.root for v in rig.views]) as watcher:
        state = run_in_process(rig.full_env())
    assert state.is_completed(), state.message
    assert watcher.temps_seen, "the watcher never saw an upload in flight"
    watcher.assert_clean()
    assert_invariants(rig)
