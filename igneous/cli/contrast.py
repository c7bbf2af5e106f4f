"""``igneous image contrast histogram | equalize | clahe``."""

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


@click.group("contrast")
def contrast_group():
    """Contrast correction of uint8/uint16 images, slice by slice."""


@contrast_group.command()
@click.argument("path")
@queue_option
@click.option("--mip", default=0, show_default=True, help="Build histograms from this mip.")
@click.option("--coverage", default=0.01, show_default=True, type=float,
              help="Fraction of each slice to sample, in (0, 1].")
@fill_option
@region_options
@click.pass_context
def histogram(ctx, path, queue, mip, coverage, fill_missing, xrange, yrange, zrange, bounds_mip):
    """(1) Histogram every z-slice of PATH into PATH/levels/MIP/Z."""
    from igneous.layers import normalize_path
    from igneous.task_creation.contrast import create_luminance_levels_tasks

    path = normalize_path(path)
    plan = create_luminance_levels_tasks(path, coverage_factor=coverage, mip=mip,
                                         bounds=bounds_option_value(xrange, yrange, zrange, path, bounds_mip),
                                         bounds_mip=bounds_mip,
                                         fill_missing=fill_missing)
    enqueue_or_run(ctx, queue, [plan], what="histogram tasks")


@contrast_group.command()
@click.argument("src")
@click.argument("dest")
@queue_option
@click.option("--mip", default=0, show_default=True, help="Normalize this mip.")
@click.option("--shape", default=None, help="Task shape in voxels (a multiple of the chunk size).")
@click.option("--translate", default=None, help="Move the data by X,Y,Z voxels in DEST.")
@click.option("--clip-fraction", default=0.01, show_default=True, type=float,
              help="Fraction of each slice's histogram (black left out) to clip at each end, in [0, 0.5).")
@click.option("--minval", default=None, type=int, help="Use this as every slice's low end.")
@click.option("--maxval", default=None, type=int, help="Use this as every slice's high end.")
@fill_option
@compress_option
@region_options
@click.pass_context
def equalize(ctx, src, dest, queue, mip, shape, translate, clip_fraction, minval, maxval,
             fill_missing, compress, xrange, yrange, zrange, bounds_mip):
    """(2) Stretch each z-slice of SRC over the full value range into DEST."""
    from igneous.layers import normalize_path, parse_triple
    from igneous.task_creation.contrast import create_contrast_normalization_tasks

    src = normalize_path(src)
    plan = create_contrast_normalization_tasks(
        src, dest, shape=parse_triple(shape, "--shape"), mip=mip, clip_fraction=clip_fraction,
        fill_missing=fill_missing, translate=parse_triple(translate, "--translate") or (0, 0, 0),
        minval=minval, maxval=maxval, bounds=bounds_option_value(xrange, yrange, zrange, src, bounds_mip),
        bounds_mip=bounds_mip,
        compress=compress_value(compress),
    )
    enqueue_or_run(ctx, queue, [plan], what="contrast normalization tasks")


@contrast_group.command()
@click.argument("src")
@click.argument("dest")
@queue_option
@click.option("--mip", default=0, show_default=True, help="Apply CLAHE to this mip.")
@click.option("--shape", default=None,
              help="Task shape; only its z (slab depth) is used: tasks take whole xy slices.")
@click.option("--clip-limit", default=40.0, show_default=True, type=float,
              help="Histogram clip limit, relative to the mean bin count (0 = none).")
@click.option("--tile-grid-size", default="8,8", show_default=True,
              help="Tiles per slice in x,y.")
@fill_option
@compress_option
@region_options
@click.pass_context
def clahe(ctx, src, dest, queue, mip, shape, clip_limit, tile_grid_size, fill_missing, compress,
          xrange, yrange, zrange, bounds_mip):
    """Contrast Limited Adaptive Histogram Equalization of each z-slice into DEST."""
    from igneous.errors import UserError
    from igneous.layers import normalize_path, parse_triple
    from igneous.task_creation.contrast import create_clahe_tasks

    try:
        grid = tuple(int(v) for v in tile_grid_size.split(","))
    except ValueError:
        raise UserError(f"--tile-grid-size must be two integers like 8,8, not {tile_grid_size!r}") from None
    src = normalize_path(src)
    plan = create_clahe_tasks(src, dest, shape=parse_triple(shape, "--shape"), mip=mip,
                              clip_limit=clip_limit, tile_grid_size=grid,
                              fill_missing=fill_missing,
                              bounds=bounds_option_value(xrange, yrange, zrange, src, bounds_mip),
                              bounds_mip=bounds_mip,
                              compress=compress_value(compress))
    enqueue_or_run(ctx, queue, [plan], what="CLAHE tasks")
