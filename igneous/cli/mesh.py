"""``igneous mesh ...``: forge, merge, merge-sharded, rm, clean, xfer, spatial-index."""

from __future__ import annotations

import click

from igneous.cli.options import enqueue_or_run, memory_option, queue_option


def _ids(value: str | None) -> list[int] | None:
    if not value:
        return None
    from igneous.errors import UserError

    try:
        return [int(x) for x in value.replace(" ", "").split(",") if x]
    except ValueError:
        raise UserError(f"labels must be comma-separated integers like 12,34, not {value!r}") from None


def _triple(value: str, name: str):
    from igneous.layers import parse_triple

    return parse_triple(value, name)


@click.group("mesh")
def mesh_group():
    """Meshes of every label of a segmentation: forge, then merge.

    Forge meshes a grid of cutouts; merge writes what Neuroglancer reads
    (legacy manifests, or multi-resolution meshes, unsharded or sharded).
    """




@mesh_group.command()
@click.argument("path")
@queue_option
@click.option("--mip", default=0, show_default=True, type=int, help="Mesh at this mip.")
@click.option("--shape", default="256,256,256", show_default=True, help="Task shape in voxels.")
@click.option("--simplify/--skip-simplify", default=True, show_default=True,
              help="Quadric edge-collapse simplification.")
@click.option("--max-error", default=40, show_default=True, type=float,
              help="Most the simplified surface may deviate from the marching-cubes surface, "
              "in physical units.")
@click.option("--fill-missing", is_flag=True, help="Read missing chunks as background.")
@click.option("--dust-threshold", default=None, type=int,
              help="Skip labels with fewer voxels than this within a task (or in the whole "
              "volume with --dust-global).")
@click.option("--dust-global/--dust-local", default=False, show_default=True,
              help="Apply --dust-threshold to whole-volume voxel counts (run `igneous image voxels "
              "count` and `sum` at this mip first).")
@click.option("--fill-holes", default=0, show_default=True, type=click.IntRange(0, 3),
              help="Fill holes before meshing: 0 off, 1 holes inside labels, 2 also holes cut by "
              "the task's faces, 3 also a morphological closing. Only background is filled.")
@click.option("--dir", "mesh_dir", default=None, help="Mesh directory (default: the info's, else "
              "mesh_mip_MIP_err_ERROR).")
@click.option("--compress", default="gzip", show_default=True,
              type=click.Choice(["none", "gzip", "br"]), help="Compression of fragment files.")
@click.option("--spatial-index/--skip-spatial-index", default=True, show_default=True,
              help="Write the spatial index (always on with --sharded).")
@click.option("--sharded", is_flag=True, help="Write fragments for `merge-sharded`.")
@click.option("--closed-edge/--open-edge", default=True, show_default=True,
              help="Close meshes where they touch the dataset boundary.")
@click.option("--labels", default=None, help="Mesh only these labels, e.g. 12,34.")
@click.option("--exclude-labels", default=None, help="Don't mesh these labels.")
@memory_option
@click.pass_context
def forge(ctx, path, queue, mip, shape, simplify, max_error, fill_missing, dust_threshold,
          dust_global, fill_holes, mesh_dir, compress, spatial_index, sharded, closed_edge, labels,
          exclude_labels, memory):
    """(1) Mesh a grid of cutouts of the segmentation at PATH."""
    from igneous.task_creation.mesh import create_meshing_tasks

    plan = create_meshing_tasks(
        path, mip, shape=_triple(shape, "--shape"), simplification=simplify,
        max_simplification_error=max_error, mesh_dir=mesh_dir, dust_threshold=dust_threshold,
        object_ids=_ids(labels), exclude_object_ids=_ids(exclude_labels), fill_missing=fill_missing,
        spatial_index=spatial_index, sharded=sharded, closed_dataset_edges=closed_edge,
        compress=None if compress == "none" else compress, memory_target=memory,
        fill_holes=fill_holes, dust_global=dust_global)
    enqueue_or_run(ctx, queue, [plan], what="mesh tasks")


@mesh_group.command()
@click.argument("path")
@queue_option
@click.option("--magnitude", default=2, show_default=True, type=int,
              help="Split the work into about 10^magnitude label-prefix tasks.")
@click.option("--nlod", default=0, show_default=True, type=int,
              help="Extra levels of detail; > 0 writes unsharded multi-resolution meshes.")
@click.option("--vqb", default=16, show_default=True, type=click.Choice(["10", "16"]),
              help="(multires) vertex quantization bits.")
@click.option("--min-chunk-size", default="256,256,256", show_default=True,
              help="(multires) finest octree cell in voxels.")
@click.option("--dir", "mesh_dir", default=None, help="Mesh directory (default: the info's).")
@memory_option
@click.pass_context
def merge(ctx, path, queue, magnitude, nlod, vqb, min_chunk_size, mesh_dir, memory):
    """(2) Merge forged fragments: manifests, or multi-resolution meshes with --nlod."""
    from igneous.task_creation import mesh as tcm

    if nlod > 0:
        plan = tcm.create_unsharded_multires_mesh_tasks(
            path, num_lod=nlod, magnitude=magnitude, mesh_dir=mesh_dir,
            vertex_quantization_bits=int(vqb), min_chunk_size=_triple(min_chunk_size, "--min-chunk-size"),
            memory_target=memory)
    else:
        plan = tcm.create_mesh_manifest_tasks(path, magnitude=magnitude, mesh_dir=mesh_dir,
                                              memory_target=memory)
    if len(plan):
        enqueue_or_run(ctx, queue, [plan], what="merge tasks")


@mesh_group.command("merge-sharded")
@click.argument("path")
@queue_option
@click.option("--nlod", default=1, show_default=True, type=int, help="Extra levels of detail.")
@click.option("--vqb", default=16, show_default=True, type=click.Choice(["10", "16"]),
              help="Vertex quantization bits.")
@click.option("--compress-level", default=7, show_default=True, type=int, help="Draco compression level.")
@click.option("--shard-index-bytes", default=2**13, show_default=True, type=int)
@click.option("--minishard-index-bytes", default=2**15, show_default=True, type=int)
@click.option("--min-shards", default=1, show_default=True, type=int,
              help="At least this many shards (more tasks to run in parallel).")
@click.option("--max-labels-per-shard", default=1000, show_default=True, type=int,
              help="At most this many labels per shard on average.")
@click.option("--minishard-index-encoding", default="gzip", show_default=True,
              type=click.Choice(["gzip", "raw"]))
@click.option("--spatial-index-db", default=None, help="Accepted for compatibility; the forge's "
              "index files are read directly.")
@click.option("--min-chunk-size", default="256,256,256", show_default=True,
              help="Finest octree cell in voxels.")
@memory_option
@click.option("--dir", "mesh_dir", default=None, help="Mesh directory (default: the info's).")
@click.pass_context
def merge_sharded(ctx, path, queue, nlod, vqb, compress_level, shard_index_bytes,
                  minishard_index_bytes, min_shards, max_labels_per_shard, minishard_index_encoding,
                  spatial_index_db, min_chunk_size, memory, mesh_dir):
    """(2) Build sharded multi-resolution meshes from `forge --sharded` fragments."""
    from igneous.task_creation.mesh import plan_sharded_multires_mesh

    stages = plan_sharded_multires_mesh(
        path, shard_index_bytes=shard_index_bytes, minishard_index_bytes=minishard_index_bytes,
        min_shards=min_shards, num_lod=nlod, draco_compression_level=compress_level,
        vertex_quantization_bits=int(vqb), minishard_index_encoding=minishard_index_encoding,
        mesh_dir=mesh_dir, spatial_index_db=spatial_index_db,
        min_chunk_size=_triple(min_chunk_size, "--min-chunk-size"),
        max_labels_per_shard=max_labels_per_shard, memory_target=memory)
    if stages:
        enqueue_or_run(ctx, queue, stages, what="merge tasks")


@mesh_group.command()
@click.argument("path")
@queue_option
@click.option("--magnitude", default=2, show_default=True, type=int,
              help="Split the work into 10^magnitude file-name-prefix tasks.")
@click.option("--dir", "mesh_dir", default=None, help="Mesh directory (default: the info's).")
@click.pass_context
def rm(ctx, path, queue, magnitude, mesh_dir):
    """Delete every file of the mesh directory."""
    from igneous.task_creation.mesh import create_mesh_deletion_tasks

    plan = create_mesh_deletion_tasks(path, magnitude=magnitude, mesh_dir=mesh_dir)
    enqueue_or_run(ctx, queue, [plan], what="deletion tasks")


@mesh_group.command()
@click.argument("src")
@click.option("--dir", "mesh_dir", default=None, help="Mesh directory (default: the info's).")
def clean(src, mesh_dir):
    """Delete temporary files (.frags from forge --sharded, scatter/ from merge-sharded)."""
    from igneous.task_creation.mesh import clean_mesh_temporaries

    n = clean_mesh_temporaries(src, mesh_dir)
    click.echo(f"Deleted {n} temporary files.", err=True)


@mesh_group.command()
@click.argument("src")
@click.argument("dest")
@queue_option
@click.option("--dir", "mesh_dir", default=None, help="Mesh directory at DEST (default: SRC's).")
@click.option("--magnitude", default=2, show_default=True, type=int,
              help="Split the work into 10^magnitude file-name-prefix tasks.")
@click.option("--sharded", is_flag=True,
              help="Rewrite finished unsharded meshes (legacy or multi-resolution) as sharded "
              "multi-resolution meshes at DEST (one task per shard).")
@click.option("--nlod", default=0, show_default=True, type=int,
              help="(--sharded) Extra levels of detail to build.")
@click.option("--mip", default=None, type=int,
              help="(--sharded) The mip the meshes were made from (default: from their info).")
@memory_option
@click.pass_context
def xfer(ctx, src, dest, queue, mesh_dir, magnitude, sharded, nlod, mip, memory):
    """Copy the meshes of SRC to the layer DEST (same format), or convert
    unsharded meshes to sharded ones with --sharded."""
    from igneous.task_creation.mesh import create_xfer_meshes_tasks

    plan = create_xfer_meshes_tasks(src, dest, mesh_dir=mesh_dir, magnitude=magnitude,
                                    sharded=sharded, num_lod=nlod, mip=mip, memory_target=memory)
    enqueue_or_run(ctx, queue, [plan], what="transfer tasks")
