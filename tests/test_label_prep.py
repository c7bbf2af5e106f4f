"""--fill-holes and --dust-global label preparation, against independent
computations (mapbuffer's own IntMap, fill_voids, numpy)."""

from __future__ import annotations

import numpy as np
import pytest

from igneous.tasks.label_prep import fill_holes, lookup, remove_global_dust


def intmap_index(d: dict) -> np.ndarray:
    import mapbuffer

    data = mapbuffer.IntMap(d).tobytes()
    n = len(d)
    assert len(data) == 10 + 16 * n
    return np.frombuffer(data, dtype="<u8", count=2 * n, offset=10).reshape(n, 2)


@pytest.mark.parametrize("n", [0, 1, 2, 7, 100, 1000])
def test_lookup_matches_dict(n):
    rs = np.random.RandomState(n)
    keys = np.unique(np.concatenate([rs.randint(1, 2**62, n, dtype=np.int64).astype(np.uint64),
                                     np.array([2**63 + 5, 2**64 - 2], np.uint64)[: min(n, 2)]]))
    d = {int(k): int(rs.randint(1, 10**6)) for k in keys}
    index = intmap_index(d)
    absent = np.array([0, 3, 2**63 + 6, 2**64 - 1], np.uint64)
    queries = np.concatenate([keys, absent])
    want = np.array([d.get(int(q), 0) for q in queries], np.uint64)
    np.testing.assert_array_equal(lookup(index, queries), want)


def test_remove_global_dust():
    big = np.uint64(2**63 + 11)
    labels = np.zeros((20, 20, 10), np.uint64)
    labels[:5] = 1
    labels[5:10] = big
    labels[10:12] = 7
    index = intmap_index({1: 5000, int(big): 90, 7: 10_000})
    out = remove_global_dust(labels, index, 100)
    # ``big`` has 2000 voxels here but only 90 in the whole volume: gone
    want = np.where(labels == big, 0, labels)
    np.testing.assert_array_equal(out, want)


def test_fill_holes_keeps_enclosed_labels():
    import fill_voids

    a = np.zeros((30, 30, 30), np.uint32)
    a[2:14, 2:14, 2:14] = 5
    a[6:9, 6:9, 6:9] = 0          # a background void inside 5
    a[16:28, 16:28, 16:28] = 7
    a[20:24, 20:24, 20:24] = 0
    a[21:23, 21:23, 21:23] = 9    # 9 sits in a void of 7, with background around it
    out = fill_holes(a, 1)
    want = a.copy()
    for label in (5, 7):
        filled = fill_voids.fill(a == label)
        want[filled & (a == 0)] = label
    np.testing.assert_array_equal(out, want)
    assert (out == 9).sum() == 8 and fill_holes(a, 0) is a
    empty = np.zeros((4, 4, 4), np.uint32)
    assert not fill_holes(empty, 3).any()


# -- through mesh forge ------------------------------------------------------------------


def _forge(tmp_path, data, **kw):
    import igneous.task_creation as tc
    from igneous.worker import run_local
    from tests.volumes import make_layer

    url = make_layer(str(tmp_path / "seg"), data, resolution=(8, 8, 8), layer_type="segmentation",
                     chunk=(16, 16, 16))

    def forge_and_merge():  # the merge is planned from what the forge wrote
        run_local([tc.create_meshing_tasks(url, 0, shape=(16, 32, 32), **kw)], progress=False)
        run_local([tc.create_mesh_manifest_tasks(url, 1)], progress=False)

    return url, forge_and_merge


def _mesh_volume(url, label) -> float:
    from cloudvolume import CloudVolume

    m = CloudVolume(url, progress=False).mesh.get(label)
    v = np.asarray(m.vertices, np.float64)
    f = np.asarray(m.faces, np.int64)
    return abs(float(np.einsum("ij,ij->i", v[f[:, 0]], np.cross(v[f[:, 1]], v[f[:, 2]])).sum()) / 6)


def test_forge_dust_global(tmp_path, igneous):
    big = 2**63 + 3
    data = np.zeros((32, 32, 32), np.uint64)
    data[4:16, 4:12, 4:12] = big      # 768 voxels in the first task ...
    data[16:18, 4:6, 4:6] = big       # ... and 8 in the second (x 16..31)
    data[20:22, 20:22, 20:22] = 9     # 8 voxels in all
    url, forge = _forge(tmp_path, data, dust_threshold=20, dust_global=True)
    # without the whole-volume counts: refused before anything is written
    with pytest.raises(Exception, match="voxels count"):
        forge()
    assert igneous("image", "voxels", "count", url).returncode == 0
    assert igneous("image", "voxels", "sum", url).returncode == 0
    forge()
    names = [p.name for p in (tmp_path / "seg" / "mesh_mip_0_err_40").iterdir()]
    pieces = [n for n in names if n.startswith(f"{big}:0:")]
    assert len(pieces) == 2, names  # the 8-voxel part of a 776-voxel object is kept
    assert not any(n.startswith("9:") for n in names)  # 8 voxels in the whole volume: dust


def test_forge_fill_holes(tmp_path):
    data = np.zeros((32, 32, 32), np.uint32)
    data[2:14, 2:14, 2:14] = 4
    data[6:10, 6:10, 6:10] = 0   # a cavity
    # unsimplified: a 4-voxel cavity lies within the default 40 nm simplification budget
    url, forge = _forge(tmp_path / "a", data, simplification=False)
    forge()
    hollow = _mesh_volume(url, 4)
    url2, forge2 = _forge(tmp_path / "b", data, fill_holes=1, simplification=False)
    forge2()
    solid = _mesh_volume(url2, 4)
    # the cavity's inner surface is gone: the enclosed volume grows by about its 64 voxels
    cavity = 64 * 8**3
    assert 0.5 * cavity < solid - hollow < 1.5 * cavity


def test_skeleton_forge_dust_global(tmp_path, igneous):
    """Global dust keeps the small detached piece of a big label and drops a
    small label that crosses a seam; local dust does the opposite."""
    from cloudvolume import CloudVolume

    import igneous.task_creation as tc
    from igneous.worker import run_local
    from tests.volumes import make_layer

    data = np.zeros((64, 32, 32), np.uint64)
    big = 2**63 + 1
    data[2:28, 10:20, 10:20] = big          # 2600 voxels in the first block (x < 32)
    data[44:46, 10:12, 10:12] = big         # a detached 8-voxel piece in the second block
    data[30:34, 24:26, 24:26] = 5           # 16 voxels across the seam at x = 32
    results = {}
    for mode in ("local", "global"):
        url = make_layer(str(tmp_path / mode), data, resolution=(10, 10, 10),
                         layer_type="segmentation", chunk=(16, 16, 16))
        if mode == "global":
            assert igneous("image", "voxels", "count", url).returncode == 0
            assert igneous("image", "voxels", "sum", url).returncode == 0
        run_local([tc.create_skeletonizing_tasks(url, 0, shape=(32, 32, 32), dust_threshold=20,
                                                 dust_global=mode == "global",
                                                 teasar_params={"scale": 1, "const": 10})],
                  progress=False)
        run_local([tc.create_unsharded_skeleton_merge_tasks(url, dust_threshold=0,
                                                            tick_threshold=0)], progress=False)
        cv = CloudVolume(url, progress=False)
        got = {}
        for label in (big, 5):
            try:
                got[label] = cv.skeleton.get(label).vertices
            except Exception:  # noqa: BLE001 - no skeleton for this label
                got[label] = np.zeros((0, 3))
        results[mode] = got
    far = lambda v: (v[:, 0] > 400).any()  # noqa: E731 - a vertex in the detached piece (x > 40 voxels)
    assert not far(results["local"][big]) and far(results["global"][big])
    assert len(results["local"][5]) > 0 and len(results["global"][5]) == 0
