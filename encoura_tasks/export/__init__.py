"""The export job: Encoura exports -> destinations, exactly once (naming, plain-function steps, Prefect tasks,
the run settings and the report)."""
