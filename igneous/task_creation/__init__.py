"""Planners: split a volume into tasks and write the info files they need.

``import igneous.task_creation as tc`` then ``tc.create_downsampling_tasks(...)``
as in the original Igneous. Each planner returns a lazy ``TaskPlan``. Which
module defines each planner is declared once, by its capability, in
``igneous.capabilities``; names resolve lazily so importing this package
stays cheap.
"""

from __future__ import annotations

import importlib
from typing import Any

from igneous.capabilities import PLANNER_MODULES

_COMMON = {name: "igneous.task_creation.common" for name in ("TaskPlan", "DEFAULT_MEMORY_TARGET")}

__all__ = sorted([*PLANNER_MODULES, *_COMMON])


def __getattr__(name: str) -> Any:
    module = PLANNER_MODULES.get(name) or _COMMON.get(name)
    if module is None:
        raise AttributeError(f"module 'igneous.task_creation' has no attribute {name!r}")
    return getattr(importlib.import_module(module), name)
