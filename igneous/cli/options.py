"""Click options and helpers shared by the command groups (one definition each)."""

from __future__ import annotations

import os
from typing import Any

import click


def parallel_count(value: int) -> int:
    """``-p 0`` means every core."""
    if value < 0:
        raise click.BadParameter("must be 0 (all cores) or a positive count",
                                 param_hint="-p/--parallel")
    return value or (os.cpu_count() or 1)


def enqueue_or_run(ctx: click.Context, queue: str | None, stages: list[Any], *,
                   what: str = "tasks") -> None:
    """Submit planned stages to ``--queue``, or run them now across the global ``-p``."""
    from igneous.submit import submit

    submit(stages, queue, parallel=ctx.obj["parallel"], what=what)


class MemorySize(click.ParamType):
    """A byte count: 4e9, 3.5G, 512MiB."""

    name = "bytes"

    def convert(self, value, param, ctx):
        from igneous.errors import UserError
        from igneous.memory import parse_memory

        try:
            return parse_memory(value)
        except UserError as e:
            self.fail(str(e), param, ctx)


def memory_option(f):
    """--memory: bytes one task may use (planners size tasks to fit)."""
    from igneous.memory import default_memory_target

    target = default_memory_target()
    return click.option(
        "--memory", default=target, type=MemorySize(),
        help="Memory target per task (e.g. 4e9, 3.5G, 512MiB); task shapes are chosen to fit. "
        f"Default: IGNEOUS_MEMORY_TARGET or 1/4 of this machine's memory ({target / 1e9:.1f} GB).",
    )(f)


def _checked_queue(ctx, param, value):
    """Refuse a queue that cannot work before the planner writes anything."""
    from igneous.queues import check_queue_spec

    return check_queue_spec(value)


def queue_option(f):
    return click.option(
        "--queue", default=None, callback=_checked_queue,
        help="Queue to put tasks in (directory, fq://DIR, sqs://NAME, postgresql://...). "
        "Omit to run now with -p.",
    )(f)


def region_options(f):
    """--xrange/--yrange/--zrange: a region at --bounds-mip (default mip 0)."""
    f = click.option("--bounds-mip", default=0, show_default=True, type=int,
                     help="The mip --xrange/--yrange/--zrange are given at.")(f)
    for axis in ("z", "y", "x"):
        f = click.option(f"--{axis}range", default=None,
                         help=f"Only this {axis} range at --bounds-mip, e.g. 0,512 (end exclusive).")(f)
    return f


compress_option = click.option("--compress", default="gzip", show_default=True,
                               type=click.Choice(["none", "gzip", "br"]),
                               help="Compression of each chunk file.")
fill_option = click.option("--fill-missing", is_flag=True,
                           help="Read missing chunks as background.")


def bounds_option_value(xrange, yrange, zrange, layer_path: str, bounds_mip: int = 0):
    """A region from --x/y/zrange at ``bounds_mip``; missing axes take that mip's whole extent."""
    if not (xrange or yrange or zrange):
        return None
    from igneous.grid import scale_bounds
    from igneous.layers import load_layer, parse_range

    start, stop = scale_bounds(load_layer(layer_path, bounds_mip).info, bounds_mip)
    lo, hi = list(start), list(stop)
    for i, (name, value) in enumerate((("--xrange", xrange), ("--yrange", yrange), ("--zrange", zrange))):
        r = parse_range(value, name)
        if r:
            lo[i], hi[i] = r
    return lo, hi


def compress_value(value: str):
    """--compress none means uncompressed chunk files (False: CloudVolume's None means "default")."""
    return False if value == "none" else value
