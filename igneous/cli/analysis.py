"""``igneous image roi | reorder | quantize | remap``."""

from __future__ import annotations

import click

from igneous.cli.options import (
    bounds_option_value,
    compress_option,
    compress_value,
    enqueue_or_run,
    fill_option,
    queue_option,
    region_options,
)


@click.command()
@click.argument("src")
@click.option("--suppress-faint", default=0, show_default=True, type=int,
              help="Voxels below this value count as background.")
@click.option("--dust", default=10, show_default=True, type=int,
              help="Ignore tissue specks smaller than this many voxels (at the analysed mip).")
@click.option("--progress", is_flag=True, help="Show download progress.")
@click.option("--max-axial-len", default=512, show_default=True, type=int,
              help="Pool the lowest mip in memory until x and y are at most this long.")
@click.option("--z-step", default=None, type=int,
              help="Find boxes per bundle of this many z-slices (mip 0). Default: all at once.")
def roi(src, suppress_faint, dust, progress, max_axial_len, z_step):
    """Find tissue bounding boxes on the lowest mip; store them in SRC's info as rois."""
    from igneous.task_creation.roi import compute_rois

    compute_rois(src, progress=progress, suppress_faint_voxels=suppress_faint,
                 dust_threshold=dust, max_axial_length=max_axial_len, z_step=z_step)


@click.command()
@click.argument("src")
@click.argument("dest")
@queue_option
@click.option("--mip", default=0, show_default=True, help="Reorder this mip (z at this mip).")
@click.option("--mapping-file", required=True,
              help='JSON object of moved slices, {"SRC_Z": DEST_Z, ...}; others stay put.')
@click.option("--shape", default=None, help="Task shape in voxels (a multiple of the chunk size).")
@click.option("--encoding", default=None, help="Encoding of DEST (default: the source's).")
@click.option("--delete-bg", is_flag=True, help="Delete instead of writing all-background chunks.")
@click.option("--bg-color", default=0, show_default=True, type=int, help="Background for --delete-bg.")
@fill_option
@compress_option
@click.pass_context
def reorder(ctx, src, dest, queue, mip, mapping_file, shape, encoding, delete_bg, bg_color,
            fill_missing, compress):
    """Copy SRC to DEST with z-slices moved as --mapping-file says.

    The mapping must be a permutation: a slice that would be dropped or
    written twice is named and nothing is written.
    """
    from igneous.layers import parse_triple
    from igneous.task_creation.reorder import create_reordering_tasks

    plan = create_reordering_tasks(src, dest, mapping_file, mip=mip,
                                   shape=parse_triple(shape, "--shape"), fill_missing=fill_missing,
                                   encoding=encoding, compress=compress_value(compress),
                                   delete_black_uploads=delete_bg, background_color=bg_color)
    enqueue_or_run(ctx, queue, [plan], what="reorder tasks")


@click.command()
@click.argument("src")
@click.argument("dest")
@queue_option
@click.option("--mip", default=0, show_default=True, help="Quantize this mip.")
@click.option("--channel", default=0, show_default=True, help="Source channel to keep.")
@click.option("--range", "value_range", default=None,
              help="MIN,MAX mapped onto 0..255 (default 0,1 for floats, the dtype range for ints).")
@click.option("--shape", default=None, help="Task shape in voxels (a multiple of the chunk size).")
@click.option("--chunk-size", default=None, help="Chunk size of DEST (default: the source's).")
@click.option("--encoding", default="raw", show_default=True, help="Encoding of DEST.")
@fill_option
@compress_option
@region_options
@click.pass_context
def quantize(ctx, src, dest, queue, mip, channel, value_range, shape, chunk_size, encoding,
             fill_missing, compress, xrange, yrange, zrange, bounds_mip):
    """Rescale a float (affinity, probability) or wide-integer image into uint8 DEST."""
    from igneous.errors import UserError
    from igneous.layers import normalize_path, parse_triple
    from igneous.task_creation.quantize import create_quantize_tasks

    src = normalize_path(src)
    rng = None
    if value_range:
        try:
            rng = tuple(float(v) for v in value_range.split(","))
        except ValueError:
            raise UserError(f"--range must be MIN,MAX like 0,1, not {value_range!r}") from None
    plan = create_quantize_tasks(src, dest, shape=parse_triple(shape, "--shape"), mip=mip,
                                 fill_missing=fill_missing,
                                 chunk_size=parse_triple(chunk_size, "--chunk-size"),
                                 encoding=encoding, bounds=bounds_option_value(xrange, yrange, zrange, src, bounds_mip),
                                 bounds_mip=bounds_mip,
                                 channel=channel, value_range=rng, compress=compress_value(compress))
    enqueue_or_run(ctx, queue, [plan], what="quantize tasks")


@click.command()
@click.argument("src")
@click.argument("dest")
@queue_option
@click.option("--mapping-file", required=True,
              help='Label mapping: JSON {"FROM": TO, ...} or .npy of (from, to) pairs.')
@click.option("--keep-missing/--zero-missing", default=True, show_default=True,
              help="Labels absent from the mapping stay as they are, or become 0.")
@click.option("--mip", default=0, show_default=True, help="Remap this mip.")
@click.option("--shape", default=None, help="Task shape in voxels (a multiple of the chunk size).")
@click.option("--encoding", default=None, help="Encoding of DEST (default: the source's).")
@fill_option
@compress_option
@region_options
@click.pass_context
def remap(ctx, src, dest, queue, mapping_file, keep_missing, mip, shape, encoding, fill_missing,
          compress, xrange, yrange, zrange, bounds_mip):
    """Relabel segmentation SRC into DEST with a label mapping (e.g. agglomeration)."""
    from igneous.layers import normalize_path, parse_triple
    from igneous.task_creation.remap import create_remap_tasks

    src = normalize_path(src)
    plan = create_remap_tasks(src, dest, mapping_file, mip=mip,
                              shape=parse_triple(shape, "--shape"),
                              preserve_missing_labels=keep_missing, fill_missing=fill_missing,
                              encoding=encoding, bounds=bounds_option_value(xrange, yrange, zrange, src, bounds_mip),
                              bounds_mip=bounds_mip,
                              compress=compress_value(compress))
    enqueue_or_run(ctx, queue, [plan], what="remap tasks")


COMMANDS = (roi, reorder, quantize, remap)
