"""Small SIS CSVs for the `--sandbox` demo: one user with an improper status and one enrollment for an
unknown user, so the demo shows an import that succeeds with warnings."""

from pathlib import Path


def demo_folder() -> Path:
    return Path(__file__).with_name("demo")
