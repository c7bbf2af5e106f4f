"""``igneous image ...``: create, downsample, transfer and delete image layers."""

from __future__ import annotations

import click

from igneous.cli.options import (
    bounds_option_value,
    compress_option,
    compress_value,
    enqueue_or_run,
    fill_option,
    memory_option,
    queue_option,
    region_options,
)


def write_options(f):
    """Options shared by everything that writes image chunks."""
    opts = [
        fill_option,
        click.option("--encoding", default=None,
                     help="Encoding of new scales: raw, jpeg, png, compressed_segmentation, "
                     "compresso, crackle, fpzip, ... (default: the source's)."),
        click.option("--encoding-level", default=None, type=int,
                     help="jpeg/jxl quality, png level or fpzip precision."),
        compress_option,
        click.option("--compress-level", default=None, type=click.IntRange(1, 11),
                     help="gzip 1 (fast) .. 9 (small), br up to 11. Default: 6 for segmentation, 1 "
                     "for images (their voxels barely compress; 6 costs 1.75x the CPU for ~2% "
                     "smaller files). Unsharded scales only."),
        click.option("--delete-bg", is_flag=True,
                     help="Delete instead of writing chunks that are all background."),
        click.option("--bg-color", default=0, show_default=True, type=int,
                     help="The background value for --delete-bg."),
        click.option("--sparse", is_flag=True,
                     help="Segmentation: don't let background win the mode (sparse labels)."),
        click.option("--method", "--downsample-method", "method", default="auto", show_default=True,
                     type=click.Choice(["auto", "avg", "mode", "min", "max", "striding"]),
                     help="Pooling: auto = avg for images, mode for segmentation."),
        click.option("--volumetric", is_flag=True, help="Downsample 2x2x2 instead of 2x2x1."),
        click.option("--factor", default=None, help="Any downsample factor, e.g. 2,2,2 (overrides --volumetric)."),
        memory_option,
        click.option("--agglomerate", is_flag=True, help="Graphene: read agglomerated labels."),
        click.option("--timestamp", default=None, type=int, help="Graphene: read labels at this time."),
    ]
    for opt in reversed(opts):
        f = opt(f)
    return f


def _factor(volumetric: bool, factor: str | None):
    from igneous.layers import parse_triple

    if factor:
        return parse_triple(factor, "--factor")
    return (2, 2, 2) if volumetric else (2, 2, 1)


def _level(value: int | None) -> dict:
    """compress_level for the unsharded planners (their default when not given)."""
    return {} if value is None else {"compress_level": value}


@click.group("image")
def image_group():
    """Operations on image and segmentation layers."""


@image_group.command()
@click.argument("layer")
@queue_option
@click.option("--mip", default=0, show_default=True, help="Mip to downsample from; -1 = the top mip.")
@click.option("--num-mips", default=None, type=int,
              help="How many mips to add. Default: as many as fit --memory in one pass.")
@click.option("--chunk-size", default=None, help="Chunk size of the new mips, e.g. 128,128,64.")
@click.option("--preserve-chunk-size/--shrink-chunk-size", default=True, show_default=True,
              help="New mips keep the source chunk size, or halve it with each mip.")
@click.option("--sharded", is_flag=True, help="Write sharded scales.")
@region_options
@write_options
@click.pass_context
def downsample(ctx, layer, queue, mip, num_mips, chunk_size, preserve_chunk_size, sharded,
               xrange, yrange, zrange, bounds_mip, fill_missing, encoding, encoding_level, compress,
               compress_level, delete_bg, bg_color, sparse, method, volumetric, factor, memory,
               agglomerate, timestamp):
    """Add downsampled mips to LAYER (avg for images, mode for segmentation).

    When more mips are asked for than one task can make (memory, or an odd
    voxel_offset), the work is split into passes queued as ordered stages.
    """
    from igneous.layers import LayerInfo, normalize_path, parse_triple
    from igneous.task_creation.image import plan_downsample

    layer = normalize_path(layer)
    common = dict(
        factor=_factor(volumetric, factor), chunk_size=parse_triple(chunk_size, "--chunk-size"),
        sparse=sparse, bounds=bounds_option_value(xrange, yrange, zrange, layer, bounds_mip),
        bounds_mip=bounds_mip, encoding=encoding,
        delete_black_uploads=delete_bg, background_color=bg_color, compress=compress_value(compress),
        fill_missing=fill_missing, method=method, memory_target=memory, agglomerate=agglomerate,
        timestamp=timestamp,
    )
    # an OME-Zarr's new levels are sharded like its base level (docs/omezarr.md)
    if sharded and "zarr" not in LayerInfo(layer).info:
        from igneous.task_creation.image_shards import plan_shard_downsample

        passes = plan_shard_downsample(layer, mip, num_mips or 1, **common)
    else:
        passes = plan_downsample(layer, mip, num_mips, preserve_chunk_size=preserve_chunk_size,
                                 encoding_level=encoding_level, **_level(compress_level), **common)
    enqueue_or_run(ctx, queue, passes, what="downsample tasks")


@image_group.command()
@click.argument("src")
@click.argument("dest")
@queue_option
@click.option("--mip", default=0, show_default=True, help="Mip of the source to copy.")
@click.option("--chunk-size", default=None, help="Destination chunk size, e.g. 64,64,64.")
@click.option("--shape", default=None, help="Task shape in voxels (a multiple of the chunk size).")
@click.option("--translate", default=None, help="Move the data by this many voxels, e.g. 0,0,-100.")
@click.option("--dest-voxel-offset", default=None, help="Place the data at this voxel offset.")
@click.option("--downsample/--skip-downsample", default=True, show_default=True,
              help="Also write downsamples in the same pass.")
@click.option("--max-mips", default=5, show_default=True, help="Most downsamples to write.")
@click.option("--preserve-chunk-size/--shrink-chunk-size", default=True, show_default=True)
@click.option("--cutout", is_flag=True, help="Shrink the destination bounds to the --x/y/zrange region.")
@click.option("--clean-info", is_flag=True, help="Drop mesh and skeleton fields from the destination info.")
@click.option("--truncate-scales/--no-truncate-scales", default=True, show_default=True,
              help="Drop source mips above --mip from the destination info.")
@click.option("--overwrite-info", is_flag=True,
              help="Replace an existing destination info file that does not match.")
@click.option("--sharded", is_flag=True, help="Write a sharded destination.")
@click.option("--shard-shape", default=None,
              help="OME-Zarr destination: shard shape in voxels (whole chunks), e.g. 256,256,256.")
@click.option("--use-https-src", is_flag=True,
              help="Read a public gs:// or s3:// SRC anonymously over https (no credentials).")
@click.option("--no-src-update", is_flag=True,
              help="Accepted for compatibility with the reference CLI: SRC is never modified here.")
@region_options
@write_options
@click.pass_context
def xfer(ctx, src, dest, queue, mip, chunk_size, shape, translate, dest_voxel_offset, downsample,
         max_mips, preserve_chunk_size, cutout, clean_info, truncate_scales, overwrite_info, sharded,
         shard_shape, use_https_src, no_src_update,
         xrange, yrange, zrange, bounds_mip, fill_missing, encoding, encoding_level, compress, compress_level,
         delete_bg, bg_color, sparse, method, volumetric, factor, memory, agglomerate, timestamp):
    """Copy SRC to DEST: rechunk, re-encode, translate, cut out; downsamples too."""
    from igneous.formats.omezarr import requested_version
    from igneous.layers import https_path, normalize_path, parse_triple
    from igneous.task_creation.image import create_transfer_tasks

    src = https_path(src) if use_https_src else normalize_path(src)
    region = bounds_option_value(xrange, yrange, zrange, src, bounds_mip)
    zarr_dest = requested_version(dest) is not None  # OME-Zarr shards its arrays itself
    if sharded and not zarr_dest:
        from igneous.task_creation.image_shards import (
            create_image_shard_transfer_tasks,
            plan_shard_downsample,
        )

        plan = create_image_shard_transfer_tasks(
            src, dest, mip=mip, chunk_size=parse_triple(chunk_size, "--chunk-size"),
            encoding=encoding, bounds=region, bounds_mip=bounds_mip,
            fill_missing=fill_missing,
            translate=parse_triple(translate, "--translate") or (0, 0, 0),
            dest_voxel_offset=parse_triple(dest_voxel_offset, "--dest-voxel-offset"),
            agglomerate=agglomerate, timestamp=timestamp, memory_target=memory,
            clean_info=clean_info, truncate_scales=truncate_scales, cutout=cutout,
            encoding_level=encoding_level, delete_black_uploads=delete_bg,
            background_color=bg_color, compress=compress_value(compress), overwrite_info=overwrite_info,
        )
        stages = [plan]
        if downsample and max_mips > 0:  # sharded mips, one per later stage
            stages += plan_shard_downsample(
                dest, mip, max_mips, factor=_factor(volumetric, factor), sparse=sparse,
                memory_target=memory, method=method, delete_black_uploads=delete_bg,
                background_color=bg_color, compress=compress_value(compress),
            )
        enqueue_or_run(ctx, queue, stages, what="transfer tasks")
        return
    plan = create_transfer_tasks(
        src, dest, chunk_size=parse_triple(chunk_size, "--chunk-size"),
        shape=parse_triple(shape, "--shape"), fill_missing=fill_missing,
        translate=parse_triple(translate, "--translate"), bounds=region, bounds_mip=bounds_mip,
        mip=mip,
        preserve_chunk_size=preserve_chunk_size, encoding=encoding,
        skip_downsamples=not downsample, delete_black_uploads=delete_bg, background_color=bg_color,
        agglomerate=agglomerate, timestamp=timestamp, compress=compress_value(compress),
        factor=_factor(volumetric, factor), sparse=sparse, **_level(compress_level),
        dest_voxel_offset=parse_triple(dest_voxel_offset, "--dest-voxel-offset"),
        memory_target=memory, max_mips=max_mips, clean_info=clean_info,
        truncate_scales=truncate_scales, cutout=cutout, encoding_level=encoding_level,
        method=method, overwrite_info=overwrite_info,
        sharded=sharded, shard_shape=parse_triple(shard_shape, "--shard-shape"),
    )
    enqueue_or_run(ctx, queue, [plan], what="transfer tasks")


@image_group.command()
@click.argument("layer")
@queue_option
@click.option("--mip", default=0, show_default=True, help="First mip to delete.")
@click.option("--num-mips", default=5, show_default=True, help="Also delete this many mips above it.")
@click.option("--shape", default=None, help="Task shape (a multiple of the chunk size).")
@region_options
@click.pass_context
def rm(ctx, layer, queue, mip, num_mips, shape, xrange, yrange, zrange, bounds_mip):
    """Delete the chunks of LAYER (mips --mip .. --mip + --num-mips), optionally in a region."""
    from igneous.layers import normalize_path, parse_triple
    from igneous.task_creation.image import create_deletion_tasks

    layer = normalize_path(layer)
    plan = create_deletion_tasks(layer, mip=mip, num_mips=num_mips,
                                 shape=parse_triple(shape, "--shape"),
                                 bounds=bounds_option_value(xrange, yrange, zrange, layer, bounds_mip),
                                 bounds_mip=bounds_mip)
    enqueue_or_run(ctx, queue, [plan], what="deletion tasks")


@image_group.command()
@click.argument("src", type=click.Path(exists=True, dir_okay=False))
@click.argument("dest")
@click.option("--resolution", default="1,1,1", show_default=True, help="Voxel size in nm, x,y,z.")
@click.option("--offset", default="0,0,0", show_default=True, help="Voxel offset, x,y,z.")
@click.option("--chunk-size", default="64,64,64", show_default=True)
@click.option("--layer-type", default="auto", show_default=True,
              type=click.Choice(["auto", "image", "segmentation"]),
              help="auto: segmentation for uint32/uint64 (and .ckl), image otherwise.")
@click.option("--seg", is_flag=True, help="Make a segmentation layer (same as --layer-type segmentation).")
@click.option("--encoding", default="raw", show_default=True)
@click.option("--encoding-level", default=None, type=int,
              help="jpeg/jxl quality, png level or fpzip precision.")
@click.option("--compress", default="gzip", show_default=True, type=click.Choice(["none", "gzip", "br"]))
@click.option("--key", default=None, help="Array name inside an .npz file (default: the first).")
def create(src, dest, resolution, offset, chunk_size, layer_type, seg, encoding, encoding_level,
           compress, key):
    """Make a Precomputed layer DEST from a .npy, .npz or .ckl (crackle) array.

    Axes are read as x, y, z (and channel last, if present).
    """
    from igneous.layers import parse_triple
    from igneous.sample import create_layer, load_array

    data = load_array(src, key=key)
    path = create_layer(
        dest, data, resolution=parse_triple(resolution, "--resolution", float),
        offset=parse_triple(offset, "--offset"), chunk_size=parse_triple(chunk_size, "--chunk-size"),
        layer_type="segmentation" if seg else (None if layer_type == "auto" else layer_type),
        encoding=encoding, compress=compress_value(compress), encoding_level=encoding_level,
    )
    click.echo(f"Wrote {path} ({'x'.join(map(str, data.shape[:3]))} {data.dtype}).")
