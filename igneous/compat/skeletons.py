"""The original Igneous's skeleton tasks, run by our skeleton forge and merge.

The original's planners write the layer's skeleton info and queue:

- ``SkeletonTask``: one block, ``shape`` = the grid step + 1 voxel of overlap.
  Ours runs ``skeleton_forge`` on the same voxels (its block is ``shape - 1``
  plus the overlap it reads itself). Fragments go to the skeleton directory's
  ``.frags/`` in our format; unsharded (``sharded=False``) they are bucketed by
  the label's first ``PREFIX_DIGITS`` decimal digits, which is how the
  original's unsharded merge tasks divide labels (``prefix``); sharded, one
  file per block (a shard's labels are anywhere in the label space).
  ``.frags/compat.json`` records the bucketing and the fragments' attributes.
- ``UnshardedSkeletonMergeTask`` (``prefix`` ``"12"``: labels whose decimal
  digits start with 12; ``"7:"``: label 7 alone) -> ``compat_skeleton_merge``:
  reads the buckets of its prefix, fuses each label with our ``fuse``.
- ``ShardedSkeletonMergeTask`` (``shard_no``, the sharding spec the original's
  planner wrote into the skeleton info) -> ``compat_skeleton_shard``: finds its
  labels and the blocks holding them in the forge markers
  (``.frags/tasks/BLOCK.labels``), reads those blocks' fragments, fuses, and
  writes the shard file.

Written skeletons carry exactly the skeleton info's ``vertex_attributes`` (the
original's planner lists ``radius``, and ``cross_sectional_area`` when asked).
A skeleton longer than ``max_cable_length`` is written merged but not
postprocessed, as the original does.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import numpy as np

from igneous.compat.base import REQUIRED, OriginalTask, triple
from igneous.errors import UserError
from igneous.tasks import Task

PREFIX_DIGITS = 3  # the original's default merge magnitude: one bucket per task
COMPAT_META = ".frags/compat.json"
GRAPHENE = "graphene (ChunkedGraph) sources are not supported"


def skeleton_location(cloudpath: str, who: str) -> tuple[Any, str]:
    """(layer, skeleton directory url) of a layer whose info names its skeletons."""
    from igneous.layers import LayerInfo

    layer = LayerInfo(cloudpath)
    name = layer.info.get("skeletons")
    if not name:
        raise UserError(f"{who}: {layer.cloudpath} names no skeleton directory (its info has no "
                        "'skeletons'); plan with create_skeletonizing_tasks first, which writes it")
    return layer, f"{layer.cloudpath}/{str(name).strip('/')}"


class SkeletonTask(OriginalTask):
    params = {
        "cloudpath": REQUIRED, "shape": REQUIRED, "offset": REQUIRED, "mip": REQUIRED,
        "teasar_params": REQUIRED, "will_postprocess": REQUIRED, "info": None,
        "object_ids": None, "mask_ids": None, "fix_branching": True, "fix_borders": True,
        "fix_avocados": False, "fill_holes": 0, "dust_threshold": 1000, "progress": False,
        "parallel": 1, "fill_missing": False, "sharded": False, "frag_path": None,
        "spatial_index": True, "spatial_grid_shape": None, "synapses": None,
        "dust_global": False, "cross_sectional_area": False,
        "cross_sectional_area_smoothing_window": 1, "cross_sectional_area_shape_delta": 150,
        "cross_sectional_area_repair_sec_per_label": 0,
        "cross_sectional_area_low_memory_threshold": 8000000000, "dry_run": False,
        "strip_integer_attributes": True, "fix_autapses": False, "timestamp": None,
        "root_ids_cloudpath": None,
    }
    unsupported = {
        "info": "write the layer's info first (the planner's info= does)",
        "frag_path": "fragments are written in the skeleton directory's .frags/",
        "synapses": "synapse-targeted skeletons are not supported",
        "cross_sectional_area_shape_delta": "our cross sections use kimimaro's default",
        "cross_sectional_area_repair_sec_per_label": "cross sections are not repaired",
        "dry_run": "not supported",
        "strip_integer_attributes": "written skeletons carry the skeleton info's float attributes",
        "fix_autapses": GRAPHENE, "timestamp": GRAPHENE, "root_ids_cloudpath": GRAPHENE,
    }
    # accepted without effect: progress (logging), cross_sectional_area_low_memory_threshold
    # (memory tuning of the original's cross sections)

    def task(self) -> Task:
        from igneous.grid import scale_bounds, vec
        from igneous.storage import open_store
        from igneous.tasks.skeleton import FORGE_META, skeleton_forge, vertex_attributes

        name = type(self).__name__
        if not self.arg("will_postprocess"):
            raise UserError(f"{name}: keyword will_postprocess=False is not supported here "
                            "(fragments are always fused by the merge tasks)")
        fill_holes = self.arg("fill_holes")
        if fill_holes not in (0, 1, True, False):
            raise UserError(f"{name}: keyword fill_holes={fill_holes!r} is not supported here "
                            "(holes are filled or not: 0 or 1)")
        layer, url = skeleton_location(self.arg("cloudpath"), name)
        mip = int(self.arg("mip"))
        if not 0 <= mip < len(layer.info["scales"]):
            raise UserError(f"{name}: mip {mip} does not exist in {layer.cloudpath}")
        start, stop = scale_bounds(layer.info, mip)
        lo = vec(triple(self.arg("offset"), "offset"))
        # the original's shape includes the voxel of overlap that our forge reads itself
        hi = np.minimum(lo + np.maximum(vec(triple(self.arg("shape"), "shape")) - 1, 1), stop)
        lo = np.maximum(lo, start)
        if np.any(hi <= lo):
            raise UserError(f"{name}: the block at offset {self.arg('offset')} lies outside the "
                            f"volume {start.tolist()}-{stop.tolist()}")
        grid = self.arg("spatial_grid_shape")
        step = vec(triple(self.arg("shape"), "shape")) - 1
        if self.arg("spatial_index") and grid is not None and list(triple(grid, "spatial_grid_shape")) != step.tolist():
            raise UserError(f"{name}: keyword spatial_grid_shape={grid!r} is not supported here "
                            f"(the spatial index is written per task block, {step.tolist()})")
        area = bool(self.arg("cross_sectional_area"))
        meta = {"bucket_digits": 0 if self.arg("sharded") else PREFIX_DIGITS, "mip": mip,
                "vertex_attributes": vertex_attributes(area)}
        store = open_store(url)
        if store.exists(FORGE_META):
            raise UserError(f"{name}: {url} holds fragments of our own forge (igneous skeleton "
                            "forge); merge them with igneous skeleton merge, or run "
                            "igneous skeleton clean first")
        old = store.get_json(COMPAT_META)
        if old is None:
            store.put_json(COMPAT_META, meta)
        elif old != meta:
            raise UserError(f"{name}: {url} holds fragments of an earlier forge with other "
                            f"settings ({old}); run igneous skeleton clean first")
        ids, masked = self.arg("object_ids"), self.arg("mask_ids")
        return Task.of(skeleton_forge, {
            "layer_path": layer.cloudpath, "skel_dir": url, "mip": mip,
            "offset": lo.tolist(), "shape": (hi - lo).tolist(),
            "teasar_params": dict(self.arg("teasar_params") or {}), "buckets": 1,
            "bucket_digits": meta["bucket_digits"],
            "object_ids": [int(x) for x in ids] if ids else None,
            "mask_ids": [int(x) for x in masked] if masked else None,
            "fix_branching": bool(self.arg("fix_branching")),
            "fix_borders": bool(self.arg("fix_borders")),
            "fix_avocados": bool(self.arg("fix_avocados")), "fill_holes": bool(fill_holes),
            "dust_threshold": int(self.arg("dust_threshold") or 0),
            "fill_missing": bool(self.arg("fill_missing")), "parallel": int(self.arg("parallel")),
            "spatial_index": bool(self.arg("spatial_index")), "cross_sectional_area": area,
            "cross_sectional_area_smoothing_window":
                int(self.arg("cross_sectional_area_smoothing_window")),
            "dust_global": bool(self.arg("dust_global")),
        })


class UnshardedSkeletonMergeTask(OriginalTask):
    params = {"cloudpath": REQUIRED, "prefix": REQUIRED, "crop": 0, "dust_threshold": 4000,
              "max_cable_length": None, "tick_threshold": 6000, "delete_fragments": False}
    unsupported = {"crop": "the original crops every block's fragments before fusing; ours "
                   "fuse at the shared seams (igneous skeleton merge --crop trims the volume's "
                   "faces)"}

    def task(self) -> Task:
        prefix = str(self.arg("prefix"))
        if not prefix.rstrip(":").isdigit() or prefix.startswith("0"):
            raise UserError(f"UnshardedSkeletonMergeTask: prefix {prefix!r} is not a label prefix "
                            "(decimal digits, optionally ending in ':')")
        return Task.of(compat_skeleton_merge, dict(
            self.merge_args(), layer_path=self.arg("cloudpath"), prefix=prefix,
            delete_fragments=bool(self.arg("delete_fragments"))))

    def merge_args(self) -> dict[str, Any]:
        longest = self.arg("max_cable_length")
        return {"dust_threshold": float(self.arg("dust_threshold") or 0),
                "tick_threshold": float(self.arg("tick_threshold") or 0),
                "max_cable_length": None if longest is None else float(longest)}


class ShardedSkeletonMergeTask(UnshardedSkeletonMergeTask):
    params = {"cloudpath": REQUIRED, "shard_no": REQUIRED, "dust_threshold": 4000,
              "tick_threshold": 6000, "frag_path": None, "cache": False,
              "spatial_index_db": None, "max_cable_length": None, "dry_run": False}
    unsupported = {"frag_path": "fragments are read from the skeleton directory's .frags/",
                   "dry_run": "not supported"}
    # accepted without effect: cache (the original's local copy of fragments) and
    # spatial_index_db (labels and their blocks come from the forge's markers)

    def task(self) -> Task:
        shard = str(self.arg("shard_no"))
        try:
            int(shard, 16)
        except ValueError:
            raise UserError(f"ShardedSkeletonMergeTask: shard_no {shard!r} is not a hexadecimal "
                            "shard number") from None
        return Task.of(compat_skeleton_shard, dict(
            self.merge_args(), layer_path=self.arg("cloudpath"), shard_no=shard))


# -- the merge task functions ----------------------------------------------------


def merge_context(layer_path: str, who: str) -> tuple[Any, dict, dict, list[float]]:
    """(store of the skeleton directory, its info, the forge's compat meta, resolution)."""
    from igneous.layers import read_sub_info
    from igneous.storage import open_store

    layer, url = skeleton_location(layer_path, who)
    store = open_store(url)
    meta = store.get_json(COMPAT_META)
    if meta is None:
        raise UserError(f"{who}: no fragments forged by SkeletonTask in {url}; run the "
                        "skeletonizing tasks first")
    sub = read_sub_info(url) or {}
    res = layer.info["scales"][int(meta["mip"])]["resolution"]
    return store, sub, meta, res


def read_fragments(store: Any, paths: list[str], attributes: list[dict],
                   wanted: Callable[[int], bool]) -> dict[int, list]:
    """label -> fragments, of the labels ``wanted`` in the fragment files ``paths``."""
    from cloudvolume import Skeleton
    from mapbuffer import MapBuffer

    frags: dict[int, list] = {}
    for path, data in store.get_many(paths):
        if data is None:
            raise UserError(f"{store.url}/{path} vanished while it was read; is another merge "
                            "deleting fragments? re-run this task")
        buf = MapBuffer(data)
        for label in (int(x) for x in buf.keys()):
            if wanted(label):
                frags.setdefault(label, []).append(Skeleton.from_precomputed(
                    bytes(buf[label]), segid=label, vertex_attributes=attributes))
    return frags


def fused_skeletons(frags: dict[int, list], res: list[float], sub: dict, ball: dict | None,
                    **thresholds: Any) -> Iterator[tuple[int, bytes]]:
    """(label, precomputed bytes) of each label fused by our merge, carrying the
    skeleton info's vertex attributes."""
    from igneous.tasks.skeleton_merge import fuse

    keep = sub.get("vertex_attributes") or []
    for label in sorted(frags):
        skel = fuse(frags.pop(label), res, ball=ball, keep_long=True, **thresholds)
        if skel is None:
            continue
        skel.extra_attributes = [a for a in keep if hasattr(skel, a["id"])]
        yield label, skel.to_precomputed()


def prefix_buckets(prefix: str, digits: int) -> tuple[list[int], bool]:
    """The fragment buckets holding the labels of an original merge task's prefix
    (``bucket_of(label, _, digits)``), and whether it owns them alone."""
    exact = prefix.endswith(":")
    p = prefix.rstrip(":")
    if exact or len(p) >= digits:
        return [int(p[:digits])], (exact and len(p) < digits) or (not exact and len(p) == digits)
    out = []
    for extra in range(digits - len(p) + 1):
        out += [int(p + str(t).zfill(extra)) for t in range(10**extra)] if extra else [int(p)]
    return out, True


def compat_skeleton_merge(layer_path: str, prefix: str, dust_threshold: float = 4000,
                          tick_threshold: float = 6000, max_cable_length: float | None = None,
                          delete_fragments: bool = False) -> None:
    """The original's UnshardedSkeletonMergeTask: fuse the labels of ``prefix``
    (``"N:"``: label N alone) and write one ``SKELDIR/LABEL`` file each."""
    from igneous.tasks.skeleton import BALL_FILE, bucket_dir

    store, sub, meta, res = merge_context(layer_path, "UnshardedSkeletonMergeTask")
    digits = int(meta["bucket_digits"])
    buckets, owned = prefix_buckets(prefix, digits) if digits else ([0], False)
    paths = [p for b in buckets for p in store.list(prefix=bucket_dir(b))]
    p = prefix.rstrip(":")
    wanted = (lambda label: str(label) == p) if prefix.endswith(":") else \
        (lambda label: str(label).startswith(p))
    frags = read_fragments(store, paths, meta["vertex_attributes"], wanted)
    fused = fused_skeletons(frags, res, sub, store.get_json(BALL_FILE),
                            dust_threshold=dust_threshold, tick_threshold=tick_threshold,
                            max_cable_length=max_cable_length)
    store.put_many([(str(label), content) for label, content in fused], compress="gzip")
    if delete_fragments and owned:  # a shared bucket stays for the other prefixes
        store.delete(paths)


def compat_skeleton_shard(layer_path: str, shard_no: str, dust_threshold: float = 4000,
                          tick_threshold: float = 6000,
                          max_cable_length: float | None = None) -> None:
    """The original's ShardedSkeletonMergeTask: fuse the labels of shard
    ``shard_no`` of the skeleton info's sharding and write that shard file."""
    from cloudvolume.datasource.precomputed.sharding import (
        ShardingSpecification,
        synthesize_shard_files,
    )

    from igneous.tasks.skeleton import BALL_FILE, TASK_DIR, bucket_dir, bucket_of

    who = "ShardedSkeletonMergeTask"
    store, sub, meta, res = merge_context(layer_path, who)
    if not sub.get("sharding"):
        raise UserError(f"{who}: {store.url}/info has no sharding; plan with "
                        "create_sharded_skeleton_merge_tasks, which writes it")
    spec = ShardingSpecification.from_dict(sub["sharding"])
    shard = int(shard_no, 16)
    markers = sorted(store.list(prefix=f"{TASK_DIR}/"))
    blocks: dict[str, np.ndarray] = {}
    for path, data in store.get_many(markers):
        if data is not None:
            blocks[path.rsplit("/", 1)[-1].removesuffix(".labels")] = np.frombuffer(data, np.uint64)
    labels = np.unique(np.concatenate(list(blocks.values()))) if blocks else []
    mine = {int(x) for x in labels
            if int(spec.compute_shard_location(int(x)).shard_number, 16) == shard}
    digits = int(meta["bucket_digits"])
    paths = sorted({f"{bucket_dir(bucket_of(int(x), 1, digits) if digits else 0)}{name}.frags"
                    for name, ids in blocks.items() for x in ids if int(x) in mine})
    frags = read_fragments(store, paths, meta["vertex_attributes"], mine.__contains__)
    data = dict(fused_skeletons(frags, res, sub, store.get_json(BALL_FILE),
                                dust_threshold=dust_threshold, tick_threshold=tick_threshold,
                                max_cable_length=max_cable_length))
    if data:
        files = synthesize_shard_files(spec, data)
        store.put_many(list(files.items()), content_type="application/octet-stream")
