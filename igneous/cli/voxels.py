"""``igneous image voxels count | sum``: per-label voxel counts of a whole layer."""

from __future__ import annotations

import click

from igneous.cli.options import enqueue_or_run, memory_option, queue_option


@click.group("voxels")
def voxels_group():
    """Per-label voxel counts, summed into SRC/KEY/stats/voxel_counts.im (a MapBuffer IntMap)."""


@voxels_group.command()
@click.argument("path")
@queue_option
@click.option("--mip", default=0, show_default=True, help="Mip to count.")
@click.option("--shape", default="256,256,256", show_default=True, help="Task shape in voxels.")
@click.option("--fill-missing", is_flag=True, help="Read missing chunks as background.")
@click.option("--agglomerate", is_flag=True, help="Graphene: count agglomerated labels.")
@click.option("--timestamp", default=None, type=int, help="Graphene: labels at this time.")
@memory_option
@click.pass_context
def count(ctx, path, queue, mip, shape, fill_missing, agglomerate, timestamp, memory):
    """Count each label's voxels per block (then run `voxels sum`)."""
    from igneous.layers import parse_triple
    from igneous.task_creation.voxels import create_voxel_counting_tasks

    plan = create_voxel_counting_tasks(path, mip, fill_missing=fill_missing,
                                       agglomerate=agglomerate, timestamp=timestamp,
                                       shape=parse_triple(shape, "--shape"), memory_target=memory)
    enqueue_or_run(ctx, queue, [plan], what="voxel counting tasks")


@voxels_group.command("sum")
@click.argument("path")
@click.option("--mip", default=0, show_default=True, help="Mip that was counted.")
@click.option("--compress", default="zstd", show_default=True,
              type=click.Choice(["none", "gzip", "br", "zstd"]),
              help="Compression of the stored IntMap (none allows ranged remote reads).")
@click.option("-o", "--output", default=None, help="Also write the IntMap to this local file.")
def sum_(path, mip, compress, output):
    """Sum the per-block counts into one IntMap (runs here; no queue)."""
    import sys

    from igneous.task_creation.voxels import accumulate_voxel_counts

    n = accumulate_voxel_counts(path, mip, progress=sys.stderr.isatty(),
                                compress=None if compress == "none" else compress,
                                additional_output=output)
    click.echo(f"{n} labels.", err=True)
