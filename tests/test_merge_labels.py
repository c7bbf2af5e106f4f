"""Merges over many labels (the forge output written directly, as bench/merges.py
does at 10^6 labels), with a memory target small enough that every merge
task works in many batches and the sharded merges make many shards.

Checked against the geometry the fragments were made from, through
CloudVolume reading what the merges wrote: every label is there and has
exactly the vertices of its fragments once the seam copies are merged.
"""

from __future__ import annotations

import numpy as np
import pytest

from bench import merges as synth
from igneous.submit import submit

LABELS = 600
# budget of decoded fragments = MEMORY / 8 = 8 KB: batches of a few dozen labels
MEMORY = 64_000


@pytest.fixture(scope="module")
def root(tmp_path_factory):
    return tmp_path_factory.mktemp("labels")


def _mesh_vertices(mesh) -> int:
    return len(np.unique(np.round(mesh.vertices, 1), axis=0))


def _decode_precomputed(blob: bytes) -> np.ndarray:
    """Vertices of a legacy precomputed mesh file (uint32 count, float32 xyz, faces)."""
    n = int(np.frombuffer(blob[:4], dtype=np.uint32)[0])
    return np.frombuffer(blob[4:4 + 12 * n], dtype=np.float32).reshape(n, 3)


def test_unsharded_mesh_manifests(root):
    from cloudvolume import CloudVolume

    import igneous.task_creation as tc

    path = root / "mesh"
    synth.write_meshes(path, LABELS, sharded=False, workers=1)
    submit([tc.create_mesh_manifest_tasks(str(path), magnitude=1, memory_target=MEMORY)], None)
    import gzip
    import json

    # every label's manifest names its fragments, one per forge task it crosses,
    # and they hold its vertices (decoded here with numpy)
    expected = synth.expected_counts(LABELS)["mesh_vertices"]
    for i, label in enumerate(synth.label_ids(LABELS).tolist()):
        names = json.loads((path / "mesh" / f"{label}:0").read_text())["fragments"]
        assert len(names) == len(synth.fragments_of(i)[2])
        verts = np.concatenate([_decode_precomputed(gzip.decompress(
            (path / "mesh" / f"{name}.gz").read_bytes())) for name in names])
        assert len(np.unique(verts, axis=0)) == expected[i]
    # the planner listed the directory once for all tasks; each removed its list
    from igneous.storage import open_store
    from igneous.tasks.mesh_merge import LISTING

    assert list(open_store(str(path / "mesh")).list(prefix=LISTING, flat=True)) == []
    # and CloudVolume reads them as one mesh per label (a sample: it is slow)
    cv = CloudVolume(f"file://{path}")
    for i in range(0, LABELS, 61):
        assert _mesh_vertices(cv.mesh.get(int(synth.label_ids(LABELS)[i]))) == expected[i]


def test_sharded_mesh_merge(root):
    from cloudvolume import CloudVolume

    import igneous.task_creation as tc

    path = root / "mesh-sharded"
    synth.write_meshes(path, LABELS, sharded=True, workers=1)
    # one octree cell (no cuts) at LOD 0, so vertices are the fragments' own
    stages = tc.plan_sharded_multires_mesh(str(path), num_lod=0, min_chunk_size=(2048,) * 3,
                                           memory_target=MEMORY, max_labels_per_shard=None)
    assert len(stages[0]) > 1  # the scatter is split by the memory target
    assert len(stages[1]) >= 8  # so are the shards
    submit(stages, None)
    cv = CloudVolume(f"file://{path}")
    assert cv.mesh.meta.is_sharded()
    ids = [int(x) for x in synth.label_ids(LABELS)]
    got = cv.mesh.get(ids)
    assert sorted(got) == ids
    np.testing.assert_array_equal([_mesh_vertices(got[x]) for x in ids],
                                  synth.expected_counts(LABELS)["mesh_vertices"])


@pytest.mark.parametrize("sharded", [False, True])
def test_skeleton_merges(root, sharded):
    from cloudvolume import CloudVolume

    import igneous.task_creation as tc

    path = root / f"skeleton-{sharded}"
    synth.write_skeletons(path, LABELS, workers=1)
    options = dict(dust_threshold=0, tick_threshold=0, memory_target=MEMORY)
    if sharded:
        stages = tc.plan_sharded_skeleton_merge(str(path), **options)
        assert len(stages[1]) >= 8
    else:
        stages = [tc.create_unsharded_skeleton_merge_tasks(str(path), magnitude=1, **options)]
    submit(stages, None)
    cv = CloudVolume(f"file://{path}")
    ids = [int(x) for x in synth.label_ids(LABELS)]
    skels = cv.skeleton.get(ids)
    assert sorted(int(s.id) for s in skels) == sorted(ids)
    got = {int(s.id): len(s.vertices) for s in skels}
    np.testing.assert_array_equal([got[x] for x in ids],
                                  synth.expected_counts(LABELS)["skeleton_vertices"])


def _forge_reference(path, n: int, kind: str) -> None:
    """The forge output the old, per-label way: Mesh and Skeleton objects
    built one at a time and written with the forge's own encoders and store."""
    from mapbuffer import MapBuffer

    from igneous.formats.multires import mesh_to_precomputed
    from igneous.formats.spatial_index import index_filename, write_index
    from igneous.grid import box_name
    from igneous.storage import open_store
    from igneous.task_creation.mesh import create_meshing_tasks
    from igneous.task_creation.skeleton import create_skeletonizing_tasks
    from igneous.tasks.mesh import GZIP_LEVEL
    from igneous.tasks.skeleton import (
        BALL_FILE,
        TASK_DIR,
        bucket_dir,
        bucket_of,
        encode_skeletons,
        read_meta,
    )

    synth.make_layer(path)
    ids = synth.label_ids(n)
    found = synth.by_task(0, n)
    if kind == "skeleton":
        create_skeletonizing_tasks(str(path), shape=(synth.TASK,) * 3, skel_dir="skeletons")
        cf = open_store(str(path / "skeletons"))
        meta = read_meta(cf.url)
        cf.put_json(BALL_FILE, {"scale": 10.0, "const": 10.0})
    else:
        create_meshing_tasks(str(path), shape=(synth.TASK,) * 3, sharded=kind == "mesh-sharded",
                             mesh_dir="mesh")
        cf = open_store(str(path / "mesh"))
    for t in synth.all_tasks():
        lo, hi = synth.task_box(t)
        name = box_name(lo, hi)
        blobs, boxes, grouped = {}, {}, {}
        for i, j, k in found.get(t, []):
            y, z, pieces = synth.fragments_of(i)
            x0, x1 = pieces[j]
            label = int(ids[i])
            if kind == "skeleton":
                grouped.setdefault(bucket_of(label, meta["buckets"]), {})[label] = \
                    synth.skeleton_fragment(label, y, z, x0, x1, j > 0, j < k - 1,
                                            meta["vertex_attributes"])
                continue
            blobs[label] = mesh_to_precomputed(*synth.mesh_fragment(y, z, x0, x1, j == 0, j == k - 1))
            boxes[label] = ((int(x0), int(y), int(z)), (int(np.ceil(x1)) + 1, int(y) + 1, int(z) + 1))
        if kind == "skeleton":
            cf.put_many([(f"{bucket_dir(b)}{name}.frags", encode_skeletons(g))
                         for b, g in grouped.items()])
            done = np.sort(np.asarray([int(ids[i]) for i, _, _ in found.get(t, [])], dtype=np.uint64))
            cf.put(f"{TASK_DIR}/{name}.labels", done.tobytes(), compress="gzip")
            continue
        if kind == "mesh-sharded":
            stem = index_filename(lo, hi, synth.RESOLUTION)[: -len(".spatial")]
            cf.put(f"{stem}.frags", MapBuffer(blobs).tobytes())
        else:
            cf.put_many(((f"{label}:0:{name}", blob) for label, blob in blobs.items()),
                        compress="gzip", level=GZIP_LEVEL)
        write_index(cf.url, lo, hi, synth.RESOLUTION, boxes)


def _tree(path) -> dict[str, bytes]:
    return {str(p.relative_to(path)): p.read_bytes() for p in sorted(path.rglob("*")) if p.is_file()}


@pytest.mark.parametrize("kind", ["mesh", "mesh-sharded", "skeleton"])
def test_fast_fixture_writer_is_the_forges_bytes(tmp_path, kind):
    """bench/merges.py writes 10^6 labels with vectorised encoders: byte for byte
    what the forge's encoders write for the same fragments (every file)."""
    n = 300
    _forge_reference(tmp_path / "ref", n, kind)
    if kind == "skeleton":
        synth.write_skeletons(tmp_path / "fast", n, workers=1)
    else:
        synth.write_meshes(tmp_path / "fast", n, sharded=kind == "mesh-sharded", workers=1)
    ref, fast = _tree(tmp_path / "ref"), _tree(tmp_path / "fast")
    assert len(ref) > 64
    assert sorted(fast) == sorted(ref)
    for name in ref:
        assert fast[name] == ref[name], name


@pytest.mark.parametrize("magnitude,memory", [(1, None), (2, None), (3, None), (2, 1600)])
def test_planner_listing_is_the_tasks_own(tmp_path, magnitude, memory):
    """On local disk the planner lists the mesh directory for every prefix
    task (in several passes when the names do not fit its memory: ~10 names
    a pass at 1600 bytes): each list is exactly what the task would have found
    by listing its prefix itself (labels of 1 to 7 digits; other files are
    not fragments)."""
    from igneous.storage import open_store
    from igneous.task_creation.mesh import prefixes
    from igneous.tasks.mesh_merge import list_fragments, write_listings

    cf = open_store(str(tmp_path))
    labels = [1, 7, 10, 12, 99, 100, 123, 1234, 5678901, 120, 19]
    cf.put_many([(f"{x}:0:0-8_0-8_{z}-{z + 8}", b"x") for x in labels for z in (0, 8)]
                + [("info", b"{}"), ("12:0", b"{}"), ("0:0:0-8_0-8_0-8", b"x"), ("12.index", b"")],
                compress="gzip")
    (tmp_path / "12:0:0-8_0-8_0-8").write_bytes(b"x")  # one fragment in two compressions
    assert sorted(cf.list_stored("12:0:0-8_0-8_0-")) == ["12:0:0-8_0-8_0-8"] * 2
    pre = prefixes(magnitude)
    plan = write_listings(cf, pre, memory)
    seen = []
    for p, exact in pre:
        mine = list_fragments(cf, p, exact, plan)
        assert mine == list_fragments(cf, p, exact)
        seen += mine
    assert sorted(seen) == sorted(labels)
