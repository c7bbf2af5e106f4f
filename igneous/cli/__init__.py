"""The ``igneous`` command line. Thin: parse, call a planner, enqueue or run.

Every command module imports its heavy dependencies inside the command body so
``igneous --help`` answers at once.
"""

from __future__ import annotations

import sys

import click

from igneous import __version__
from igneous.cli.options import parallel_count
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


def _register() -> None:
    """Add every capability's commands (igneous.capabilities) under their parents."""
    import importlib

    from igneous.capabilities import CAPABILITIES

    for cap in CAPABILITIES:
        for where, parent in cap.commands:
            module, attr = where.split(":")
            group = main
            for name in parent.split():
                group = group.commands[name]  # type: ignore[assignment]
            group.add_command(getattr(importlib.import_module(module), attr))


_register()


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
