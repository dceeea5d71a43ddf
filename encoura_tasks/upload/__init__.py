"""The upload job: files from a source folder -> Encoura's file upload API, never twice (source, validation,
steps, Prefect tasks, settings and the report)."""
