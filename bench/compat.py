"""A python-task-queue FileQueue filled by the original Igneous, executed by
our workers and by the original's, side by side (issue #13).

For each implementation, on a fresh copy of the input layer (untimed):

    reference python:  TaskQueue("fq://Q").insert(tc.create_downsampling_tasks(SRC, mip=0, num_mips=3))

then (timed) the same command on the same kind of queue:

    igneous -p 2 execute -x -q fq://Q       (ours, or the reference's CLI)

Both queues hold the original's DownsampleTask payloads, made by the same
planner; after the first pair of runs the mips are compared voxel for voxel.

    python -m bench.compat [--data image|seg] [--repeat 2]
"""

from __future__ import annotations

import argparse
import subprocess
import sys
from pathlib import Path

EXECUTE = "{igneous} -p 2 execute -x -q fq://{queue}"
FILL = ("import sys; from taskqueue import TaskQueue; import igneous.task_creation as tc; "
        "TaskQueue('fq://' + sys.argv[2]).insert("
        "tc.create_downsampling_tasks('file://' + sys.argv[1], mip=0, num_mips=3))")


def fill_with_reference(src: Path, queue: Path) -> None:
    """The original's own planner fills the queue (run in a neutral directory so
    nothing of ours shadows its packages)."""
    from bench.harness import reference

    ref = reference()
    subprocess.run([ref.python, "-c", FILL, str(src), str(queue)], check=True, cwd=queue.parent,
                   env=ref.env(), capture_output=True)


def _workflow(data: str):
    from bench import inputs
    from bench.harness import Step, Workflow, fresh_copy
    from bench.image import compare_in_subprocess

    def prepare(run_dir: Path, impl):
        src = fresh_copy(inputs.ensure(data), run_dir / "src")
        (src / inputs.MARKER).unlink(missing_ok=True)
        queue = run_dir / "queue"
        fill_with_reference(src, queue)
        return {"src": src, "queue": queue}

    def compare(ctx_ours, ctx_ref):
        return compare_in_subprocess(ctx_ours["src"], ctx_ref["src"], mips=[1, 2, 3])

    what = {"image": "1024x1024x128 uint8 image", "seg": "512^3 connectomics segmentation"}[data]
    return Workflow(
        name=f"compat-{data}-downsample",
        description=f"execute a python-task-queue fq:// queue the original planned: 3 mips, {what}",
        steps=[Step("execute", {"ours": EXECUTE, "reference": EXECUTE})],
        prepare=prepare,
        compare=compare,
        timeout=1200,
    )


def workflows() -> list:
    return [_workflow(data) for data in ("image", "seg")]


def main(argv: list[str] | None = None) -> None:
    from bench import harness, inputs

    ap = argparse.ArgumentParser(prog="python -m bench.compat", description=__doc__.split("\n")[0])
    ap.add_argument("--data", choices=["image", "seg"], help="one input layer only")
    harness.add_common_args(ap)
    args = ap.parse_args(argv)
    datas = [args.data] if args.data else ["image", "seg"]
    for data in datas:
        inputs.ensure(data)
    for wf in workflows():
        harness.register(wf)
    harness.run_and_report([f"compat-{d}-downsample" for d in datas], repeat=args.repeat,
                           compare=not args.no_compare, keep=args.keep, impls=args.impl)


if __name__ == "__main__":
    sys.exit(main())
