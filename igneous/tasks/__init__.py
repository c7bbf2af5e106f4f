"""The task model.

A task is a registered name plus JSON keyword arguments::

    {"task": "downsample", "kwargs": {"layer_path": "...", "mip": 0, ...}}

Task functions live in one module per capability. ``TASK_MODULES`` maps each
task name to the module defining it so a worker imports only what it runs.
Tasks must be idempotent (queues deliver at least once) and write whole
objects, never partial appends.
"""

from __future__ import annotations

import functools
import importlib
import json
from collections.abc import Callable
from typing import Any

from igneous.errors import UnknownTaskError, UserError

# task name -> module that registers it (imported lazily by the worker)
TASK_MODULES: dict[str, str] = {
    "noop": "igneous.tasks.testing",
    "touch": "igneous.tasks.testing",
    "fail": "igneous.tasks.testing",
    "sleep": "igneous.tasks.testing",
    "downsample": "igneous.tasks.downsample",
    "transfer": "igneous.tasks.transfer",
    "delete": "igneous.tasks.delete",
    "ccl_faces": "igneous.tasks.ccl",
    "ccl_links": "igneous.tasks.ccl",
    "ccl_calc_labels": "igneous.tasks.ccl",
    "ccl_relabel": "igneous.tasks.ccl",
    "ccl_clean": "igneous.tasks.ccl",
    "count_voxels": "igneous.tasks.voxels",
    "pipeline-step": "igneous.tasks.pipeline",
    "mesh_xfer_sharded": "igneous.tasks.mesh_convert",
    "skeleton_forge": "igneous.tasks.skeleton",
    "skeleton_merge": "igneous.tasks.skeleton_merge",
    "skeleton_shard": "igneous.tasks.skeleton_merge",
    "skeleton_delete": "igneous.tasks.skeleton_merge",
    "skeleton_xfer": "igneous.tasks.skeleton_merge",
    "luminance_levels": "igneous.tasks.contrast",
    "contrast_normalize": "igneous.tasks.contrast",
    "clahe": "igneous.tasks.contrast",
    "quantize": "igneous.tasks.quantize",
    "remap": "igneous.tasks.remap",
    "reorder": "igneous.tasks.reorder",
    "spatial_index": "igneous.spatial_index",
    "mesh": "igneous.tasks.mesh",
    "mesh_manifest": "igneous.tasks.mesh_merge",
    "mesh_multires": "igneous.tasks.mesh_merge",
    "mesh_delete": "igneous.tasks.mesh_merge",
    "mesh_xfer": "igneous.tasks.mesh_merge",
}

_REGISTRY: dict[str, Callable[..., Any]] = {}


def register(name: str) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    """Decorator: make ``fn`` runnable by name from a queue."""

    def wrap(fn: Callable[..., Any]) -> Callable[..., Any]:
        if name not in TASK_MODULES:
            raise RuntimeError(f"task {name!r} must be listed in igneous.tasks.TASK_MODULES")
        _REGISTRY[name] = fn
        return fn

    return wrap


def lookup(name: str) -> Callable[..., Any]:
    """The function registered under ``name``, importing its module on demand."""
    if name not in _REGISTRY:
        module = TASK_MODULES.get(name)
        if module is None:
            known = ", ".join(sorted(TASK_MODULES))
            raise UnknownTaskError(f"unknown task {name!r} (known tasks: {known})")
        importlib.import_module(module)
        if name not in _REGISTRY:
            raise UnknownTaskError(f"module {module} does not register task {name!r}")
    return _REGISTRY[name]


def entry_point(name: str) -> Callable[..., Any]:
    """A tiny function standing for task ``name`` (it looks the task up when
    called). Its module and name, ``("igneous.tasks", name)``, are the key a
    python-task-queue payload of the task carries (igneous.compat.bridge)."""
    fn = _ENTRY_POINTS.get(name)
    if fn is None:
        def fn(**kwargs: Any) -> Any:
            return lookup(name)(**kwargs)

        fn.__name__ = fn.__qualname__ = name
        fn.__module__ = __name__
        _ENTRY_POINTS[name] = fn
    return fn


_ENTRY_POINTS: dict[str, Callable[..., Any]] = {}


class Task(functools.partial):
    """One unit of work: a registered task name and its keyword arguments.

    A ``functools.partial`` of the task's entry point, so python-task-queue
    (``TaskQueue.insert``, ``LocalTaskQueue``) accepts a planner's tasks as
    they are: it queues them as its "queueable function" payloads.
    """

    def __new__(cls, name: str, kwargs: dict[str, Any] | None = None) -> Task:
        return super().__new__(cls, entry_point(name), **(kwargs or {}))

    @property
    def name(self) -> str:
        return self.func.__name__

    @property
    def kwargs(self) -> dict[str, Any]:
        return self.keywords

    def __reduce__(self):
        return (Task, (self.name, dict(self.keywords)))

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Task):
            return NotImplemented
        return self.name == other.name and self.keywords == other.keywords

    __hash__ = None  # type: ignore[assignment] - kwargs are mutable

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
