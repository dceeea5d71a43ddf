"""The SIS import job: a file or folder -> (zip) -> Canvas SIS import, watched to the end (options, packaging,
watch, Prefect tasks, settings and the report)."""
