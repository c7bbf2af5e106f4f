"""Meshing checked against zmesh on the whole array in memory, numpy label
boxes and CloudVolume reading back what we wrote (legacy and sharded multires)."""

from __future__ import annotations

import json
import os

import numpy as np
import pytest

import igneous.task_creation as tc
from igneous.errors import UserError
from igneous.sample import connectomics
from igneous.worker import run_local
from tests.volumes import BIG, make_layer

RES = (16, 16, 40)
OFFSET = (5, 7, 3)


def cutout(shape=(61, 58, 37)) -> np.ndarray:
    """An odd-sized cutout of the dense middle of the real segmentation."""
    seg = connectomics()
    if seg is None:
        pytest.skip("the connectomics sample is not on this machine")
    x, y, z = shape
    return np.asfortranarray(seg[220:220 + x, 240:240 + y, 230:230 + z])


def run(*plans):
    run_local(list(plans), parallel=1, progress=False)


def layer(tmp_path, data, name="seg", offset=OFFSET, resolution=RES) -> str:
    return make_layer(f"{tmp_path}/{name}", data, offset=offset, resolution=resolution,
                      layer_type="segmentation", chunk=(32, 32, 16))


def label_boxes_np(data: np.ndarray) -> dict[int, tuple[np.ndarray, np.ndarray]]:
    out = {}
    for label in np.unique(data):
        if label == 0:
            continue
        idx = np.nonzero(data == label)
        out[int(label)] = (np.array([i.min() for i in idx]), np.array([i.max() + 1 for i in idx]))
    return out


def edge_counts(faces: np.ndarray) -> np.ndarray:
    """How many triangles use each undirected edge."""
    e = np.sort(np.concatenate([faces[:, [0, 1]], faces[:, [1, 2]], faces[:, [2, 0]]]), axis=1)
    _, counts = np.unique(e, axis=0, return_counts=True)
    return counts


def signed_volume(v: np.ndarray, f: np.ndarray) -> float:
    a, b, c = v[f[:, 0]].astype(np.float64), v[f[:, 1]].astype(np.float64), v[f[:, 2]].astype(np.float64)
    return float(np.einsum("ij,ij->i", a, np.cross(b, c)).sum() / 6.0)


# ---- legacy (unsharded) ------------------------------------------------------------------


@pytest.fixture(scope="module")
def legacy(tmp_path_factory):
    data = cutout()
    tmp = tmp_path_factory.mktemp("legacy")
    path = layer(tmp, data)
    run(tc.create_meshing_tasks(path, 0, shape=(24, 20, 16)))
    run(tc.create_mesh_manifest_tasks(path, 1))
    return path, data


def test_legacy_meshes_close_and_fit_label_boxes(legacy):
    from cloudvolume import CloudVolume

    path, data = legacy
    cv = CloudVolume(path)
    res, off = np.array(RES, float), np.array(OFFSET)
    boxes = label_boxes_np(data)
    assert len(boxes) > 20
    pinched = edges = 0
    for label, (lo, hi) in boxes.items():
        mesh = cv.mesh.get(label)
        v, f = mesh.vertices, mesh.faces
        # seams welded: CloudVolume merges only exactly equal vertices
        assert len(np.unique(v, axis=0)) == len(v)
        # closed (no edge on a single triangle): no cracks at task seams and
        # closed where the object meets the dataset boundary; decimation may
        # pinch a few edges (4 triangles) but never opens one
        counts = edge_counts(f)
        assert np.all(counts % 2 == 0), label
        pinched += int(np.count_nonzero(counts > 2))
        edges += len(counts)
        # surface half a voxel outside the label's voxel centres, within one voxel
        want_lo, want_hi = (lo + off) * res, (hi + off) * res
        # (Neuroglancer draws voxel i over [i, i + 1) * res; the exact placement
        # is checked on unsimplified meshes against zmesh below)
        assert np.all(np.abs(v.min(axis=0) - want_lo) <= res + 1e-3), label
        assert np.all(np.abs(v.max(axis=0) - want_hi) <= res + 1e-3), label
        # encloses about the label's volume
        voxels = int(np.count_nonzero(data == label))
        if voxels >= 2000:
            assert abs(signed_volume(v, f)) == pytest.approx(voxels * res.prod(), rel=0.25)
    assert pinched < 0.002 * edges


def test_unsimplified_merge_equals_whole_array_mesh(tmp_path):
    """Without simplification, the merged meshes are exactly zmesh's meshes of
    the whole array (closed by padding): same vertices, same triangle count."""
    import zmesh
    from cloudvolume import CloudVolume

    data = cutout((40, 37, 23))
    path = layer(tmp_path, data)
    run(tc.create_meshing_tasks(path, 0, shape=(16, 16, 8), simplification=False))
    run(tc.create_mesh_manifest_tasks(path, 1))
    cv = CloudVolume(path)
    res = np.array(RES, float)
    mesher = zmesh.Mesher(RES)
    mesher.mesh(np.pad(data, 1))
    ids = [int(x) for x in mesher.ids()]
    assert sorted(ids) == sorted(label_boxes_np(data))
    for label in ids:
        want = mesher.get(label, reduction_factor=0)
        wv = want.vertices + (np.array(OFFSET) - 1 + 0.5) * res  # voxel centres at i + 0.5
        got = cv.mesh.get(label)
        assert len(got.faces) == len(want.faces)
        assert {tuple(x) for x in np.round(got.vertices, 2)} == {tuple(x) for x in np.round(wv, 2)}


def point_triangle_distance(p: np.ndarray, tri: np.ndarray) -> np.ndarray:
    """Distance from each point p (n, 3) to each triangle tri (m, 3, 3): (n, m).
    The plane when the projection falls inside, else the nearest edge."""
    a, b, c = (tri[None, :, i] for i in range(3))
    q = p[:, None]
    n = np.cross(b - a, c - a)
    nn = np.einsum("...i,...i", n, n)
    inside = np.repeat(nn > 0, len(p), axis=0)
    for u, v in ((a, b), (b, c), (c, a)):  # same side of every edge as the triangle
        inside &= np.einsum("...i,...i", np.cross(v - u, q - u), n) >= 0
    plane = np.abs(np.einsum("...i,...i", q - a, n)) / np.sqrt(np.where(nn > 0, nn, 1))
    best = np.where(inside, plane, np.inf)
    for u, v in ((a, b), (b, c), (c, a)):
        d = v - u
        t = np.clip(np.einsum("...i,...i", q - u, d) / np.maximum(np.einsum("...i,...i", d, d), 1e-12), 0, 1)
        best = np.minimum(best, np.linalg.norm(q - (u + t[..., None] * d), axis=-1))
    return best


def test_meshes_lie_on_the_voxels_neuroglancer_draws(tmp_path):
    """Neuroglancer draws voxel i of a segmentation over [i, i + 1) * resolution
    (the original Igneous's meshes and skeletons follow it): a box of voxels
    [a, b) meshes to exactly [a, b) * res, and its skeleton runs through voxel
    centres, (i + 0.5) * res."""
    from cloudvolume import CloudVolume

    data = np.zeros((40, 21, 13), dtype=np.uint64)
    a, b = np.array([3, 5, 4]), np.array([37, 12, 9])
    data[a[0]:b[0], a[1]:b[1], a[2]:b[2]] = BIG + 3
    path = layer(tmp_path, data)
    run(tc.create_meshing_tasks(path, 0, shape=(16, 16, 8), simplification=False))
    run(tc.create_mesh_manifest_tasks(path, 1))
    run(tc.create_skeletonizing_tasks(path, 0, shape=(16, 16, 8), dust_threshold=0))
    run(tc.create_unsharded_skeleton_merge_tasks(path, dust_threshold=0, tick_threshold=0))
    cv = CloudVolume(path, progress=False)
    res, off = np.array(RES, float), np.array(OFFSET)
    v = cv.mesh.get(BIG + 3).vertices
    np.testing.assert_allclose(v.min(axis=0), (a + off) * res, atol=1e-3)
    np.testing.assert_allclose(v.max(axis=0), (b + off) * res, atol=1e-3)
    s = cv.skeleton.get(BIG + 3).vertices
    np.testing.assert_allclose((s / res) % 1, 0.5, atol=1e-3)
    assert np.all(s >= (a + off) * res) and np.all(s <= (b + off) * res)
    assert np.ptp(s[:, 0]) >= (b - a)[0] * res[0] * 0.7  # it runs along the box


def test_simplification_bounded_and_vertices_unmoved(legacy):
    """Against zmesh's unsimplified meshes of the whole array: far fewer
    triangles, every kept vertex is an original one, and the original surface
    stays close to the simplified one (the error budget is 40 nm)."""
    import zmesh
    from cloudvolume import CloudVolume

    path, data = legacy
    cv = CloudVolume(path)
    mesher = zmesh.Mesher(RES)
    mesher.mesh(np.pad(data, 1))
    shift = (np.array(OFFSET) - 1 + 0.5) * np.array(RES, float)  # voxel centres at i + 0.5
    rng = np.random.default_rng(0)
    before = after = 0
    dists = []
    for label in sorted(label_boxes_np(data)):
        want = mesher.get(label, reduction_factor=0)
        got = cv.mesh.get(label)
        before, after = before + len(want.faces), after + len(got.faces)
        orig = (want.vertices + shift).astype(np.float32)
        assert {tuple(x) for x in got.vertices} <= {tuple(x) for x in orig}, label
        if len(want.faces) > 2000:  # sample the big ones
            pts = orig[rng.choice(len(orig), 150, replace=False)].astype(np.float64)
            dists.append(point_triangle_distance(pts, got.vertices[got.faces].astype(np.float64)).min(axis=1))
    assert after * 4 < before
    d = np.concatenate(dists)
    assert len(d) >= 600
    assert np.percentile(d, 99) <= 40 / 2 and d.max() <= 2 * 40


def test_weld_unique_rows_exact():
    """Welding agrees with numpy's row-wise unique, also for -0.0 and for two
    positions whose sort keys collide."""
    from igneous.formats.multires import unique_rows, weld

    rng = np.random.default_rng(1)
    v = (rng.integers(-20, 20, (5000, 3)) * 16.5).astype(np.float32)
    v[::9, 1] = -0.0
    # (0, 0, 1) and the position whose x, y bits equal the key of z = 1.0's bits
    key = int(np.float32(1.0).view(np.uint32)) * 0x9E3779B97F4A7C15 % 2**64
    twin = np.array([key >> 32, key & 0xFFFFFFFF, 0], dtype=np.uint32).view(np.float32)
    assert np.all(np.isfinite(twin))
    for verts in (v, np.concatenate([v, [[0, 0, 1]], twin[None]]).astype(np.float32)):
        uniq, inverse = unique_rows(verts)
        want = np.unique(verts + np.float32(0), axis=0)
        assert len(uniq) == len(want)
        assert np.array_equal(uniq[inverse], verts + np.float32(0))
    faces = rng.integers(0, len(v), (3000, 3))
    wv, wf = weld(v, faces)
    pos = (v + np.float32(0))[faces]
    distinct = ((pos[:, 0] != pos[:, 1]).any(axis=1) & (pos[:, 1] != pos[:, 2]).any(axis=1)
                & (pos[:, 0] != pos[:, 2]).any(axis=1))
    assert len(wv) == len(np.unique(wv, axis=0))
    assert np.array_equal(wv[wf], pos[distinct])


def test_cut_survives_vertex_just_above_cell_plane():
    """zmesh's chunk_mesh sizes its grid in float32 and float64; a vertex a hair
    above a cell plane made them disagree (crash). Every triangle is kept."""
    from igneous.formats.multires import _cut

    v = np.array([[8176.0005, 100, 100], [4500, 200, 100], [4500, 100, 300], [8100, 300, 300]],
                 dtype=np.float32)
    f = np.array([[0, 1, 2], [1, 3, 2]], dtype=np.uint32)
    cell, origin = np.array([4096.0, 4096, 10240]), np.array([-16.0, -16, -40])
    top = v[:, 0].max()  # 2 cells above the origin in float32, a hair over in float64
    assert np.ceil((float(top) + 16) / 4096) == 3 and np.ceil((top + np.float32(16)) / 4096) == 2
    pieces = _cut(v, f, cell, origin)
    assert set(pieces) <= {(1, 0, 0), (2, 0, 0)}

    def area(pv, pf):
        return 0.5 * np.linalg.norm(np.cross(pv[pf[:, 1]] - pv[pf[:, 0]], pv[pf[:, 2]] - pv[pf[:, 0]]), axis=1).sum()

    assert sum(area(*p) for p in pieces.values()) == pytest.approx(area(v.astype(float), f), rel=1e-4)


def test_spatial_index_of_forge(legacy):
    from igneous.formats import spatial_index

    path, data = legacy
    mesh_dir = f"{path}/mesh_mip_0_err_40"
    assert spatial_index.query(mesh_dir) == set(label_boxes_np(data))
    lo = np.array(OFFSET) + [30, 30, 10]
    hi = lo + [5, 6, 4]
    inside = data[30:35, 30:36, 10:14]
    got = spatial_index.query(mesh_dir, lo, hi)
    assert set(int(x) for x in np.unique(inside) if x) <= got


def test_uint64_ids_and_multires_unsharded(tmp_path):
    from cloudvolume import CloudVolume

    data = cutout((40, 37, 23)).astype(np.uint64)
    data[data > 0] += np.uint64(BIG)
    path = layer(tmp_path, data)
    run(tc.create_meshing_tasks(path, 0, shape=(20, 20, 12)))
    run(tc.create_unsharded_multires_mesh_tasks(path, num_lod=1, magnitude=1))
    cv = CloudVolume(path)
    assert cv.mesh.meta.info["@type"] == "neuroglancer_multilod_draco"
    labels = sorted(label_boxes_np(data))
    assert labels[0] > 2**53
    for label in labels:
        assert os.path.exists(f"{tmp_path}/seg/mesh_mip_0_err_40/{label}.index")
        mesh = cv.mesh.get(label, lod=0)[label]
        assert len(mesh.faces) > 0


# ---- sharded multi-resolution --------------------------------------------------------------


def morton(p) -> int:
    """Z-curve key by bit interleaving, x least significant (independent of ours)."""
    key = 0
    for bit in range(21):
        for axis in range(3):
            key |= ((int(p[axis]) >> bit) & 1) << (3 * bit + axis)
    return key


@pytest.fixture(scope="module")
def sharded(tmp_path_factory):
    data = cutout((64, 64, 40)).astype(np.uint64)
    data[data > 0] += np.uint64(2**63 + 12345)  # ids above 2**63 (MapBuffer lookups overflow)
    tmp = tmp_path_factory.mktemp("sharded")
    path = layer(tmp, data)
    run(tc.create_meshing_tasks(path, 0, shape=(32, 32, 20), sharded=True))
    run(tc.create_sharded_multires_mesh_tasks(path, num_lod=2, min_chunk_size=(16, 16, 8),
                                              vertex_quantization_bits=10))
    return path, data


def test_sharded_multires_decode_and_manifest(sharded):
    import DracoPy
    from cloudvolume import CloudVolume

    path, data = sharded
    cv = CloudVolume(path)
    info = cv.mesh.meta.info
    assert info["@type"] == "neuroglancer_multilod_draco" and info["vertex_quantization_bits"] == 10
    assert info["sharding"]["@type"] == "neuroglancer_uint64_sharded_v1"
    res, off = np.array(RES, float), np.array(OFFSET)
    boxes = label_boxes_np(data)
    for label, (lo, hi) in boxes.items():
        manifest = cv.mesh.get_manifest(label)
        lod0 = cv.mesh.get(label, lod=0)[label]
        v = lod0.vertices
        quantum = manifest.chunk_shape / 1023
        tol = res + quantum + 1e-3
        assert np.all(np.abs(v.min(axis=0) - (lo + off) * res) <= tol), label
        assert np.all(np.abs(v.max(axis=0) - (hi + off) * res) <= tol), label
        # a label big enough gets every requested level
        # every label gets all the requested levels unless its mesh is tiny
        assert manifest.num_lods in (1, 3), label
        if np.count_nonzero(data == label) >= 1000:
            assert manifest.num_lods == 3, label
        binary = cv.mesh.reader.get_data(label, cv.mesh.meta.mesh_path)  # the manifest
        assert binary is not None
        shard_path, start, _ = cv.mesh.reader.exists(label, cv.mesh.meta.mesh_path,
                                                     return_byte_range=True)
        with open(f"{path[len('file://'):]}/{shard_path}", "rb") as f:
            shard = f.read()
        pos = start - sum(int(np.sum(o)) for o in manifest.fragment_offsets)
        for lod in range(manifest.num_lods):
            positions = manifest.fragment_positions[lod]
            keys = [morton(p) for p in positions]
            assert keys == sorted(keys), "fragments must be in Z-curve order"
            for size in manifest.fragment_offsets[lod]:
                blob = shard[pos:pos + int(size)]
                pos += int(size)
                if not size:
                    continue
                dec = DracoPy.decode(blob)
                q = np.asarray(dec.points)
                assert np.all(q == np.round(q)) and q.min() >= 0 and q.max() <= 1023
                if lod > 0:  # no triangle crosses the 2x2x2 split of its cell
                    # (in half-cells; the split plane itself falls between two
                    # quantization steps, so allow one step)
                    half = q[np.asarray(dec.faces)] * 2 / 1023
                    step = 2 / 1023 + 1e-6
                    lo_cell = np.floor(np.min(half, axis=1) + step)
                    assert np.all(np.max(half, axis=1) <= lo_cell + 1 + step)
        assert pos == start


def test_merge_sharded_refuses_legacy_meshes(legacy):
    path, _ = legacy
    info_file = f"{path[len('file://'):]}/mesh_mip_0_err_40/info"
    before = open(info_file).read()
    with pytest.raises(UserError, match="unsharded legacy meshes"):
        tc.create_sharded_multires_mesh_tasks(path)
    assert open(info_file).read() == before


# ---- bad input ---------------------------------------------------------------------------


def test_bad_inputs(tmp_path, capsys):
    img = np.zeros((8, 8, 8), dtype=np.uint8)
    image = make_layer(f"{tmp_path}/img", img, layer_type="image")
    with pytest.raises(UserError, match="segmentation"):
        tc.create_meshing_tasks(image, 0)
    seg = layer(tmp_path, np.ones((8, 8, 8), dtype=np.uint32))
    with pytest.raises(UserError, match="mip 3 does not exist"):
        tc.create_meshing_tasks(seg, 3)
    with pytest.raises(UserError, match="mesh forge"):
        tc.create_mesh_manifest_tasks(seg)
    with pytest.raises(UserError, match="10 or 16"):
        tc.create_sharded_multires_mesh_tasks(seg, vertex_quantization_bits=12)


def test_all_background_finishes_cleanly(tmp_path, capsys):
    path = layer(tmp_path, np.zeros((20, 20, 10), dtype=np.uint64))
    run(tc.create_meshing_tasks(path, 0, shape=(10, 10, 10)))
    plan = tc.create_mesh_manifest_tasks(path)
    assert len(plan) == 0
    assert "nothing to merge" in capsys.readouterr().err
    run(tc.create_meshing_tasks(path, 0, shape=(10, 10, 10), mesh_dir="sh", sharded=True))
    assert len(tc.create_sharded_multires_mesh_tasks(path, mesh_dir="sh")) == 0


def test_corrupt_fragment_is_named_and_no_manifest_written(tmp_path):
    data = cutout((30, 30, 16))
    path = layer(tmp_path, data)
    run(tc.create_meshing_tasks(path, 0, shape=(15, 15, 16), compress=None))
    mesh_dir = tmp_path / "seg" / "mesh_mip_0_err_40"
    victim = sorted(n for n in os.listdir(mesh_dir) if ":0:" in n)[0]
    (mesh_dir / victim).write_bytes(b"\x05\x00\x00\x00garbage")
    label = victim.split(":")[0]
    with pytest.raises(UserError, match=victim.replace(".", r"\.")):
        run(tc.create_mesh_manifest_tasks(path, 1))
    assert not (mesh_dir / f"{label}:0").exists()


def test_cli_forge_merge_rm(tmp_path, igneous):
    data = cutout((30, 30, 16))
    path = layer(tmp_path, data)
    labels = sorted(label_boxes_np(data))
    keep = labels[:2]
    r = igneous("-p", "2", "mesh", "forge", path, "--shape", "16,16,16",
                "--labels", ",".join(map(str, keep)), "--dir", "m")
    assert r.returncode == 0, r.stderr
    q = tmp_path / "q"
    r = igneous("mesh", "merge", path, "--queue", str(q), "--magnitude", "1")
    assert r.returncode == 0, r.stderr
    assert igneous("execute", "-x", str(q)).returncode == 0
    got = {int(n.split(":")[0]) for n in os.listdir(tmp_path / "seg" / "m") if n.endswith(":0")}
    assert got == set(keep)
    manifest = json.loads((tmp_path / "seg" / "m" / f"{keep[0]}:0").read_text())
    assert manifest["fragments"]
    db = tmp_path / "index.db"
    r = igneous("mesh", "spatial-index", "db", path, str(db))
    assert r.returncode == 0, r.stderr
    import sqlite3

    rows = sqlite3.connect(db).execute("select distinct label from file_lookup").fetchall()
    assert {int(x[0]) for x in rows} == set(keep)
    r = igneous("mesh", "merge-sharded", path)
    assert r.returncode != 0 and "unsharded legacy" in r.stderr and "Traceback" not in r.stderr
    r = igneous("mesh", "xfer", path, f"file://{tmp_path}/copy", "--magnitude", "1")
    assert r.returncode == 0, r.stderr
    from cloudvolume import CloudVolume

    copy = CloudVolume(f"file://{tmp_path}/copy")
    want = CloudVolume(path).mesh.get(keep[0])
    assert np.array_equal(copy.mesh.get(keep[0]).vertices, want.vertices)
    r = igneous("mesh", "rm", path, "--magnitude", "1")
    assert r.returncode == 0, r.stderr
    assert os.listdir(tmp_path / "seg" / "m") == []


def test_tiny_labels_at_dataset_corners_get_meshes(tmp_path):
    """One- and two-voxel labels (at the dataset's corners and edges, and inside)
    keep a mesh: simplification must not collapse a small closed piece away."""
    from cloudvolume import CloudVolume

    data = np.zeros((30, 27, 11), dtype=np.uint64)
    data[10:20, 5:25, 2:9] = BIG + 1  # one ordinary object
    tiny = {BIG + 2: (slice(0, 1), slice(12, 14), slice(0, 1)),  # 2 voxels, x=0 and z=0
            BIG + 3: (slice(29, 30), slice(26, 27), slice(10, 11)),  # 1 voxel, far corner
            BIG + 4: (slice(5, 6), slice(3, 4), slice(5, 6))}  # 1 voxel inside
    for label, where in tiny.items():
        data[where] = label
    path = layer(tmp_path, data)
    run(tc.create_meshing_tasks(path, 0, shape=(16, 16, 8)))
    run(tc.create_mesh_manifest_tasks(path, 1))
    cv = CloudVolume(path, progress=False)
    res, off = np.asarray(RES, dtype=np.float64), np.asarray(OFFSET)
    for label, (lo, hi) in label_boxes_np(data).items():
        mesh = cv.mesh.get(label)
        assert len(mesh.faces) > 0, label
        v = mesh.vertices / res - off
        assert np.all(v.min(axis=0) >= lo - 1) and np.all(v.max(axis=0) <= hi + 1), label
