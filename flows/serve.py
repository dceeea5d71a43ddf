"""Serve every flow on its schedule from one long-running process: for offices without a work pool.

    python -m flows.serve [--only NAME ...] [--list]

prefect.yaml stays the single source of truth: this module reads its deployments (names,
entrypoints, schedules, parameters, tags, concurrency limits) so `prefect deploy --all` and
`flows.serve` can never drift apart. Settings and secrets are read by each run from the
environment, exactly as under a worker. Stop it with Ctrl-C (schedules are paused on shutdown).
"""

from __future__ import annotations

import argparse
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from common import exit_codes
from common.cli import run_cli
from common.errors import ConfigError

PROJECT_ROOT = Path(__file__).resolve().parent.parent
PREFECT_YAML = PROJECT_ROOT / "prefect.yaml"
# Our modules log through the standard library (they also run outside Prefect); these make their
# lines (download progress, deliveries) reach the Prefect UI. prefect.yaml sets the same for workers.
EXTRA_LOGGERS = "encoura_tasks,destinations,canvas_tasks,ledger,flows"


@dataclass
class DeploymentSpec:
    """One `deployments:` entry of prefect.yaml, with `{{ $ENV }}` placeholders resolved."""

    name: str
    entrypoint: str
    description: str | None = None
    tags: list[str] = field(default_factory=list)
    parameters: dict[str, Any] = field(default_factory=dict)
    schedules: list[dict[str, Any]] = field(default_factory=list)
    concurrency_limit: int | dict[str, Any] | None = None

    def unresolved(self) -> list[str]:
        """Parameters still holding a `{{ $VAR }}` placeholder (the variable was not set)."""
        return [k for k, v in self.parameters.items() if isinstance(v, str) and "{{" in v]


def read_specs(path: Path = PREFECT_YAML) -> list[DeploymentSpec]:
    from prefect.utilities.templating import apply_values

    try:
        data = yaml.safe_load(path.read_text())
    except FileNotFoundError:
        raise ConfigError(f"{path}: prefect.yaml not found (run from a checkout of the project)") from None
    except yaml.YAMLError as exc:
        raise ConfigError(f"{path}: not valid YAML ({exc})") from None
    specs: list[DeploymentSpec] = []
    for raw in data.get("deployments") or []:
        resolved = apply_values(raw, dict(os.environ), remove_notset=False)
        specs.append(
            DeploymentSpec(
                name=resolved["name"],
                entrypoint=resolved["entrypoint"],
                description=resolved.get("description"),
                tags=list(resolved.get("tags") or []),
                parameters=dict(resolved.get("parameters") or {}),
                schedules=list(resolved.get("schedules") or []),
                concurrency_limit=resolved.get("concurrency_limit"),
            )
        )
    return specs


def _schedules(spec: DeploymentSpec) -> list[Any]:
    from prefect.schedules import Cron

    schedules = []
    for item in spec.schedules:
        if "cron" not in item:
            raise ConfigError(f"prefect.yaml: deployment {spec.name}: flows.serve supports cron schedules only")
        schedules.append(
            Cron(
                item["cron"],
                timezone=item.get("timezone"),
                active=bool(item.get("active", True)),
                slug=item.get("slug"),
                parameters=item.get("parameters") or None,
            )
        )
    return schedules


def _concurrency(spec: DeploymentSpec) -> Any:
    from prefect.client.schemas.objects import ConcurrencyLimitConfig

    limit = spec.concurrency_limit
    if isinstance(limit, dict):
        return ConcurrencyLimitConfig(**{k: v for k, v in limit.items() if v is not None})
    return limit


def build_deployments(specs: list[DeploymentSpec]) -> list[Any]:
    """RunnerDeployments for `prefect.serve`; entrypoints are loaded relative to the project root."""
    from prefect.flows import load_flow_from_entrypoint

    deployments = []
    for spec in specs:
        path, _, func = spec.entrypoint.partition(":")
        if not (PROJECT_ROOT / path).is_file():
            raise ConfigError(f"prefect.yaml: deployment {spec.name}: entrypoint file {path} does not exist")
        flow = load_flow_from_entrypoint(f"{PROJECT_ROOT / path}:{func}", use_placeholder_flow=False)
        deployments.append(
            flow.to_deployment(
                name=spec.name,
                description=spec.description,
                tags=spec.tags,
                parameters=spec.parameters,
                schedules=_schedules(spec),
                concurrency_limit=_concurrency(spec),
            )
        )
    return deployments


def select(specs: list[DeploymentSpec], only: list[str] | None) -> list[DeploymentSpec]:
    """The deployments to serve: `--only` ones, else every one whose parameters are complete."""
    known = {s.name for s in specs}
    unknown = sorted(set(only or []) - known)
    if unknown:
        raise ConfigError(f"--only: unknown deployment(s) {unknown}; known: {', '.join(sorted(known))}")
    chosen = [s for s in specs if not only or s.name in only]
    ready = []
    for spec in chosen:
        missing = spec.unresolved()
        if missing:
            message = f"{spec.name}: parameter(s) {missing} need their environment variable (see prefect.yaml)"
            if only:
                raise ConfigError(message)
            print(f"Not serving {message}")
            continue
        ready.append(spec)
    if not ready:
        raise ConfigError("nothing to serve: no deployment in prefect.yaml is ready")
    return ready


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m flows.serve",
        description="Serve the flows of prefect.yaml on their schedules from this process (no worker needed).",
    )
    parser.add_argument("--only", action="append", metavar="NAME", help="serve only this deployment (repeatable)")
    parser.add_argument("--list", action="store_true", help="print what would be served and exit")
    parser.add_argument("--limit", type=int, default=None, help="at most this many runs at the same time")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    specs = select(read_specs(), args.only)
    if args.list:
        for spec in specs:
            crons = ", ".join(f"{s.get('cron')} {s.get('timezone') or 'UTC'}" for s in spec.schedules) or "no schedule"
            print(f"{spec.name}: {spec.entrypoint} ({crons})")
        return exit_codes.OK
    # Runs inherit this process's environment.
    os.environ.setdefault("PREFECT_LOGGING_EXTRA_LOGGERS", EXTRA_LOGGERS)
    from prefect import serve

    # Runs start in subprocesses that import the flows by relative entrypoint: run from the project root.
    os.chdir(PROJECT_ROOT)
    serve(*build_deployments(specs), limit=args.limit)
    return exit_codes.OK


if __name__ == "__main__":
    run_cli(main)
