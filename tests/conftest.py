"""Test-wide fixtures live in tests/support/, one module per real peer (Prefect, sandboxes, SFTP, S3)."""

pytest_plugins = [
    "tests.support.prefect_server",
    "tests.support.encoura_sandbox",
    "tests.support.sftp_server",
    "tests.support.s3_server",
    "tests.support.canvas_sandbox",
    "tests.support.postgres_server",
]
