"""Skeleton merge: fuse each label's forge fragments into one skeleton.

Unsharded: one task per group of buckets writes ``SKELDIR/LABEL`` files.
A task decodes a bucket's labels in batches sized to its memory target.
Sharded, in two queue stages so memory stays bounded by one batch and then
one shard (sized to the memory target), never by the whole volume:

1. ``skeleton_merge`` with a sharding spec fuses a bucket's labels and files
   each fused skeleton under its shard: ``.frags/fused/SHARD/BUCKET-BATCH.fused``;
2. ``skeleton_shard`` reads one shard's fused skeletons and writes the
   ``neuroglancer_uint64_sharded_v1`` shard file.
"""

from __future__ import annotations

import sys
from collections.abc import Callable, Iterator, Sequence
from typing import TYPE_CHECKING, Any

import numpy as np

from igneous.errors import UserError
from igneous.tasks.merging import SKELETON_FRAGMENT_OVERHEAD
from igneous.tasks.skeleton import (
    BALL_FILE,
    FRAG_DIR,
    SEAM,
    bucket_dir,
    bucket_files,
    decode_skeleton,
    encode_skeletons,
)

if TYPE_CHECKING:
    from igneous.storage import Store

FUSED_DIR = f"{FRAG_DIR}/fused"
DONE_DIR = f"{FRAG_DIR}/fused-done"


def fuse(fragments: list, resolution: Sequence[float], *, dust_threshold: float,
         tick_threshold: float, max_cable_length: float | None,
         crop_box: Sequence[Sequence[float]] | None = None,
         ball: dict | None = None, keep_long: bool = False) -> Any:
    """One skeleton from a label's fragments, or None when it is dust or too long
    (``keep_long``: a skeleton over ``max_cable_length`` is returned merged but
    not postprocessed instead, the original Igneous's rule).

    Vertices are snapped to voxel centres so the copies of a seam vertex made
    by the two blocks that share it are bit-identical, then duplicates are
    removed and kimimaro's postprocess steps run: dust, loops broken, close
    pieces joined, then (with ``ball``, the forge's TEASAR scale and const)
    seam spurs pruned, then ticks trimmed. Thresholds are physical lengths.
    The steps are called one by one because the spurs must go before the
    tick removal (which would otherwise trim a real, shorter end instead)
    and after the loops are broken (pruning needs a tree).
    """
    from cloudvolume import Skeleton
    from kimimaro import post

    label = fragments[0].id
    skel = Skeleton.simple_merge(fragments) if len(fragments) > 1 else fragments[0]
    res = np.asarray(resolution, dtype=np.float32)
    skel.vertices = ((np.floor(skel.vertices / res) + 0.5) * res).astype(np.float32)
    skel = skel.consolidate()
    if max_cable_length is not None and skel.cable_length() > max_cable_length:
        if keep_long:
            skel.vertex_types = np.zeros(len(skel.vertices), dtype=np.uint8)
            skel.id = label
            return skel
        print(f"igneous: skeleton {label} is longer than max_cable_length "
              f"({skel.cable_length():.0f} > {max_cable_length:.0f}); skipped", file=sys.stderr)
        return None
    skel = post.remove_dust(skel, dust_threshold)
    skel = post.remove_loops(open_lone_cycles(skel))
    skel = post.join_close_components(skel, restrict_by_radius=True)
    if ball is not None:
        skel = prune_seam_spurs(skel, ball["scale"], ball["const"])
    skel.vertex_types = np.zeros(len(skel.vertices), dtype=np.uint8)
    skel = post.remove_ticks(skel, tick_threshold).consolidate()
    if crop_box is not None:
        skel = skel.crop(crop_box)
    if skel.empty():
        return None
    skel.id = label
    return skel


def open_lone_cycles(skel: Any) -> Any:
    """Cut one edge of every component that is nothing but a cycle.

    kimimaro's ``remove_loops`` (5.8) drops every edge of such a component,
    so the label vanished: pieces of a ring-shaped label can fuse into one.
    """
    from scipy.sparse import coo_matrix
    from scipy.sparse.csgraph import connected_components

    n, edges = len(skel.vertices), skel.edges
    if len(edges) == 0:
        return skel
    graph = coo_matrix((np.ones(len(edges)), (edges[:, 0], edges[:, 1])), shape=(n, n))
    _, comp = connected_components(graph, directed=False)
    deg = np.bincount(edges.ravel(), minlength=n)
    branchy = np.bincount(comp, weights=deg != 2, minlength=comp.max() + 1)
    lone = np.flatnonzero(branchy == 0)
    if not len(lone):
        return skel
    first = {c: i for i, c in reversed(list(enumerate(comp[edges[:, 0]].tolist())))}
    drop = [first[c] for c in lone.tolist() if c in first]
    out = skel.clone()
    out.edges = np.delete(edges, drop, axis=0)
    return out


def _branch(nbrs: list[list[int]], deg: np.ndarray, alive: np.ndarray, end: int) -> list[int] | None:
    """The alive vertex path from ``end`` (degree 1) to the first branch point
    (degree >= 3), which closes it; None for an unbranched piece."""
    path, prev, cur = [end], -1, end
    while True:
        step = [x for x in nbrs[cur] if x != prev and alive[x]]
        if not step:
            return None  # reached another end
        prev, cur = cur, step[0]
        path.append(cur)
        if deg[cur] >= 3:
            return path


def prune_seam_spurs(skel: Any, scale: float, const: float) -> Any:
    """Remove the branches a block seam made that TEASAR on the whole volume
    would not have traced.

    A block traces the small part of a label beyond its face, and a path to
    the seam target, although the path on the other side of the seam would
    have invalidated both. Rule (kimimaro's own invalidation): a terminal
    branch holding a seam vertex goes when its end lies inside the
    invalidation ball (``scale * radius + const``) of a vertex of the rest of
    the skeleton. Shortest first, one at a time, like kimimaro's tick removal;
    a branch is re-examined when its length changed since it was queued.
    """
    import heapq

    from scipy.spatial import cKDTree

    seam = skel.vertex_types == SEAM
    if not seam.any() or len(skel.edges) == 0:
        return skel
    verts = skel.vertices.astype(np.float64)
    n = len(verts)
    ball = scale * skel.radius.astype(np.float64) + const
    reach = float(ball.max())
    tree = cKDTree(verts)
    nbrs: list[list[int]] = [[] for _ in range(n)]
    for a, b in skel.edges.tolist():
        nbrs[a].append(b)
        nbrs[b].append(a)
    deg = np.bincount(skel.edges.ravel(), minlength=n)
    alive = np.ones(n, dtype=bool)

    def length(path: list[int]) -> float:
        return float(np.linalg.norm(np.diff(verts[path], axis=0), axis=1).sum())

    def spur(end: int) -> list[int] | None:
        """The branch at ``end`` when it is a seam spur, else None."""
        path = _branch(nbrs, deg, alive, end)
        if path is None or not seam[path[:-1]].any():
            return None
        near = np.asarray(tree.query_ball_point(verts[end], reach), dtype=np.int64)
        near = near[alive[near] & ~np.isin(near, path[:-1])]
        hit = np.linalg.norm(verts[near] - verts[end], axis=1) <= ball[near]
        return path if hit.any() else None

    queue = [(length(p), p[0]) for p in map(spur, np.flatnonzero(deg == 1).tolist()) if p]
    heapq.heapify(queue)
    while queue:
        queued, end = heapq.heappop(queue)
        path = spur(end) if alive[end] and deg[end] == 1 else None
        if path is None:
            continue
        if length(path) > queued + 1e-6:  # grew since queued: back in line
            heapq.heappush(queue, (length(path), end))
            continue
        alive[path[:-1]] = False
        joint = path[-1]
        deg[joint] -= 1
        if deg[joint] == 2:  # the two branches left at the joint are one now
            for x in nbrs[joint]:
                if alive[x]:
                    prev, cur = joint, x
                    while deg[cur] == 2:
                        prev, cur = cur, next(y for y in nbrs[cur] if y != prev and alive[y])
                    if deg[cur] == 1 and (grown := spur(cur)):
                        heapq.heappush(queue, (length(grown), cur))
    out = skel.clone()
    out.edges = skel.edges[alive[skel.edges].all(axis=1)]
    return out.consolidate()


def _fuse_batch(frags: dict[int, list], resolution: Sequence[float], settings: dict
                ) -> dict[int, Any]:
    """{label: fused skeleton} of a batch (``frags`` is emptied as it goes), in
    label order, dust and over-long skeletons left out; ``settings``: fuse's
    keywords."""
    fused = {}
    for label in sorted(frags):
        skel = fuse(frags.pop(label), resolution, **settings)
        if skel is not None:
            fused[label] = skel
    return fused


def _fetch(cf: Store, paths: list[str]) -> Iterator[bytes]:
    """The content of each of ``paths`` (just listed: a missing one is an error)."""
    for path, data in cf.get_many(paths):
        if data is None:
            raise UserError(f"{cf.url}/{path} vanished while it was read; is another merge "
                            "deleting fragments? re-run this task")
        yield data


def _bucket_batches(cf: Store, paths: list[str], attributes: list[dict],
                    wanted: Callable[[int], bool], budget: float) -> Iterator[dict[int, list]]:
    """{label: fragments} of one bucket's files in label order, a batch at a
    time: the files stay encoded (MapBuffers) and a batch is decoded only up
    to ``budget`` bytes of fragments, so memory does not grow with the
    bucket's label count."""
    from mapbuffer import MapBuffer

    bufs = [MapBuffer(data) for data in _fetch(cf, paths)]
    where: dict[int, list[tuple[int, int]]] = {}
    for b, mb in enumerate(bufs):
        # by position, not get(): MapBuffer's lookup overflows on ids >= 2**63
        for pos, label in enumerate(mb.index()[:, 0].tolist()):
            if wanted(label):
                where.setdefault(int(label), []).append((b, pos))
    batch: dict[int, list] = {}
    size = 0
    for label in sorted(where):
        raws = [bytes(bufs[b].getindex(pos)) for b, pos in where.pop(label)]
        batch[label] = [decode_skeleton(raw, label, attributes) for raw in raws]
        size += sum(map(len, raws)) + SKELETON_FRAGMENT_OVERHEAD * len(raws)
        if size >= budget:
            yield batch
            batch, size = {}, 0
    if batch:
        yield batch


def skeleton_merge(skel_dir: str, buckets: Sequence[int], resolution: Sequence[float],
                   vertex_attributes: list[dict], dust_threshold: float = 1000,
                   tick_threshold: float = 0, max_cable_length: float | None = None,
                   crop_box: list | None = None, skip: Sequence[int] = (),
                   delete_fragments: bool = False, sharding: dict | None = None,
                   memory_target: float | None = None) -> None:
    """Fuse every label of ``buckets``; write skeletons (or, with ``sharding``,
    per-shard intermediate files for ``skeleton_shard``), a batch of labels at
    a time sized to ``memory_target``."""
    from igneous.storage import open_store
    from igneous.tasks.merging import mark_done, memory_budget

    cf = open_store(skel_dir)
    spec = None
    if sharding is not None:
        from cloudvolume.datasource.precomputed.sharding import ShardingSpecification

        spec = ShardingSpecification.from_dict(sharding)
    skip_set = {int(x) for x in skip}
    ball = cf.get_json(BALL_FILE)  # None from a forge before seam pruning: no pruning
    budget = memory_budget(memory_target)
    settings = dict(dust_threshold=dust_threshold, tick_threshold=tick_threshold,
                    max_cable_length=max_cable_length, crop_box=crop_box, ball=ball)
    for bucket in buckets:
        paths = sorted(cf.list(prefix=bucket_dir(int(bucket))))  # listings come in any order
        if not paths:
            continue  # nothing forged here, or already merged with delete_fragments
        batches = _bucket_batches(cf, paths, vertex_attributes,
                                  lambda label: label not in skip_set, budget)
        for part, frags in enumerate(batches):
            fused = _fuse_batch(frags, resolution, settings)
            if spec is None:
                cf.put_many([(str(label), s.to_precomputed()) for label, s in fused.items()],
                            compress="gzip")
                continue
            by_shard: dict[str, dict] = {}
            for label, s in fused.items():
                shard = spec.compute_shard_location(label).shard_number
                by_shard.setdefault(shard, {})[label] = s
            cf.put_many([(f"{FUSED_DIR}/{shard}/{int(bucket):05d}-{part:05d}.fused",
                          encode_skeletons(group)) for shard, group in by_shard.items()])
        if delete_fragments:
            cf.delete(paths)
    if spec is not None:  # tells the shard stage this task's output is complete
        mark_done(cf, DONE_DIR, f"{int(buckets[0]):05d}")


def skeleton_shard(skel_dir: str, shard: str, sharding: dict, expect: int = 0,
                   delete_fragments: bool = False, merge: dict | None = None) -> None:
    """Write one shard file from the fused skeletons filed under it.

    Until all ``expect`` fuse tasks are done (a queue without stages, such as
    SQS, may deliver this task first, or was given no fuse stage) it fuses
    its shard's labels itself from the forge's fragments, given ``merge``
    (the fuse tasks' settings); without ``merge`` it refuses and the queue
    retries it later, so a shard is never written from part of its labels.
    """
    from cloudvolume.datasource.precomputed.sharding import (
        ShardingSpecification,
        synthesize_shard_files,
    )
    from mapbuffer import MapBuffer

    from igneous.storage import open_store
    from igneous.tasks.merging import count_done, require_done

    cf = open_store(skel_dir)
    spec = ShardingSpecification.from_dict(sharding)
    if merge is not None and not (expect and count_done(cf, DONE_DIR) >= expect):
        fused = _fuse_shard(cf, shard, spec, **merge)
        if fused:
            cf.put_many(synthesize_shard_files(spec, fused).items(),
                        content_type="application/octet-stream")
        return
    require_done(cf, DONE_DIR, expect, "skeleton fuse")
    paths = sorted(cf.list(prefix=f"{FUSED_DIR}/{shard}/"))
    if not paths:
        return
    data: dict[int, bytes] = {}
    for content in _fetch(cf, paths):
        for label, raw in MapBuffer(content).items():
            data[int(label)] = bytes(raw)
    files = synthesize_shard_files(spec, data)
    cf.put_many(files.items(), content_type="application/octet-stream")
    if delete_fragments:
        cf.delete(paths)


def _fuse_shard(cf: Store, shard: str, spec: Any, resolution: Sequence[float],
                vertex_attributes: list[dict], dust_threshold: float, tick_threshold: float,
                max_cable_length: float | None, crop_box: list | None, skip: Sequence[int],
                memory_target: float | None) -> dict[int, bytes]:
    """{label: skeleton bytes} of the labels of ``shard``, fused from every
    bucket's fragments (each bucket read whole, other shards' labels skipped:
    the fuse stage's work for one shard, in the same order, so the same bytes)."""
    from igneous.tasks.merging import memory_budget

    skip_set = {int(x) for x in skip}
    settings = dict(dust_threshold=dust_threshold, tick_threshold=tick_threshold,
                    max_cable_length=max_cable_length, crop_box=crop_box,
                    ball=cf.get_json(BALL_FILE))
    budget = memory_budget(memory_target)

    def wanted(label: int) -> bool:
        return label not in skip_set and spec.compute_shard_location(label).shard_number == shard

    out: dict[int, bytes] = {}
    for _, paths in sorted(bucket_files(cf).items()):
        for frags in _bucket_batches(cf, sorted(paths), vertex_attributes, wanted, budget):
            out.update((label, s.to_precomputed())
                       for label, s in _fuse_batch(frags, resolution, settings).items())
    return out


def skeleton_delete(skel_dir: str, prefix: str = "", others: bool = False) -> None:
    """Delete the files of a skeleton directory starting with ``prefix``
    (``others``: every file not starting with a hex digit, e.g. info, scratch)."""
    from igneous.storage import open_store

    cf = open_store(skel_dir)
    if others:
        paths = [p for p in cf.list() if p[:1].lower() not in "0123456789abcdef"]
    else:
        paths = list(cf.list(prefix=prefix))
    cf.delete(paths)


def skeleton_xfer(src_dir: str, dest_dir: str, prefix: str = "", others: bool = False,
                  labels: Sequence[int] | None = None, sharding: dict | None = None,
                  src_layer: str | None = None) -> None:
    """Copy skeleton files starting with ``prefix`` verbatim, or (``labels`` +
    ``sharding``) read those skeletons from ``src_layer`` and write their shard."""
    from igneous.storage import open_store

    if labels is None:
        src = open_store(src_dir)
        names = src.list() if others else src.list(prefix=prefix)
        paths = [p for p in names if not p.startswith(FRAG_DIR)
                 and (not others or p[:1].lower() not in "0123456789abcdef")]
        src.copy_to(open_store(dest_dir), paths)
        return
    from cloudvolume.datasource.precomputed.sharding import (
        ShardingSpecification,
        synthesize_shard_files,
    )

    from igneous.blockio import open_volume

    if src_layer is None:
        raise ValueError("skeleton_xfer with labels needs src_layer")
    skels = open_volume(src_layer).skeletons(labels)
    data = {int(s.id): s.to_precomputed() for s in skels}
    files = synthesize_shard_files(ShardingSpecification.from_dict(sharding), data)
    open_store(dest_dir).put_many(files.items(), content_type="application/octet-stream")
