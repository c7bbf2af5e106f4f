"""Meshes, skeletons, CCL and voxel counts over an OME-Zarr segmentation.

The same commands run on a precomputed copy of the same labels (same
chunking, so the same task grid): the Precomputed meshes and skeletons
written beside the OME-Zarr must equal those of the precomputed layer file
for file, and voxel counts must equal numpy's; CCL output is compared with
cc3d on the whole array.
"""

from __future__ import annotations

import gzip
import json
from pathlib import Path

import numpy as np
import pytest

import igneous.task_creation as tc
from igneous.sample import synthetic_segmentation
from igneous.worker import run_local
from tests.volumes import make_layer, read_mip

RES = (16, 16, 40)
CHUNK = (32, 32, 16)


@pytest.fixture(scope="module")
def pair(tmp_path_factory) -> tuple[Path, Path, np.ndarray]:
    return make_pair(tmp_path_factory.mktemp("labels"))


def make_pair(root: Path) -> tuple[Path, Path, np.ndarray]:
    """(precomputed layer dir, OME-Zarr label group dir, labels) with the same chunks."""
    seg = synthetic_segmentation((96, 80, 48)).astype(np.uint64)
    make_layer(str(root / "pre"), seg, resolution=RES, chunk=CHUNK, layer_type="segmentation")
    zarr_dir = root / "img.zarr" / "labels" / "seg"
    run_local([tc.create_transfer_tasks(str(root / "pre"), str(zarr_dir), chunk_size=CHUNK,
                                        skip_downsamples=True)], progress=False)
    return root / "pre", zarr_dir, seg


def tree(path: Path) -> dict[str, bytes]:
    """Every file under ``path``, gunzipped, by relative name without .gz."""
    out = {}
    for p in path.rglob("*"):
        if p.is_file():
            data = p.read_bytes()
            name = str(p.relative_to(path))
            if name.endswith(".gz"):
                data, name = gzip.decompress(data), name[:-3]
            out[name] = data
    return out


def run_cli(igneous, *args) -> None:
    igneous(*args, check=True, timeout=300)


def test_meshes_and_skeletons_beside_omezarr(pair, igneous):
    pre, zarr_dir, _ = pair
    for layer in (pre, zarr_dir):
        run_cli(igneous, "mesh", "forge", str(layer), "--shape", "64,64,32")
        run_cli(igneous, "mesh", "merge", str(layer))
        run_cli(igneous, "skeleton", "forge", str(layer), "--shape", "64,64,32")
        run_cli(igneous, "skeleton", "merge", str(layer))
    info = json.loads((pre / "info").read_text())
    attrs = json.loads((zarr_dir / "zarr.json").read_text())["attributes"]
    # the OME-Zarr names its mesh and skeleton directories as the info file does
    assert attrs["igneous"] == {"mesh": info["mesh"], "skeletons": info["skeletons"]}
    for sub in (info["mesh"], info["skeletons"]):
        want, got = tree(pre / sub), tree(zarr_dir / sub)
        assert len(want) > 10 and "info" in got
        assert got == want


def test_ccl_and_voxel_counts_over_omezarr(pair, igneous, tmp_path):
    import cc3d
    from mapbuffer import IntMap

    _, zarr_dir, seg = pair
    for dest in (f"file://{tmp_path}/ccl", str(tmp_path / "ccl.zarr")):
        run_cli(igneous, "image", "ccl", "auto", str(zarr_dir), dest)
    got, _ = read_mip(f"file://{tmp_path}/ccl", 0)
    import zarr

    got_zarr = np.asarray(zarr.open_array(str(tmp_path / "ccl.zarr" / "0"), mode="r")[...]).T
    np.testing.assert_array_equal(got_zarr, got)
    expected = cc3d.connected_components(seg, connectivity=26)
    # same partition: a one-to-one map between our ids and cc3d's
    pairs = np.unique(np.stack([got.ravel(), expected.ravel()]), axis=1)
    assert len(np.unique(pairs[0])) == pairs.shape[1] == len(np.unique(pairs[1]))

    run_cli(igneous, "image", "voxels", "count", str(zarr_dir))
    out = tmp_path / "counts.im"
    run_cli(igneous, "image", "voxels", "sum", str(zarr_dir), "-o", str(out))
    counts = IntMap(out.read_bytes())
    labels, n = np.unique(seg, return_counts=True)
    assert {int(k): int(v) for k, v in counts.items()} == \
        {int(k): int(v) for k, v in zip(labels, n)}


def test_meshes_and_skeletons_read_back_from_omezarr(tmp_path, igneous):
    """Re-sharding reads meshes (multi-resolution) and skeletons back through
    the layer: from the OME-Zarr as from the precomputed copy, the same shards."""
    pre, zarr_dir, _ = make_pair(tmp_path)
    for layer in (pre, zarr_dir):
        run_cli(igneous, "mesh", "forge", str(layer), "--shape", "64,64,32", "--dir", "multires")
        run_cli(igneous, "mesh", "merge", str(layer), "--nlod", "1", "--dir", "multires")
        run_cli(igneous, "skeleton", "forge", str(layer), "--shape", "64,64,32")
        run_cli(igneous, "skeleton", "merge", str(layer))
        run_cli(igneous, "mesh", "xfer", str(layer), str(tmp_path / f"{layer.name}_m"), "--sharded")
        run_cli(igneous, "skeleton", "xfer", str(layer), str(tmp_path / f"{layer.name}_s"),
                "--sharded")
    skel_dir = json.loads((pre / "info").read_text())["skeletons"]
    assert not any(n.endswith(":0") for n in tree(pre / "multires"))  # no legacy manifests
    for want, got in ((tmp_path / "pre_m" / "multires", tmp_path / "seg_m" / "multires"),
                      (tmp_path / "pre_s" / skel_dir, tmp_path / "seg_s" / skel_dir)):
        want_files, got_files = tree(want), tree(got)
        assert any(n.endswith(".shard") for n in want_files) and got_files == want_files
