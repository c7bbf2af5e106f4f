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
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from igneous.errors import UserError

# step name -> planner in igneous.task_creation (steps whose planner is not
# available in this build are reported as unknown)
STEP_PLANNERS: dict[str, str] = {
    "transfer": "create_transfer_tasks",
    "downsample": "plan_downsample",
    "delete": "create_deletion_tasks",
    "mesh-forge": "create_meshing_tasks",
    "mesh-merge": "create_mesh_manifest_tasks",
    "mesh-merge-sharded": "create_sharded_multires_mesh_tasks",
    "mesh-merge-multires": "create_unsharded_multires_mesh_tasks",
    "skeleton-forge": "create_skeletonizing_tasks",
    "skeleton-merge": "create_unsharded_skeleton_merge_tasks",
    "skeleton-merge-sharded": "create_sharded_skeleton_merge_tasks",
    "ccl-faces": "create_ccl_face_tasks",
    "ccl-links": "create_ccl_equivalence_tasks",
    "ccl-relabel": "create_ccl_relabel_tasks",
    "voxels-count": "create_voxel_counting_tasks",
    "contrast-histogram": "create_luminance_levels_tasks",
    "contrast-equalize": "create_contrast_normalization_tasks",
}
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


def available_steps() -> dict[str, str]:
    from igneous import task_creation

    return {k: v for k, v in STEP_PLANNERS.items() if v in task_creation._WHERE}


def _planner(name: str):
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
    known = available_steps()
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
    params = inspect.signature(_planner(planner)).parameters
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
    from igneous.queues import open_queue
    from igneous.tasks import Task

    q = open_queue(queue_spec, create=True)
    try:
        if not q.supports_pipelines:
            q.insert_once("", [], {})  # raises the backend's explanation
        spec = queue_url(q, queue_spec)
        first = _round_up(q.next_stage())
        groups, labels = [], {}
        for i, s in enumerate(pipeline.steps):
            stage = first + i * STAGE_STRIDE
            task = Task("pipeline-step", {
                "queue": spec, "stage": stage, "key": pipeline.key, "step": s.id,
                "planner": s.planner, "options": s.options,
            })
            groups.append((stage, [task.to_json()]))
            labels[stage] = s.id
        return q.insert_once(pipeline.key, groups, labels), first
    finally:
        q.close()


def root_failure(q, below: int | None = None):
    """The dead-lettered task of the earliest stage (below ``below``): the
    cause, where later steps only report that they were held back."""
    dead = [d for d in q.dead_letters(1000) if below is None or d.stage < below]
    return min(dead, key=lambda d: d.stage) if dead else None


def queue_url(q, spec: str) -> str:
    """A spec for ``q`` that works from any directory (a local queue's url is
    absolute; a database's display url hides its password, so keep the spec)."""
    if spec.split("://", 1)[0].lower() in ("postgresql", "postgres"):
        return spec
    return q.url


def _round_up(stage: int) -> int:
    return -(-stage // STAGE_STRIDE) * STAGE_STRIDE


def as_stages(result) -> list:
    """A planner returns one plan (a stage) or a list of plans (passes)."""
    if isinstance(result, (list, tuple)) and result and not hasattr(result[0], "to_json"):
        return list(result)
    return [result]
