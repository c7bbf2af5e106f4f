"""The planning task of a pipeline step (see igneous/pipeline.py).

It runs when every earlier stage of the queue is done: it refuses to go on
if any of them left dead-lettered tasks (later steps would build on missing
pieces), then calls the step's planner and inserts the step's tasks into its
own stage and the ones reserved after it. The insert and the record that it
happened are one transaction, so a re-delivered planning task inserts nothing
twice.
"""

from __future__ import annotations

from igneous.errors import UserError
from igneous.tasks import register


@register("pipeline-step")
def plan_step(queue: str, stage: int, key: str, step: str, planner: str, options: dict) -> None:
    from igneous.pipeline import STAGE_STRIDE, _planner, as_stages, root_failure
    from igneous.queues import open_queue

    q = open_queue(queue, create=False)
    try:
        first = root_failure(q, below=stage)
        if first is not None:
            raise UserError(
                f"step {step!r} not started: an earlier step failed ({first.error}); fix the "
                f"cause, then `igneous queue release --dead {queue}` and run again"
            )
        stages = as_stages(_planner(planner)(**options))
        if len(stages) > STAGE_STRIDE:
            raise UserError(f"step {step!r} made {len(stages)} passes; at most {STAGE_STRIDE} fit")
        groups = [(stage + i, (t.to_json() for t in plan)) for i, plan in enumerate(stages)]
        q.insert_once(f"{key}:{step}:planned", groups, {})
    finally:
        q.close()
