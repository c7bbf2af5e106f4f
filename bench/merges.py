"""A million labels: mesh and skeleton merges over synthetic fragment sets.

Meshing or skeletonizing a volume with 10^6 labels takes hours; the merges
only read what the forge wrote. So this writes that directly, in the forge's
exact formats and names (``LABEL:0:BOX`` gzip fragments, ``.frags``
MapBuffers and ``.spatial`` index files for meshes; per-bucket ``.frags``
MapBuffers, ``.frags/tasks/BOX.labels`` markers, ``forge.json`` and
``ball.json`` for skeletons), then times each merge and samples the peak
memory of its process tree at several ``--memory`` settings.

Geometry: a 1024^3 segmentation at 8x8x40 nm split into 64 forge tasks of
256^3. Label ``i`` is a thin straight object along x at (y, z) = (i % 1024,
i // 1024) crossing one or two task seams (``fragments_of``), so it has 2 or
3 fragments in 2 or 3 forge tasks that meet on the seam planes with
identical vertices. A mesh fragment is a 4-sided tube (8 vertices, capped at
the object's ends); a skeleton fragment a path with a vertex every 16 voxels
plus its ends (seam vertices marked SEAM, as the forge marks them).

``fragments_of``, ``mesh_fragment`` and ``skeleton_fragment`` describe one
label at a time; the writer uses their vectorised forms (``fragment_table``,
``mesh_blobs``, ``skeleton_blobs``: 2.5 million fragments without building a
Mesh or Skeleton object each), which tests/test_merge_labels.py checks are
byte for byte the forge encoders' output.

    python -m bench.merges --labels 100000 --memory 512M,2G
    python -m bench.merges --labels 1000000 --memory 512M --kinds mesh -p 2
    python -m bench.merges --labels 1000000 --memory 512M --kinds skeleton --sample 150
    python -m bench.merges --labels 1000000 --time-listing 12,57,99 [--planner-listing]

Results go to .bench/results/merges-*.json; docs/scale.md has the table.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
import time
from collections.abc import Iterator
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import numpy as np

from bench.harness import BENCH, measure, ours, save_results

SIZE = 1024
TASK = 256
RESOLUTION = (8, 8, 40)
SEAMS = (256, 512, 768)
SKELETON_STEP = 16  # voxels between skeleton vertices along x
KINDS = ("mesh", "mesh-sharded", "skeleton", "skeleton-sharded")


# -- the synthetic labels ---------------------------------------------------------

def label_ids(n: int) -> np.ndarray:
    """Label ids 1..n spread over the uint64 range a little (not all small)."""
    i = np.arange(n, dtype=np.uint64)
    return i * np.uint64(7) + np.uint64(1)


def fragments_of(index: int) -> tuple[float, float, list[tuple[float, float]]]:
    """(y, z, [(x0, x1) per fragment]) in voxels of the ``index``-th label."""
    y, z = index % SIZE + 0.5, (index // SIZE) % SIZE + 0.5
    k = 2 + index % 2  # fragments
    first = (index // 2) % (len(SEAMS) - k + 2)  # first seam crossed
    seams = list(SEAMS[first:first + k - 1])
    x0, x1 = seams[0] - 6 - index % 5, seams[-1] + 6 + index % 7
    cuts = [x0, *seams, x1]
    return y, z, list(zip(cuts[:-1], cuts[1:]))


def task_of(x: float, y: float, z: float) -> tuple[int, int, int]:
    return int(x // TASK), int(y // TASK), int(z // TASK)


def mesh_fragment(y: float, z: float, x0: float, x1: float, cap0: bool, cap1: bool
                  ) -> tuple[np.ndarray, np.ndarray]:
    """A square tube from x0 to x1 (physical units), capped where asked."""
    r = 0.25
    ring = [(y - r, z - r), (y + r, z - r), (y + r, z + r), (y - r, z + r)]
    v = np.array([(x, a, b) for x in (x0, x1) for a, b in ring], dtype=np.float32)
    v *= np.asarray(RESOLUTION, dtype=np.float32)
    faces = []
    for j in range(4):
        a, b = j, (j + 1) % 4
        faces += [(a, b, 4 + b), (a, 4 + b, 4 + a)]
    if cap0:
        faces += [(0, 2, 1), (0, 3, 2)]
    if cap1:
        faces += [(4, 5, 6), (4, 6, 7)]
    return v, np.array(faces, dtype=np.uint32)


def skeleton_fragment(label: int, y: float, z: float, x0: float, x1: float, seam0: bool,
                      seam1: bool, attributes: list[dict]):
    from cloudvolume import Skeleton

    from igneous.tasks.skeleton import SEAM

    xs = np.unique(np.concatenate([np.arange(x0, x1, SKELETON_STEP), [x1]]))
    v = np.stack([xs, np.full_like(xs, y), np.full_like(xs, z)], axis=1)
    v = (v * np.asarray(RESOLUTION)).astype(np.float32)
    edges = np.stack([np.arange(len(xs) - 1), np.arange(1, len(xs))], axis=1).astype(np.uint32)
    types = np.zeros(len(xs), dtype=np.uint8)
    if seam0:
        types[0] = SEAM
    if seam1:
        types[-1] = SEAM
    skel = Skeleton(v, edges, radii=np.full(len(xs), 16.0, dtype=np.float32),
                    vertex_types=types, segid=int(label), extra_attributes=attributes)
    return skel


def by_task(start: int, stop: int) -> dict[tuple[int, int, int], list[tuple[int, int, int]]]:
    """{forge task: [(label index, fragment number, fragments)]} for labels [start, stop)
    (one label at a time: the reference for ``fragment_table``)."""
    out: dict[tuple[int, int, int], list] = {}
    for i in range(start, stop):
        y, z, pieces = fragments_of(i)
        for j, (x0, x1) in enumerate(pieces):
            out.setdefault(task_of((x0 + x1) / 2, y, z), []).append((i, j, len(pieces)))
    return out


# -- the same, vectorised (10^6 labels: 2.5 million fragments) ----------------------

TASKS_PER_AXIS = SIZE // TASK


def fragment_table(n: int) -> dict[str, np.ndarray]:
    """Every fragment of labels 0..n-1 as arrays (``fragments_of`` for all
    labels at once), ordered as the forge tasks hold them: by task number
    (``task_number``), then label index, then fragment number."""
    i = np.arange(n, dtype=np.int64)
    k = 2 + i % 2
    first = (i // 2) % (len(SEAMS) - k + 2)
    seams = np.asarray(SEAMS + (0,), dtype=np.int64)
    x0 = seams[first] - 6 - i % 5
    x1 = seams[first + k - 2] + 6 + i % 7
    # cuts: x0, the seams crossed, x1 (k + 1 of them; a 4th column for k = 2 is unused)
    cuts = np.stack([x0, seams[first], np.where(k == 3, seams[first + 1], x1), x1], axis=1)
    j = np.tile(np.arange(3), n)
    idx = np.repeat(i, 3)
    keep = j < np.repeat(k, 3)
    idx, j = idx[keep], j[keep]
    lo, hi = cuts[idx, j], cuts[idx, j + 1]
    y = (idx % SIZE).astype(np.float64) + 0.5
    z = ((idx // SIZE) % SIZE).astype(np.float64) + 0.5
    task = (((lo + hi) / 2 // TASK).astype(np.int64) * TASKS_PER_AXIS
            + (y // TASK).astype(np.int64)) * TASKS_PER_AXIS + (z // TASK).astype(np.int64)
    order = np.lexsort((j, idx, task))
    return {"index": idx[order], "piece": j[order], "pieces": k[idx[order]], "x0": lo[order],
            "x1": hi[order], "y": y[order], "z": z[order], "task": task[order]}


def task_number(t: tuple[int, int, int]) -> int:
    return (t[0] * TASKS_PER_AXIS + t[1]) * TASKS_PER_AXIS + t[2]


def all_tasks() -> list[tuple[int, int, int]]:
    """Every forge task of the layer (empty ones too: forge writes their index and marker)."""
    axis = range(TASKS_PER_AXIS)
    return [(x, y, z) for x in axis for y in axis for z in axis]


def _rows(table: dict[str, np.ndarray], t: tuple[int, int, int]) -> dict[str, np.ndarray]:
    """The fragments of one forge task."""
    a, b = np.searchsorted(table["task"], [task_number(t), task_number(t) + 1])
    return {key: v[a:b] for key, v in table.items()}


def _tube_faces(cap0: bool, cap1: bool) -> bytes:
    """``mesh_fragment``'s faces, encoded."""
    return mesh_fragment(0.5, 0.5, 0, 1, cap0, cap1)[1].astype("<u4").tobytes()


def mesh_blobs(rows: dict[str, np.ndarray]) -> list[bytes]:
    """``mesh_to_precomputed(*mesh_fragment(...))`` of every row, byte for byte,
    with the vertices of all rows computed at once."""
    r = 0.25
    y, z = rows["y"], rows["z"]
    ring_y = np.stack([y - r, y + r, y + r, y - r], axis=1)
    ring_z = np.stack([z - r, z - r, z + r, z + r], axis=1)
    x = np.repeat(np.stack([rows["x0"], rows["x1"]], axis=1).astype(np.float64), 4, axis=1)
    v = np.stack([x, np.tile(ring_y, 2), np.tile(ring_z, 2)], axis=2).astype(np.float32)
    v *= np.asarray(RESOLUTION, dtype=np.float32)
    verts = v.astype("<f4").reshape(len(v), 24)
    faces = {(a, b): _tube_faces(a, b) for a in (False, True) for b in (False, True)}
    head = np.uint32(8).astype("<u4").tobytes()
    cap0 = (rows["piece"] == 0).tolist()
    cap1 = (rows["piece"] == rows["pieces"] - 1).tolist()
    return [head + verts[m].tobytes() + faces[cap0[m], cap1[m]] for m in range(len(verts))]


def skeleton_blobs(rows: dict[str, np.ndarray], attributes: list[dict]) -> list[bytes]:
    """``skeleton_fragment(...).to_precomputed()`` of every row, byte for byte
    (vertices, edges, radius, vertex_types), without building Skeletons."""
    import struct

    from igneous.tasks.skeleton import SEAM

    if [a["id"] for a in attributes] != ["radius", "vertex_types"]:
        raise ValueError(f"skeleton_blobs writes radius and vertex_types only, not {attributes}")
    x0, x1 = rows["x0"], rows["x1"]
    # a vertex every SKELETON_STEP voxels from x0, then x1
    count = -(-(x1 - x0) // SKELETON_STEP) + 1
    longest = int(count.max()) if len(count) else 1
    edges = np.stack([np.arange(longest - 1), np.arange(1, longest)], axis=1).astype("<u4")
    radii = np.full(longest, 16.0, dtype="<f4").tobytes()
    res = np.asarray(RESOLUTION, dtype=np.int64)
    # skeleton_fragment fills y and z into an integer array: truncated
    yz = np.stack([rows["y"].astype(np.int64), rows["z"].astype(np.int64)], axis=1) * res[1:]
    seam0 = (rows["piece"] > 0).tolist()
    seam1 = (rows["piece"] < rows["pieces"] - 1).tolist()
    out = []
    for m, (a, b, c) in enumerate(zip(x0.tolist(), x1.tolist(), count.tolist())):
        v = np.empty((c, 3), dtype=np.int64)
        v[:-1, 0] = np.arange(a, b, SKELETON_STEP)
        v[-1, 0] = b
        v[:, 0] *= res[0]
        v[:, 1:] = yz[m]
        types = bytearray(c)
        if seam0[m]:
            types[0] = SEAM
        if seam1[m]:
            types[-1] = SEAM
        out.append(struct.pack("<II", c, c - 1) + v.astype("<f4").tobytes()
                   + edges[:c - 1].tobytes() + radii[:4 * c] + bytes(types))
    return out


def index_content(rows: dict[str, np.ndarray], ids: np.ndarray) -> dict[str, list]:
    """The spatial index entries of one forge task (``write_index`` of the
    boxes ``((x0, y, z), (ceil(x1) + 1, y + 1, z + 1))``, vectorised)."""
    y, z = rows["y"].astype(np.int64), rows["z"].astype(np.int64)
    box = np.stack([rows["x0"], y, z, np.ceil(rows["x1"]).astype(np.int64) + 1, y + 1, z + 1],
                   axis=1) * np.tile(np.asarray(RESOLUTION, dtype=np.int64), 2)
    return dict(zip(map(str, ids[rows["index"]].tolist()), box.tolist()))


# -- writing the forge's output ---------------------------------------------------

def make_layer(path: Path) -> None:
    """An empty 1024^3 uint64 segmentation (info only: the merges read no voxels)."""
    from igneous.layers import write_info

    write_info(str(path), {
        "type": "segmentation", "data_type": "uint64", "num_channels": 1,
        "scales": [{"key": "8_8_40", "resolution": list(RESOLUTION), "voxel_offset": [0, 0, 0],
                    "size": [SIZE] * 3, "chunk_sizes": [[128, 128, 64]],
                    "encoding": "compressed_segmentation",
                    "compressed_segmentation_block_size": [8, 8, 8]}],
    })


def task_box(t: tuple[int, int, int]) -> tuple[np.ndarray, np.ndarray]:
    lo = np.asarray(t) * TASK
    return lo, lo + TASK


def _write_mesh_tasks(args: tuple) -> int:
    """One worker's share of forge tasks: their mesh fragments and index files.

    Unsharded fragments are written straight to their files (``LABEL:0:BOX.gz``,
    the store's name and gzip bytes for ``put(..., compress="gzip")``): the
    store's atomic write (temporary file, lock, rename, removal of the other
    compression variants) costs ~10 system calls per file, 2.5 million times."""
    import os

    from mapbuffer import MapBuffer

    from igneous.formats.spatial_index import index_filename, put_index
    from igneous.grid import box_name
    from igneous.storage import open_store
    from igneous.storage.compression import compress
    from igneous.tasks.mesh import GZIP_LEVEL

    mesh_dir, sharded, n, tasks = args
    ids = label_ids(n)
    table = fragment_table(n)
    cf = open_store(mesh_dir)
    written = 0
    for t in tasks:
        lo, hi = task_box(t)
        rows = _rows(table, t)
        labels = ids[rows["index"]].tolist()
        blobs = mesh_blobs(rows)
        if sharded:
            stem = index_filename(lo, hi, RESOLUTION)[: -len(".spatial")]
            cf.put(f"{stem}.frags", MapBuffer(dict(zip(labels, blobs))).tobytes())
        else:
            name = box_name(lo, hi)
            for label, blob in zip(labels, blobs):
                fd = os.open(os.path.join(mesh_dir, f"{label}:0:{name}.gz"),
                             os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
                try:
                    os.write(fd, compress(blob, "gzip", GZIP_LEVEL))
                finally:
                    os.close(fd)
        put_index(mesh_dir, lo, hi, RESOLUTION, index_content(rows, ids))
        written += len(blobs)
    return written


def _write_skeleton_tasks(args: tuple) -> int:
    from mapbuffer import MapBuffer

    from igneous.grid import box_name
    from igneous.storage import open_store
    from igneous.tasks.skeleton import TASK_DIR, bucket_dir, bucket_of

    skel_dir, buckets, attributes, n, tasks = args
    ids = label_ids(n)
    table = fragment_table(n)
    cf = open_store(skel_dir)
    written = 0
    for t in tasks:
        lo, hi = task_box(t)
        name = box_name(lo, hi)
        rows = _rows(table, t)
        labels = ids[rows["index"]].tolist()
        grouped: dict[int, dict] = {}
        for label, blob in zip(labels, skeleton_blobs(rows, attributes)):
            grouped.setdefault(bucket_of(label, buckets), {})[label] = blob
        # encode_skeletons' MapBuffer, from the encoded fragments
        cf.put_many([(f"{bucket_dir(b)}{name}.frags", MapBuffer(g, compress="gzip").tobytes())
                     for b, g in grouped.items()])
        done = np.sort(np.asarray(labels, dtype=np.uint64))
        cf.put(f"{TASK_DIR}/{name}.labels", done.tobytes(), compress="gzip")
        written += len(labels)
    return written


def _split(workers: int) -> list[list]:
    """Every forge task in ``workers`` shares."""
    tasks = all_tasks()
    return [tasks[w::workers] for w in range(workers)]


def write_meshes(path: Path, n: int, *, sharded: bool, workers: int = 2) -> int:
    """Forge's mesh output for ``n`` labels (its planner writes the infos)."""
    from igneous.task_creation.mesh import create_meshing_tasks

    make_layer(path)
    create_meshing_tasks(str(path), shape=(TASK,) * 3, sharded=sharded, mesh_dir="mesh")
    with ProcessPoolExecutor(workers) as pool:
        jobs = [(str(path / "mesh"), sharded, n, part) for part in _split(workers)]
        return sum(pool.map(_write_mesh_tasks, jobs))


def write_skeletons(path: Path, n: int, *, workers: int = 2) -> int:
    """Forge's skeleton output for ``n`` labels (its planner writes info and meta)."""
    from igneous.storage import open_store
    from igneous.task_creation.skeleton import create_skeletonizing_tasks
    from igneous.tasks.skeleton import BALL_FILE, read_meta

    make_layer(path)
    create_skeletonizing_tasks(str(path), shape=(TASK,) * 3, skel_dir="skeletons")
    url = str(path / "skeletons")
    meta = read_meta(url)
    open_store(url).put_json(BALL_FILE, {"scale": 10.0, "const": 10.0})
    with ProcessPoolExecutor(workers) as pool:
        jobs = [(url, meta["buckets"], meta["vertex_attributes"], n, part)
                for part in _split(workers)]
        return sum(pool.map(_write_skeleton_tasks, jobs))


# -- what the merged result must be -------------------------------------------------

def expected_counts(n: int) -> dict[str, np.ndarray]:
    """Per label (in ``label_ids`` order): mesh vertices and faces, skeleton
    vertices after the seam copies are merged, computed from the geometry."""
    k = 2 + np.arange(n) % 2
    mesh_v = 8 * k - 4 * (k - 1)
    mesh_f = 8 * k + 4
    skel_v = np.zeros(n, dtype=np.int64)
    for i in range(n):
        _, _, pieces = fragments_of(i)
        xs = set()
        for x0, x1 in pieces:
            xs.update(np.arange(x0, x1, SKELETON_STEP).tolist())
            xs.add(x1)
        skel_v[i] = len(xs)
    return {"mesh_vertices": mesh_v, "mesh_faces": mesh_f, "skeleton_vertices": skel_v}


# -- the benchmark ---------------------------------------------------------------------

COMMANDS = {
    "mesh": "{igneous} -p {procs} mesh merge {layer} --magnitude {magnitude} --memory {memory}",
    "mesh-sharded": "{igneous} -p {procs} mesh merge-sharded {layer} --nlod 0 --memory {memory}",
    "skeleton": "{igneous} -p {procs} skeleton merge {layer} --min-cable-length 0 --tick-threshold 0 "
                "--magnitude {magnitude} --memory {memory}",
    "skeleton-sharded": "{igneous} -p {procs} skeleton merge-sharded {layer} --min-cable-length 0 "
                        "--tick-threshold 0 --memory {memory}",
}


def fixture(kind: str, n: int, root: Path) -> Path:
    """The forge output for ``kind`` at ``n`` labels, written once and kept."""
    base = "skeleton" if kind.startswith("skeleton") else kind
    path = root / f"{base}-{n}"
    if (path / "done").exists():
        return path
    shutil.rmtree(path, ignore_errors=True)
    t0 = time.perf_counter()
    if base == "skeleton":
        count = write_skeletons(path, n)
    else:
        count = write_meshes(path, n, sharded=base == "mesh-sharded")
    (path / "done").write_text(f"{count} fragments in {time.perf_counter() - t0:.0f} s\n")
    print(f"  wrote {count:,} {base} fragments for {n:,} labels in "
          f"{time.perf_counter() - t0:.0f} s", file=sys.stderr)
    return path


def clear_outputs(kind: str, path: Path) -> None:
    """Remove what an earlier merge wrote (never the forge output), so every
    run starts from the same state."""
    if kind.startswith("mesh"):
        d = path / "mesh"
        shutil.rmtree(d / "scatter", ignore_errors=True)
        for p in d.iterdir():
            if p.name.endswith(":0") or p.name.endswith(".shard") or p.name.endswith(".index"):
                p.unlink()
    else:
        d = path / "skeletons"
        for p in d.iterdir():
            if p.is_file() and p.name != "info":
                p.unlink()
        shutil.rmtree(d / ".frags" / "fused", ignore_errors=True)
        shutil.rmtree(d / ".frags" / "fused-done", ignore_errors=True)


def queue_counts(impl, queue: Path) -> dict:
    import subprocess

    out = subprocess.run([impl.igneous, "queue", "status", "--json", str(queue)],
                         capture_output=True, text=True, env=impl.env())
    return json.loads(out.stdout) if out.returncode == 0 else {}


def run(kinds: list[str], n: int, memories: list[str], root: Path, magnitude: int,
        timeout: float, sample: float, procs: int = 1) -> Iterator[dict]:
    """Each merge at each memory setting: run whole (``sample`` 0), or planned
    into a local queue and executed by one worker for ``sample`` seconds (peak
    memory of a task is what matters; the total time is extrapolated)."""
    impl = ours()
    for kind in kinds:
        path = fixture(kind, n, root)
        for memory in memories:
            clear_outputs(kind, path)
            cmd = COMMANDS[kind].format(igneous=impl.igneous, layer=path, memory=memory,
                                        magnitude=magnitude, procs=procs)
            row = dict(kind=kind, labels=n, memory=memory, load_before=round(os.getloadavg()[0], 1),
                       command=cmd.replace(impl.igneous, "igneous").replace(str(root), "ROOT"))
            if not sample:
                s = measure(cmd, impl=impl, cwd=root, log=root / f"merges-{kind}.log", timeout=timeout)
                row.update(returncode=s.returncode, wall=round(s.wall, 1), cpu=round(s.cpu, 1),
                           peak_tree_mb=round(s.peak_tree_rss / 1e6),
                           peak_process_mb=round(s.max_rss / 1e6), timed_out=s.timed_out,
                           load_after=round(os.getloadavg()[0], 1))
            else:
                queue = root / f"q-{kind}"
                shutil.rmtree(queue, ignore_errors=True)
                p = measure(f"{cmd} --queue {queue}", impl=impl, cwd=root, log=root / f"merges-{kind}.log",
                            timeout=timeout)
                total = queue_counts(impl, queue).get("pending", 0)
                w = measure(f"{impl.igneous} execute {queue} -q --min-sec {sample}", impl=impl,
                            cwd=root, log=root / f"merges-{kind}.log", timeout=timeout)
                done = queue_counts(impl, queue).get("completed", 0)
                row.update(returncode=p.returncode or w.returncode, plan_wall=round(p.wall, 1),
                           plan_peak_mb=round(p.peak_tree_rss / 1e6), tasks=total,
                           sampled_tasks=done, sample_wall=round(w.wall, 1),
                           sample_cpu=round(w.cpu, 1), peak_tree_mb=round(w.peak_tree_rss / 1e6))
            print(json.dumps(row), flush=True)
            yield row


def time_listing(n: int, root: Path, prefixes: list[str], magnitude: int,
                 planner: bool, memory: str) -> list[dict]:
    """CPU and wall time of a mesh merge task's listing of each of ``prefixes``
    in the unsharded mesh fixture (2.5 fragment files per label): by listing
    the prefix itself (a scan of the whole directory on local disk), or
    (``planner``) once for all 10^magnitude tasks by the planner
    (``write_listings`` within ``memory``), then each task reading its own list."""
    import resource

    import psutil

    from igneous.memory import parse_memory
    from igneous.storage import open_store
    from igneous.task_creation.mesh import prefixes as all_prefixes
    from igneous.tasks.mesh_merge import list_fragments, write_listings

    cf = open_store(str(fixture("mesh", n, root) / "mesh"))
    rows = []

    def timed(what: str, fn, **extra) -> object:
        w, c = time.perf_counter(), time.process_time()
        out = fn()
        rows.append(dict(labels=n, what=what, **extra, wall=round(time.perf_counter() - w, 2),
                         cpu=round(time.process_time() - c, 2),
                         rss_mb=round(psutil.Process().memory_info().rss / 1e6),
                         peak_mb=round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1e3),
                         load=round(os.getloadavg()[0], 1)))
        return out

    plan = None
    if planner:
        plan = timed("planner lists", lambda: write_listings(cf, all_prefixes(magnitude),
                                                             parse_memory(memory)),
                     magnitude=magnitude, memory=memory)
    for prefix in prefixes:
        found = timed("task reads its list" if plan else "task lists its prefix",
                      lambda p=prefix: list_fragments(cf, p, False, plan), prefix=prefix)
        rows[-1]["fragments"] = sum(map(len, found.values()))
    for row in rows:
        print(json.dumps(row), flush=True)
    return rows


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--labels", type=int, default=100_000)
    ap.add_argument("--memory", default="512M,2G", help="comma-separated --memory settings")
    ap.add_argument("--kinds", default=",".join(KINDS))
    ap.add_argument("--magnitude", type=int, default=2)
    ap.add_argument("-p", "--procs", type=int, default=1, help="worker processes of each merge")
    ap.add_argument("--timeout", type=float, default=3600)
    ap.add_argument("--root", type=Path, default=BENCH / "merges",
                    help="where the fragment sets are kept (10^6 labels: ~10 GB)")
    ap.add_argument("--write-only", action="store_true", help="only write the fragment sets")
    ap.add_argument("--sample", type=float, default=0,
                    help="plan into a local queue, then run one worker this many seconds "
                    "(instead of the whole merge)")
    ap.add_argument("--time-listing", metavar="PREFIXES",
                    help="only time a mesh merge task's listing of these comma-separated prefixes")
    ap.add_argument("--planner-listing", action="store_true",
                    help="with --time-listing: the planner lists once, tasks read their lists "
                    "(removes the lists of a merge planned on the fixture: not during one)")
    args = ap.parse_args(argv)
    kinds = args.kinds.split(",")
    args.root.mkdir(parents=True, exist_ok=True)
    if args.time_listing:
        time_listing(args.labels, args.root, args.time_listing.split(","), args.magnitude,
                     args.planner_listing, args.memory.split(",")[0])
        return
    if args.write_only:
        for kind in kinds:
            fixture(kind, args.labels, args.root)
        return
    rows = list(run(kinds, args.labels, args.memory.split(","), args.root, args.magnitude,
                    args.timeout, args.sample, args.procs))
    out = save_results(f"merges-{args.labels}-{'-'.join(kinds)}{'-sample' if args.sample else ''}.json",
                       rows)
    print(f"wrote {out}", file=sys.stderr)


if __name__ == "__main__":
    main()
