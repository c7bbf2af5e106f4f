"""The floor: what the field's libraries need for a workflow's work, in one process.

For each workflow, the same input layer is read chunk by chunk with the same
codec (gzip through libdeflate, raw voxels), the library core runs on the same
blocks our tasks use, and the outputs are encoded and compressed at the same
settings into memory only (nothing is written, nothing is planned or queued).
This module does not import igneous: it is an independent yardstick.

* ``downsample``: tinybrain (average for images, mode for segmentation) on
  blocks of ``chunk * (2^n, 2^n, 1)``, each mip cut into chunks, gzip
  (level 1 for images, 6 for segmentation, the levels our writer uses).
* ``xfer``: decode, re-cut into 64^3 chunks, tinybrain for the downsample
  mips the transfer makes, gzip each chunk.
* ``ccl``: cc3d (6-connected) per block, the labels on the shared faces
  joined with a union-find, then every block again (cc3d, fastremap.remap to
  the global ids) encoded as crackle chunks + gzip 6. cc3d runs twice per
  block, as any bounded-memory blockwise CCL must (the alternative is holding
  the whole labelled volume).
* ``voxels``: fastremap.unique with counts per block, summed, IntMap bytes.
* ``mesh``: zmesh marching cubes per block (one voxel of overlap on the high
  sides, background padding on the dataset's sides), meshoptimizer's
  simplifier with the same target (triangles / 100) and error bound, border
  locked; precomputed mesh bytes + gzip 6.
* ``skeleton``: kimimaro.skeletonize per block (one voxel of overlap) with
  the benchmark's parameters, precomputed skeleton bytes + gzip; then per
  label the fragments merged and kimimaro.postprocess'ed, encoded again.

Prints one JSON line: CPU-seconds (user + sys of this process), wall, peak
RSS and what was produced. The floor for W workers is CPU / W. ``--procs N``
(mesh, skeleton) runs the blocks, and the skeleton's per-label merge, in N
forked processes: the same work and CPU-seconds (the children's are counted
once they are reaped), only sooner; the peak RSS is then the largest
process's.

    python -m bench.floor WORKFLOW LAYER_DIR [--shape 256,256,256] [--num-mips 3] [--procs 1]
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import time
from collections.abc import Iterator
from pathlib import Path

import numpy as np

WORKFLOWS = ("downsample", "xfer", "ccl", "voxels", "mesh", "skeleton")
# the benchmark's parameters (bench/mesh.py, bench/skeleton.py: each side's defaults)
MESH_FACTOR, MESH_MAX_ERROR, MESH_ERROR_FRACTION = 100, 40.0, 0.3
SKEL_DUST, SKEL_MIN_CABLE, SKEL_TICK = 1000, 1000, 3500


# -- reading and encoding --------------------------------------------------------

class Layer:
    """Mip 0 of an unsharded precomputed layer on local disk (raw encoding)."""

    def __init__(self, path: Path):
        self.path = Path(path)
        self.info = json.loads((self.path / "info").read_text())
        scale = self.info["scales"][0]
        if scale["encoding"] != "raw":
            raise SystemExit(f"floor reads raw layers only, not {scale['encoding']}")
        self.key = scale["key"]
        self.chunk = np.asarray(scale["chunk_sizes"][0], dtype=np.int64)
        self.size = np.asarray(scale["size"], dtype=np.int64)
        self.offset = np.asarray(scale["voxel_offset"], dtype=np.int64)
        self.resolution = np.asarray(scale["resolution"], dtype=np.float64)
        self.dtype = np.dtype(self.info["data_type"])
        self.segmentation = self.info.get("type") == "segmentation"
        self.bytes_read = 0

    def read(self, lo: np.ndarray, hi: np.ndarray) -> np.ndarray:
        """Voxels [lo, hi) (relative to the voxel offset) as a Fortran (x, y, z) array."""
        import deflate

        out = np.empty(tuple(int(x) for x in hi - lo), dtype=self.dtype, order="F")
        c = self.chunk
        first, last = lo // c, (hi - 1) // c
        for gz in range(first[2], last[2] + 1):
            for gy in range(first[1], last[1] + 1):
                for gx in range(first[0], last[0] + 1):
                    g = np.array([gx, gy, gz])
                    c_lo = g * c
                    c_hi = np.minimum(c_lo + c, self.size)
                    a, b = c_lo + self.offset, c_hi + self.offset
                    name = f"{a[0]}-{b[0]}_{a[1]}-{b[1]}_{a[2]}-{b[2]}"
                    base = self.path / self.key / name
                    if (gzname := base.with_name(name + ".gz")).exists():
                        raw = gzname.read_bytes()
                        self.bytes_read += len(raw)
                        data = deflate.gzip_decompress(raw)
                    else:
                        data = base.read_bytes()
                        self.bytes_read += len(data)
                    arr = np.frombuffer(data, dtype=self.dtype).reshape(tuple(c_hi - c_lo), order="F")
                    s_lo, s_hi = np.maximum(c_lo, lo), np.minimum(c_hi, hi)
                    out[tuple(slice(x, y) for x, y in zip(s_lo - lo, s_hi - lo))] = \
                        arr[tuple(slice(x, y) for x, y in zip(s_lo - c_lo, s_hi - c_lo))]
        return out


def blocks(size: np.ndarray, shape: np.ndarray) -> Iterator[tuple[np.ndarray, np.ndarray]]:
    """[lo, hi) of each block of ``shape`` over a volume of ``size`` (z slowest)."""
    for z in range(0, int(size[2]), int(shape[2])):
        for y in range(0, int(size[1]), int(shape[1])):
            for x in range(0, int(size[0]), int(shape[0])):
                lo = np.array([x, y, z], dtype=np.int64)
                yield lo, np.minimum(lo + shape, size)


class Sink:
    """Encodes outputs into memory and counts them (nothing is kept or written)."""

    def __init__(self) -> None:
        self.files = 0
        self.bytes = 0

    def put(self, data: bytes, level: int | None) -> None:
        import deflate

        if level is not None:
            data = deflate.gzip_compress(data, level)
        self.files += 1
        self.bytes += len(data)

    def chunks(self, arr: np.ndarray, chunk: np.ndarray, level: int, encoding: str = "raw") -> None:
        """Cut a block into chunks and encode each (raw or crackle), then gzip."""
        for lo, hi in blocks(np.asarray(arr.shape[:3]), chunk):
            piece = np.asfortranarray(arr[lo[0]:hi[0], lo[1]:hi[1], lo[2]:hi[2]])
            if encoding == "crackle":
                import crackle

                self.put(crackle.compress(piece), level)
            else:
                self.put(piece.tobytes(order="F"), level)


def gzip_level(layer: Layer) -> int:
    return 6 if layer.segmentation else 1


def pool(block: np.ndarray, num_mips: int, segmentation: bool) -> list[np.ndarray]:
    import tinybrain

    if num_mips <= 0:
        return []
    if segmentation:
        return list(tinybrain.downsample_segmentation(block, (2, 2, 1), num_mips=num_mips))
    return list(tinybrain.downsample_with_averaging(block, (2, 2, 1), num_mips=num_mips))


# -- the workflows -------------------------------------------------------------------

def downsample(layer: Layer, sink: Sink, num_mips: int, **_) -> None:
    shape = layer.chunk * np.array([2**num_mips, 2**num_mips, 1])
    for lo, hi in blocks(layer.size, shape):
        for level in pool(layer.read(lo, hi), num_mips, layer.segmentation):
            sink.chunks(level, layer.chunk, gzip_level(layer))


def xfer(layer: Layer, sink: Sink, num_mips: int, chunk: int = 64, **_) -> None:
    out_chunk = np.array([chunk] * 3)
    shape = out_chunk * np.array([2**num_mips, 2**num_mips, 1])
    for lo, hi in blocks(layer.size, shape):
        block = layer.read(lo, hi)
        sink.chunks(block, out_chunk, gzip_level(layer))
        for level in pool(block, num_mips, layer.segmentation):
            sink.chunks(level, out_chunk, gzip_level(layer))


def _components(block: np.ndarray) -> tuple[np.ndarray, int]:
    import cc3d

    return cc3d.connected_components(block, connectivity=6, return_N=True)


def ccl(layer: Layer, sink: Sink, shape: np.ndarray, **_) -> None:
    from scipy.sparse import coo_matrix
    from scipy.sparse.csgraph import connected_components

    grid = list(blocks(layer.size, shape))
    index = {tuple(lo // shape): i for i, (lo, _) in enumerate(grid)}
    base = np.zeros(len(grid) + 1, dtype=np.int64)
    # faces: for every block, its low planes (source labels and component ids)
    # and high planes, kept to join neighbours
    high: dict[tuple[int, int], tuple[np.ndarray, np.ndarray]] = {}
    low: dict[tuple[int, int], tuple[np.ndarray, np.ndarray]] = {}
    for i, (lo, hi) in enumerate(grid):
        block = layer.read(lo, hi)
        cc, n = _components(block)
        base[i + 1] = base[i] + n
        for axis in range(3):
            first = [slice(None)] * 3
            first[axis] = 0
            last = [slice(None)] * 3
            last[axis] = -1
            low[(i, axis)] = (block[tuple(first)].copy(), cc[tuple(first)].astype(np.int64))
            high[(i, axis)] = (block[tuple(last)].copy(), cc[tuple(last)].astype(np.int64))
    a_ids, b_ids = [], []
    for i, (lo, _) in enumerate(grid):
        g = tuple(lo // shape)
        for axis in range(3):
            nb = list(g)
            nb[axis] += 1
            j = index.get(tuple(nb))
            if j is None:
                continue
            src_a, cc_a = high[(i, axis)]
            src_b, cc_b = low[(j, axis)]
            join = (src_a == src_b) & (src_a != 0)
            a_ids.append(cc_a[join] + base[i])
            b_ids.append(cc_b[join] + base[j])
    total = int(base[-1]) + 1  # cc3d ids are 1..n per block; id 0 of block 0 is background
    a = np.concatenate(a_ids) if a_ids else np.zeros(0, np.int64)
    b = np.concatenate(b_ids) if b_ids else np.zeros(0, np.int64)
    graph = coo_matrix((np.ones(len(a), dtype=bool), (a, b)), shape=(total, total))
    _, root = connected_components(graph, directed=False)
    del high, low
    for i, (lo, hi) in enumerate(grid):
        cc, n = _components(layer.read(lo, hi))
        table = np.zeros(n + 1, dtype=np.int64)
        table[1:] = root[base[i] + 1: base[i] + n + 1] + 1
        out = table[cc].astype(np.uint32, order="F") if n else np.zeros(cc.shape, np.uint32, order="F")
        sink.chunks(np.asfortranarray(out), layer.chunk, 6, encoding="crackle")


def voxels(layer: Layer, sink: Sink, shape: np.ndarray, **_) -> None:
    import fastremap
    from mapbuffer import IntMap

    totals: dict[int, int] = {}
    for lo, hi in blocks(layer.size, shape):
        labels, counts = fastremap.unique(layer.read(lo, hi), return_counts=True)
        for k, v in zip(labels.tolist(), counts.tolist()):
            totals[k] = totals.get(k, 0) + v
    sink.put(IntMap(totals).tobytes(), None)


def _overlapped(layer: Layer, lo: np.ndarray, hi: np.ndarray, pad_edges: bool
                ) -> tuple[np.ndarray, np.ndarray]:
    """The block plus one voxel on the high sides, background-padded on the dataset's sides."""
    read_hi = np.minimum(hi + 1, layer.size)
    block = layer.read(lo, read_hi)
    origin = lo.copy()
    if pad_edges:
        below, above = (lo <= 0).astype(int), (read_hi >= layer.size).astype(int)
        if below.any() or above.any():
            block = np.pad(block, list(zip(below, above)))
            origin = lo - below
    return np.asfortranarray(block), origin


def mesh_block(block: np.ndarray, origin: np.ndarray, resolution: np.ndarray, sink: Sink) -> None:
    """Marching cubes, simplification and encoding of one block's labels."""
    import meshoptimizer
    import zmesh

    mesher = zmesh.Mesher(tuple(resolution))
    options = meshoptimizer.SIMPLIFY_ERROR_ABSOLUTE | meshoptimizer.SIMPLIFY_LOCK_BORDER
    mesher.mesh(block)
    shift = (origin * resolution).astype(np.float32)
    for label in mesher.ids():
        m = mesher.get(label, normals=False, reduction_factor=0)
        mesher.erase(label)
        verts = np.ascontiguousarray(m.vertices, dtype=np.float32)
        index = np.ascontiguousarray(m.faces, dtype=np.uint32).reshape(-1)
        target = max(len(index) // 3 // MESH_FACTOR, 4) * 3
        out = np.empty_like(index)
        n = meshoptimizer.simplify(out, index, verts, len(index), len(verts), 12, target,
                                   MESH_MAX_ERROR * MESH_ERROR_FRACTION, options)
        used, faces = np.unique(out[:n], return_inverse=True)
        v = verts[used] + shift
        sink.put(np.uint32(len(v)).tobytes() + v.tobytes() + faces.astype("<u4").tobytes(), 6)
    mesher.clear()


def _in_processes(fn, jobs: list, procs: int) -> Iterator:
    """``fn(job)`` for every job, in ``procs`` forked processes when ``procs`` > 1
    (in order; their CPU-seconds are counted by ``run`` through RUSAGE_CHILDREN)."""
    if procs <= 1:
        yield from map(fn, jobs)
        return
    import multiprocessing

    pool = multiprocessing.get_context("fork").Pool(procs)
    try:
        yield from pool.imap(fn, jobs)
    finally:
        pool.close()
        pool.join()  # reaped, so their usage is in RUSAGE_CHILDREN


_LAYER: Layer | None = None  # the layer a forked block worker reads


def _mesh_job(box: tuple[np.ndarray, np.ndarray]) -> tuple[int, int]:
    sink = Sink()
    block, origin = _overlapped(_LAYER, *box, pad_edges=True)
    mesh_block(block, origin, _LAYER.resolution, sink)
    return sink.files, sink.bytes


def mesh(layer: Layer, sink: Sink, shape: np.ndarray, procs: int = 1, **_) -> None:
    global _LAYER
    _LAYER = layer
    for files, size in _in_processes(_mesh_job, list(blocks(layer.size, shape)), procs):
        sink.files += files
        sink.bytes += size


def _skeleton_job(box: tuple[np.ndarray, np.ndarray]) -> tuple[dict, int, int]:
    import kimimaro

    from bench.skeleton import TEASAR  # the CLIs' parameters, not kimimaro.trace's defaults

    lo, hi = box
    sink = Sink()
    res = _LAYER.resolution.astype(np.float32)
    block, _ = _overlapped(_LAYER, lo, hi, pad_edges=False)
    skels = kimimaro.skeletonize(
        block, teasar_params=TEASAR,
        anisotropy=res, dust_threshold=SKEL_DUST, progress=False,
        fix_branching=True, fix_borders=True, parallel=1)
    for s in skels.values():
        s.vertices += (lo * res).astype(np.float32)
        sink.put(s.to_precomputed(), 6)
    return {int(k): v for k, v in skels.items()}, sink.files, sink.bytes


def _postprocess_job(groups: list[list]) -> tuple[int, int]:
    import kimimaro
    from cloudvolume import Skeleton

    sink = Sink()
    for parts in groups:
        s = Skeleton.simple_merge(parts) if len(parts) > 1 else parts[0]
        s = kimimaro.postprocess(s, dust_threshold=SKEL_MIN_CABLE, tick_threshold=SKEL_TICK)
        if not s.empty():
            sink.put(s.to_precomputed(), None)
    return sink.files, sink.bytes


def skeleton(layer: Layer, sink: Sink, shape: np.ndarray, procs: int = 1, **_) -> None:
    global _LAYER
    _LAYER = layer
    fragments: dict[int, list] = {}
    for skels, files, size in _in_processes(_skeleton_job, list(blocks(layer.size, shape)), procs):
        sink.files += files
        sink.bytes += size
        for label, s in skels.items():
            fragments.setdefault(label, []).append(s)
    parts = list(fragments.values())
    del fragments
    step = len(parts) // (8 * max(procs, 1)) + 1  # ~8 groups a process
    groups = [parts[i:i + step] for i in range(0, len(parts), step)]
    for files, size in _in_processes(_postprocess_job, groups, procs):
        sink.files += files
        sink.bytes += size


PARALLEL = ("mesh", "skeleton")  # workflows --procs applies to
WHO = (resource.RUSAGE_SELF, resource.RUSAGE_CHILDREN)


def run(workflow: str, path: Path, *, shape: tuple[int, int, int] = (256, 256, 256),
        num_mips: int = 3, procs: int = 1) -> dict:
    """Run one floor; CPU-seconds of this process and its block processes
    (``procs`` > 1: mesh and skeleton only), wall, the largest process's peak
    RSS, outputs."""
    if procs > 1 and workflow not in PARALLEL:
        raise SystemExit(f"--procs applies to {' and '.join(PARALLEL)} only")
    layer = Layer(path)
    sink = Sink()
    fn = {"downsample": downsample, "xfer": xfer, "ccl": ccl, "voxels": voxels,
          "mesh": mesh, "skeleton": skeleton}[workflow]

    def usage() -> float:
        return sum(r.ru_utime + r.ru_stime for r in map(resource.getrusage, WHO))

    c0, t0 = usage(), time.perf_counter()
    fn(layer, sink, shape=np.asarray(shape, dtype=np.int64), num_mips=num_mips, procs=procs)
    wall = time.perf_counter() - t0
    cpu = usage() - c0
    max_rss = max(resource.getrusage(w).ru_maxrss for w in WHO) * 1024
    return {"workflow": workflow, "layer": str(path), "voxels": int(np.prod(layer.size)),
            "procs": procs, "cpu": cpu, "wall": wall, "max_rss": max_rss,
            "files": sink.files, "bytes_out": sink.bytes,
            "bytes_read": layer.bytes_read if procs <= 1 else None}



def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(prog="python -m bench.floor", description=__doc__.split("\n")[0])
    ap.add_argument("workflow", choices=WORKFLOWS)
    ap.add_argument("layer", type=Path, help="a raw precomputed layer directory")
    ap.add_argument("--shape", default="256,256,256", help="block shape (ccl, voxels, mesh, skeleton)")
    ap.add_argument("--num-mips", type=int, default=3, help="downsample mips (downsample, xfer)")
    ap.add_argument("--procs", type=int, default=1,
                    help="mesh and skeleton: blocks in this many forked processes (the same "
                         "CPU-seconds, counted over all of them; a shorter wait)")
    args = ap.parse_args(argv)
    os.environ.setdefault("OMP_NUM_THREADS", "1")
    shape = tuple(int(x) for x in args.shape.split(","))
    print(json.dumps(run(args.workflow, args.layer, shape=shape, num_mips=args.num_mips,
                         procs=args.procs)))


if __name__ == "__main__":
    main()
