"""Make python-task-queue find our tasks, without importing it ourselves.

python-task-queue looks tasks up in two registries: ``taskqueue.queueablefns.
REGISTRY`` (``(module, function name) -> function``, for "queueable function"
payloads) and ``taskqueue.registered_task.REGISTRY`` (``class name -> class``,
for ``{"class": NAME, ...}`` payloads). ``attach()`` fills both the moment
python-task-queue is (or becomes) imported:

- ``("igneous.tasks", NAME)`` -> our task ``NAME`` (what our planners' tasks
  become when python-task-queue queues them);
- the original Igneous's task names, under the keys its payloads carry ->
  our translation of that task (igneous.compat.original).

Importing python-task-queue costs ~0.5 s (gevent, pathos), so we never do it
ourselves; an import hook registers after the user's own import instead.
"""

from __future__ import annotations

import importlib
import importlib.machinery
import sys
from typing import Any

# The original's task names -> (module its payloads name, our module defining it).
# Function-style tasks travel as [[module, name], args, kwargs, id]; class-style
# ones (CLASS_STYLE) as {"class": name, ...kwargs}.
ORIGINAL_TASKS: dict[str, tuple[str, str]] = {
    "DownsampleTask": ("igneous.tasks.image.image", "igneous.compat.original"),
    "TransferTask": ("igneous.tasks.image.image", "igneous.compat.original"),
    "DeleteTask": ("igneous.tasks.image.image", "igneous.compat.original"),
    "QuantizeTask": ("igneous.tasks.image.image", "igneous.compat.original"),
    "CountVoxelsTask": ("igneous.tasks.image.image", "igneous.compat.original"),
    "LuminanceLevelsTask": ("igneous.tasks.image.image", "igneous.compat.original"),
    "ContrastNormalizationTask": ("igneous.tasks.image.image", "igneous.compat.original"),
    "WatershedRemapTask": ("igneous.tasks.image.obsolete", "igneous.compat.original"),
    "CCLFacesTask": ("igneous.tasks.image.ccl", "igneous.compat.original_labels"),
    "CCLEquivalancesTask": ("igneous.tasks.image.ccl", "igneous.compat.original_labels"),
    "RelabelCCLTask": ("igneous.tasks.image.ccl", "igneous.compat.original_labels"),
    "MeshTask": ("igneous.tasks.mesh.mesh", "igneous.compat.original_labels"),
    "MeshManifestTask": ("igneous.tasks.mesh.mesh", "igneous.compat.original_labels"),
    "MeshManifestPrefixTask": ("igneous.tasks.mesh.mesh", "igneous.compat.original_labels"),
    "MeshManifestFilesystemTask": ("igneous.tasks.mesh.mesh", "igneous.compat.original_labels"),
    "SkeletonTask": ("igneous.tasks.skeleton", "igneous.compat.original_labels"),
    "UnshardedSkeletonMergeTask": ("igneous.tasks.skeleton", "igneous.compat.original_labels"),
    "ShardedSkeletonMergeTask": ("igneous.tasks.skeleton", "igneous.compat.original_labels"),
}
CLASS_STYLE = frozenset({
    "MeshTask", "SkeletonTask", "UnshardedSkeletonMergeTask", "ShardedSkeletonMergeTask",
    "LuminanceLevelsTask", "ContrastNormalizationTask", "WatershedRemapTask",
})
# The spec also names the skeleton merge tasks by their capability name.
ALIASES = {"SkeletonMergeTask": "UnshardedSkeletonMergeTask"}

_QUEUEABLE = "taskqueue.queueablefns"
_REGISTERED = "taskqueue.registered_task"


def known_names() -> list[str]:
    return sorted(set(ORIGINAL_TASKS) | set(ALIASES))


def original_class(name: str) -> type:
    """The class translating the original's task ``name`` (raises KeyError)."""
    name = ALIASES.get(name, name)
    _, module = ORIGINAL_TASKS[name]
    return getattr(importlib.import_module(module), name)


def compat_attribute(module: str, name: str) -> Any:
    """Module ``__getattr__`` for igneous and igneous.tasks: the original's classes."""
    if name in ORIGINAL_TASKS or name in ALIASES:
        return original_class(name)
    raise AttributeError(f"module {module!r} has no attribute {name!r}")


def _runner(name: str):
    def run(*args: Any, **kwargs: Any) -> Any:
        return original_class(name)(*args, **kwargs).execute()

    run.__name__ = run.__qualname__ = name
    run.__module__ = ORIGINAL_TASKS[name][0]
    return run


class _LazyClass:
    """Stands in python-task-queue's class registry for an original class-style
    task until a payload of it arrives (then our class is imported)."""

    def __init__(self, name: str):
        self.name = name

    def __call__(self, **kwargs: Any) -> Any:
        return original_class(self.name)(**kwargs)


def register_queueables(module: Any) -> None:
    from igneous.tasks import TASK_MODULES, entry_point

    for name in TASK_MODULES:
        module.REGISTRY.setdefault(("igneous.tasks", name), entry_point(name))
    for name, (origin, _) in ORIGINAL_TASKS.items():
        module.REGISTRY.setdefault((origin, name), _runner(name))


def register_classes(module: Any) -> None:
    for name in CLASS_STYLE:
        module.REGISTRY.setdefault(name, _LazyClass(name))


_HOOKS = {_QUEUEABLE: register_queueables, _REGISTERED: register_classes}


class _AfterImport:
    """A meta-path finder that runs a registration right after python-task-
    queue's registry modules are executed (they may be imported after us)."""

    def find_spec(self, fullname: str, path=None, target=None):
        hook = _HOOKS.get(fullname)
        if hook is None:
            return None
        spec = importlib.machinery.PathFinder.find_spec(fullname, path)
        if spec is None or spec.loader is None or not hasattr(spec.loader, "exec_module"):
            return None
        run = spec.loader.exec_module

        def exec_module(module: Any) -> None:
            run(module)
            hook(module)

        spec.loader.exec_module = exec_module  # type: ignore[method-assign]
        return spec


_attached = False


def attach() -> None:
    """Register in python-task-queue now if it is loaded, else when it loads."""
    global _attached
    if _attached:
        return
    _attached = True
    pending = False
    for name, hook in _HOOKS.items():
        module = sys.modules.get(name)
        if module is not None:
            hook(module)
        else:
            pending = True
    if pending:
        sys.meta_path.insert(0, _AfterImport())
