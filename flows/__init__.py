"""Prefect flows, one module each, runnable as `python -m flows.<name>`."""
