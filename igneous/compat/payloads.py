"""A python-task-queue message -> one Task of ours.

python-task-queue wraps every task as ``{"payload": P, "queueName": ..., "id": ...}``
(FileQueue files and SQS message bodies alike). ``P`` is either

- a queueable function: ``[[MODULE, NAME], ARGS, KWARGS, ID]``. Our own
  planners' tasks are ``["igneous.tasks", NAME]`` (see igneous.tasks.Task); the
  original Igneous's are its task names (``["igneous.tasks.image.image",
  "DownsampleTask"]``);
- a registered class: ``{"class": NAME, ...keywords}`` (the original's MeshTask,
  SkeletonTask, ...).

The original's tasks are translated by igneous.compat.original*. Anything else
is a UserError naming what is wrong (the worker dead-letters it at once).
"""

from __future__ import annotations

from typing import Any

from igneous.capabilities import TASK_MODULES, task_name
from igneous.errors import UnknownTaskError, UserError
from igneous.tasks import Task


def _unknown(name: str) -> UnknownTaskError:
    from igneous.compat.bridge import known_names

    return UnknownTaskError(
        f"unknown task class {name!r} (known: {', '.join(known_names())}; "
        f"and our own tasks: {', '.join(sorted(TASK_MODULES))})"
    )


def original_task(name: str, args: list, kwargs: dict[str, Any]) -> Task:
    from igneous.compat.bridge import original_class

    try:
        cls = original_class(name)
    except KeyError:
        raise _unknown(name) from None
    return cls(*args, **kwargs).task()


def task_of_message(message: dict[str, Any]) -> Task:
    payload = message.get("payload")
    if isinstance(payload, str):  # some producers double-encode
        import json

        try:
            payload = json.loads(payload)
        except ValueError as e:
            raise UserError(f"malformed python-task-queue payload: {e}") from None
    if isinstance(payload, list):
        if len(payload) < 3 or not isinstance(payload[0], (list, tuple)) or len(payload[0]) != 2 \
                or not isinstance(payload[1], list) or not isinstance(payload[2], dict):
            raise UserError("malformed python-task-queue payload: expected "
                            "[[MODULE, NAME], ARGS, KWARGS, ID]")
        (module, name), args, kwargs = payload[0], payload[1], payload[2]
        if module == "igneous.tasks":
            if task_name(name) not in TASK_MODULES:
                raise _unknown(name)
            if args:
                raise UserError(f"task {name!r}: positional arguments are not supported")
            return Task(name, kwargs)
        return original_task(str(name), args, kwargs)
    if isinstance(payload, dict):
        name = payload.get("class")
        if not isinstance(name, str):
            raise UserError('malformed python-task-queue payload: a dict needs "class": NAME')
        kwargs = {k: v for k, v in payload.items() if k != "class"}
        return original_task(name, [], kwargs)
    raise UserError(f"malformed python-task-queue payload of type {type(payload).__name__}")
