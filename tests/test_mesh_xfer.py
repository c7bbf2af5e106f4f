"""`mesh xfer --sharded`: finished unsharded meshes (legacy manifests or
unsharded multi-resolution) rewritten as sharded multi-resolution meshes,
checked through CloudVolume against the source meshes it reads itself."""

from __future__ import annotations

import numpy as np
import pytest

import igneous.task_creation as tc
from igneous.errors import UserError
from igneous.worker import run_local
from tests.test_mesh import OFFSET, RES
from tests.test_mesh import cutout as mesh_cutout
from tests.volumes import BIG, make_layer


def cutout(shape=(45, 39, 21)) -> np.ndarray:
    return mesh_cutout(shape).astype(np.uint64)


def run(*plans):
    run_local(list(plans), parallel=1, progress=False)


def source_layer(tmp_path, data, *, multires: bool) -> str:
    path = make_layer(f"{tmp_path}/src", data, offset=OFFSET, resolution=RES,
                      layer_type="segmentation", chunk=(32, 32, 16))
    run(tc.create_meshing_tasks(path, 0, shape=(24, 20, 12)))
    if multires:
        run(tc.create_unsharded_multires_mesh_tasks(path, num_lod=0, magnitude=1))
    else:
        run(tc.create_mesh_manifest_tasks(path, 1))
    return path


def area(mesh) -> float:
    v = np.asarray(mesh.vertices, np.float64)
    f = np.asarray(mesh.faces, np.int64)
    return float(np.linalg.norm(np.cross(v[f[:, 1]] - v[f[:, 0]], v[f[:, 2]] - v[f[:, 0]]),
                                axis=1).sum() / 2)


def check_same_meshes(src: str, dest: str, lod0_of_source: bool) -> None:
    from cloudvolume import CloudVolume

    a, b = CloudVolume(src, progress=False), CloudVolume(dest, progress=False)
    assert b.mesh.meta.info["@type"] == "neuroglancer_multilod_draco"
    assert b.mesh.meta.info["sharding"]["@type"] == "neuroglancer_uint64_sharded_v1"
    labels = [int(x) for x in np.unique(CloudVolume(src, progress=False)[:, :, :]) if x]
    assert labels
    for label in labels:
        want = a.mesh.get(label, lod=0)[label] if lod0_of_source else a.mesh.get(label)
        got = b.mesh.get(label, lod=0)[label]
        # integer positions in each cell: within 1/2**16 of a 256-voxel cell of the source
        tol = np.asarray(RES) * 256 / 2**16 + 1e-3
        assert np.all(np.abs(got.vertices.min(axis=0) - want.vertices.min(axis=0)) <= tol), label
        assert np.all(np.abs(got.vertices.max(axis=0) - want.vertices.max(axis=0)) <= tol), label
        assert abs(area(got) / area(want) - 1) < 0.01, label


@pytest.mark.parametrize("multires", [False, True], ids=["legacy", "multires"])
def test_unsharded_to_sharded(tmp_path, multires):
    data = cutout()
    data[data > 0] += np.uint64(BIG)
    src = source_layer(tmp_path, data, multires=multires)
    dest = f"file://{tmp_path}/dest"
    run(tc.create_xfer_meshes_tasks(src, dest, sharded=True, num_lod=1))
    assert data.max() > 2**53
    check_same_meshes(src, dest, lod0_of_source=multires)
    from cloudvolume import CloudVolume

    cv = CloudVolume(dest, progress=False)
    labels, counts = np.unique(data[data > 0], return_counts=True)
    big = int(labels[np.argmax(counts)])
    fine, coarse = cv.mesh.get(big, lod=0)[big], cv.mesh.get(big, lod=1)[big]
    assert 0 < len(coarse.faces) < len(fine.faces)  # --nlod 1 built a coarser level


def test_cli_and_bad_inputs(tmp_path, igneous):
    data = cutout((30, 30, 12))
    src = source_layer(tmp_path, data, multires=False)
    dest = f"file://{tmp_path}/dest"
    q = tmp_path / "q"
    r = igneous("mesh", "xfer", src, dest, "--sharded", "--nlod", "1", "--queue", q)
    assert r.returncode == 0, r.stderr
    r = igneous("-p", "2", "execute", "-x", "-q", q)
    assert r.returncode == 0, r.stderr
    check_same_meshes(src, dest, lod0_of_source=False)
    # the source's own directory: refused
    r = igneous("mesh", "xfer", src, src, "--sharded")
    assert r.returncode != 0 and "destination mesh directory is the source's" in r.stderr
    assert "Traceback" not in r.stderr
    # a destination directory holding legacy meshes: refused, nothing rewritten
    legacy_dest = f"file://{tmp_path}/legacy_dest"
    run(tc.create_xfer_meshes_tasks(src, legacy_dest))
    r = igneous("mesh", "xfer", src, legacy_dest, "--sharded")
    assert r.returncode != 0 and "holds unsharded legacy meshes" in r.stderr
    # forged but never merged: nothing finished to convert
    raw = make_layer(f"{tmp_path}/raw", data, offset=OFFSET, resolution=RES,
                     layer_type="segmentation", chunk=(32, 32, 16))
    run(tc.create_meshing_tasks(raw, 0, shape=(32, 32, 12)))
    with pytest.raises(UserError, match="no finished meshes"):
        tc.create_xfer_meshes_tasks(raw, f"file://{tmp_path}/d3", sharded=True)
