"""Planners for meshing: forge, legacy manifests, multi-resolution merges
(unsharded and sharded), deletion, transfer and the spatial index.

Planners validate everything before writing anything: the layer must be a
segmentation, the mip must exist, fragments must exist before a merge, and
``merge-sharded`` refuses a mesh directory holding finished legacy meshes
(rewriting its info would make them unreadable).
"""

from __future__ import annotations

import json
from collections import defaultdict
from collections.abc import Callable, Iterator, Sequence
from itertools import chain
from typing import TYPE_CHECKING, Any

import numpy as np

from igneous import validate
from igneous.errors import UserError
from igneous.grid import positive_shape
from igneous.task_creation.common import (
    DEFAULT_MEMORY_TARGET,
    GridPlan,
    Stages,
    TaskPlan,
    bounds_cell,
    fit_shape,
    note,
    store_large_args,
)
from igneous.tasks import Task
from igneous.tasks.merging import shard_hex
from igneous.tasks.mesh import mesh_forge
from igneous.tasks.mesh_convert import mesh_xfer_sharded
from igneous.tasks.mesh_merge import (
    FRAGMENT,
    SCATTER_DIR,
    mesh_delete,
    mesh_manifest,
    mesh_multires,
    mesh_scatter,
    mesh_xfer,
    write_listings,
)

if TYPE_CHECKING:
    from igneous.storage import Store

# 256^3 tasks: a quarter of the memory of 448^3 with the same meshes (seams are
# exact), and a 512^3 volume splits into 8 equal tasks instead of 8 lopsided ones
DEFAULT_SHAPE = (256, 256, 256)
# peak bytes per voxel of a forge task (labels, zmesh, simplification), for --memory
FORGE_BYTES_PER_VOXEL = 48
DEFAULT_MIN_CHUNK = (256, 256, 256)
# a scatter task reads forge files adding up to 1/SCATTER_MEMORY_FACTOR of its
# memory target (a file's blob, its split copies and their encoded MapBuffers)
SCATTER_MEMORY_FACTOR = 8


def _segmentation(layer_path: str, mip: int = 0):
    from igneous.layers import resolve_mip

    layer = validate.load_layer(layer_path, mip)
    mip = resolve_mip(layer, mip)
    if layer.info.get("type") != "segmentation":
        raise UserError(f"{layer.cloudpath} is a {layer.info.get('type')!r} layer; meshes are made "
                        "from segmentation layers")
    validate.single_channel(layer.info, layer.cloudpath, "meshing")
    return layer, mip


def _mesh_dir(layer, mesh_dir: str | None) -> str:
    sub = mesh_dir or layer.info.get("mesh")
    if not sub:
        raise UserError(f"{layer.cloudpath} has no mesh directory in its info; run "
                        "`igneous mesh forge` first or give --dir")
    return sub.strip("/")


def _sub_info(layer, sub: str) -> dict | None:
    from igneous.layers import read_sub_info

    return read_sub_info(layer.cloudpath, sub)


def _put_sub_info(layer, sub: str, info: dict) -> None:
    from igneous.layers import write_sub_info

    write_sub_info(layer.cloudpath, sub, info)


def _mesh_store(path: str, sub: str) -> Store:
    from igneous.storage import join, open_store

    return open_store(join(path, sub))


def create_meshing_tasks(layer_path: str, mip: int = 0, shape: Sequence[int] = DEFAULT_SHAPE,
                         simplification: bool = True, max_simplification_error: float = 40,
                         mesh_dir: str | None = None, cdn_cache: bool = False,
                         dust_threshold: int | None = None, object_ids: Sequence[int] | None = None,
                         progress: bool = False, fill_missing: bool = False,
                         encoding: str = "precomputed", spatial_index: bool = True,
                         sharded: bool = False, compress: str | None = "gzip",
                         closed_dataset_edges: bool = True,
                         exclude_object_ids: Sequence[int] | None = None,
                         simplification_factor: int = 100,
                         memory_target: float = DEFAULT_MEMORY_TARGET, fill_holes: int = 0,
                         dust_global: bool = False) -> TaskPlan:
    """Forge: mesh a grid of ``shape`` boxes (1-voxel overlap) at ``mip``; the
    shape shrinks when a task of it would not fit ``memory_target``.

    ``fill_holes`` 1-3 fills background holes of labels before meshing (see
    igneous.tasks.label_prep); ``dust_global`` applies ``dust_threshold`` to
    whole-volume voxel counts (`igneous image voxels count` + `sum` first).
    ``cdn_cache`` False (the default, as in the original) writes the fragments
    with ``Cache-Control: no-cache`` so a CDN never serves a stale one; True
    leaves the header out (the store's default caching)."""
    from igneous.formats.spatial_index import enable_index
    from igneous.grid import Grid, as_list, scale_bounds

    del progress  # progress is the queue's job
    if encoding != "precomputed":
        raise UserError(f"fragment encoding {encoding!r} is not supported; forge writes "
                        "'precomputed' fragments (merge-sharded writes Draco)")
    if max_simplification_error is not None and max_simplification_error < 0:
        raise UserError("max_simplification_error must be >= 0")
    if dust_threshold is not None and dust_threshold < 0:
        raise UserError("dust_threshold must be >= 0")
    if fill_holes not in (0, 1, 2, 3):
        raise UserError(f"fill_holes must be 0 (off), 1, 2 or 3, not {fill_holes}")
    layer, mip = _segmentation(layer_path, mip)
    prep = _prep_options(layer, mip, dust_threshold, fill_holes, dust_global)
    shape = fit_shape(positive_shape(shape), memory_target, FORGE_BYTES_PER_VOXEL, what="mesh forge",
                      limit=layer.info["scales"][mip]["size"])
    if np.any(shape > np.array([1023, 1023, 511])):
        note("task shapes above 1023x1023x511 need zmesh's 64-bit mesher and more memory")
    sub = (mesh_dir or layer.info.get("mesh") or f"mesh_mip_{mip}_err_{int(max_simplification_error)}")
    sub = sub.strip("/")
    info = layer.info
    res = info["scales"][mip]["resolution"]
    existing = _sub_info(layer, sub) or {}
    sub_info = dict(existing) if existing else {"@type": "neuroglancer_legacy_mesh"}
    sub_info["mip"] = mip
    sub_info["chunk_size"] = as_list(shape)
    if spatial_index or sharded:
        enable_index(sub_info, res, shape)
    if info.get("mesh") != sub:
        layer.update(dict(info, mesh=sub))
    _put_sub_info(layer, sub, sub_info)

    kwargs = dict(layer_path=layer.cloudpath, mip=mip, mesh_dir=sub,
                  simplification_factor=int(simplification_factor) if simplification else 0,
                  max_simplification_error=float(max_simplification_error),
                  dust_threshold=int(dust_threshold) if dust_threshold else None,
                  object_ids=[int(x) for x in object_ids] if object_ids else None,
                  exclude_object_ids=[int(x) for x in exclude_object_ids] if exclude_object_ids else None,
                  fill_missing=bool(fill_missing), spatial_index=bool(spatial_index or sharded),
                  sharded=bool(sharded), closed_dataset_edges=bool(closed_dataset_edges),
                  compress=compress, cache_control=None if cdn_cache else "no-cache", **prep)
    kwargs = store_large_args(kwargs, layer.cloudpath)
    start, stop = scale_bounds(info, mip)
    # the spatial index's grid (igneous.formats.spatial_index.index_grid):
    # anchored at the voxel offset, cells clipped to the bounds
    return GridPlan(bounds_cell, Grid(start, stop, start, shape), kwargs, "mesh forge",
                    task=mesh_forge.__name__, clip=[as_list(start), as_list(stop)])


def _prep_options(layer, mip: int, dust_threshold, fill_holes: int, dust_global: bool) -> dict:
    """Forge task keywords for hole filling and global dust (only when asked for)."""
    out: dict = {}
    if fill_holes:
        out["fill_holes"] = int(fill_holes)
    if dust_global:
        if not dust_threshold:
            note("--dust-global does nothing without --dust-threshold")
            return out
        from igneous.tasks.label_prep import load_counts_index

        load_counts_index(layer.cloudpath, layer.info, mip)  # refuse now if the counts are missing
        out["dust_global"] = True
    return out


def prefixes(magnitude: int) -> list[tuple[str, bool]]:
    """(prefix, exact) pairs that give every positive label to exactly one task."""
    if magnitude < 1:
        raise UserError("magnitude must be at least 1")
    if magnitude > 6:
        raise UserError("magnitude above 6 makes over a million tasks; choose 1 to 6")
    short = [(str(n), True) for n in range(1, 10 ** (magnitude - 1))]
    return short + [(str(n), False) for n in range(10 ** (magnitude - 1), 10**magnitude)]


def _fragments_present(layer, sub: str) -> tuple[bool, bool]:
    """(any legacy fragment files, any forge output at all: fragments, .frags or index)."""
    cf = _mesh_store(layer.cloudpath, sub)
    frags = forged = False
    for base in cf.list(flat=True):
        if FRAGMENT.match(base):
            return True, True
        if base.endswith(".spatial") or base.endswith(".frags"):
            forged = True
    return frags, forged


def _require_fragments(layer, sub: str) -> bool:
    """True when there is work; False (with a note) when forge found nothing."""
    frags, forged = _fragments_present(layer, sub)
    if frags:
        return True
    if forged:
        note(f"forge found no labels to mesh in {layer.cloudpath} (all background?); nothing to merge")
        return False
    raise UserError(f"no mesh fragments in {layer.cloudpath}/{sub}; run `igneous mesh forge` first")


def create_mesh_manifest_tasks(layer_path: str, magnitude: int = 2, mesh_dir: str | None = None,
                               memory_target: float = DEFAULT_MEMORY_TARGET) -> TaskPlan:
    """Legacy merge: write ``LABEL:0`` manifests, one task per label prefix (each
    works through its labels in batches that fit ``memory_target``)."""
    from igneous.layers import LayerInfo

    layer = LayerInfo(layer_path)
    _segmentation(layer.cloudpath, 0)
    sub = _mesh_dir(layer, mesh_dir)
    pre = prefixes(magnitude)
    if not _require_fragments(layer, sub):
        return TaskPlan(lambda: iter(()), 0, "mesh manifests")
    sub_info = _sub_info(layer, sub) or {}
    if sub_info.get("@type") == "neuroglancer_multilod_draco":
        raise UserError(f"{layer.cloudpath}/{sub} holds multi-resolution meshes; give a new --dir "
                        "for legacy meshes or delete them with `igneous mesh rm`")

    listing = _listing(layer, sub, pre, memory_target)

    def make() -> Iterator[Task]:
        for p, exact in pre:
            yield Task.of(mesh_manifest, dict(layer_path=layer.cloudpath, mesh_dir=sub, prefix=p,
                                             exact=exact, memory_target=float(memory_target),
                                             **listing))

    return TaskPlan(make, len(pre), "mesh manifests")


def create_unsharded_multires_mesh_tasks(layer_path: str, num_lod: int = 1, magnitude: int = 2,
                                         mesh_dir: str | None = None,
                                         vertex_quantization_bits: int = 16,
                                         min_chunk_size: Sequence[int] = DEFAULT_MIN_CHUNK,
                                         draco_compression_level: int = 7,
                                         memory_target: float = DEFAULT_MEMORY_TARGET) -> TaskPlan:
    """Unsharded multi-resolution meshes (``LABEL.index`` + ``LABEL``) from legacy
    fragments, one task per label prefix (batches that fit ``memory_target``)."""
    from igneous.formats.multires import multires_info
    from igneous.layers import LayerInfo

    _check_multires_args(num_lod, vertex_quantization_bits, min_chunk_size, draco_compression_level)
    layer = LayerInfo(layer_path)
    _segmentation(layer.cloudpath, 0)
    sub = _mesh_dir(layer, mesh_dir)
    pre = prefixes(magnitude)
    sub_info = _sub_info(layer, sub) or {}
    if not _require_fragments(layer, sub):
        return TaskPlan(lambda: iter(()), 0, "unsharded multires meshes")
    mip = int(sub_info.get("mip", 0))
    new_info = multires_info(vertex_quantization_bits, mip=mip,
                             spatial_index=sub_info.get("spatial_index"))
    _put_sub_info(layer, sub, dict(new_info, chunk_size=sub_info.get("chunk_size")))
    kwargs = dict(layer_path=layer.cloudpath, mesh_dir=sub, mip=mip, nlod=int(num_lod),
                  vqb=int(vertex_quantization_bits), min_chunk_size=[int(x) for x in min_chunk_size],
                  compression_level=int(draco_compression_level),
                  max_error=_error_of(sub), memory_target=float(memory_target))

    listing = _listing(layer, sub, pre, memory_target)

    def make() -> Iterator[Task]:
        for p, exact in pre:
            yield Task.of(mesh_multires, dict(kwargs, prefix=p, exact=exact, **listing))

    return TaskPlan(make, len(pre), "unsharded multires meshes")


def _listing(layer, sub: str, pre: list[tuple[str, bool]], memory_target: float) -> dict:
    """``listing=`` for the prefix tasks where listing a prefix scans the whole
    directory (local disk): the planner lists it a few times instead of every task."""
    cf = _mesh_store(layer.cloudpath, sub)
    return dict(listing=write_listings(cf, pre, memory_target)) if cf.lists_by_scan else {}


def _error_of(sub: str) -> float:
    """The forge's error budget, from the default directory name (else 40 nm)."""
    import re

    m = re.search(r"_err_(\d+)", sub)
    return float(m.group(1)) if m else 40.0


def _check_multires_args(num_lod, vqb, min_chunk_size, level) -> None:
    if vqb not in (10, 16):
        raise UserError(f"vertex quantization bits must be 10 or 16, not {vqb}")
    if num_lod < 0:
        raise UserError("--nlod must be >= 0")
    positive_shape(min_chunk_size, "min_chunk_size")
    if not 0 <= level <= 10:
        raise UserError("draco compression level must be within 0..10")


def plan_sharded_multires_mesh(layer_path: str, shard_index_bytes: int = 2**13,
                               minishard_index_bytes: int = 2**15, min_shards: int = 1,
                               num_lod: int = 1, draco_compression_level: int = 7,
                               vertex_quantization_bits: int = 16,
                               minishard_index_encoding: str = "gzip",
                               mesh_dir: str | None = None,
                               spatial_index_db: str | None = None,
                               min_chunk_size: Sequence[int] = DEFAULT_MIN_CHUNK,
                               max_labels_per_shard: int | None = 1000,
                               memory_target: float = DEFAULT_MEMORY_TARGET) -> Stages | list:
    """Sharded multi-resolution meshes from the ``.frags`` files of ``forge
    --sharded``, as two stages: scatter (groups of forge files, each split by
    shard) then one task per shard.

    Memory stays within ``memory_target`` whatever the label count: the
    planner keeps 8 bytes per fragment (to count labels), a scatter task
    reads forge files up to a share of the target, and there are enough
    shards that building one fits it.
    """
    from igneous.formats.multires import multires_info
    from igneous.formats.sharding import hashed_sharding
    from igneous.layers import LayerInfo

    del spatial_index_db  # the forge's index files are read directly
    _check_multires_args(num_lod, vertex_quantization_bits, min_chunk_size, draco_compression_level)
    layer = LayerInfo(layer_path)
    _segmentation(layer.cloudpath, 0)
    sub = _mesh_dir(layer, mesh_dir)
    if minishard_index_encoding not in ("gzip", "raw"):
        raise UserError("minishard index encoding must be gzip or raw")
    sub_info = _sub_info(layer, sub) or {}
    cf = _mesh_store(layer.cloudpath, sub)
    frag_files, index_files = [], []
    for n in cf.list(flat=True):
        if ":0" in n:  # legacy manifests or fragments live here
            raise UserError(f"{layer.cloudpath}/{sub} holds unsharded legacy meshes; rewriting its "
                            "info would make them unreadable. Forge with --sharded into a new "
                            "--dir, or delete them first with `igneous mesh rm`")
        if n.endswith(".frags"):
            frag_files.append(n)
        elif n.endswith(".spatial"):
            index_files.append(n)
    if not frag_files and not index_files:
        raise UserError(f"no sharded mesh fragments (.frags) in {layer.cloudpath}/{sub}; run "
                        "`igneous mesh forge --sharded` first")
    num_labels = _count_labels(cf, index_files, {n[: -len(".frags")] for n in frag_files})
    if num_labels == 0:
        note(f"forge found no labels to mesh in {layer.cloudpath} (all background?); "
             "nothing to merge")
        return []
    sizes = {n: int(cf.size(n) or 0) for n in sorted(frag_files)}
    sharding = hashed_sharding(
        num_labels, bytes_per_label=sum(sizes.values()) / max(num_labels, 1),
        memory_target=memory_target, shard_index_bytes=shard_index_bytes,
        minishard_index_bytes=minishard_index_bytes, min_shards=min_shards,
        max_labels_per_shard=max_labels_per_shard,
        minishard_index_encoding=minishard_index_encoding, data_encoding="raw")
    mip = int(sub_info.get("mip", 0))
    new_info = multires_info(vertex_quantization_bits, mip=mip, sharding=sharding,
                             spatial_index=sub_info.get("spatial_index"))
    _put_sub_info(layer, sub, dict(new_info, chunk_size=sub_info.get("chunk_size")))
    cf.delete(list(cf.list(prefix=f"{SCATTER_DIR}/")))  # an earlier merge's scratch
    groups = _file_groups(sizes, memory_target / SCATTER_MEMORY_FACTOR)
    base = dict(layer_path=layer.cloudpath, mesh_dir=sub)
    scatter = TaskPlan(lambda: (Task.of(mesh_scatter, dict(base, files=files, sharding=sharding,
                                                            name=f"{i:06d}"))
                                for i, files in enumerate(groups)),
                       len(groups), "mesh merge (scatter)")
    kwargs = dict(base, mip=mip, nlod=int(num_lod), vqb=int(vertex_quantization_bits),
                  min_chunk_size=[int(x) for x in min_chunk_size],
                  compression_level=int(draco_compression_level), max_error=_error_of(sub),
                  expect=len(groups))
    nshards = 2 ** sharding["shard_bits"]

    def shard_plan(expect: int) -> TaskPlan:
        return TaskPlan(lambda: (Task.of(mesh_multires, dict(kwargs, expect=expect,
                                                             shard=shard_hex(i, sharding["shard_bits"])))
                                 for i in range(nshards)),
                        nshards, "sharded multires meshes")

    return Stages([scatter, shard_plan(len(groups))], shard_plan(0),
                  f"this queue has no stages: each of the {nshards} shard tasks reads all "
                  f"{len(sizes)} forge files (a local or PostgreSQL queue files them by shard "
                  "first, so each reads only its own)")


def create_sharded_multires_mesh_tasks(layer_path: str, **kwargs) -> TaskPlan:
    """Both stages of the sharded mesh merge in order (``plan_sharded_multires_mesh``
    queues them as separate stages)."""
    stages = plan_sharded_multires_mesh(layer_path, **kwargs)
    return TaskPlan(lambda: chain.from_iterable(stages), sum(map(len, stages)),
                    "sharded multires meshes")


def _count_labels(cf: Store, index_files: list[str], forged: set[str]) -> int:
    """Distinct labels in the index files of the boxes that wrote ``.frags``."""
    names = [n for n in index_files if n[: -len(".spatial")] in forged]
    parts = []
    for name, content in cf.get_many(names):
        if content is None:
            raise UserError(f"cannot read spatial index file {cf.url}/{name}")
        try:
            parts.append(np.fromiter((int(k) for k in json.loads(content)), dtype=np.uint64))
        except ValueError:
            raise UserError(f"spatial index file {cf.url}/{name} is corrupt; re-run "
                            "forge for that box") from None
        parts = [np.unique(np.concatenate(parts))] if len(parts) > 64 else parts
    return int(np.unique(np.concatenate(parts)).size) if parts else 0


def _file_groups(sizes: dict[str, int], budget: float) -> list[list[str]]:
    """Consecutive files in groups of at most ``budget`` bytes (at least one file each)."""
    groups: list[list[str]] = [[]]
    total = 0
    for name, size in sizes.items():
        if groups[-1] and total + size > budget:
            groups.append([])
            total = 0
        groups[-1].append(name)
        total += size
    return groups


def _write_shard_plan(cf: Store, sharding: dict, by_label: dict[int, list[str]]) -> list[int]:
    """Write ``SHARD.labels`` ({label: its input files}) for every shard that
    gets a label under ``sharding``; returns those shard numbers."""
    from cloudvolume.datasource.precomputed.sharding import ShardingSpecification

    spec = ShardingSpecification.from_dict(sharding)
    groups: dict[int, dict[str, list[str]]] = defaultdict(dict)
    for label, files in by_label.items():
        groups[spec.compute_shard_location(label).shard_number][str(label)] = sorted(files)
    cf.put_many(((f"{shard}.labels", json.dumps(g).encode("utf8")) for shard, g in groups.items()),
                content_type="application/json")
    return sorted(groups)


def _shard_tasks(task: Callable[..., Any], kwargs: dict, shards: list[int]) -> TaskPlan:
    def make() -> Iterator[Task]:
        for shard in shards:
            yield Task.of(task, dict(kwargs, shard=int(shard), labels_file=f"{shard}.labels"))

    return TaskPlan(make, len(shards), "sharded multires meshes")


def _dir_prefix_plan(task: Callable[..., Any], magnitude: int, make_kwargs) -> TaskPlan:
    pre = [str(i).zfill(magnitude) for i in range(10**magnitude)]

    def make() -> Iterator[Task]:
        for p in pre:
            yield Task.of(task, make_kwargs(p, False))
        if magnitude:
            yield Task.of(task, make_kwargs("0" * magnitude, True))

    return TaskPlan(make, len(pre) + (1 if magnitude else 0), task.__name__)


def create_mesh_deletion_tasks(layer_path: str, magnitude: int = 2, mesh_dir: str | None = None
                               ) -> TaskPlan:
    """Delete every file of the mesh directory, split by file-name prefix."""
    from igneous.layers import LayerInfo

    layer = LayerInfo(layer_path)
    sub = _mesh_dir(layer, mesh_dir)
    if not 0 <= magnitude <= 6:
        raise UserError("magnitude must be within 0..6")
    return _dir_prefix_plan(mesh_delete, magnitude, lambda p, rest: dict(
        layer_path=layer.cloudpath, mesh_dir=sub, prefix=p, rest=rest))


def create_xfer_meshes_tasks(src: str, dest: str, mesh_dir: str | None = None, magnitude: int = 2,
                             sharded: bool = False, num_lod: int = 0, mip: int | None = None,
                             memory_target: float = DEFAULT_MEMORY_TARGET) -> TaskPlan:
    """Copy a layer's mesh directory to another layer (same format), or with
    ``sharded`` rewrite finished unsharded meshes as sharded multi-resolution
    meshes there (``num_lod`` extra levels of detail; ``mip``: the mip the
    meshes were made from, when their info does not say)."""

    from igneous.layers import LayerInfo, normalize_path, read_info, write_info, write_sub_info

    layer = LayerInfo(src)
    sub = _mesh_dir(layer, None)
    dest = normalize_path(dest)
    if not 0 <= magnitude <= 6:
        raise UserError("magnitude must be within 0..6")
    if num_lod < 0:
        raise UserError("--nlod must be >= 0")
    sub_info = _sub_info(layer, sub)
    if sub_info is None:
        raise UserError(f"{layer.cloudpath}/{sub} has no mesh info; nothing to transfer")
    dest_sub = (mesh_dir or sub).strip("/")
    if dest.rstrip("/") == layer.cloudpath.rstrip("/") and dest_sub == sub:
        raise UserError("the destination mesh directory is the source's; choose another DEST or --dir")
    dest_info = read_info(dest)
    if dest_info is None:
        dest_info = dict(layer.info)
    dest_info = dict(dest_info, mesh=dest_sub)
    if sharded and not sub_info.get("sharding"):
        plan = _plan_sharded_xfer(layer, sub, sub_info, dest, dest_info, dest_sub, num_lod, mip,
                                  memory_target)
        write_info(dest, dest_info)
        return plan
    if sharded:
        note(f"{layer.cloudpath}/{sub} is already sharded; copying its files as they are")
    write_info(dest, dest_info)
    write_sub_info(dest, dest_sub, sub_info)
    return _dir_prefix_plan(mesh_xfer, magnitude, lambda p, rest: dict(
        src_dir=f"{layer.cloudpath}/{sub}", dest_dir=f"{dest}/{dest_sub}", prefix=p, rest=rest))


def _plan_sharded_xfer(layer, sub: str, sub_info: dict, dest: str, dest_info: dict, dest_sub: str,
                       num_lod: int, mip: int | None, memory_target: float) -> TaskPlan:
    """Shards of finished unsharded meshes (legacy or multi-resolution) at DEST."""
    import re

    from igneous.formats.multires import multires_info
    from igneous.formats.sharding import hashed_sharding
    from igneous.layers import write_sub_info

    src_cf = _mesh_store(layer.cloudpath, sub)
    names = [n for n in src_cf.list(flat=True) if n != "info"]
    # a legacy manifest or a multires index file marks one finished mesh
    labels = sorted({int(m.group(1)) for n in names if (m := re.fullmatch(r"(\d+)(?::0|\.index)", n))})
    if not labels:
        raise UserError(f"no finished meshes in {layer.cloudpath}/{sub} (no LABEL:0 manifests or "
                        "LABEL.index files); run `igneous mesh merge` first")
    total = sum(src_cf.size(n) or 0 for n in names)
    mip = int(sub_info.get("mip", 0) if mip is None else mip)
    if not 0 <= mip < len(dest_info["scales"]):
        raise UserError(f"mip {mip} does not exist in {dest}")
    dest_cf = _mesh_store(dest, dest_sub)
    existing = list(dest_cf.list(flat=True))
    if any(":0" in n for n in existing):
        raise UserError(f"{dest}/{dest_sub} holds unsharded legacy meshes; rewriting its info would "
                        "make them unreadable. Choose another --dir or delete them first")
    sharding = hashed_sharding(len(labels), bytes_per_label=total / len(labels),
                               memory_target=memory_target, data_encoding="raw")
    shards = _write_shard_plan(dest_cf, sharding, {k: [] for k in labels})
    write_sub_info(dest, dest_sub, multires_info(16, mip=mip, sharding=sharding))
    kwargs = dict(src_layer=layer.cloudpath, src_dir=sub, layer_path=dest, mesh_dir=dest_sub,
                  mip=mip, nlod=int(num_lod), min_chunk_size=list(DEFAULT_MIN_CHUNK),
                  max_error=_error_of(sub))
    return _shard_tasks(mesh_xfer_sharded, kwargs, shards)


def create_spatial_index_mesh_tasks(cloudpath: str, shape: Sequence[int] = (448, 448, 448),
                                    mip: int = 0, fill_missing: bool = False,
                                    mesh_dir: str | None = None) -> TaskPlan:
    """(Re)build the mesh spatial index without remeshing."""
    from igneous.task_creation.spatial_index import create_spatial_index_tasks

    _segmentation(cloudpath, mip)
    return create_spatial_index_tasks(cloudpath, "mesh", mip, shape, fill_missing, mesh_dir)


def clean_mesh_temporaries(layer_path: str, mesh_dir: str | None = None) -> int:
    """Delete the forge's ``.frags``, the sharded merge's scatter files and the
    sharded transfer's ``.labels`` files."""
    from igneous.layers import LayerInfo

    layer = LayerInfo(layer_path)
    sub = _mesh_dir(layer, mesh_dir)
    cf = _mesh_store(layer.cloudpath, sub)
    names = [n for n in cf.list(flat=True) if n.endswith(".frags") or n.endswith(".labels")]
    names += list(cf.list(prefix=f"{SCATTER_DIR}/"))
    cf.delete(names)
    return len(names) + cf.remove_leftovers()
