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
