"""Whole workflows from one file: ``igneous run PIPELINE.toml --queue Q``.

A pipeline file names a source layer and the steps to run on it, each step
being one scripting planner (``igneous.task_creation``) with its keyword
arguments::

    source = "./raw"                      # relative paths: from this file's folder

    [[steps]]
    step = "transfer"
    dest_layer_path = "./seg"             # later steps work on ./seg
    chunk_size = [64, 64, 64]

    [[steps]]
    step = "mesh-forge"
    mip = 0

    [[steps]]
    step = "mesh-merge"

Every step becomes one *stage* of the queue: a small planning task that, when
its turn comes (all earlier stages done), runs the planner and inserts the
step's tasks into the same stage (and the stages right after it, for planners
that make several passes). Planning late is what lets a step depend on files
an earlier step writes (a merge needs the forged fragments). The whole
pipeline is inserted in one transaction under a key derived from its content,
so running the same file again resumes it instead of enqueueing it twice.

The file is checked before anything is enqueued: unknown steps or options,
missing required options, unknown or cyclic ``after`` references are refused
with the line at fault.
"""

from __future__ import annotations

import hashlib
import inspect
import json
import os
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from igneous.capabilities import PIPELINE_STEPS
from igneous.errors import UserError
from igneous.queues import TaskQueue, open_queue
from igneous.submit import as_stages, insert_stages, root_failure
from igneous.tasks import Task

# a step's own stage plus this many after it are reserved for its passes
STAGE_STRIDE = 100
_RESERVED = {"step", "id", "after"}


@dataclass
class Step:
    id: str
    kind: str
    planner: str
    options: dict[str, Any]
    after: list[str]
    line: int


@dataclass
class Pipeline:
    path: str
    steps: list[Step] = field(default_factory=list)  # in run order

    @property
    def key(self) -> str:
        """Identity of this pipeline's content (what a resumed run looks for)."""
        body = [(s.id, s.kind, s.options) for s in self.steps]
        digest = hashlib.sha256(json.dumps(body, sort_keys=True).encode()).hexdigest()
        return f"pipeline:{digest[:20]}"


def find_planner(name: str) -> Callable[..., Any]:
    """The scripting planner ``igneous.task_creation.<name>``."""
    import igneous.task_creation as tc

    return getattr(tc, name)


# -- reading the file ------------------------------------------------------------

def _parse(path: Path, text: str) -> dict:
    suffix = path.suffix.lower()
    try:
        if suffix == ".toml":
            import tomllib

            return tomllib.loads(text)
        if suffix in (".yaml", ".yml"):
            import yaml

            data = yaml.safe_load(text)
            return data if isinstance(data, dict) else {}
    except Exception as e:  # the parsers name the line themselves
        raise UserError(f"{path}: not valid {suffix[1:].upper()}: {e}".replace("\n", " ")) from None
    raise UserError(f"{path}: a pipeline file ends in .toml, .yaml or .yml")


class _Lines:
    """Finds the line of a step (the n-th ``[[steps]]`` table or ``- `` list
    item) and of one of its keys, for error messages."""

    def __init__(self, text: str, yaml_style: bool):
        self.lines = text.splitlines()
        start = re.compile(r"^\s*-\s+\S" if yaml_style else r"^\s*\[\[\s*steps\s*\]\]")
        self.starts = [i for i, line in enumerate(self.lines) if start.match(line)]

    def step(self, n: int) -> int:
        return self.starts[n] + 1 if n < len(self.starts) else 0

    def key(self, n: int, key: str) -> int:
        begin = self.starts[n] if n < len(self.starts) else 0
        end = self.starts[n + 1] if n + 1 < len(self.starts) else len(self.lines)
        pattern = re.compile(rf"^\s*(-\s+)?[\"']?{re.escape(key)}[\"']?\s*[:=]")
        for i in range(begin, end):
            if pattern.match(self.lines[i]):
                return i + 1
        return self.step(n)


def _resolve_path(value: Any, base: Path) -> Any:
    """Bare local paths are taken relative to the pipeline file's folder, so
    workers started anywhere find the same layers."""
    if isinstance(value, str) and value and "://" not in value:
        return "file://" + str((base / os.path.expanduser(value)).resolve())
    return value


def load_pipeline(path: str) -> Pipeline:
    """Read and check a pipeline file; raises UserError naming FILE:LINE."""
    file = Path(path)
    try:
        text = file.read_text()
    except OSError as e:
        raise UserError(f"cannot read pipeline file {path}: {e.strerror}") from None
    data = _parse(file, text)
    where = _Lines(text, file.suffix.lower() != ".toml")
    base = file.resolve().parent

    unknown = set(data) - {"source", "steps"}
    if unknown:
        raise UserError(f"{path}: unknown top-level key {sorted(unknown)[0]!r} "
                        "(a pipeline has `source` and `steps`)")
    raw_steps = data.get("steps")
    if not isinstance(raw_steps, list) or not raw_steps:
        raise UserError(f"{path}: no steps; add [[steps]] tables (TOML) or a `steps:` list (YAML)")
    known = PIPELINE_STEPS
    current = _resolve_path(data.get("source"), base)

    steps: list[Step] = []
    ids: dict[str, int] = {}
    for n, raw in enumerate(raw_steps):
        at = f"{path}:{where.step(n)}"
        if not isinstance(raw, dict) or "step" not in raw:
            raise UserError(f"{at}: each step needs `step = NAME` (one of {', '.join(known)})")
        kind = str(raw["step"])
        if kind not in known:
            raise UserError(f"{path}:{where.key(n, 'step')}: unknown step {kind!r}; "
                            f"known steps: {', '.join(known)}")
        sid = str(raw.get("id", kind if kind not in ids else f"{kind}-{n + 1}"))
        if sid in ids:
            raise UserError(f"{path}:{where.key(n, 'id')}: step id {sid!r} is used twice")
        ids[sid] = n
        after = raw.get("after", [steps[-1].id] if steps else [])
        after = [after] if isinstance(after, str) else list(after)
        options = {k: v for k, v in raw.items() if k not in _RESERVED}
        current = _bind(kind, known[kind], options, current, base, path, n, where)
        steps.append(Step(sid, kind, known[kind], options, [str(a) for a in after], where.step(n)))

    for n, s in enumerate(steps):
        for dep in s.after:
            if dep not in ids:
                raise UserError(f"{path}:{where.key(n, 'after')}: step {s.id!r} runs after "
                                f"{dep!r}, which is not a step id here")
    return Pipeline(str(file), _ordered(steps, path))


def _bind(kind: str, planner: str, options: dict, current, base: Path, path: str, n: int,
          where: _Lines):
    """Check ``options`` against the planner's keywords, fill in the layer the
    step works on, and return the layer the next step works on."""
    params = inspect.signature(find_planner(planner)).parameters
    names = list(params)
    for key in options:
        if key not in params:
            raise UserError(f"{path}:{where.key(n, key)}: step {kind!r} has no option {key!r}; "
                            f"its options: {', '.join(names)}")
    primary = names[0]
    if primary not in options:
        if current is None:
            raise UserError(f"{path}:{where.step(n)}: step {kind!r} needs {primary!r} "
                            "(or a top-level `source`)")
        options[primary] = current
    for key, value in options.items():
        if key.endswith("path") or key in ("src", "dest"):
            options[key] = _resolve_path(value, base)
    missing = [k for k, p in params.items()
               if p.default is inspect.Parameter.empty and k not in options
               and p.kind not in (p.VAR_POSITIONAL, p.VAR_KEYWORD)]
    if missing:
        raise UserError(f"{path}:{where.step(n)}: step {kind!r} is missing option {missing[0]!r}")
    from igneous.validate import option_problem

    for key, value in options.items():
        problem = option_problem(key, value, params[key].default, params[key].annotation)
        if problem:
            raise UserError(f"{path}:{where.key(n, key)}: step {kind!r}: {problem}")
    return options.get("dest_layer_path", current)


def _ordered(steps: list[Step], path: str) -> list[Step]:
    """Topological order (file order among equals); a cycle is an error."""
    by_id = {s.id: s for s in steps}
    done: list[Step] = []
    state: dict[str, int] = {}  # 1 = visiting, 2 = done

    def visit(s: Step, trail: list[str]) -> None:
        if state.get(s.id) == 2:
            return
        if state.get(s.id) == 1:
            cycle = " -> ".join(trail[trail.index(s.id):] + [s.id])
            raise UserError(f"{path}:{s.line}: steps form a cycle: {cycle}")
        state[s.id] = 1
        for dep in s.after:
            visit(by_id[dep], trail + [s.id])
        state[s.id] = 2
        done.append(s)

    for s in steps:
        visit(s, [])
    return done


# -- enqueueing and planning ----------------------------------------------------------

def enqueue(pipeline: Pipeline, queue_spec: str) -> tuple[bool, int]:
    """Insert the pipeline's planning tasks (one stage per step) unless this
    queue already holds it. Returns (inserted now?, first stage)."""
    q = open_queue(queue_spec, create=True)
    try:
        if not q.supports_pipelines:
            q.insert_once("", [], {})  # raises the backend's explanation
        spec = queue_url(q, queue_spec)
        first = _round_up(q.next_stage())
        stages = [[Task.of(pipeline_step, {
            "queue": spec, "stage": first + i * STAGE_STRIDE, "key": pipeline.key, "step": s.id,
            "planner": s.planner, "options": s.options,
        })] for i, s in enumerate(pipeline.steps)]
        labels = {first + i * STAGE_STRIDE: s.id for i, s in enumerate(pipeline.steps)}
        inserted = insert_stages(q, stages, first=first, stride=STAGE_STRIDE, key=pipeline.key,
                                 labels=labels)
        return inserted is not None, first
    finally:
        q.close()


def pipeline_step(queue: str, stage: int, key: str, step: str, planner: str,
                  options: dict[str, Any]) -> None:
    """The planning task of one step: it runs when every earlier stage of the
    queue is done, refuses to go on if any of them left dead-lettered tasks
    (later steps would build on missing pieces), then calls the step's planner
    and inserts the step's tasks into its own stage and the ones reserved
    after it. The insert and the record that it happened are one
    transaction, so a re-delivered planning task inserts nothing twice."""
    with open_queue(queue, create=False) as q:
        first = root_failure(q, below=stage)
        if first is not None:
            raise UserError(
                f"step {step!r} not started: an earlier step failed ({first.error}); fix the "
                f"cause, then `igneous queue release --dead {queue}` and run again"
            )
        stages = as_stages(find_planner(planner)(**options))
        if len(stages) > STAGE_STRIDE:
            raise UserError(f"step {step!r} made {len(stages)} passes; at most {STAGE_STRIDE} fit")
        insert_stages(q, stages, first=stage, key=f"{key}:{step}:planned")


def queue_url(q: TaskQueue, spec: str) -> str:
    """A spec for ``q`` that works from any directory (a local queue's url is
    absolute; a database's display url hides its password, so keep the spec)."""
    if spec.split("://", 1)[0].lower() in ("postgresql", "postgres"):
        return spec
    return q.url


def _round_up(stage: int) -> int:
    return -(-stage // STAGE_STRIDE) * STAGE_STRIDE
