"""What every planner shares: lazy task plans and the memory target."""

from __future__ import annotations

import importlib
import sys
import uuid
from collections.abc import Callable, Iterator
from typing import Any

from igneous.memory import default_memory_target
from igneous.tasks import EXPAND_TASK, Task

# bytes a single task may use (1/4 of this machine's memory unless
# IGNEOUS_MEMORY_TARGET says otherwise); see `igneous design ds-memory`
DEFAULT_MEMORY_TARGET = default_memory_target()
# gzip level of chunk files: None = by layer type (igneous.chunkio.default_gzip_level)
COMPRESS_LEVEL = None


class TaskPlan:
    """A lazily generated, re-iterable sequence of tasks with a known length.

    A plan of a million tasks costs nothing until iterated; ``len()`` feeds
    progress bars.
    """

    def __init__(self, make: Callable[[], Iterator[Task]], length: int, description: str = ""):
        self._make = make
        self._length = int(length)
        self.description = description

    def __iter__(self) -> Iterator[Task]:
        return self._make()

    def __len__(self) -> int:
        return self._length

    def __repr__(self) -> str:
        return f"TaskPlan({self.description!r}, {self._length} tasks)"


class Stages(list):
    """Plans to queue as ordered stages, and ``single``: the same work as one
    stage for a queue that cannot hold stages (SQS), with ``note`` saying what
    that costs."""

    def __init__(self, stages: list[TaskPlan], single: TaskPlan, note: str):
        super().__init__(stages)
        self.single = single
        self.note = note


# a keyword whose JSON is larger than this is stored beside the layer instead of
# in every payload (SQS messages are limited to 256 KB; a queue of a million
# tasks should not carry the same label list a million times)
LARGE_ARG_BYTES = 16 * 1024
ARGS_DIR = "igneous_task_args"


def store_large_args(kwargs: dict, cloudpath: str) -> dict:
    """``kwargs`` with each large value written once to
    ``CLOUDPATH/igneous_task_args/SHA256.json`` (content-addressed, so
    planning twice writes the same file) and replaced by a pointer the worker
    follows (``igneous.tasks.load_arg``)."""
    import hashlib
    import json

    from igneous.tasks import ARG_FILE

    out = dict(kwargs)
    for key, value in kwargs.items():
        if isinstance(value, (str, int, float, bool)) or value is None:
            continue
        data = json.dumps(value, separators=(",", ":")).encode()
        if len(data) <= LARGE_ARG_BYTES:
            continue
        from igneous.storage import join, open_store

        name = f"{hashlib.sha256(data).hexdigest()}.json"
        base = join(cloudpath, ARGS_DIR)
        store = open_store(base)
        if not store.exists(name):
            store.put(name, data, compress=False)
        out[key] = {ARG_FILE: join(base, name)}
    return out


# A plan with more tasks than this goes into a queue as expansion tasks, each
# of which a worker turns into up to FANOUT_CELLS real tasks: planning a
# petavoxel volume then inserts hundreds of small payloads, not millions.
FANOUT_MIN = 50_000
FANOUT_CELLS = 10_000
FANOUT_WIDTH = 64  # chained expansions: ranges expanded side by side
FANOUT_FLAT = 1000  # unchained (SQS): most expansion tasks one plan inserts
# Task growth stops before a plan would have fewer tasks than this, so small
# volumes keep enough tasks to spread over many workers.
GROW_MIN_TASKS = 256
# ...and before a task would hold more than this many voxels: past ~1 GVx the
# per-task costs (queue round trip, info read) are well under 1% of the work,
# while a bigger task loses more to a preempted worker and holds its lease longer.
GROW_MAX_VOXELS = 2**30

# cell makers by "module:name": the only functions an expansion task may call
_CELL_MAKERS: dict[str, Callable[..., Task]] = {}


def cell_maker(fn: Callable[..., Task]) -> Callable[..., Task]:
    """Decorator: ``fn(shared, lo, hi, **params) -> Task`` makes the task of
    one grid cell; registered so that workers may expand plans that use it."""
    _CELL_MAKERS[f"{fn.__module__}:{fn.__qualname__}"] = fn
    return fn


class GridPlan(TaskPlan):
    """A plan with one task per cell of a grid: ``cell(shared, lo, hi, **params)``.

    Besides being iterated like any plan, it can describe itself in a few
    hundred bytes (``expansions``) so a queue holds a huge plan as expansion
    tasks that workers turn into real tasks piecewise (``expand``)."""

    def __init__(self, cell: Callable[..., Task], grid: Any, shared: dict, description: str = "",
                 **params: Any):
        self.cell, self.grid, self.shared, self.params = cell, grid, shared, params
        self.name = f"{cell.__module__}:{cell.__qualname__}"
        if _CELL_MAKERS.get(self.name) is not cell:
            raise RuntimeError(f"{self.name} is not registered with @cell_maker")
        super().__init__(lambda: self.tasks(0, len(grid)), len(grid), description)

    def tasks(self, begin: int, end: int) -> Iterator[Task]:
        for lo, hi in self.grid.cells(begin, end):
            yield self.cell(self.shared, lo, hi, **self.params)

    def expansions(self, cells: int | None = None, *, chained: bool = False) -> Iterator[Task]:
        """Expansion tasks covering the plan; each inserts up to ``cells`` tasks.

        ``chained`` (for queues that insert under a key once, so a range is
        never inserted twice): at most FANOUT_WIDTH ranges, each inserting its
        next ``cells`` tasks plus an expansion of the rest behind them, so the
        queue holds a bounded frontier instead of every task at once.
        Otherwise (SQS): at most FANOUT_FLAT ranges of ``cells`` or more
        tasks, each inserted whole by one expansion."""
        plan = dict(cell=self.name, grid=self.grid.to_json(), shared=self.shared,
                    params=self.params, description=self.description, id=uuid.uuid4().hex)
        n, cells = len(self), cells or FANOUT_CELLS
        if chained:
            size = max(cells, -(-n // FANOUT_WIDTH))
        else:  # each expansion inserts its whole range: a duplicate costs that range only
            size = cells = max(cells, -(-n // FANOUT_FLAT))
        for begin in range(0, n, size):
            yield Task(EXPAND_TASK, dict(plan=plan, begin=begin, end=min(begin + size, n),
                                         cells=cells))

    def queued_form(self, *, chained: bool = False) -> Iterator[Task]:
        """What a queue holds for this plan: expansion tasks when it is big."""
        return self.expansions(chained=chained) if len(self) > FANOUT_MIN else iter(self)


def expand(plan: dict, begin: int, end: int, cells: int | None = None) -> list[Task]:
    """What an expansion task inserts: the plan's tasks ``begin ..`` (at most
    ``cells`` of them), then an expansion of whatever of ``.. end - 1`` is left."""
    from igneous.errors import UserError
    from igneous.grid import Grid

    name = str(plan.get("cell", ""))
    module = name.split(":", 1)[0]
    if not module.startswith("igneous."):
        raise UserError(f"expansion task names {name!r}, which is not an igneous planner")
    try:
        importlib.import_module(module)
    except ImportError:
        raise UserError(f"expansion task names {name!r}, which cannot be imported") from None
    cell = _CELL_MAKERS.get(name)
    if cell is None:
        raise UserError(f"expansion task names {name!r}, which is not a registered cell maker")
    grid = Grid.from_json(plan["grid"])
    params = plan.get("params") or {}
    begin, end, cells = int(begin), min(int(end), len(grid)), max(1, int(cells or FANOUT_CELLS))
    stop = min(end, begin + cells)
    out = [cell(plan["shared"], lo, hi, **params) for lo, hi in grid.cells(begin, stop)]
    if stop < end:
        out.append(Task(EXPAND_TASK, dict(plan=plan, begin=stop, end=end, cells=cells)))
    return out


@cell_maker
def box_cell(shared: dict, lo: Any, hi: Any, *, task: str, scale: Any = None,
             clip: Any = None) -> Task:
    """A block task over one grid cell as ``offset``/``shape``: clipped to
    ``clip`` = [start, stop] if given, then times ``scale`` if given."""
    import numpy as np

    from igneous.grid import as_list, vec

    if clip is not None:
        lo, hi = np.maximum(lo, vec(clip[0])), np.minimum(hi, vec(clip[1]))
    if scale is not None:
        lo, hi = lo * vec(scale), hi * vec(scale)
    return Task(task, dict(shared, offset=as_list(lo), shape=as_list(hi - lo)))


@cell_maker
def bounds_cell(shared: dict, lo: Any, hi: Any, *, task: str, clip: Any) -> Task:
    """A block task over one grid cell as ``lo``/``hi``, clipped to [start, stop]."""
    import numpy as np

    from igneous.grid import as_list, vec

    lo, hi = np.maximum(lo, vec(clip[0])), np.minimum(hi, vec(clip[1]))
    return Task(task, dict(shared, lo=as_list(lo), hi=as_list(hi)))


@cell_maker
def index_cell(shared: dict, lo: Any, hi: Any, *, task: str, origin: Any, step: Any) -> Task:
    """A block task over one grid cell as its grid ``index`` (i, j, k)."""
    from igneous.grid import as_list, vec

    return Task(task, dict(shared, index=as_list((lo - vec(origin)) // vec(step))))


def grow_step(step, need: Callable[[Any], float], memory_target: float, *, start, stop, origin,
              voxel_scale: float = 1.0, min_tasks: int = GROW_MIN_TASKS):
    """``step`` (a task's smallest aligned shape) doubled along one axis at a
    time -- the shortest first, x before y before z -- while a task of the new
    shape still ``need``s no more than ``memory_target`` bytes and the plan
    keeps at least ``min_tasks`` tasks, up to GROW_MAX_VOXELS voxels a task
    (``voxel_scale``: voxels of the task's block per cell voxel, e.g. the
    downsample factor's product for a grid laid on the top mip). Doubling
    keeps every alignment of ``step`` (chunks, shards, downsample factors)."""
    from igneous.grid import grid_count, vec

    cur = vec(step).copy()
    extent = vec(stop) - vec(start)
    while True:
        for axis in sorted(range(3), key=lambda i: (int(cur[i]), i)):
            trial = cur.copy()
            trial[axis] *= 2
            if cur[axis] >= extent[axis] or need(trial) > memory_target:
                continue
            if float(trial.prod()) * voxel_scale > GROW_MAX_VOXELS:
                continue
            if grid_count(start, stop, origin, trial) < min_tasks:
                continue
            cur = trial
            break
        else:  # no axis could grow (each stops once it spans the volume)
            return cur


def fit_shape(shape, memory_target: float, bytes_per_voxel: float, *, what: str, limit=None):
    """``shape``, with its longest axis halved until a task of that shape fits
    ``memory_target`` at ``bytes_per_voxel`` (the task's measured peak use per
    voxel of its block, decoders and temporaries included). ``limit`` (the
    volume's size) caps what one task can really hold. Halving keeps the shape
    a multiple of any power-of-two chunk size that divided it."""
    import numpy as np

    from igneous import validate

    memory_target = validate.memory_target(memory_target)
    given = np.asarray(shape, dtype=np.int64)
    start = given if limit is None else np.minimum(given, np.asarray(limit, dtype=np.int64))
    out = start.copy()
    while float(np.prod(out)) * bytes_per_voxel > memory_target and out.max() > 1:
        i = int(np.argmax(out))
        out[i] = max(1, out[i] // 2)
    if np.all(out == start):
        return given
    need = float(np.prod(start)) * bytes_per_voxel
    note(f"{what}: a {'x'.join(map(str, start))} task would need ~{_size(need)}; using "
         f"{'x'.join(map(str, out))} to fit the memory target of {_size(memory_target)} (--memory)")
    return out


def _size(n: float) -> str:
    return f"{n / 1e9:.1f} GB" if n >= 1e9 else f"{n / 1e6:.0f} MB"


def note(message: str) -> None:
    """A planner's remark to the user (stderr, never stdout)."""
    print(f"igneous: {message}", file=sys.stderr)
