"""``igneous execute QUEUE``: run workers against a queue."""

from __future__ import annotations

import sys

import click

from igneous.cli.options import parallel_count


@click.command()
@click.argument("queue")
@click.option("-p", "--parallel", default=None, type=int,
              help="Worker processes (overrides the global -p). 0 = all cores.")
@click.option("-x", "--exit-on-empty", is_flag=True, help="Exit once nothing is pending or leased.")
@click.option("--lease-sec", default=600, show_default=True, type=float,
              help="Seconds a task is leased for; renewed in the background while it runs.")
@click.option("--min-sec", default=-1.0, show_default=True, type=float,
              help="Run for at least this many seconds, then quit after the current task. "
              "0 = run at most one task; -1 = forever.")
@click.option("-n", "--num-tasks", default=None, type=int, help="Stop after executing this many tasks.")
@click.option("--max-attempts", default=3, show_default=True, type=int,
              help="Failures before a task is moved to the dead-letter list.")
@click.option("--task-timeout", default=None, type=float,
              help="Seconds one task may run; a task past it fails (and is retried, then "
              "dead-lettered) instead of holding its worker forever. Default: no limit.")
@click.option("--aws-region", default=None, envvar="AWS_DEFAULT_REGION",
              help="Region of an sqs:// queue (default: $AWS_DEFAULT_REGION).")
@click.option("-q", "--quiet", is_flag=True, help="No progress bar or task messages.")
@click.option("--tally/--no-tally", default=True, hidden=False,
              help="Accepted for compatibility with the reference CLI: every queue here always "
              "counts completed tasks (`igneous queue status`).")
@click.pass_context
def execute(ctx, queue, parallel, exit_on_empty, lease_sec, min_sec, num_tasks, max_attempts,
            task_timeout, aws_region, quiet, tally):
    """Lease and run tasks from QUEUE (a directory, fq://DIR, sqs://NAME or postgresql://...).

    Failed tasks are retried up to --max-attempts times, then dead-lettered
    (see `igneous queue status`). A task that kills its worker process (the
    out-of-memory killer, a crash in a library) counts as a failed attempt
    too, and a new worker process takes its place. Ctrl-C or SIGTERM finishes the current task
    and exits; a second one abandons it (it is released back to the queue).
    """
    from igneous.supervisor import run_workers
    from igneous.worker import WorkerOptions

    if max_attempts < 1:
        raise click.BadParameter("must be at least 1", param_hint="--max-attempts")
    if lease_sec <= 0:
        raise click.BadParameter("must be positive", param_hint="--lease-sec")
    n = parallel_count(parallel) if parallel is not None else ctx.obj["parallel"]
    opts = WorkerOptions(
        lease_sec=lease_sec, min_sec=min_sec, num_tasks=num_tasks, exit_on_empty=exit_on_empty,
        max_attempts=max_attempts, quiet=quiet, region=aws_region, task_timeout=task_timeout,
    )
    result = run_workers(queue, opts, parallel=n)
    if not quiet:
        msg = f"Executed {result.executed} tasks"
        if result.failed:
            msg += f"; {result.failed} failed attempts, {result.dead} dead-lettered"
        click.echo(msg + ".", err=True)
    sys.stderr.flush()
    if result.interrupted:
        sys.exit(130)
