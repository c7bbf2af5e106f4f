"""The task model.

A task is a task function's name plus JSON keyword arguments::

    {"task": "downsample", "kwargs": {"layer_path": "...", "mip": 0, ...}}

Task functions live in one module per capability and are registered once, in
``igneous.capabilities`` (which names the module of each, so a worker imports
only what it runs). A task's name is its function's ``__name__``; planners
build tasks from the function itself: ``Task.of(downsample, {...})``.
Tasks must be idempotent (queues deliver at least once) and write whole
objects, never partial appends.
"""

from __future__ import annotations

import importlib
import json
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from igneous.capabilities import TASK_MODULES, task_name
from igneous.errors import UnknownTaskError, UserError

# A keyword too large for a queue message (a long label list) is stored as a
# file by the planner (igneous.task_creation.common.store_large_args) and the
# payload carries {ARG_FILE: URL}; the worker reads it back before the call.
ARG_FILE = "$igneous-arg-file"


def lookup(name: str) -> Callable[..., Any]:
    """The task function called ``name`` (or an earlier version's name for
    it), importing its module on demand."""
    name = task_name(name)
    module = TASK_MODULES.get(name)
    if module is None:
        known = ", ".join(sorted(TASK_MODULES))
        raise UnknownTaskError(f"unknown task {name!r} (known tasks: {known})")
    fn = getattr(importlib.import_module(module), name, None)
    if not callable(fn):
        raise UnknownTaskError(f"module {module} does not define task {name!r}")
    return fn


# An expansion task stands for a run of a big plan's tasks; the worker runs it
# itself (igneous.worker), inserting those tasks (igneous.task_creation.common.expand).
EXPAND_TASK = "expand"


@dataclass(frozen=True)
class Task:
    """One unit of work: a task function's name and its keyword arguments."""

    name: str
    kwargs: dict[str, Any] = field(default_factory=dict)

    @classmethod
    def of(cls, fn: Callable[..., Any], kwargs: dict[str, Any] | None = None) -> Task:
        """The task that runs ``fn(**kwargs)``; ``fn`` must be registered in
        igneous.capabilities under its own name."""
        if TASK_MODULES.get(fn.__name__) != fn.__module__:
            raise RuntimeError(f"{fn.__module__}.{fn.__name__} is not a registered task "
                               "(add it to igneous.capabilities)")
        return cls(fn.__name__, dict(kwargs or {}))

    def to_json(self) -> str:
        return json.dumps({"task": self.name, "kwargs": self.kwargs}, separators=(",", ":"))

    @classmethod
    def from_json(cls, payload: str | bytes) -> Task:
        try:
            obj = json.loads(payload)
        except (ValueError, TypeError) as e:
            raise UserError(f"malformed task JSON: {e}") from None
        if not isinstance(obj, dict) or not isinstance(obj.get("task"), str):
            raise UserError('malformed task: expected {"task": NAME, "kwargs": {...}}')
        kwargs = obj.get("kwargs", {})
        if not isinstance(kwargs, dict):
            raise UserError("malformed task: kwargs must be a JSON object")
        return cls(task_name(obj["task"]), kwargs)

    def __call__(self) -> Any:
        fn = lookup(self.name)
        return fn(**{k: load_arg(v) for k, v in self.kwargs.items()})

    # compatibility with python-task-queue style code: ``task.execute()``
    execute = __call__


def load_arg(value: Any) -> Any:
    """A keyword value, read from storage when the payload carries a pointer."""
    if not (isinstance(value, dict) and set(value) == {ARG_FILE}):
        return value
    from igneous.storage import open_store

    url = str(value[ARG_FILE])
    base, _, name = url.rpartition("/")
    data = open_store(base).get(name)
    if data is None:
        raise FileNotFoundError(f"task argument file {url} is missing (planned, then deleted?)")
    return json.loads(data)


def run_payload(payload: str | bytes) -> Any:
    """Decode one queued payload and run it."""
    return Task.from_json(payload)()
