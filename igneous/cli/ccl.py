"""``igneous image ccl ...``: whole-volume 6-connected components, step by step or ``auto``."""

from __future__ import annotations

import click

from igneous.cli.options import compress_value, enqueue_or_run, memory_option, queue_option


def _shape(value: str | None):
    from igneous.layers import parse_triple

    return parse_triple(value, "--shape")


def _number(value: str | None, name: str):
    """A threshold: int when it reads as one (exact for wide integers), else float."""
    if value is None:
        return None
    from igneous.errors import UserError

    for cast in (int, float):
        try:
            return cast(value)
        except ValueError:
            pass
    raise UserError(f"{name} must be a number, not {value!r}")


def threshold_options(later: bool):
    """--shape/--threshold-*/--dust/--fill-missing; later steps default to the stored values."""
    default = "the value used by `faces`" if later else None

    def wrap(f):
        opts = [
            click.option("--mip", default=0, show_default=True, help="Mip to label."),
            click.option("--shape", default=None if later else "512,512,512",
                         show_default=not later,
                         help="Task shape in voxels" + (f" (default: {default})." if later else ".")),
            click.option("--threshold-gte", default=None,
                         help="Image layers: foreground is image >= this value."),
            click.option("--threshold-lte", default=None,
                         help="Image layers: foreground is image <= this value."),
            click.option("--dust", default=None if later else 0, type=int, show_default=not later,
                         help="Drop objects smaller than this many voxels (whole objects, "
                         "across blocks)."),
            click.option("--fill-missing", is_flag=True, help="Read missing chunks as background."),
        ]
        for opt in reversed(opts):
            f = opt(f)
        return f

    return wrap


def _given(shape, threshold_gte, threshold_lte, dust) -> dict:
    return dict(shape=_shape(shape), threshold_gte=_number(threshold_gte, "--threshold-gte"),
                threshold_lte=_number(threshold_lte, "--threshold-lte"), dust_threshold=dust)


def output_options(f):
    opts = [
        click.option("--chunk-size", default=None,
                     help="Chunk size of DEST, e.g. 128,128,64 (default: the source's)."),
        click.option("--encoding", default="compresso", show_default=True,
                     help="DEST encoding: compresso, compressed_segmentation (cseg), crackle, raw."),
        click.option("--compress", default="gzip", show_default=True,
                     type=click.Choice(["none", "gzip", "br"]), help="Compression of chunk files."),
    ]
    for opt in reversed(opts):
        f = opt(f)
    return f


def _dest(chunk_size, encoding, compress) -> dict:
    from igneous.layers import parse_triple

    return dict(chunk_size=parse_triple(chunk_size, "--chunk-size"), encoding=encoding,
                compress=compress_value(compress))


@click.group("ccl")
def ccl_group():
    """6-connected components of a whole segmentation (or thresholded image).

    Steps, in order, each with the same --shape, thresholds and --dust (later
    steps take the values stored by `faces`): faces, links, calc-labels,
    relabel, clean. `auto` queues them all as ordered stages. Scratch files
    live in SRC/KEY/ccl/.
    """


@ccl_group.command()
@click.argument("src")
@queue_option
@threshold_options(later=False)
@memory_option
@click.pass_context
def faces(ctx, src, queue, mip, shape, threshold_gte, threshold_lte, dust, fill_missing, memory):
    """(1) Label each block and store its faces."""
    from igneous.task_creation.ccl import create_ccl_face_tasks

    g = _given(shape, threshold_gte, threshold_lte, dust)
    plan = create_ccl_face_tasks(src, mip, g["shape"], g["threshold_gte"], g["threshold_lte"],
                                 fill_missing, g["dust_threshold"], memory)
    enqueue_or_run(ctx, queue, [plan], what="ccl faces tasks")


@ccl_group.command()
@click.argument("src")
@queue_option
@threshold_options(later=True)
@click.pass_context
def links(ctx, src, queue, mip, shape, threshold_gte, threshold_lte, dust, fill_missing):
    """(2) Find which block components touch across block faces."""
    from igneous.task_creation.ccl import create_ccl_equivalence_tasks

    plan = create_ccl_equivalence_tasks(src, mip, fill_missing=fill_missing,
                                        **_given(shape, threshold_gte, threshold_lte, dust))
    enqueue_or_run(ctx, queue, [plan], what="ccl links tasks")


@ccl_group.command("calc-labels")
@click.argument("src")
@click.option("--mip", default=0, show_default=True, help="Mip being labeled.")
@click.option("--shape", default=None, help="Task shape (default: the value used by `faces`).")
def calc_labels(src, mip, shape):
    """(3) Global union-find and consecutive ids, computed here (no queue)."""
    import sys

    from igneous.tasks.ccl import create_relabeling

    n = create_relabeling(src, mip, _shape(shape), progress=sys.stderr.isatty())
    click.echo(f"{n} objects.", err=True)


@ccl_group.command()
@click.argument("src")
@click.argument("dest")
@queue_option
@threshold_options(later=True)
@output_options
@click.pass_context
def relabel(ctx, src, dest, queue, mip, shape, threshold_gte, threshold_lte, dust, fill_missing,
            chunk_size, encoding, compress):
    """(4) Write the final labels (1..N, consecutive) into the new layer DEST."""
    from igneous.task_creation.ccl import create_ccl_relabel_tasks

    plan = create_ccl_relabel_tasks(src, dest, mip, fill_missing=fill_missing,
                                    **_dest(chunk_size, encoding, compress),
                                    **_given(shape, threshold_gte, threshold_lte, dust))
    enqueue_or_run(ctx, queue, [plan], what="ccl relabel tasks")


@ccl_group.command()
@click.argument("src")
@click.option("--mip", default=0, show_default=True, help="Mip that was labeled.")
def clean(src, mip):
    """(last) Delete the scratch files of a CCL run."""
    from igneous.tasks.ccl import clean_intermediate_files

    click.echo(f"Deleted {clean_intermediate_files(src, mip)} files.", err=True)


@ccl_group.command()
@click.argument("src")
@click.argument("dest")
@queue_option
@threshold_options(later=False)
@output_options
@click.option("--clean/--no-clean", default=True, show_default=True,
              help="Delete the scratch files at the end.")
@click.option("--execute/--no-execute", "run", default=True, show_default=True,
              help="With --queue: also run -p workers on it until it is empty.")
@memory_option
@click.pass_context
def auto(ctx, src, dest, queue, mip, shape, threshold_gte, threshold_lte, dust, fill_missing,
         chunk_size, encoding, compress, clean, run, memory):
    """All steps in order as queued stages (or run now with -p when no --queue)."""
    from igneous.task_creation.ccl import plan_ccl_auto

    g = _given(shape, threshold_gte, threshold_lte, dust)
    stages = plan_ccl_auto(src, dest, mip, g["shape"], threshold_gte=g["threshold_gte"],
                           threshold_lte=g["threshold_lte"], fill_missing=fill_missing,
                           dust_threshold=g["dust_threshold"], clean=clean, memory_target=memory,
                           **_dest(chunk_size, encoding, compress))
    enqueue_or_run(ctx, queue, stages, what="ccl tasks")
    if queue and run:
        from igneous.submit import drain, fail_if_dead

        fail_if_dead(drain(queue, parallel=ctx.obj["parallel"]), queue,
                     rerun=f"igneous execute {queue}")
