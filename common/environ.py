"""Temporarily point settings at something else (the sandboxes), restoring the caller's environment after."""

from __future__ import annotations

import os
from collections.abc import Iterator, Mapping
from contextlib import contextmanager


@contextmanager
def patched_environ(env: Mapping[str, str]) -> Iterator[None]:
    """Set `env` for the duration; variables that did not exist before are removed again."""
    saved = {key: os.environ.get(key) for key in env}
    os.environ.update(env)
    try:
        yield
    finally:
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value
