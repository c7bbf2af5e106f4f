"""Planners: split a volume into tasks and write the info files they need.

``import igneous.task_creation as tc`` then ``tc.create_downsampling_tasks(...)``
as in the original Igneous. Each planner returns a lazy ``TaskPlan``. Names
resolve lazily so importing this package stays cheap.
"""

from __future__ import annotations

import importlib

_WHERE = {
    "create_downsampling_tasks": "igneous.task_creation.image",
    "create_image_shard_downsample_tasks": "igneous.task_creation.image_shards",
    "create_transfer_tasks": "igneous.task_creation.image",
    "create_image_shard_transfer_tasks": "igneous.task_creation.image_shards",
    "plan_shard_downsample": "igneous.task_creation.image_shards",
    "create_deletion_tasks": "igneous.task_creation.image",
    "plan_downsample": "igneous.task_creation.image",
    "TaskPlan": "igneous.task_creation.common",
    "DEFAULT_MEMORY_TARGET": "igneous.task_creation.common",
}

__all__ = sorted(_WHERE)


def __getattr__(name: str):
    module = _WHERE.get(name)
    if module is None:
        raise AttributeError(f"module 'igneous.task_creation' has no attribute {name!r}")
    return getattr(importlib.import_module(module), name)
