"""Prefect flows, one module each, runnable as `python -m flows.<name>`."""

import logging

# Our modules log through the standard library, at INFO for what an operator wants to see (each
# delivery, download progress). Without a level they inherit the root logger's WARNING and those
# lines vanish; with it they reach the console and, through PREFECT_LOGGING_EXTRA_LOGGERS (set by
# prefect.yaml and flows.serve), the run's logs in the Prefect UI.
for _name in ("encoura_tasks", "destinations", "canvas_tasks", "ledger", "common"):
    logging.getLogger(_name).setLevel(logging.INFO)
