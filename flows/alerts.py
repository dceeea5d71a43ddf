"""Silence alarms: two proactive Prefect automations that fire when the export job goes quiet.

    python -m flows.alerts install      create or update both automations (idempotent, by name)
    python -m flows.alerts uninstall    delete them

A schedule that silently stops finding work (an expired password on a deployment whose alerts
nobody reads, a paused deployment, a dead worker, Encoura no longer generating a list) looks
exactly like a schedule with nothing to do. Prefect's proactive ("expect ... within") triggers fire
on the *absence* of events, which is the only way to see that:

- no `encoura.export.delivered` event (common/events.py) within ALERT_SILENCE_DAYS (default 7);
- the export deployment (ALERT_EXPORT_DEPLOYMENT) has not completed a flow run within
  ALERT_RUN_HOURS (default 26: a daily schedule plus slack).

Both notify through the block named by ALERT_NOTIFICATION_BLOCK (`<block-type-slug>/<block-name>`,
e.g. `webhook/admissions-alerts` or `slack-webhook/admissions`). A Webhook block is called with a
JSON payload (CallWebhook); any notification block gets a message (SendNotification).

Exit codes: 0 installed, 1 the Prefect API could not be reached (try again), 2 settings wrong.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence
from datetime import timedelta
from uuid import UUID

import httpx
from prefect import get_client
from prefect.automations import AutomationCore, CallWebhook, EventTrigger, Posture, SendNotification
from prefect.blocks.abstract import NotificationBlock
from prefect.blocks.core import Block
from prefect.blocks.webhook import Webhook
from prefect.exceptions import ObjectNotFound, PrefectHTTPStatusError
from pydantic import Field, ValidationError, field_validator
from pydantic_settings import SettingsConfigDict

from common import exit_codes
from common.cli import run_cli
from common.commands import parse_command_line
from common.errors import ConfigError
from common.events import EXPORT_DELIVERED
from common.settings_base import TomlFileSettings
from common.settings_errors import config_error_from_validation

SILENCE_NAME = "encoura-slate: no export delivered"
RUNS_NAME = "encoura-slate: export deployment not completing"
AUTOMATION_NAMES = (SILENCE_NAME, RUNS_NAME)
MIN_WINDOW = timedelta(seconds=10)  # Prefect refuses shorter proactive windows
WEBHOOK_SLUG = "webhook"


class AlertSettings(TomlFileSettings):
    """ALERT_* settings (env, .env, or the `[alerts]` table of the TOML file)."""

    toml_table = ("alerts",)
    model_config = SettingsConfigDict(env_prefix="ALERT_", env_file=".env", extra="ignore")

    notification_block: str = Field(description="<block-type-slug>/<block-name>, e.g. webhook/admissions-alerts")
    silence_days: float = Field(default=7.0, gt=0, description="days without a delivered export before the alarm")
    run_hours: float = Field(default=26.0, gt=0, description="hours without a completed export run before the alarm")
    export_deployment: str = Field(
        default="encoura-export/encoura-export", description="<flow-name>/<deployment-name> of the export deployment"
    )

    @field_validator("notification_block")
    @classmethod
    def _slug_and_name(cls, value: str) -> str:
        slug, _, name = value.strip().partition("/")
        if not slug or not name:
            raise ValueError("must be <block-type-slug>/<block-name>, like webhook/admissions-alerts")
        return f"{slug}/{name}"

    @field_validator("export_deployment")
    @classmethod
    def _flow_and_deployment(cls, value: str) -> str:
        flow_name, _, deployment = value.strip().partition("/")
        if not flow_name or not deployment:
            raise ValueError("must be <flow-name>/<deployment-name>, like encoura-export/encoura-export")
        return value.strip()

    @property
    def silence_window(self) -> timedelta:
        return timedelta(days=self.silence_days)

    @property
    def run_window(self) -> timedelta:
        return timedelta(hours=self.run_hours)


def load_alert_settings() -> AlertSettings:
    try:
        settings = AlertSettings()  # type: ignore[call-arg]
    except ValidationError as exc:
        raise config_error_from_validation(exc, env_prefix="ALERT_") from None
    problems = []
    if settings.silence_window < MIN_WINDOW:
        problems.append("ALERT_SILENCE_DAYS: must be at least 10 seconds (Prefect's minimum proactive window)")
    if settings.run_window < MIN_WINDOW:
        problems.append("ALERT_RUN_HOURS: must be at least 10 seconds (Prefect's minimum proactive window)")
    if problems:
        raise ConfigError(problems)
    return settings


def _describe(window: timedelta) -> str:
    seconds = window.total_seconds()
    if seconds >= 86400 and seconds % 86400 == 0:
        return f"{seconds / 86400:g} day(s)"
    if seconds >= 3600:
        return f"{seconds / 3600:g} hour(s)"
    return f"{seconds:g} second(s)"


def build_automations(
    settings: AlertSettings, *, deployment_id: UUID, block_id: UUID, block_slug: str
) -> list[AutomationCore]:
    """The two automations as Prefect objects (pure: no API calls), so their shape is unit-testable."""
    silence = EventTrigger(
        match={"prefect.resource.id": "encoura.export.*"},
        expect={EXPORT_DELIVERED},
        posture=Posture.Proactive,
        threshold=1,
        within=settings.silence_window,
    )
    runs = EventTrigger(
        match={"prefect.resource.id": "prefect.flow-run.*"},
        match_related={"prefect.resource.id": f"prefect.deployment.{deployment_id}"},
        expect={"prefect.flow-run.Completed"},
        posture=Posture.Proactive,
        threshold=1,
        within=settings.run_window,
    )
    silence_text = (
        f"No Encoura export was delivered in {_describe(settings.silence_window)}. Check the "
        f"{settings.export_deployment} deployment: paused, failing login (expired password), dead worker, "
        "or Encoura no longer generating the list."
    )
    runs_text = (
        f"Deployment {settings.export_deployment} has not completed a run in {_describe(settings.run_window)}. "
        "Check that it is not paused, that its worker (or `python -m flows.serve`) is running, and its last runs."
    )
    return [
        AutomationCore(
            name=SILENCE_NAME,
            description=silence_text,
            trigger=silence,
            actions=[_action(block_slug, block_id, SILENCE_NAME, silence_text)],
        ),
        AutomationCore(
            name=RUNS_NAME,
            description=runs_text,
            trigger=runs,
            actions=[_action(block_slug, block_id, RUNS_NAME, runs_text)],
        ),
    ]


def _action(block_slug: str, block_id: UUID, name: str, text: str) -> CallWebhook | SendNotification:
    if block_slug == WEBHOOK_SLUG:  # a Webhook block is not a NotificationBlock: it is *called*, with JSON
        payload = json.dumps({"alert": name, "message": text, "fired_at": "{{ firing.triggered }}"})
        return CallWebhook(block_document_id=block_id, payload=payload)
    return SendNotification(block_document_id=block_id, subject=f"[encoura-slate] {name}", body=text)


def _can_notify(slug_and_name: str) -> bool:
    """Whether the block can deliver an alarm. A block whose class is not installed here (a collection
    block on a worker-only package) cannot be checked locally, and is given the benefit of the doubt."""
    try:
        block = Block.load(slug_and_name)
    except Exception:  # not importable here, or not loadable: the server-side action decides
        return True
    return isinstance(block, (Webhook, NotificationBlock))


def install(settings: AlertSettings) -> list[tuple[str, str]]:
    """Create or update both automations by name; duplicates of our names are removed. Returns
    (name, "created" | "updated") per automation."""
    slug, _, block_name = settings.notification_block.partition("/")
    with get_client(sync_client=True) as client:
        problems = []
        try:
            block_id = client.read_block_document_by_name(name=block_name, block_type_slug=slug).id
        except ObjectNotFound:
            problems.append(
                f"ALERT_NOTIFICATION_BLOCK: no {slug!r} block named {block_name!r} on this Prefect server "
                "(create it in the UI under Blocks, or with Python, then re-run)"
            )
        try:
            deployment_id = client.read_deployment_by_name(settings.export_deployment).id
        except ObjectNotFound:
            problems.append(
                f"ALERT_EXPORT_DEPLOYMENT: no deployment {settings.export_deployment!r} on this Prefect server "
                "(deploy the export first: `prefect deploy` or `python -m flows.serve`)"
            )
        if not problems and not _can_notify(settings.notification_block):
            problems.append(
                f"ALERT_NOTIFICATION_BLOCK: {settings.notification_block!r} is neither a Webhook block nor a "
                "notification block (Slack, Teams, email, ...), so the alarm could never be delivered"
            )
        if problems:
            raise ConfigError(problems)
        results = []
        for automation in build_automations(settings, deployment_id=deployment_id, block_id=block_id, block_slug=slug):
            existing = [a for a in client.read_automations_by_name(automation.name) if a.name == automation.name]
            for extra in existing[1:]:
                client.delete_automation(extra.id)
            if existing:
                client.update_automation(existing[0].id, automation)
                results.append((automation.name, "updated"))
            else:
                client.create_automation(automation)
                results.append((automation.name, "created"))
    return results


def uninstall() -> list[str]:
    removed = []
    with get_client(sync_client=True) as client:
        for name in AUTOMATION_NAMES:
            for automation in client.read_automations_by_name(name):
                if automation.name == name:
                    client.delete_automation(automation.id)
                    removed.append(name)
    return removed


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m flows.alerts",
        description="Install the silence alarms (proactive Prefect automations) for the export job.",
        epilog="Exit codes: 0 done, 1 Prefect API unreachable, 2 settings wrong.",
    )
    parser.add_argument("command", choices=["install", "uninstall"])
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_command_line(build_parser(), argv)
    try:
        if args.command == "install":
            settings = load_alert_settings()
            for name, what in install(settings):
                print(f"{what}: {name}")
        else:
            removed = uninstall()
            print("\n".join(f"deleted: {n}" for n in removed) or "nothing to delete")
    except (httpx.HTTPError, PrefectHTTPStatusError) as exc:
        print(f"Could not talk to the Prefect API ({type(exc).__name__}: {exc}); try again", file=sys.stderr)
        return exit_codes.WORK_FAILED
    return exit_codes.OK


if __name__ == "__main__":
    run_cli(main)
