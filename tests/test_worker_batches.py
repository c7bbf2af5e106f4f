"""The worker's lease batches across stage barriers.

A worker leases quick tasks in growing batches; a batch of a later stage's
slow tasks would keep them from the other workers (one core idle for the
whole stage: ccl auto's relabel stage after its quick links stage).
"""

from __future__ import annotations

from igneous.queues.local import LocalQueue
from igneous.tasks import Task
from igneous.worker import QUICK_TASK_SEC, WorkerOptions, run_worker


class RecordingQueue(LocalQueue):
    """A local queue that records the stages of every non-empty lease."""

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.batches: list[list[int]] = []

    def lease(self, n=1, *, seconds=600):
        got = super().lease(n, seconds=seconds)
        if got:
            self.batches.append([x.stage for x in got])
        return got


def test_slow_stage_after_quick_stage_is_leased_one_task_at_a_time(tmp_path):
    with RecordingQueue(str(tmp_path / "q")) as q:
        q.insert([Task("noop") for _ in range(40)], stage=0)
        q.insert([Task("noop")], stage=1)  # a single quick task between (ccl's calc-labels)
        slow = Task("sleep", {"seconds": QUICK_TASK_SEC * 1.5})
        q.insert([slow] * 4, stage=2)
        result = run_worker(q, WorkerOptions(exit_on_empty=True, quiet=True))
        assert result.executed == 45 and q.is_empty()
        assert [len(b) for b in q.batches if b[0] == 1] == [1]
        # the quick stage was batched (the behaviour that makes noop queues fast) ...
        assert max(len(b) for b in q.batches if b[0] == 0) > 1
        # ... but each slow task of the last stage was leased on its own
        assert [len(b) for b in q.batches if b[0] == 2] == [1, 1, 1, 1]
        assert all(len(set(b)) == 1 for b in q.batches)  # a batch never spans stages
