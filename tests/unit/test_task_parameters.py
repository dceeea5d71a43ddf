"""Every Prefect task of ours takes plain values only: ids, names, keys, and data records of those.

Prefect records task parameters (the UI shows them; caching and result persistence hash them), so a
live object there - an HTTP client, the ledger, an open destination, a runtime holding them - leaks
state and credentials into places built for values. Tasks find the run's live objects through
`common.runtime.current` instead. This test reads the annotations of every task object we define.
"""

from __future__ import annotations

import collections.abc
import dataclasses
import datetime as dt
import decimal
import enum
import importlib
import inspect
import pkgutil
import types
import typing
import uuid
from pathlib import Path, PurePath

import pytest
from prefect import Task
from pydantic import BaseModel, JsonValue, SecretStr

import canvas_tasks
import encoura_tasks
import flows
from encoura_tasks.api.client import EncouraClient
from encoura_tasks.export.steps import ExportRuntime
from encoura_tasks.upload.runtime import UploadRun
from encoura_tasks.upload.steps import UploadRuntime
from ledger import Ledger

SCALARS: tuple[type, ...] = (
    str, int, float, bool, bytes, type(None), PurePath, dt.date, dt.time, dt.timedelta, uuid.UUID, decimal.Decimal,
    enum.Enum,
)
CONTAINERS = {
    list, tuple, set, frozenset, dict,
    collections.abc.Sequence, collections.abc.Mapping, collections.abc.Set, collections.abc.Collection,
}


def why_not_plain(tp: object, seen: frozenset[object] = frozenset()) -> str | None:
    """None if `tp` is a plain value type; else which part of it is not."""
    if tp in seen or tp is JsonValue:  # JsonValue: JSON as parsed, str/number/bool/None/lists/dicts
        return None  # a recursive record: its fields are being checked already
    origin = typing.get_origin(tp)
    if origin in (typing.Union, types.UnionType):
        return next((w for a in typing.get_args(tp) if (w := why_not_plain(a, seen))), None)
    if origin is typing.Literal:
        return None
    if origin is typing.Annotated:
        return why_not_plain(typing.get_args(tp)[0], seen)
    if origin in CONTAINERS:
        args = [a for a in typing.get_args(tp) if a is not Ellipsis]
        return next((w for a in args if (w := why_not_plain(a, seen))), None)
    if not isinstance(tp, type):
        return f"{tp!r} is not a concrete type"
    if issubclass(tp, SecretStr):
        return "a secret (SecretStr) is never a task parameter"
    if issubclass(tp, SCALARS):
        return None
    if dataclasses.is_dataclass(tp):
        hints = typing.get_type_hints(tp)
        fields = [hints[f.name] for f in dataclasses.fields(tp)]
        return next((f"{tp.__name__}: {w}" for f in fields if (w := why_not_plain(f, seen | {tp}))), None)
    if issubclass(tp, BaseModel):
        fields = [f.annotation for f in tp.model_fields.values()]
        return next((f"{tp.__name__}: {w}" for f in fields if (w := why_not_plain(f, seen | {tp}))), None)
    return f"{tp.__module__}.{tp.__qualname__} is not a plain value"


def our_tasks() -> list[Task]:
    found: dict[int, Task] = {}
    for package in (encoura_tasks, canvas_tasks, flows):
        for info in pkgutil.walk_packages(package.__path__, prefix=f"{package.__name__}."):
            module = importlib.import_module(info.name)
            for value in vars(module).values():
                if isinstance(value, Task) and value.fn.__module__.split(".")[0] == package.__name__:
                    found[id(value)] = value
    return sorted(found.values(), key=lambda t: t.name)


TASKS = our_tasks()


def test_every_job_has_its_tasks_found() -> None:
    """Guards the test itself: a walk that found no tasks would pass vacuously."""
    names = {t.name for t in TASKS}
    expected = {"encoura-login", "list-exports", "deliver-export", "upload-file", "resume-upload", "submit-sis-import"}
    assert expected <= names


@pytest.mark.parametrize("task", TASKS, ids=lambda t: t.name)
def test_task_parameters_are_plain_values(task: Task) -> None:
    hints = typing.get_type_hints(task.fn)
    for name in inspect.signature(task.fn).parameters:
        assert name in hints, f"task {task.name}: parameter {name} has no annotation"
        problem = why_not_plain(hints[name])
        assert problem is None, f"task {task.name}: parameter {name}: {problem}"


@pytest.mark.parametrize(
    "live", [ExportRuntime, UploadRuntime, UploadRun, EncouraClient, Ledger, SecretStr, typing.Any]
)
def test_live_objects_are_not_plain(live: object) -> None:
    """The check really rejects what the tasks used to take (the runtimes) and what they hold."""
    assert why_not_plain(live) is not None
    assert why_not_plain(list[live]) is not None  # type: ignore[valid-type]
    assert why_not_plain(live | None) is not None  # type: ignore[operator]


def test_plain_records_are_plain() -> None:
    assert why_not_plain(dict[str, list[int]] | None) is None
    assert why_not_plain(Path) is None


def test_one_task_per_name() -> None:
    """One task per job step: the export and the upload share `encoura-login` rather than each defining one."""
    names = [t.name for t in TASKS]
    assert sorted(n for n in names if names.count(n) > 1) == []
