"""The ``igneous`` command line. Thin: parse, call a planner, enqueue or run.

Every command module imports its heavy dependencies inside the command body so
``igneous --help`` answers at once.
"""

from __future__ import annotations

import os
import sys

import click

from igneous import __version__
from igneous.errors import UserError


class IgneousGroup(click.Group):
    """Turns user errors into one line on stderr instead of a traceback (exit 1),
    and option errors into one line too (exit 2), naming where to find help."""

    def invoke(self, ctx: click.Context):
        try:
            return super().invoke(ctx)
        except UserError as e:  # one line, whatever a library put in the message
            raise click.ClickException(" ".join(str(e).split())) from None
        except click.UsageError as e:
            where = e.ctx.command_path if e.ctx is not None else "igneous"
            one_line = click.ClickException(f"{e.format_message()} (see `{where} --help`)")
            one_line.exit_code = e.exit_code
            raise one_line from None


def parallel_count(value: int) -> int:
    """``-p 0`` means every core."""
    if value < 0:
        raise click.BadParameter("must be 0 (all cores) or a positive count",
                                 param_hint="-p/--parallel")
    return value or (os.cpu_count() or 1)


@click.group(cls=IgneousGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="igneous")
@click.option(
    "-p", "--parallel", default=1, show_default=True, type=int,
    help="Worker processes for execute, or for running tasks now when no --queue is given. "
    "0 = all cores.",
)
@click.pass_context
def main(ctx: click.Context, parallel: int) -> None:
    """Build and manage Neuroglancer Precomputed volumes.

    Planning commands (image downsample, image xfer, ...) put tasks into a
    queue given by --queue (a directory for the durable local queue, fq://DIR,
    sqs://NAME or postgresql://...); `igneous execute QUEUE` runs them. Without --queue the
    tasks run at once here, across -p processes.
    """
    ctx.ensure_object(dict)
    ctx.obj["parallel"] = parallel_count(parallel)


def enqueue_or_run(ctx: click.Context, queue: str | None, stages: list, *, what: str = "tasks") -> None:
    """Insert each stage of tasks into ``queue`` (stage barriers), or run them now."""
    if queue:
        from igneous.queues import open_queue

        q = open_queue(queue, create=True)
        if len(stages) > 1 and not q.supports_stages:
            raise UserError(
                f"{q.url} cannot hold several stages; give a local queue (a directory) "
                "or run the steps one at a time"
            )
        total = 0
        # new work goes after whatever is already queued: enqueueing "forge"
        # then "merge" before executing either runs them in that order
        base = q.next_stage()
        for i, tasks in enumerate(stages):
            total += q.insert(tasks, stage=base + i)
        click.echo(f"Inserted {total} {what} into {q.url}. Run: igneous execute {q.url}", err=True)
        q.close()
    else:
        from igneous.worker import run_local

        n = run_local(stages, parallel=ctx.obj["parallel"])
        click.echo(f"Executed {n} {what}.", err=True)


def _register() -> None:
    from igneous.cli import demo, design, execute, image, queue

    main.add_command(demo.demo)
    main.add_command(execute.execute)
    main.add_command(queue.queue_group)
    main.add_command(image.image_group)
    main.add_command(design.design_group)
    from igneous.cli import mesh

    main.add_command(mesh.mesh_group)
    from igneous.cli import ccl, voxels

    image.image_group.add_command(ccl.ccl_group)
    image.image_group.add_command(voxels.voxels_group)
    from igneous.cli import run

    main.add_command(run.run)
    from igneous.cli import skeleton

    main.add_command(skeleton.skeleton_group)
    from igneous.cli import view

    main.add_command(view.view)
    from igneous.cli import analysis, contrast

    image.image_group.add_command(contrast.contrast_group)
    for command in analysis.COMMANDS:
        image.image_group.add_command(command)


_register()


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
