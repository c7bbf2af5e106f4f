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

import importlib.machinery
import sys
from typing import Any

# The original's task names -> the module its payloads name them under.
# Function-style tasks travel as [[module, name], args, kwargs, id]; class-style
# ones (CLASS_STYLE) as {"class": name, ...kwargs}. Our translations are listed
# in igneous.capabilities.ORIGINAL_TASK_CLASSES.
ORIGINAL_TASKS: dict[str, str] = {
    **dict.fromkeys(("DownsampleTask", "TransferTask", "DeleteTask", "QuantizeTask",
                     "CountVoxelsTask", "LuminanceLevelsTask", "ContrastNormalizationTask"),
                    "igneous.tasks.image.image"),
    "WatershedRemapTask": "igneous.tasks.image.obsolete",
    **dict.fromkeys(("CCLFacesTask", "CCLEquivalancesTask", "RelabelCCLTask"),
                    "igneous.tasks.image.ccl"),
    **dict.fromkeys(("MeshTask", "MeshManifestTask", "MeshManifestPrefixTask",
                     "MeshManifestFilesystemTask"), "igneous.tasks.mesh.mesh"),
    **dict.fromkeys(("SkeletonTask", "UnshardedSkeletonMergeTask", "ShardedSkeletonMergeTask"),
                    "igneous.tasks.skeleton"),
}
CLASS_STYLE = frozenset({
    "MeshTask", "SkeletonTask", "UnshardedSkeletonMergeTask", "ShardedSkeletonMergeTask",
    "LuminanceLevelsTask", "ContrastNormalizationTask", "WatershedRemapTask",
})

_QUEUEABLE = "taskqueue.queueablefns"
_REGISTERED = "taskqueue.registered_task"


def known_names() -> list[str]:
    from igneous.capabilities import ORIGINAL_TASK_ALIASES, ORIGINAL_TASK_CLASSES

    return sorted(set(ORIGINAL_TASK_CLASSES) | set(ORIGINAL_TASK_ALIASES))


def original_class(name: str) -> type:
    """The class translating the original's task ``name`` (raises KeyError)."""
    from igneous.capabilities import original_task_class

    try:
        return original_task_class(name)
    except AttributeError:
        raise KeyError(name) from None


def compat_attribute(module: str, name: str) -> Any:
    """Module ``__getattr__`` for igneous.tasks: the original's classes."""
    try:
        return original_class(name)
    except KeyError:
        raise AttributeError(f"module {module!r} has no attribute {name!r}") from None


def _runner(name: str):
    def run(*args: Any, **kwargs: Any) -> Any:
        return original_class(name)(*args, **kwargs).execute()

    run.__name__ = run.__qualname__ = name
    run.__module__ = ORIGINAL_TASKS[name]
    return run


class _LazyClass:
    """Stands in python-task-queue's class registry for an original class-style
    task until a payload of it arrives (then our class is imported)."""

    def __init__(self, name: str):
        self.name = name

    def __call__(self, **kwargs: Any) -> Any:
        return original_class(self.name)(**kwargs)


def register_queueables(module: Any) -> None:
    from igneous.capabilities import TASK_ALIASES, TASK_MODULES
    from igneous.tasks import entry_point

    for name in TASK_MODULES:
        module.REGISTRY.setdefault(("igneous.tasks", name), entry_point(name))
    for old, name in TASK_ALIASES.items():  # payloads queued under earlier names
        module.REGISTRY.setdefault(("igneous.tasks", old), entry_point(name))
    for name, origin in ORIGINAL_TASKS.items():
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
