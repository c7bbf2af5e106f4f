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

import functools
import importlib
import json
from collections.abc import Callable
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


def entry_point(name: str) -> Callable[..., Any]:
    """A tiny function standing for task ``name`` (it looks the task up when
    called). Its module and name, ``("igneous.tasks", name)``, are the key a
    python-task-queue payload of the task carries (igneous.compat.bridge)."""
    fn = _ENTRY_POINTS.get(name)
    if fn is None:
        def fn(**kwargs: Any) -> Any:
            # a large keyword travels as a pointer to storage (load_arg)
            return lookup(name)(**{k: load_arg(v) for k, v in kwargs.items()})

        fn.__name__ = fn.__qualname__ = name
        fn.__module__ = __name__
        _ENTRY_POINTS[name] = fn
    return fn


_ENTRY_POINTS: dict[str, Callable[..., Any]] = {}


class Task(functools.partial):
    """One unit of work: a task function's name and its keyword arguments.

    A ``functools.partial`` of the task's entry point, so python-task-queue
    (``TaskQueue.insert``, ``LocalTaskQueue``) accepts a planner's tasks as
    they are: it queues them as its "queueable function" payloads.
    """

    def __new__(cls, name: str, kwargs: dict[str, Any] | None = None) -> Task:
        return super().__new__(cls, entry_point(task_name(name)), **(kwargs or {}))

    @classmethod
    def of(cls, fn: Callable[..., Any], kwargs: dict[str, Any] | None = None) -> Task:
        """The task that runs ``fn(**kwargs)``; ``fn`` must be registered in
        igneous.capabilities under its own name."""
        if TASK_MODULES.get(fn.__name__) != fn.__module__:
            raise RuntimeError(f"{fn.__module__}.{fn.__name__} is not a registered task "
                               "(add it to igneous.capabilities)")
        return cls(fn.__name__, dict(kwargs or {}))

    @property
    def name(self) -> str:
        return self.func.__name__

    @property
    def kwargs(self) -> dict[str, Any]:
        return self.keywords

    def __reduce__(self) -> tuple[type[Task], tuple[str, dict[str, Any]]]:
        return (Task, (self.name, dict(self.keywords)))

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Task):
            return NotImplemented
        return self.name == other.name and self.keywords == other.keywords

    __hash__ = None  # type: ignore[assignment]  # kwargs are mutable

    def __repr__(self) -> str:
        return f"Task({self.name!r}, {self.keywords!r})"

    def to_json(self) -> str:
        return json.dumps({"task": self.name, "kwargs": self.keywords}, separators=(",", ":"))

    @classmethod
    def from_json(cls, payload: str | bytes) -> Task:
        try:
            obj = json.loads(payload)
        except (ValueError, TypeError) as e:
            raise UserError(f"malformed task JSON: {e}") from None
        if isinstance(obj, dict) and "payload" in obj:
            # a python-task-queue message (ours or the original Igneous's)
            from igneous.compat.payloads import task_of_message

            return task_of_message(obj)
        if not isinstance(obj, dict) or not isinstance(obj.get("task"), str):
            raise UserError('malformed task: expected {"task": NAME, "kwargs": {...}}')
        kwargs = obj.get("kwargs", {})
        if not isinstance(kwargs, dict):
            raise UserError("malformed task: kwargs must be a JSON object")
        return cls(obj["task"], kwargs)

    # compatibility with python-task-queue style code: ``task.execute()``
    def execute(self) -> Any:
        return self()


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


# -- python-task-queue and the original Igneous's names (igneous.compat) ------
# A consumer that imports igneous.tasks and polls a python-task-queue queue
# finds our tasks and the original's task names in python-task-queue's
# registries; the original's task classes resolve lazily from here.
from igneous.compat import bridge as _bridge  # noqa: E402 - cheap: no heavy imports

_bridge.attach()


def __getattr__(name: str) -> Any:
    return _bridge.compat_attribute(__name__, name)
