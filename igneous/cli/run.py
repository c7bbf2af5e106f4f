"""``igneous run PIPELINE``: a whole workflow through one durable queue."""

from __future__ import annotations

from pathlib import Path

import click

from igneous.cli.options import parallel_count


@click.command("run")
@click.argument("pipeline_file", metavar="PIPELINE")
@click.option("--queue", default=None,
              help="Queue for every stage: a directory, fq://DIR or postgresql://... "
              "Default: PIPELINE's name + .queue beside it.")
@click.option("--check", is_flag=True, help="Only check the file and show the steps; enqueue nothing.")
@click.option("--enqueue-only", is_flag=True,
              help="Enqueue and return; run workers elsewhere with `igneous execute QUEUE`.")
@click.option("-p", "--parallel", default=None, type=int,
              help="Worker processes (overrides the global -p). 0 = all cores.")
@click.option("--lease-sec", default=60, show_default=True, type=float,
              help="Lease per task (renewed while it runs); after a crash, tasks return this soon.")
@click.option("--max-attempts", default=3, show_default=True, type=int,
              help="Failures before a task is dead-lettered (and later steps held back).")
@click.pass_context
def run(ctx, pipeline_file, queue, check, enqueue_only, parallel, lease_sec, max_attempts):
    """Run the steps of a pipeline file (TOML or YAML) in order through QUEUE.

    Each step (transfer, downsample, mesh-forge, mesh-merge, skeleton-forge,
    skeleton-merge, ...) is planned when the steps before it are done, and
    its tasks run as one stage. Running the same file again resumes it: what
    is finished is not redone. See docs/pipelines.md for the file format.
    """
    from igneous.pipeline import enqueue, load_pipeline

    pipeline = load_pipeline(pipeline_file)
    for i, s in enumerate(pipeline.steps, 1):
        after = f" (after {', '.join(s.after)})" if s.after else ""
        click.echo(f"  {i}. {s.id}: {s.kind}{after}", err=True)
    if check:
        click.echo(f"{pipeline_file}: {len(pipeline.steps)} steps, OK.", err=True)
        return
    queue = queue or str(Path(pipeline_file).with_suffix(".queue"))
    new, first = enqueue(pipeline, queue)
    if new:
        click.echo(f"Enqueued {len(pipeline.steps)} steps into {queue} (stages from {first}).",
                   err=True)
    else:
        click.echo(f"{queue} already holds this pipeline: resuming it.", err=True)
    if enqueue_only:
        click.echo(f"Run workers with: igneous execute {queue}", err=True)
        return

    from igneous.submit import drain, fail_if_dead

    n = parallel_count(parallel) if parallel is not None else ctx.obj["parallel"]
    drained = drain(queue, parallel=n, lease_sec=lease_sec, max_attempts=max_attempts)
    click.echo(f"Executed {drained.result.executed} tasks.", err=True)
    fail_if_dead(drained, queue, rerun=f"igneous run {pipeline_file} --queue {queue}")
    click.echo("Pipeline done.", err=True)
