"""The task model.

A task is a registered name plus JSON keyword arguments::

    {"task": "downsample", "kwargs": {"layer_path": "...", "mip": 0, ...}}

Task functions live in one module per capability. ``TASK_MODULES`` maps each
task name to the module defining it so a worker imports only what it runs.
Tasks must be idempotent (queues deliver at least once) and write whole
objects, never partial appends.
"""

from __future__ import annotations

import importlib
import json
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from igneous.errors import UnknownTaskError, UserError

# task name -> module that registers it (imported lazily by the worker)
TASK_MODULES: dict[str, str] = {
    "noop": "igneous.tasks.testing",
    "touch": "igneous.tasks.testing",
    "fail": "igneous.tasks.testing",
    "sleep": "igneous.tasks.testing",
    "allocate": "igneous.tasks.testing",
    "crash": "igneous.tasks.testing",
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

# A keyword too large for a queue message (a long label list) is stored as a
# file by the planner (igneous.task_creation.common.store_large_args) and the
# payload carries {ARG_FILE: URL}; the worker reads it back before the call.
ARG_FILE = "$igneous-arg-file"


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


@dataclass(frozen=True)
class Task:
    """One unit of work: a registered task name and its keyword arguments."""

    name: str
    kwargs: dict[str, Any] = field(default_factory=dict)

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
        return cls(obj["task"], kwargs)

    def __call__(self) -> Any:
        fn = lookup(self.name)
        return fn(**{k: load_arg(v) for k, v in self.kwargs.items()})

    # compatibility with python-task-queue style code: ``task.execute()``
    execute = __call__


def load_arg(value: Any) -> Any:
    """A keyword value, read from storage when the payload carries a pointer."""
    if not (isinstance(value, dict) and set(value) == {ARG_FILE}):
        return value
    from cloudfiles import CloudFiles

    url = str(value[ARG_FILE])
    base, _, name = url.rpartition("/")
    data = CloudFiles(base).get(name)
    if data is None:
        raise FileNotFoundError(f"task argument file {url} is missing (planned, then deleted?)")
    return json.loads(data)


def run_payload(payload: str | bytes) -> Any:
    """Decode one queued payload and run it."""
    return Task.from_json(payload)()
