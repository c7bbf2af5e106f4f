"""Planners for skeletons: forge, merge (unsharded and sharded), delete.

Forge writes the skeleton info and ``.frags/forge.json`` (the grid and the
number of label buckets); the merge planners read them back, check that every
forge block finished, and find labels whose fragment files are missing.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from itertools import chain

import numpy as np

from igneous import validate
from igneous.errors import UserError
from igneous.formats.sharding import hashed_sharding
from igneous.grid import (
    Grid,
    as_list,
    box_name,
    clip,
    grid,
    grid_count,
    positive_shape,
    scale_bounds,
    vec,
)
from igneous.layers import LayerInfo, normalize_path, resolve_mip
from igneous.task_creation.common import (
    DEFAULT_MEMORY_TARGET,
    GridPlan,
    Stages,
    TaskPlan,
    box_cell,
    fit_shape,
    note,
    store_large_args,
)
from igneous.tasks import Task
from igneous.tasks.skeleton import (
    FRAG_DIR,
    TASK_DIR,
    bucket_files,
    read_meta,
    skeleton_forge,
    vertex_attributes,
    write_meta,
)
from igneous.tasks.skeleton_merge import (
    skeleton_delete,
    skeleton_merge,
    skeleton_shard,
    skeleton_xfer,
)

DEFAULT_SHAPE = (256, 256, 256)
# peak bytes per voxel of a forge task (labels, kimimaro's distance fields), for --memory
FORGE_BYTES_PER_VOXEL = 48
DEFAULT_TEASAR = {"scale": 10, "const": 10}
MAX_BUCKETS = 4096
UINT64_MAX = 2**64 - 1
_TEASAR_KEYS = {"scale", "const", "pdrf_scale", "pdrf_exponent", "soma_acceptance_threshold",
                "soma_detection_threshold", "soma_invalidation_const",
                "soma_invalidation_scale", "max_paths"}


def check_teasar(params: dict) -> dict:
    """kimimaro's TEASAR parameters, refused when out of range."""
    params = dict(params or {})
    unknown = set(params) - _TEASAR_KEYS
    if unknown:
        raise UserError(f"unknown teasar parameter(s) {', '.join(sorted(unknown))}; "
                        f"known: {', '.join(sorted(_TEASAR_KEYS))}")
    for key, value in params.items():
        if value is None and key == "max_paths":
            continue
        if not isinstance(value, (int, float)) or not math.isfinite(value) or value < 0:
            raise UserError(f"teasar parameter {key} must be a finite number >= 0, not {value!r}")
    if params.get("scale", 1) == 0 and params.get("const", 1) == 0:
        raise UserError("teasar scale and const cannot both be 0 (nothing would be invalidated); "
                        "use e.g. --scale 4 --const 10")
    for key in ("pdrf_scale", "pdrf_exponent", "max_paths"):
        if params.get(key) == 0:
            raise UserError(f"teasar parameter {key} must be > 0")
    return params


def _check_ids(ids, name: str) -> list[int] | None:
    if ids is None:
        return None
    out = [int(x) for x in ids]
    bad = [x for x in out if not 0 < x <= UINT64_MAX]
    if bad:
        raise UserError(f"{name} must be labels in 1..2^64-1, not {bad[0]}")
    return out


def _segmentation(layer_path: str, mip: int) -> LayerInfo:
    layer = validate.load_layer(layer_path, mip)
    if layer.info.get("type") != "segmentation":
        raise UserError(f"{layer.cloudpath} is a {layer.info.get('type')!r} layer; skeletons need "
                        "a segmentation layer")
    if layer.dtype.kind not in "ui":
        raise UserError(f"{layer.cloudpath} holds {layer.dtype} data; skeletons need integer labels")
    validate.single_channel(layer.info, layer.cloudpath, "skeletonizing")
    return layer


def skeleton_url(layer: LayerInfo, mip: int = 0, skel_dir: str | None = None) -> str:
    name = skel_dir or layer.info.get("skeletons") or f"skeletons_mip_{mip}"
    return f"{layer.cloudpath}/{name}"


def create_skeletonizing_tasks(
    cloudpath: str, mip: int = 0, shape=DEFAULT_SHAPE, sharded: bool = False,
    spatial_index: bool = True, info: dict | None = None, fill_missing: bool = False,
    teasar_params: dict | None = None, object_ids: Sequence[int] | None = None,
    mask_ids: Sequence[int] | None = None, fix_branching: bool = True, fix_borders: bool = True,
    fix_avocados: bool = False, fill_holes: bool = False, dust_threshold: int = 1000,
    progress: bool = False, parallel: int = 1, cross_sectional_area: bool = False,
    cross_sectional_area_smoothing_window: int = 5, skel_dir: str | None = None,
    bounds=None, memory_target: float = DEFAULT_MEMORY_TARGET, dust_global: bool = False,
) -> TaskPlan:
    """Tasks skeletonizing ``shape`` blocks (plus one voxel of overlap) at ``mip``
    (smaller when a task of ``shape`` would not fit ``memory_target``).

    ``dust_global`` applies ``dust_threshold`` to whole-volume voxel counts
    (`igneous image voxels count` + `sum` at ``mip`` first) instead of to the
    components wholly inside one block.

    ``sharded`` only records the intent: both merges read the same fragments.
    ``bounds`` ((lo), (hi) voxels at ``mip``) restricts the work to a region.
    """
    cloudpath = normalize_path(cloudpath)
    if info is not None:
        from igneous.layers import write_info

        write_info(cloudpath, info)
    layer = _segmentation(cloudpath, mip)
    mip = resolve_mip(layer, mip)
    shape = positive_shape(shape)
    shape = vec(fit_shape(shape, memory_target, FORGE_BYTES_PER_VOXEL, what="skeleton forge",
                          limit=layer.info["scales"][mip]["size"]))
    teasar = check_teasar(DEFAULT_TEASAR if teasar_params is None else teasar_params)
    object_ids, mask_ids = _check_ids(object_ids, "object_ids"), _check_ids(mask_ids, "mask_ids")
    if dust_threshold < 0:
        raise UserError("dust_threshold must be >= 0 voxels")
    if dust_global and dust_threshold > 0:
        from igneous.tasks.label_prep import load_counts_index

        load_counts_index(cloudpath, layer.info, mip)  # refuse now if the counts are missing
    if parallel < 1:
        raise UserError("parallel must be >= 1")
    if cross_sectional_area_smoothing_window < 1:
        raise UserError("cross_sectional_area_smoothing_window must be >= 1")
    start, stop = scale_bounds(layer.info, mip)
    lo, hi = start, stop
    if bounds is not None:
        lo, hi = clip(vec(bounds[0]), vec(bounds[1]), start, stop)
        if np.any(hi <= lo):
            raise UserError(f"bounds {bounds} lie outside the volume {as_list(start)}-{as_list(stop)}")
    count = grid_count(lo, hi, start, shape)
    if not fix_borders and count > 1:
        note("fix_borders is off with several blocks: pieces will not join at the seams")
    url = skeleton_url(layer, mip, skel_dir)
    buckets = int(min(MAX_BUCKETS, max(4, count)))
    meta = dict(mip=mip, shape=as_list(shape), lo=as_list(lo), hi=as_list(hi), buckets=buckets,
                sharded=bool(sharded), resolution=layer.info["scales"][mip]["resolution"],
                vertex_attributes=vertex_attributes(cross_sectional_area))
    old = read_meta(url)
    if old is not None and {k: old.get(k) for k in meta} != meta:
        raise UserError(f"{url} holds fragments of an earlier forge with other parameters; "
                        f"run `igneous skeleton clean {cloudpath}` first")
    _write_skeleton_info(layer, url, mip, shape, spatial_index, cross_sectional_area)
    write_meta(url, meta)

    common = dict(layer_path=cloudpath, skel_dir=url, mip=mip, teasar_params=teasar,
                  buckets=buckets, object_ids=object_ids, mask_ids=mask_ids,
                  fix_branching=fix_branching, fix_borders=fix_borders, fix_avocados=fix_avocados,
                  fill_holes=fill_holes, dust_threshold=int(dust_threshold),
                  fill_missing=fill_missing, parallel=int(parallel), spatial_index=spatial_index,
                  cross_sectional_area=cross_sectional_area,
                  cross_sectional_area_smoothing_window=int(cross_sectional_area_smoothing_window))
    if dust_global and dust_threshold > 0:
        common["dust_global"] = True
    common = store_large_args(common, cloudpath)

    return GridPlan(box_cell, Grid(lo, hi, start, shape), common, f"skeleton forge mip {mip}",
                    task=skeleton_forge.__name__, clip=[as_list(lo), as_list(hi)])


def _write_skeleton_info(layer: LayerInfo, url: str, mip: int, shape, spatial_index: bool,
                         cross_sectional_area: bool) -> None:
    from igneous.layers import read_sub_info, write_info

    name = url[len(layer.cloudpath) + 1:]
    if layer.info.get("skeletons") != name:
        layer.update(dict(layer.info, skeletons=name))
    sub = read_sub_info(url) or {}
    sub.update({"@type": "neuroglancer_skeletons",
                "transform": [1, 0, 0, 0, 0, 1, 0, 0, 0, 0, 1, 0],  # vertices are in nm
                "vertex_attributes": vertex_attributes(cross_sectional_area), "mip": mip})
    if sub.get("sharding") is None:  # Neuroglancer rejects "sharding": null
        sub.pop("sharding", None)
    sub["spatial_index"] = None
    if spatial_index:
        from igneous.formats.spatial_index import enable_index

        enable_index(sub, layer.info["scales"][mip]["resolution"], shape)
    write_info(url, sub)


# -- merge ---------------------------------------------------------------------

def _forge_state(layer_path: str, skel_dir: str | None = None):
    """(layer, skeleton url, forge meta, missing labels) after checking forge finished."""
    from igneous.storage import open_store

    layer = LayerInfo(layer_path)
    url = skeleton_url(layer, 0, skel_dir)
    meta = read_meta(url)
    if meta is None:
        raise UserError(f"no skeleton fragments in {url}; run `igneous skeleton forge` "
                        "(and execute its tasks) before merging")
    names = [box_name(*clip(a, b, vec(meta["lo"]), vec(meta["hi"])))
             for a, b in grid(meta["lo"], meta["hi"],
                              scale_bounds(layer.info, meta["mip"])[0], meta["shape"])]
    cf = open_store(url)
    done = {p.rsplit("/", 1)[-1].removesuffix(".labels")
            for p in cf.list(prefix=f"{TASK_DIR}/")}
    unfinished = [n for n in names if n not in done]
    if unfinished:
        raise UserError(f"forge is not finished: {len(unfinished)} of {len(names)} blocks have "
                        f"no output (e.g. {unfinished[0]}); execute the forge tasks first")
    present: dict[str, set[int]] = {}
    for bucket, paths in bucket_files(cf).items():
        for p in paths:
            present.setdefault(p.rsplit("/", 1)[-1].removesuffix(".frags"), set()).add(bucket)
    buckets = meta["buckets"]
    labels, missing = [], []
    for path, content in cf.get_many([f"{TASK_DIR}/{n}.labels" for n in names]):
        if content is None:
            raise UserError(f"cannot read forge marker {path} in {url}")
        ids = np.frombuffer(content, dtype=np.uint64)
        labels.append(ids)
        name = path.rsplit("/", 1)[-1].removesuffix(".labels")
        have = np.fromiter(present.get(name, ()), dtype=np.uint64)
        lost = ~np.isin(ids % np.uint64(buckets), have)
        missing.append(ids[lost])
    all_labels = np.unique(np.concatenate(labels)) if labels else np.zeros(0, np.uint64)
    lost = np.unique(np.concatenate(missing)) if missing else np.zeros(0, np.uint64)
    if lost.size:
        shown = ", ".join(str(int(x)) for x in lost[:10]) + (" ..." if lost.size > 10 else "")
        note(f"fragments are missing for {lost.size} label(s): {shown}; merging the rest "
             "(forge again to recover them)")
    if all_labels.size == 0:
        note(f"forge found no labels in {layer.cloudpath}: no skeletons will be written")
    return layer, url, meta, all_labels, lost


def _merge_common(layer: LayerInfo, meta: dict, *, crop: int, dust_threshold: float,
                  tick_threshold: float, max_cable_length: float | None,
                  delete_fragments: bool, memory_target: float) -> dict:
    if crop < 0:
        raise UserError("crop must be >= 0 voxels")
    for name, value in (("dust_threshold", dust_threshold), ("tick_threshold", tick_threshold)):
        if value is None or value < 0:
            raise UserError(f"{name} must be a physical length >= 0")
    if max_cable_length is not None and max_cable_length <= 0:
        raise UserError("max_cable_length must be > 0 (or None for no limit)")
    res = np.asarray(meta["resolution"], dtype=np.float64)
    crop_box = None
    if crop:
        start, stop = scale_bounds(layer.info, meta["mip"])
        a, b = (start + crop + 0.5) * res, (stop - 1 - crop + 0.5) * res  # voxel centres
        if np.any(b < a):
            raise UserError(f"crop {crop} removes the whole volume")
        crop_box = [a.tolist(), b.tolist()]
    return dict(resolution=res.tolist(), vertex_attributes=meta["vertex_attributes"],
                dust_threshold=float(dust_threshold), tick_threshold=float(tick_threshold),
                max_cable_length=None if max_cable_length is None else float(max_cable_length),
                crop_box=crop_box, delete_fragments=bool(delete_fragments),
                memory_target=float(memory_target))


def _merge_plan(url: str, meta: dict, ntasks: int, lost: np.ndarray, common: dict,
                description: str) -> TaskPlan:
    buckets = meta["buckets"]
    ntasks = max(1, min(ntasks, buckets))

    def make():
        for i in range(ntasks):
            mine = list(range(i, buckets, ntasks))
            skip = [int(x) for x in lost if int(x) % buckets % ntasks == i]
            yield Task.of(skeleton_merge, dict(common, skel_dir=url, buckets=mine, skip=skip))

    return TaskPlan(make, ntasks, description)


def create_unsharded_skeleton_merge_tasks(
    layer_path: str, mip: int | None = None, crop: int = 0, magnitude: int = 3,
    dust_threshold: float = 4000, tick_threshold: float = 6000, delete_fragments: bool = False,
    max_cable_length: float | None = None, skel_dir: str | None = None,
    memory_target: float = DEFAULT_MEMORY_TARGET,
) -> TaskPlan:
    """Fuse forge fragments into one ``SKELDIR/LABEL`` file per label.

    ``magnitude`` splits the work into up to 10^magnitude tasks; thresholds are
    physical lengths; ``crop`` trims that many voxels off the volume's faces;
    each task decodes its labels in batches that fit ``memory_target``.
    """
    if magnitude < 0:
        raise UserError("magnitude must be >= 0")
    layer, url, meta, _, lost = _forge_state(layer_path, skel_dir)
    if mip is not None and resolve_mip(layer, mip) != meta["mip"]:
        raise UserError(f"the fragments were forged at mip {meta['mip']}, not mip {mip}")
    common = _merge_common(layer, meta, crop=crop, dust_threshold=dust_threshold,
                           tick_threshold=tick_threshold, max_cable_length=max_cable_length,
                           delete_fragments=delete_fragments, memory_target=memory_target)
    _set_sharding(url, None)
    return _merge_plan(url, meta, 10**magnitude, lost, common, "skeleton merge")


def _set_sharding(url: str, sharding: dict | None) -> None:
    from igneous.layers import read_sub_info, write_info

    sub = read_sub_info(url) or {}
    if sub.get("sharding") != sharding:
        sub["sharding"] = sharding
        if sharding is None:  # Neuroglancer rejects "sharding": null
            del sub["sharding"]
        write_info(url, sub)


def plan_sharded_skeleton_merge(
    layer_path: str, dust_threshold: float = 1000, tick_threshold: float = 3500,
    shard_index_bytes: int = 2**13, minishard_index_bytes: int = 2**15, min_shards: int = 1,
    max_labels_per_shard: int | None = None, minishard_index_encoding: str = "gzip",
    data_encoding: str = "gzip", max_cable_length: float | None = None,
    spatial_index_db: str | None = None, minishard_bits: int | None = None,
    shard_bits: int | None = None, preshift_bits: int | None = None, crop: int = 0,
    delete_fragments: bool = False, skel_dir: str | None = None,
    memory_target: float = DEFAULT_MEMORY_TARGET,
) -> Stages:
    """The sharded merge as two stages: fuse per bucket, then write each shard.

    There are enough shards that writing one fits ``memory_target`` (from the
    fragments' bytes per label). ``spatial_index_db`` is accepted for
    compatibility; the fragments' own label lists are used instead.
    """
    from igneous.storage import open_store

    layer, url, meta, labels, lost = _forge_state(layer_path, skel_dir)
    common = _merge_common(layer, meta, crop=crop, dust_threshold=dust_threshold,
                           tick_threshold=tick_threshold, max_cable_length=max_cable_length,
                           delete_fragments=delete_fragments, memory_target=memory_target)
    cf = open_store(url)
    num_labels = int(labels.size - np.isin(labels, lost).sum())
    spec = hashed_sharding(
        num_labels, bytes_per_label=_fragment_bytes(cf) / max(num_labels, 1),
        memory_target=memory_target, shard_index_bytes=shard_index_bytes,
        minishard_index_bytes=minishard_index_bytes, min_shards=min_shards,
        max_labels_per_shard=max_labels_per_shard,
        minishard_index_encoding=minishard_index_encoding, data_encoding=data_encoding,
        minishard_bits=minishard_bits, shard_bits=shard_bits, preshift_bits=preshift_bits,
    )
    cf.delete(list(cf.list(prefix=f"{FRAG_DIR}/fused")))  # an earlier merge's scratch
    _set_sharding(url, spec)
    fuse_plan = _merge_plan(url, meta, meta["buckets"], lost, dict(common, sharding=spec),
                            "skeleton merge (fuse)")
    nshards = 2 ** spec["shard_bits"]
    width = int(math.ceil(spec["shard_bits"] / 4.0))
    # what a shard task needs to fuse its labels itself where the fuse stage
    # has not run (a queue without stages); not while fuse tasks delete fragments
    merge = {k: common[k] for k in ("resolution", "vertex_attributes", "dust_threshold",
                                    "tick_threshold", "max_cable_length", "crop_box",
                                    "memory_target")}
    lost_by_shard: dict[str, list[int]] = {}
    if lost.size:
        from cloudvolume.datasource.precomputed.sharding import ShardingSpecification

        sharding = ShardingSpecification.from_dict(spec)
        for x in lost:
            lost_by_shard.setdefault(sharding.compute_shard_location(int(x)).shard_number,
                                     []).append(int(x))

    def shard_plan(expect: int, fused_here: bool, delete: bool) -> TaskPlan:
        def make():
            for i in range(nshards):
                shard = format(i, "x").zfill(width)
                extra = dict(merge=dict(merge, skip=lost_by_shard.get(shard, []))) if fused_here else {}
                yield Task.of(skeleton_shard, dict(skel_dir=url, shard=shard, sharding=spec,
                                                  expect=expect, delete_fragments=delete, **extra))

        return TaskPlan(make, nshards, "skeleton merge (shards)")

    return Stages([fuse_plan, shard_plan(len(fuse_plan), not delete_fragments, delete_fragments)],
                  shard_plan(0, True, False),
                  f"this queue has no stages: each of the {nshards} shard tasks fuses its own "
                  "labels, reading every bucket of fragments (a local or PostgreSQL queue fuses "
                  "them once, by bucket, first)"
                  + ("; fragments are kept: remove them afterwards with `igneous skeleton clean`"
                     if delete_fragments else ""))


def _fragment_bytes(cf, sample: int = 256) -> float:
    """The forge fragments' total bytes, from the sizes of up to ``sample`` files."""
    import itertools

    paths = [p for files in bucket_files(cf).values() for p in files]
    if not paths:
        return 0.0
    step = max(1, len(paths) // sample)
    sizes = [int(cf.size(p) or 0) for p in itertools.islice(paths, 0, None, step)]
    return sum(sizes) / len(sizes) * len(paths)


def create_sharded_skeleton_merge_tasks(layer_path: str, **kwargs) -> TaskPlan:
    """Both stages of the sharded merge in order (run them in order, or use
    ``plan_sharded_skeleton_merge`` to queue them as separate stages)."""
    stages = plan_sharded_skeleton_merge(layer_path, **kwargs)
    return TaskPlan(lambda: chain.from_iterable(stages), sum(map(len, stages)),
                    "skeleton merge (sharded)")


# -- delete ----------------------------------------------------------------------

def create_skeleton_deletion_tasks(layer_path: str, magnitude: int = 2,
                                   skel_dir: str | None = None) -> TaskPlan:
    """Delete every file of the skeleton directory, split by name prefix."""
    if not 0 <= magnitude <= 4:
        raise UserError("magnitude must be between 0 and 4")
    layer = LayerInfo(layer_path)
    if not skel_dir and not layer.info.get("skeletons"):
        raise UserError(f"{layer.cloudpath} has no skeletons in its info; give --dir")
    url = skeleton_url(layer, 0, skel_dir)
    digits = "0123456789abcdef"
    prefixes = [""]
    for _ in range(magnitude):
        prefixes = [p + d for p in prefixes for d in digits]

    def make():
        for p in prefixes:
            yield Task.of(skeleton_delete, dict(skel_dir=url, prefix=p))
        if magnitude:
            yield Task.of(skeleton_delete, dict(skel_dir=url, others=True))

    return TaskPlan(make, len(prefixes) + (1 if magnitude else 0), "skeleton delete")


def clean_fragments(layer_path: str, skel_dir: str | None = None) -> int:
    """Delete the forge scratch files (``.frags/``) and temporary files killed
    writers left; returns how many."""
    from igneous.storage import open_store

    url = skeleton_url(LayerInfo(layer_path), 0, skel_dir)
    cf = open_store(url)
    paths = list(cf.list(prefix=f"{FRAG_DIR}/"))
    cf.delete(paths)
    return len(paths) + cf.remove_leftovers()


def _skeleton_labels(url: str) -> list[int]:
    """Labels of an unsharded skeleton directory (file names that are integers)."""
    from igneous.storage import open_store

    return sorted(int(name) for name in open_store(url).list(flat=True) if name.isdigit())


def create_skeleton_transfer_tasks(src: str, dest: str, sharded: bool = False,
                                   skel_dir: str | None = None, magnitude: int = 2) -> TaskPlan:
    """Copy SRC's skeletons to DEST (verbatim, or re-encoded into shards)."""
    from igneous.layers import read_info, read_sub_info, write_info

    if not 0 <= magnitude <= 4:
        raise UserError("magnitude must be between 0 and 4")
    layer = LayerInfo(src)
    name = layer.info.get("skeletons")
    if not name:
        raise UserError(f"{layer.cloudpath} has no skeletons in its info")
    src_url = f"{layer.cloudpath}/{name}"
    sub = read_sub_info(src_url)
    if not sub:
        raise UserError(f"{src_url} has no skeleton info; forge and merge first")
    dest = normalize_path(dest)
    dest_name = skel_dir or name
    dest_info = read_info(dest) or dict(layer.info)
    write_info(dest, dict(dest_info, skeletons=dest_name))
    dest_url = f"{dest}/{dest_name}"
    if not sharded:
        write_info(dest_url, sub)
        prefixes = [""]
        for _ in range(magnitude):
            prefixes = [p + d for p in prefixes for d in "0123456789abcdef"]

        def copies():
            for p in prefixes:
                yield Task.of(skeleton_xfer, dict(src_dir=src_url, dest_dir=dest_url, prefix=p))
            if magnitude:
                yield Task.of(skeleton_xfer, dict(src_dir=src_url, dest_dir=dest_url, others=True))

        return TaskPlan(copies, len(prefixes) + (1 if magnitude else 0), "skeleton copy")
    if sub.get("sharding"):
        raise UserError(f"{src_url} is already sharded; copy it without --sharded")
    from cloudvolume.datasource.precomputed.sharding import ShardingSpecification

    labels = _skeleton_labels(src_url)
    spec = hashed_sharding(len(labels))
    shard_of = ShardingSpecification.from_dict(spec).compute_shard_location
    groups: dict[str, list[int]] = {}
    for label in labels:
        groups.setdefault(shard_of(label).shard_number, []).append(label)
    write_info(dest_url, dict(sub, sharding=spec, spatial_index=None))

    def shards():
        for labels_of in groups.values():
            yield Task.of(skeleton_xfer, dict(src_dir=src_url, dest_dir=dest_url, labels=labels_of,
                                             sharding=spec, src_layer=layer.cloudpath))

    return TaskPlan(shards, len(groups), "skeleton xfer (sharded)")


def create_spatial_index_skeleton_tasks(cloudpath: str, shape=(448, 448, 448), mip: int = 0,
                                        fill_missing: bool = False) -> TaskPlan:
    """(Re)build the skeleton spatial index from the segmentation without reskeletonizing."""
    from igneous.task_creation.spatial_index import create_spatial_index_tasks

    return create_spatial_index_tasks(cloudpath, "skeleton", mip, shape, fill_missing)
