"""The silence-alarm settings and automation shapes as pure logic (the firing is tested on a real
server in tests/integration/test_alerts.py)."""

from __future__ import annotations

import uuid
from datetime import timedelta

import pytest

from common.errors import ConfigError
from flows.alerts import RUNS_NAME, SILENCE_NAME, build_automations, load_alert_settings


@pytest.fixture(autouse=True)
def _clean_env(monkeypatch: pytest.MonkeyPatch, tmp_path) -> None:  # type: ignore[no-untyped-def]
    monkeypatch.chdir(tmp_path)  # no stray .env
    monkeypatch.delenv("ENCOURA_SLATE_CONFIG", raising=False)
    monkeypatch.setenv("ALERT_NOTIFICATION_BLOCK", "webhook/admissions-alerts")


def test_defaults_and_shapes() -> None:
    settings = load_alert_settings()
    block, deployment = uuid.uuid4(), uuid.uuid4()
    silence, runs = build_automations(settings, deployment_id=deployment, block_id=block, block_slug="webhook")
    assert (silence.name, runs.name) == (SILENCE_NAME, RUNS_NAME)
    assert silence.trigger.posture == "Proactive" and silence.trigger.within == timedelta(days=7)
    assert silence.trigger.expect == {"encoura.export.delivered"}
    assert runs.trigger.within == timedelta(hours=26) and runs.trigger.expect == {"prefect.flow-run.Completed"}
    assert f"prefect.deployment.{deployment}" in str(runs.trigger.model_dump(mode="json")["match_related"])
    assert silence.actions[0].type == "call-webhook" and silence.actions[0].block_document_id == block
    slack = build_automations(settings, deployment_id=deployment, block_id=block, block_slug="slack-webhook")
    assert slack[0].actions[0].type == "send-notification"


@pytest.mark.parametrize(
    ("name", "value", "needle"),
    [
        ("ALERT_NOTIFICATION_BLOCK", "admissions-alerts", "ALERT_NOTIFICATION_BLOCK"),
        ("ALERT_SILENCE_DAYS", "0.00001", "ALERT_SILENCE_DAYS"),
        ("ALERT_SILENCE_DAYS", "-1", "ALERT_SILENCE_DAYS"),
        ("ALERT_RUN_HOURS", "0.001", "ALERT_RUN_HOURS"),
        ("ALERT_EXPORT_DEPLOYMENT", "encoura-export", "ALERT_EXPORT_DEPLOYMENT"),
    ],
)
def test_wrong_settings_name_the_variable(monkeypatch: pytest.MonkeyPatch, name: str, value: str, needle: str) -> None:
    monkeypatch.setenv(name, value)
    with pytest.raises(ConfigError) as info:
        load_alert_settings()
    assert needle in info.value.render()
