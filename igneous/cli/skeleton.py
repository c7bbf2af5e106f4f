"""``igneous skeleton ...``: forge, merge, merge-sharded, rm, clean, xfer, convert, spatial-index."""

from __future__ import annotations

import click

from igneous.cli.options import enqueue_or_run, memory_option, queue_option


def _labels(value: str | None) -> list[int] | None:
    if not value:
        return None
    from igneous.errors import UserError

    try:
        return [int(x) for x in value.split(",") if x.strip()]
    except ValueError:
        raise UserError(f"--labels must be comma-separated integers, not {value!r}") from None


def merge_options(f):
    """Thresholds shared by merge and merge-sharded."""
    opts = [
        click.option("--min-cable-length", default=1000.0, show_default=True, type=float,
                     help="Drop skeleton pieces shorter than this physical length (nm)."),
        click.option("--max-cable-length", default=None, type=float,
                     help="Skip objects longer than this physical length. Default: no limit."),
        click.option("--tick-threshold", default=0.0, show_default=True, type=float,
                     help="Trim branches shorter than this physical length, smallest first."),
        click.option("--crop", default=0, show_default=True, type=int,
                     help="Trim this many voxels off every face of the volume."),
        click.option("--delete-fragments", is_flag=True,
                     help="Delete the forge fragments once merged."),
        click.option("--dir", "skel_dir", default=None,
                     help="Skeleton directory (default: the info's, or skeletons_mip_N)."),
    ]
    for opt in reversed(opts):
        f = opt(f)
    return f


@click.group("skeleton")
def skeleton_group():
    """Skeletonize a segmentation (kimimaro TEASAR) and manage the skeletons."""


@skeleton_group.command()
@click.argument("path")
@queue_option
@click.option("--mip", default=0, show_default=True, type=int, help="Skeletonize this mip.")
@click.option("--shape", default="256,256,256", show_default=True,
              help="Task shape in voxels (blocks overlap by one voxel).")
@click.option("--fill-missing", is_flag=True, help="Read missing chunks as background.")
@click.option("--fix-branching/--no-fix-branching", default=True, show_default=True,
              help="Better branches at forks, at some speed cost.")
@click.option("--fix-borders/--no-fix-borders", default=True, show_default=True,
              help="Make pieces meet at block seams (needed to merge several blocks).")
@click.option("--fix-avocados", is_flag=True, help="Join somata whose nucleus is a separate label.")
@click.option("--fill-holes", default=0, show_default=True, type=int,
              help="Fill holes in each label before skeletonizing (0: off, >0: on).")
@click.option("--dust-threshold", default=1000, show_default=True, type=int,
              help="Skip components below this many voxels that lie wholly inside one block "
              "(or labels below it in the whole volume, with --dust-global).")
@click.option("--dust-global/--dust-local", default=False, show_default=True,
              help="Apply --dust-threshold to whole-volume voxel counts (run `igneous image voxels "
              "count` and `sum` at this mip first).")
@click.option("--spatial-index/--skip-spatial-index", default=True, show_default=True,
              help="Write a spatial index (labels by bounding box).")
@click.option("--scale", default=4.0, show_default=True, type=float,
              help="TEASAR: invalidation radius = scale * boundary distance + const.")
@click.option("--const", default=10.0, show_default=True, type=float,
              help="TEASAR: constant added to the invalidation radius (nm).")
@click.option("--pdrf-scale", default=100000.0, show_default=True, type=float,
              help="TEASAR: penalty field scale.")
@click.option("--pdrf-exponent", default=4, show_default=True, type=int,
              help="TEASAR: penalty field exponent.")
@click.option("--soma-detect", default=1100.0, show_default=True, type=float,
              help="Boundary distance (nm) above which an object is a soma candidate.")
@click.option("--soma-accept", default=3500.0, show_default=True, type=float,
              help="Boundary distance (nm) above which a soma is accepted.")
@click.option("--soma-scale", default=1.0, show_default=True, type=float,
              help="Soma invalidation scale.")
@click.option("--soma-const", default=300.0, show_default=True, type=float,
              help="Soma invalidation constant (nm).")
@click.option("--max-paths", default=None, type=int, help="Stop an object after this many paths.")
@click.option("--sharded", is_flag=True,
              help="Intend a sharded merge (fragments are the same for both merges).")
@click.option("--labels", default=None, help="Skeletonize only these comma-separated labels.")
@click.option("--mask-labels", default=None, help="Erase these comma-separated labels first.")
@click.option("--cross-section", default=0, show_default=True, type=int,
              help="Compute cross-sectional areas with this smoothing window; 0 = off.")
@click.option("--dir", "skel_dir", default=None,
              help="Skeleton directory (default: the info's, or skeletons_mip_N).")
@memory_option
@click.pass_context
def forge(ctx, path, queue, mip, shape, fill_missing, fix_branching, fix_borders, fix_avocados,
          fill_holes, dust_threshold, dust_global, spatial_index, scale, const, pdrf_scale, pdrf_exponent,
          soma_detect, soma_accept, soma_scale, soma_const, max_paths, sharded, labels,
          mask_labels, cross_section, skel_dir, memory):
    """(1) Skeletonize PATH block by block into fragments.

    Then run `igneous skeleton merge` (or `merge-sharded`) to fuse them.
    """
    from igneous.layers import parse_triple
    from igneous.task_creation.skeleton import create_skeletonizing_tasks

    teasar = {"scale": scale, "const": const, "pdrf_scale": pdrf_scale,
              "pdrf_exponent": pdrf_exponent, "soma_detection_threshold": soma_detect,
              "soma_acceptance_threshold": soma_accept, "soma_invalidation_scale": soma_scale,
              "soma_invalidation_const": soma_const}
    if max_paths is not None:
        teasar["max_paths"] = max_paths
    plan = create_skeletonizing_tasks(
        path, mip, shape=parse_triple(shape, "--shape"), sharded=sharded,
        spatial_index=spatial_index, fill_missing=fill_missing, teasar_params=teasar,
        object_ids=_labels(labels), mask_ids=_labels(mask_labels), fix_branching=fix_branching,
        fix_borders=fix_borders, fix_avocados=fix_avocados, fill_holes=fill_holes > 0,
        dust_threshold=dust_threshold, cross_sectional_area=cross_section > 0,
        cross_sectional_area_smoothing_window=max(cross_section, 1), skel_dir=skel_dir,
        memory_target=memory, dust_global=dust_global,
    )
    enqueue_or_run(ctx, queue, [plan], what="skeleton forge tasks")


@skeleton_group.command()
@click.argument("path")
@queue_option
@merge_options
@click.option("--magnitude", default=2, show_default=True, type=int,
              help="Split the work into up to 10^magnitude tasks.")
@memory_option
@click.pass_context
def merge(ctx, path, queue, min_cable_length, max_cable_length, tick_threshold, crop,
          delete_fragments, skel_dir, magnitude, memory):
    """(2) Fuse the forge fragments into one skeleton file per label."""
    from igneous.task_creation.skeleton import create_unsharded_skeleton_merge_tasks

    plan = create_unsharded_skeleton_merge_tasks(
        path, crop=crop, magnitude=magnitude, dust_threshold=min_cable_length,
        tick_threshold=tick_threshold, delete_fragments=delete_fragments,
        max_cable_length=max_cable_length, skel_dir=skel_dir, memory_target=memory,
    )
    enqueue_or_run(ctx, queue, [plan], what="skeleton merge tasks")


@skeleton_group.command("merge-sharded")
@click.argument("path")
@queue_option
@merge_options
@click.option("--shard-index-bytes", default=2**13, show_default=True, type=int,
              help="Target size of each shard index.")
@click.option("--minishard-index-bytes", default=2**15, show_default=True, type=int,
              help="Target size of each minishard index.")
@click.option("--max-labels-per-shard", default=2000, show_default=True, type=int,
              help="At most this many labels per shard on average: bounds a shard task's "
              "memory (more shards).")
@click.option("--min-shards", default=1, show_default=True, type=int,
              help="At least this many shards (more parallel merge tasks).")
@click.option("--minishard-bits", default=None, type=int, help="Override the computed value.")
@click.option("--shard-bits", default=None, type=int, help="Override the computed value.")
@click.option("--preshift-bits", default=None, type=int, help="Override the computed value.")
@click.option("--minishard-index-encoding", default="gzip", show_default=True,
              type=click.Choice(["gzip", "raw"]))
@click.option("--data-encoding", default="gzip", show_default=True,
              type=click.Choice(["gzip", "raw"]))
@click.option("--spatial-index-db", default=None,
              help="Accepted for compatibility; labels come from the forge fragments.")
@memory_option
@click.pass_context
def merge_sharded(ctx, path, queue, min_cable_length, max_cable_length, tick_threshold, crop,
                  delete_fragments, skel_dir, shard_index_bytes, minishard_index_bytes,
                  max_labels_per_shard, min_shards, minishard_bits, shard_bits, preshift_bits,
                  minishard_index_encoding, data_encoding, spatial_index_db, memory):
    """(2) Fuse the forge fragments into neuroglancer_uint64_sharded_v1 shards.

    Two queue stages: fuse per label bucket, then write each shard.
    """
    from igneous.task_creation.skeleton import plan_sharded_skeleton_merge

    stages = plan_sharded_skeleton_merge(
        path, dust_threshold=min_cable_length, tick_threshold=tick_threshold,
        shard_index_bytes=shard_index_bytes, minishard_index_bytes=minishard_index_bytes,
        min_shards=min_shards, max_labels_per_shard=max_labels_per_shard,
        minishard_index_encoding=minishard_index_encoding, data_encoding=data_encoding,
        max_cable_length=max_cable_length, spatial_index_db=spatial_index_db,
        minishard_bits=minishard_bits, shard_bits=shard_bits, preshift_bits=preshift_bits,
        crop=crop, delete_fragments=delete_fragments, skel_dir=skel_dir, memory_target=memory,
    )
    enqueue_or_run(ctx, queue, stages, what="skeleton merge tasks")


@skeleton_group.command()
@click.argument("path")
@queue_option
@click.option("--magnitude", default=2, show_default=True, type=int,
              help="Split the work into 16^magnitude name-prefix tasks.")
@click.option("--dir", "skel_dir", default=None, help="Delete this directory instead of the info's.")
@click.pass_context
def rm(ctx, path, queue, magnitude, skel_dir):
    """Delete every skeleton file (and the info) of PATH's skeleton directory."""
    from igneous.task_creation.skeleton import create_skeleton_deletion_tasks

    plan = create_skeleton_deletion_tasks(path, magnitude, skel_dir=skel_dir)
    enqueue_or_run(ctx, queue, [plan], what="skeleton delete tasks")


@skeleton_group.command()
@click.argument("path")
@click.option("--dir", "skel_dir", default=None, help="Skeleton directory instead of the info's.")
def clean(path, skel_dir):
    """Delete the forge scratch files (.frags/) now."""
    from igneous.task_creation.skeleton import clean_fragments

    n = clean_fragments(path, skel_dir=skel_dir)
    click.echo(f"Deleted {n} scratch files.", err=True)


@skeleton_group.command()
@click.argument("src")
@click.argument("dest")
@queue_option
@click.option("--sharded", is_flag=True, help="Write the destination as sharded skeletons.")
@click.option("--dir", "skel_dir", default=None,
              help="Write into this directory of DEST instead of the source's directory name.")
@click.option("--magnitude", default=2, show_default=True, type=int,
              help="Split an unsharded copy into 16^magnitude name-prefix tasks.")
@click.pass_context
def xfer(ctx, src, dest, queue, sharded, skel_dir, magnitude):
    """Copy the skeletons of SRC to DEST (optionally converting to sharded)."""
    from igneous.task_creation.skeleton import create_skeleton_transfer_tasks

    plan = create_skeleton_transfer_tasks(src, dest, sharded=sharded, skel_dir=skel_dir,
                                          magnitude=magnitude)
    enqueue_or_run(ctx, queue, [plan], what="skeleton transfer tasks")


@skeleton_group.command()
@click.argument("src")
@click.argument("dest", type=click.Path(file_okay=False))
@click.argument("labels", required=False)
def convert(src, dest, labels):
    """Write the skeletons of SRC as SWC files DEST/LABEL.swc (physical units).

    LABELS: comma-separated ids (default: every label of an unsharded layer;
    required for sharded skeletons).
    """
    from igneous.skeleton_swc import convert_to_swc

    n = convert_to_swc(src, dest, _labels(labels))
    click.echo(f"Wrote {n} SWC files to {dest}.")


