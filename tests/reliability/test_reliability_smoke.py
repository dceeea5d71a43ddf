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
