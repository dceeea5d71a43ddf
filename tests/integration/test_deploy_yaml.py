"""`prefect --no-prompt deploy --all` registers every deployment of prefect.yaml, with its schedule."""

from __future__ import annotations

import contextlib
import os
import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from prefect import get_client
from prefect.client.schemas.actions import WorkPoolCreate
from prefect.exceptions import ObjectAlreadyExists

from tests.integration.deploy_helpers import REPO_ROOT

PREFECT_YAML = REPO_ROOT / "prefect.yaml"


def _spec() -> dict:
    return yaml.safe_load(PREFECT_YAML.read_text())


def ensure_work_pool(name: str) -> None:
    with get_client(sync_client=True) as client, contextlib.suppress(ObjectAlreadyExists):
        client.create_work_pool(WorkPoolCreate(name=name, type="process"))


def test_prefect_yaml_shape() -> None:
    """Static promises of the file: cron + IANA timezone + slug, a process pool, anchors, no secrets."""
    spec = _spec()
    assert spec["pull"], "workers need pull steps to find the code"
    names = {d["name"] for d in spec["deployments"]}
    assert names == {"encoura-export", "encoura-upload", "canvas-sis-import"}
    raw = PREFECT_YAML.read_text()
    assert "&" in raw and "*" in raw, "shared definitions use YAML anchors"
    for dep in spec["deployments"]:
        assert dep["work_pool"]["name"] == "encoura-process"
        (schedule,) = dep["schedules"]
        assert schedule["cron"] and "/" in schedule["timezone"] and schedule["slug"]
        assert dep["concurrency_limit"]["limit"] == 1
        flat = yaml.safe_dump(dep.get("parameters") or {}).lower()
        assert not any(word in flat for word in ("password", "token", "api_key", "secret"))


def test_deploy_all_registers_every_deployment_with_its_schedule(tmp_path: Path) -> None:
    spec = _spec()
    missing = [d["entrypoint"] for d in spec["deployments"] if not (REPO_ROOT / d["entrypoint"].split(":")[0]).exists()]
    if missing:
        pytest.skip(f"entrypoint file(s) not written yet: {missing}")
    ensure_work_pool("encoura-process")
    env = {**os.environ, "CANVAS_SIS_SOURCE": str(tmp_path / "sis"), "PREFECT_HOME": str(tmp_path / "home")}
    result = subprocess.run(
        [sys.executable, "-m", "prefect", "--no-prompt", "deploy", "--all"],
        cwd=REPO_ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=180,
    )
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]

    with get_client(sync_client=True) as client:
        by_name = {d.name: d for d in client.read_deployments()}
        for dep in spec["deployments"]:
            registered = by_name[dep["name"]]
            assert registered.work_pool_name == "encoura-process"
            assert registered.entrypoint == dep["entrypoint"]
            assert registered.pull_steps == spec["pull"]
            assert "encoura-slate" in registered.tags
            (schedule,) = registered.schedules
            wanted = dep["schedules"][0]
            assert schedule.slug == wanted["slug"]
            assert schedule.active
            assert schedule.schedule.cron == wanted["cron"]
            assert schedule.schedule.timezone == wanted["timezone"]
            assert registered.global_concurrency_limit is not None
            assert registered.global_concurrency_limit.limit == 1
            assert registered.concurrency_options is not None
            assert registered.concurrency_options.collision_strategy.value == "ENQUEUE"
    assert by_name["canvas-sis-import"].parameters["source"] == str(tmp_path / "sis")
