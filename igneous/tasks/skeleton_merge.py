"""Skeleton merge: fuse each label's forge fragments into one skeleton.

Unsharded: one task per group of buckets writes ``SKELDIR/LABEL`` files.
Sharded, in two queue stages so memory stays bounded by one bucket and then
one shard, never by the whole volume:

1. ``skeleton_merge`` with a sharding spec fuses a bucket's labels and files
   each fused skeleton under its shard: ``.frags/fused/SHARD/BUCKET.fused``;
2. ``skeleton_shard`` reads one shard's fused skeletons and writes the
   ``neuroglancer_uint64_sharded_v1`` shard file.
"""

from __future__ import annotations

import sys
from collections.abc import Sequence

import numpy as np

from igneous.tasks import register
from igneous.tasks.skeleton import (
    FRAG_DIR,
    bucket_dir,
    decode_skeletons,
    encode_skeletons,
)

FUSED_DIR = f"{FRAG_DIR}/fused"
DONE_DIR = f"{FRAG_DIR}/fused-done"


def fuse(fragments: list, resolution: Sequence[float], *, dust_threshold: float,
         tick_threshold: float, max_cable_length: float | None, crop_box=None):
    """One skeleton from a label's fragments, or None when it is dust or too long.

    Vertices are snapped to the voxel grid so the copies of a seam vertex made
    by the two blocks that share it are bit-identical, then duplicates are
    removed, loops broken, close pieces joined and ticks trimmed (kimimaro's
    postprocess). Thresholds are physical lengths.
    """
    import kimimaro
    from cloudvolume import Skeleton

    label = fragments[0].id
    skel = Skeleton.simple_merge(fragments) if len(fragments) > 1 else fragments[0]
    res = np.asarray(resolution, dtype=np.float32)
    skel.vertices = (np.round(skel.vertices / res) * res).astype(np.float32)
    skel = skel.consolidate()
    if max_cable_length is not None and skel.cable_length() > max_cable_length:
        print(f"igneous: skeleton {label} is longer than max_cable_length "
              f"({skel.cable_length():.0f} > {max_cable_length:.0f}); skipped", file=sys.stderr)
        return None
    skel = kimimaro.postprocess(skel, dust_threshold=dust_threshold,
                                tick_threshold=tick_threshold)
    if crop_box is not None:
        skel = skel.crop(crop_box)
    if skel.empty():
        return None
    skel.id = label
    return skel


def _gather(cf, bucket: int, attributes: list[dict], skip: set[int]) -> tuple[dict, list[str]]:
    """label -> fragments of one bucket, and the files they came from."""
    paths = list(cf.list(prefix=bucket_dir(bucket)))
    frags: dict[int, list] = {}
    for res in cf.get(paths):
        if res["error"] is not None:
            raise res["error"]
        for label, skel in decode_skeletons(res["content"], attributes):
            if label not in skip:
                frags.setdefault(label, []).append(skel)
    return frags, paths


@register("skeleton_merge")
def skeleton_merge(skel_dir: str, buckets: Sequence[int], resolution: Sequence[float],
                   vertex_attributes: list[dict], dust_threshold: float = 1000,
                   tick_threshold: float = 0, max_cable_length: float | None = None,
                   crop_box: list | None = None, skip: Sequence[int] = (),
                   delete_fragments: bool = False, sharding: dict | None = None) -> None:
    """Fuse every label of ``buckets``; write skeletons (or, with ``sharding``,
    per-shard intermediate files for ``skeleton_shard``)."""
    from cloudfiles import CloudFiles

    cf = CloudFiles(skel_dir)
    spec = None
    if sharding is not None:
        from cloudvolume.datasource.precomputed.sharding import ShardingSpecification

        spec = ShardingSpecification.from_dict(sharding)
    skip_set = {int(x) for x in skip}
    for bucket in buckets:
        frags, paths = _gather(cf, int(bucket), vertex_attributes, skip_set)
        if not paths:
            continue  # nothing forged here, or already merged with delete_fragments
        fused = {}
        for label in sorted(frags):
            skel = fuse(frags.pop(label), resolution, dust_threshold=dust_threshold,
                        tick_threshold=tick_threshold, max_cable_length=max_cable_length,
                        crop_box=crop_box)
            if skel is not None:
                fused[label] = skel
        if spec is None:
            cf.puts([(str(label), s.to_precomputed()) for label, s in fused.items()],
                    compress="gzip")
        else:
            by_shard: dict[str, dict] = {}
            for label, s in fused.items():
                shard = spec.compute_shard_location(label).shard_number
                by_shard.setdefault(shard, {})[label] = s
            cf.puts([(f"{FUSED_DIR}/{shard}/{int(bucket):05d}.fused", encode_skeletons(group))
                     for shard, group in by_shard.items()], compress=None)
        if delete_fragments:
            cf.delete(paths)
    if spec is not None:  # tells the shard stage this task's output is complete
        cf.put(f"{DONE_DIR}/{int(buckets[0]):05d}", b"", compress=None)


@register("skeleton_shard")
def skeleton_shard(skel_dir: str, shard: str, sharding: dict, expect: int = 0,
                   delete_fragments: bool = False) -> None:
    """Write one shard file from the fused skeletons filed under it.

    Refuses (the queue retries later) until all ``expect`` fuse tasks are
    done, so a shard is never written from part of its labels.
    """
    from cloudfiles import CloudFiles
    from cloudvolume.datasource.precomputed.sharding import (
        ShardingSpecification,
        synthesize_shard_files,
    )
    from mapbuffer import MapBuffer

    cf = CloudFiles(skel_dir)
    done = len(list(cf.list(prefix=f"{DONE_DIR}/")))
    if done < expect:
        raise RuntimeError(f"only {done} of {expect} skeleton fuse tasks have finished; "
                           "the shard stage must run after them")
    paths = list(cf.list(prefix=f"{FUSED_DIR}/{shard}/"))
    if not paths:
        return
    data: dict[int, bytes] = {}
    for res in cf.get(paths):
        if res["error"] is not None:
            raise res["error"]
        for label, raw in MapBuffer(res["content"]).items():
            data[int(label)] = bytes(raw)
    spec = ShardingSpecification.from_dict(sharding)
    files = synthesize_shard_files(spec, data)
    cf.puts(list(files.items()), compress=None, content_type="application/octet-stream")
    if delete_fragments:
        cf.delete(paths)


@register("skeleton_delete")
def skeleton_delete(skel_dir: str, prefix: str = "", others: bool = False) -> None:
    """Delete the files of a skeleton directory starting with ``prefix``
    (``others``: every file not starting with a hex digit, e.g. info, scratch)."""
    from cloudfiles import CloudFiles

    cf = CloudFiles(skel_dir)
    if others:
        paths = [p for p in cf.list() if p[:1].lower() not in "0123456789abcdef"]
    else:
        paths = list(cf.list(prefix=prefix))
    cf.delete(paths)


@register("skeleton_xfer")
def skeleton_xfer(src_dir: str, dest_dir: str, prefix: str = "", others: bool = False,
                  labels: Sequence[int] | None = None, sharding: dict | None = None,
                  src_layer: str | None = None) -> None:
    """Copy skeleton files starting with ``prefix`` verbatim, or (``labels`` +
    ``sharding``) read those skeletons from ``src_layer`` and write their shard."""
    from cloudfiles import CloudFiles

    if labels is None:
        src = CloudFiles(src_dir)
        names = src.list() if others else src.list(prefix=prefix)
        paths = [p for p in names if not p.startswith(FRAG_DIR)
                 and (not others or p[:1].lower() not in "0123456789abcdef")]
        src.transfer_to(dest_dir, paths=paths)
        return
    from cloudvolume.datasource.precomputed.sharding import (
        ShardingSpecification,
        synthesize_shard_files,
    )

    from igneous.layers import open_layer

    cv = open_layer(src_layer)
    skels = cv.skeleton.get([int(x) for x in labels])
    data = {int(s.id): s.to_precomputed() for s in skels}
    files = synthesize_shard_files(ShardingSpecification.from_dict(sharding), data)
    CloudFiles(dest_dir).puts(list(files.items()), compress=None,
                              content_type="application/octet-stream")
