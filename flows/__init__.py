"""Prefect flows, one module each, runnable as `python -m flows.<name>`."""

from common.cli import configure_logging, prepare_environment

# Before any flow module imports Prefect: quiet its temporary server, and name our loggers as Prefect
# "extra loggers" so the per-file lines reach the run's logs in the UI for `python -m` runs and for
# deployments served by flows.serve alike.
prepare_environment()
configure_logging()
