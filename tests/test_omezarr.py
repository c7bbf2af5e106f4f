"""OME-Zarr (zarr v3 / NGFF 0.5, sharded or not, and zarr v2 / NGFF 0.4) as
source and destination of image xfer and downsample.

What we write is checked with readers that share no code with ours:
zarr-python opens the arrays, ome-zarr reads the multiscales; the
precomputed side is read with CloudVolume; expected voxels come from numpy.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

import igneous.task_creation as tc
from igneous.errors import UserError
from igneous.worker import run_local
from tests.volumes import BIG, assert_is_mode, average, make_layer, read_mip, reduce

RES = (4, 6, 40)
OFFSET = (3, 7, 5)


def segmentation(shape=(45, 38, 11), seed=1) -> np.ndarray:
    """uint64 labels above 2^53 (a float64 round trip would change them)."""
    rng = np.random.RandomState(seed)
    return (rng.randint(0, 2**40, size=shape, dtype=np.int64).astype(np.uint64)
            + np.uint64(BIG) + np.uint64(1))


def image(shape=(45, 38, 11), seed=2, dtype=np.uint8) -> np.ndarray:
    return np.random.RandomState(seed).randint(0, 255, size=shape).astype(dtype)


def zarr_level(path: str, level: str) -> np.ndarray:
    """A level read by zarr-python, as (x, y, z[, c])."""
    import zarr

    return np.asarray(zarr.open_array(f"{path}/{level}", mode="r")[...]).T


def ome_levels(path: str) -> list[dict]:
    """(axes, transforms) of each level as ome-zarr's reader sees them."""
    from ome_zarr.io import parse_url
    from ome_zarr.reader import Reader

    node = next(iter(Reader(parse_url(path))()))
    meta = node.metadata
    return [{"axes": [a["name"] for a in meta["axes"]],
             "units": [a.get("unit") for a in meta["axes"]],
             "scale": t[0]["scale"], "translation": t[1]["translation"], "shape": d.shape}
            for t, d in zip(meta["coordinateTransformations"], node.data)]


def xfer(src: str, dest: str, **kw) -> None:
    run_local([tc.create_transfer_tasks(src, dest, **kw)], progress=False)


@pytest.mark.parametrize("dest_name,kw", [
    ("seg.zarr", dict(sharded=True)),
    ("seg.zarr", dict(shard_shape=(32, 16, 8))),
    ("img.zarr/labels/cells", dict()),
    ("zarr2://{tmp}/seg_v2", dict()),
])
def test_precomputed_to_omezarr_and_back(tmp_path, dest_name, kw):
    data = segmentation()
    src = make_layer(str(tmp_path / "src"), data, offset=OFFSET, resolution=RES, chunk=(16, 16, 8))
    dest = dest_name.format(tmp=tmp_path) if "://" in dest_name else str(tmp_path / dest_name)
    xfer(src, dest, chunk_size=(16, 8, 4), skip_downsamples=True, **kw)

    root = dest.split("://")[-1]
    np.testing.assert_array_equal(zarr_level(root, "0"), data)  # zarr-python: every voxel
    (level,) = ome_levels(root)
    assert level["axes"] == ["z", "y", "x"] and level["units"] == ["nanometer"] * 3
    assert level["scale"] == list(RES)[::-1]
    assert level["translation"] == [o * r for o, r in zip(OFFSET, RES)][::-1]
    meta_name = ".zattrs" if "zarr2" in dest else "zarr.json"
    meta = json.loads((Path(root) / meta_name).read_text())
    attrs = meta if "zarr2" in dest else meta["attributes"]["ome"]
    assert "image-label" in attrs  # a segmentation is written as OME labels
    if "labels/" in dest:
        labels = json.loads((Path(root).parent / "zarr.json").read_text())
        assert labels["attributes"]["ome"]["labels"] == ["cells"]
    if kw:
        import zarr

        arr = zarr.open_array(f"{root}/0", mode="r")
        assert arr.chunks == (4, 8, 16)
        assert arr.shards == tuple(kw.get("shard_shape", arr.shards))[::-1] if "shard_shape" in kw \
            else arr.shards is not None

    back = f"file://{tmp_path}/back"
    xfer(dest, back, skip_downsamples=True)
    got, off = read_mip(back, 0)
    assert list(off) == list(OFFSET)
    assert got.dtype == np.uint64 and got.tobytes() == data.tobytes()


def test_image_channels_and_downsamples_in_xfer(tmp_path):
    """A 2-channel image: a channel axis first; downsamples written in the same pass."""
    data = np.stack([image(seed=3), image(seed=4)], axis=3)
    src = str(tmp_path / "src")
    make_layer(src, data[..., 0], offset=(0, 0, 0), resolution=RES, chunk=(16, 16, 8))
    from cloudvolume import CloudVolume

    info = CloudVolume.create_new_info(2, "image", "uint8", "raw", list(RES), [0, 0, 0],
                                       list(data.shape[:3]), chunk_size=[16, 16, 8])
    cv = CloudVolume(f"file://{src}", info=info, progress=False)
    cv.commit_info()
    cv[:, :, :] = data
    dest = str(tmp_path / "img.zarr")
    xfer(src, dest, chunk_size=(16, 16, 8), sharded=True)
    levels = ome_levels(dest)
    assert levels[0]["axes"] == ["c", "z", "y", "x"]
    np.testing.assert_array_equal(zarr_level(dest, "0"), data)
    assert len(levels) >= 2
    for k in range(1, len(levels)):
        for c in range(2):
            expected, off = average(data[..., c], (0, 0, 0), (2, 2, 1), k)
            np.testing.assert_array_equal(zarr_level(dest, str(k))[..., c], expected)
        assert levels[k]["scale"] == [1.0, RES[2], RES[1] * 2**k, RES[0] * 2**k]


@pytest.mark.parametrize("factor", [(2, 2, 1), (2, 2, 2)])
@pytest.mark.parametrize("method", ["avg", "mode", "min", "max", "striding"])
def test_downsample_omezarr_in_place(tmp_path, method, factor):
    """New levels and multiscales entries; voxels as numpy pools them."""
    from igneous.task_creation.image import plan_downsample

    seg = method == "mode"
    data = segmentation((70, 52, 24)) if seg else image((70, 52, 24))
    offset = (4, 8, 2)
    src = make_layer(str(tmp_path / "src"), data, offset=offset, resolution=RES, chunk=(16, 16, 8))
    dest = str(tmp_path / "vol.zarr")
    xfer(src, dest, chunk_size=(16, 16, 8), shard_shape=(32, 32, 8), skip_downsamples=True)
    passes = plan_downsample(dest, 0, 2, factor=factor, method=method)
    run_local(passes, progress=False)

    levels = ome_levels(dest)
    assert len(levels) == 3
    for k in (1, 2):
        got = zarr_level(dest, str(k))
        f = np.asarray(factor) ** k
        if method == "avg" and len(passes) == 1:  # exact sums over both levels
            expected, off = average(data, offset, factor, k)
        elif method == "avg":  # an odd offset split the work: level 2 pools level 1
            expected, off = average(data, offset, factor, 1)
            if k == 2:
                expected, off = average(expected, off, factor, 1)
        elif method == "striding":
            # each window's first voxel on the absolute grid (edge windows padded low)
            lo = np.asarray(offset)
            padded = np.pad(data, [(int(p), 0) for p in lo % f], mode="edge")
            expected, off = padded[::f[0], ::f[1], ::f[2]], lo // f
        elif method in ("min", "max"):
            cur, off = data, np.asarray(offset)
            for _ in range(k):
                cur, off = reduce(cur, off, factor, np.min if method == "min" else np.max)
            expected = cur
        else:
            expected = None
            off = np.asarray(offset) // f
        if expected is not None:
            np.testing.assert_array_equal(got, expected)
        else:  # mode: each voxel is a most frequent label of its window one level down
            below = data if k == 1 else zarr_level(dest, str(k - 1))
            assert_is_mode(got, below, np.asarray(offset) // np.asarray(factor) ** (k - 1), factor)
        assert levels[k]["scale"] == [RES[2] * f[2], RES[1] * f[1], RES[0] * f[0]]
        assert levels[k]["translation"] == [float(o * r * ff) for o, r, ff in
                                            zip(off[::-1], RES[::-1], f[::-1])]
        assert got.shape == tuple(levels[k]["shape"])[::-1]


def test_zarr2_to_sharded_zarr3(tmp_path):
    """OME-Zarr 0.4 -> 0.5 (rechunked and sharded), read back by zarr-python."""
    data = image((50, 40, 12), seed=11, dtype=np.uint16)
    src = make_layer(str(tmp_path / "src"), data, offset=OFFSET, resolution=RES)
    v2 = f"zarr2://{tmp_path}/v2"
    xfer(src, v2, chunk_size=(16, 16, 4), skip_downsamples=True)
    assert (tmp_path / "v2" / ".zattrs").exists() and (tmp_path / "v2" / "0" / ".zarray").exists()
    v3 = str(tmp_path / "v3.zarr")
    xfer(v2, v3, chunk_size=(8, 8, 4), shard_shape=(32, 16, 8), skip_downsamples=True)
    np.testing.assert_array_equal(zarr_level(v3, "0"), data)
    (level,) = ome_levels(v3)
    assert level["translation"] == [o * r for o, r in zip(OFFSET, RES)][::-1]


def test_source_written_by_ome_zarr(tmp_path):
    """An OME-Zarr 0.5 written by ome-zarr-py (micrometers, 3 levels whose
    translations follow the voxel-centre convention) reads back through
    xfer as precomputed with resolutions in nm."""
    import zarr
    from ome_zarr.writer import write_image

    from igneous.layers import LayerInfo

    data = image((64, 48, 20), seed=7)
    root = tmp_path / "ext.zarr"
    write_image(data.T, zarr.open_group(str(root), mode="w"), axes="zyx",
                scale={"z": 0.04, "y": 0.008, "x": 0.004},
                axes_units={a: "micrometer" for a in "zyx"}, scale_factors=(2, 4))
    info = LayerInfo(str(root)).info
    assert [s["resolution"] for s in info["scales"]] == [[4, 8, 40], [8, 16, 40], [16, 32, 40]]
    assert all(s["voxel_offset"] == [0, 0, 0] for s in info["scales"])
    dest = f"file://{tmp_path}/pre"
    xfer(str(root), dest, skip_downsamples=True)
    got, off = read_mip(dest, 0)
    np.testing.assert_array_equal(got, data)
    from cloudvolume import CloudVolume

    assert np.allclose(CloudVolume(dest).resolution, (4, 8, 40))
    level1 = np.asarray(zarr.open_array(str(root / "s1"), mode="r")[...]).T
    xfer(str(root), f"file://{tmp_path}/pre1", mip=1, skip_downsamples=True)
    got, _ = read_mip(f"file://{tmp_path}/pre1", 1)
    np.testing.assert_array_equal(got, level1)


# -- bad input -----------------------------------------------------------------------------

def write_group(root: Path, attrs: dict, arrays: dict[str, tuple]) -> None:
    """A zarr v3 group with ``attrs`` and arrays path -> (shape, dtype), via zarr-python."""
    import zarr

    group = zarr.open_group(str(root), mode="w", zarr_format=3)
    group.attrs.update(attrs)
    for name, (shape, dtype) in arrays.items():
        group.create_array(name, shape=shape, dtype=dtype, chunks=shape, fill_value=0)


def ome(axes, scale=(40, 4, 4)) -> dict:
    return {"ome": {"version": "0.5", "multiscales": [{"axes": axes, "datasets": [
        {"path": "0", "coordinateTransformations": [{"type": "scale", "scale": list(scale)}]}]}]}}


ZYX = [{"name": a, "type": "space", "unit": "nanometer"} for a in "zyx"]


@pytest.mark.parametrize("attrs,arrays,needle", [
    ({}, {"0": ((4, 8, 8), "uint8")}, "not an OME-Zarr image (no multiscales"),
    (ome([{"name": a, "type": "space", "unit": "furlong"} for a in "zyx"]),
     {"0": ((4, 8, 8), "uint8")}, "unit 'furlong'"),
    (ome([{"name": a, "type": "space", "unit": "nanometer"} for a in "zyq"]),
     {"0": ((4, 8, 8), "uint8")}, "cannot be mapped"),
    (ome([{"name": "t", "type": "time"}] + ZYX, scale=(1, 40, 4, 4)),
     {"0": ((3, 4, 8, 8), "uint8")}, "time axis of length 3"),
    (ome(ZYX), {"0": ((4, 8, 8), "float16")}, "cannot be stored in a precomputed layer"),
])
def test_bad_sources(tmp_path, igneous, attrs, arrays, needle):
    src = tmp_path / "bad.zarr"
    write_group(src, attrs, arrays)
    dest = tmp_path / "dest"
    proc = igneous("image", "xfer", str(src), str(dest))
    assert proc.returncode == 1, proc.stderr
    assert needle in proc.stderr and len(proc.stderr.strip().splitlines()) == 1, proc.stderr
    assert not dest.exists()


def test_plain_zarr_array_is_refused(tmp_path, igneous):
    import zarr

    zarr.create_array(str(tmp_path / "a.zarr"), shape=(4, 4, 4), dtype="uint8", chunks=(4, 4, 4))
    proc = igneous("image", "xfer", str(tmp_path / "a.zarr"), str(tmp_path / "d"))
    assert proc.returncode == 1 and "is a zarr array, not an OME-Zarr image" in proc.stderr


@pytest.mark.parametrize("args,needle", [
    (["--chunk-size", "16,16,8", "--shard-shape", "24,16,8"], "not a multiple of the chunk size"),
    (["--sharded"], "zarr v2 has no sharding"),
    (["--encoding", "png"], "does not apply to an OME-Zarr destination"),
])
def test_bad_destination_options(tmp_path, igneous, args, needle):
    src = make_layer(str(tmp_path / "src"), image(), resolution=RES)
    dest = f"zarr2://{tmp_path}/d.zarr" if "--sharded" in args else str(tmp_path / "d.zarr")
    proc = igneous("image", "xfer", src, dest, *args)
    assert proc.returncode == 1 and needle in proc.stderr, proc.stderr
    assert len(proc.stderr.strip().splitlines()) == 1
    assert not (tmp_path / "d.zarr").exists()


def test_existing_destination_with_other_metadata(tmp_path, igneous):
    src = make_layer(str(tmp_path / "src"), image(), resolution=RES)
    dest = tmp_path / "d.zarr"
    write_group(dest, ome(ZYX), {"0": ((4, 8, 8), "uint8")})
    before = {p: p.read_bytes() for p in dest.rglob("*") if p.is_file()}
    proc = igneous("image", "xfer", src, str(dest))
    assert proc.returncode == 1 and "already exists" in proc.stderr, proc.stderr
    assert {p: p.read_bytes() for p in dest.rglob("*") if p.is_file()} == before


def test_same_destination_twice_is_accepted(tmp_path):
    """A re-run finds the layout it wrote (shards as chunks) and is idempotent."""
    data = segmentation()
    src = make_layer(str(tmp_path / "src"), data, offset=OFFSET, resolution=RES)
    dest = str(tmp_path / "d.zarr")
    for _ in range(2):
        xfer(src, dest, chunk_size=(16, 16, 4), sharded=True, skip_downsamples=True)
    np.testing.assert_array_equal(zarr_level(dest, "0"), data)


def test_not_a_zarr_destination_with_shard_shape(tmp_path):
    src = make_layer(str(tmp_path / "src"), image(), resolution=RES)
    with pytest.raises(UserError, match="not a zarr destination"):
        tc.create_transfer_tasks(src, str(tmp_path / "plain"), shard_shape=(32, 32, 8))


def test_tasks_write_whole_shards(tmp_path):
    """Every task box of a sharded xfer is a whole number of shards (or ends at the volume)."""
    data = image((100, 70, 30))
    src = make_layer(str(tmp_path / "src"), data, resolution=RES)
    dest = str(tmp_path / "d.zarr")
    plan = tc.create_transfer_tasks(src, dest, chunk_size=(16, 16, 8), shard_shape=(32, 32, 16))
    for task in plan:
        lo, shape = np.asarray(task.kwargs["offset"]), np.asarray(task.kwargs["shape"])
        hi = np.minimum(lo + shape, data.shape)
        assert np.all(lo % (32, 32, 16) == 0)
        assert np.all(((hi % (32, 32, 16)) == 0) | (hi == data.shape))
    run_local([plan], progress=False)
    np.testing.assert_array_equal(zarr_level(dest, "0"), data)


def cloud_round_trip(tmp_path, bucket_url: str, sharded: bool = True):
    """Precomputed (local) -> OME-Zarr in a bucket -> precomputed (local)."""
    data = segmentation()
    src = make_layer(str(tmp_path / "src"), data, offset=OFFSET, resolution=RES)
    dest = f"{bucket_url}/seg.zarr"
    xfer(src, dest, chunk_size=(16, 16, 4), sharded=sharded, skip_downsamples=True)
    back = f"file://{tmp_path}/back"
    xfer(dest, back, skip_downsamples=True)
    got, off = read_mip(back, 0)
    assert list(off) == list(OFFSET) and got.tobytes() == data.tobytes()
    return dest, data


def test_s3_round_trip(tmp_path, s3_bucket):
    """On S3 (moto); the array is also read back by zarr-python through s3fs."""
    import zarr

    dest, data = cloud_round_trip(tmp_path, s3_bucket.url)
    store = zarr.storage.FsspecStore.from_url(
        f"{dest}/0", storage_options={"endpoint_url": s3_bucket.endpoint, "anon": False},
        read_only=True)
    np.testing.assert_array_equal(np.asarray(zarr.open_array(store, mode="r")[...]).T, data)


@pytest.mark.parametrize("sharded", [
    False,
    pytest.param(True, marks=pytest.mark.xfail(
        reason="the GCS emulator ignores suffix byte ranges (bytes=-N), which reading a shard "
        "index needs (real GCS answers them)", strict=False)),
])
def test_gcs_round_trip(tmp_path, gcs_bucket, sharded):
    """On the GCS emulator (tests/gcs_server.py): voxels round-trip through the
    bucket, and the group and array metadata are objects there."""
    from igneous.storage import open_store

    dest, _ = cloud_round_trip(tmp_path, gcs_bucket.url, sharded=sharded)
    keys = set(open_store(dest).list())
    assert "zarr.json" in keys and "0/zarr.json" in keys


def test_time_and_channel_axes(tmp_path):
    """t (length 1), c, z, y, x written by zarr-python: two channels, x/y/z mapped by name."""
    import zarr

    data = np.stack([image((20, 12, 6), seed=s) for s in (8, 9)], axis=3)  # x, y, z, c
    root = tmp_path / "tc.zarr"
    axes = [{"name": "t", "type": "time"}, {"name": "c", "type": "channel"}] + ZYX
    write_group(root, ome(axes, scale=(1, 1, 40, 4, 4)), {"0": ((1, 2, 6, 12, 20), "uint8")})
    zarr.open_array(str(root / "0"), mode="r+")[...] = data.transpose(3, 2, 1, 0)[np.newaxis]
    dest = f"file://{tmp_path}/pre"
    xfer(str(root), dest, skip_downsamples=True)
    from cloudvolume import CloudVolume

    cv = CloudVolume(dest, progress=False)
    assert cv.num_channels == 2 and list(cv.resolution) == [4, 4, 40]
    np.testing.assert_array_equal(np.asarray(cv[:, :, :]), data)


def test_parallel_workers_write_one_sharded_array(tmp_path, igneous):
    """Two worker processes, each task whole shards of the same zarr v3 array."""
    import zarr

    data = segmentation((100, 90, 20), seed=5)
    src = make_layer(str(tmp_path / "src"), data, offset=OFFSET, resolution=RES)
    dest = tmp_path / "par.zarr"
    queue = tmp_path / "q"
    igneous("image", "xfer", src, str(dest), "--chunk-size", "16,16,4", "--shard-shape",
            "32,32,8", "--skip-downsample", "--queue", str(queue), check=True)
    igneous("-p", "2", "execute", "-x", "-q", str(queue), check=True, timeout=120)
    arr = zarr.open_array(str(dest / "0"), mode="r")
    assert arr.shards == (8, 32, 32) and arr.chunks == (4, 16, 16)
    np.testing.assert_array_equal(np.asarray(arr[...]).T, data)


def test_rm_refuses_omezarr_and_sharded_downsample_follows_base(tmp_path, igneous):
    import zarr

    src = make_layer(str(tmp_path / "src"), image((64, 64, 8)), resolution=RES)
    dest = tmp_path / "d.zarr"
    xfer(src, str(dest), chunk_size=(16, 16, 8), shard_shape=(32, 32, 8), skip_downsamples=True)
    proc = igneous("image", "rm", str(dest))
    assert proc.returncode == 1 and "is an OME-Zarr" in proc.stderr
    assert (dest / "0" / "zarr.json").exists()
    igneous("image", "downsample", str(dest), "--sharded", "--num-mips", "1", check=True)
    level = zarr.open_array(str(dest / "1"), mode="r")
    assert level.shards == (8, 32, 32) and level.chunks == (8, 16, 16)


def test_units_and_multiscale_transforms_map_to_nm():
    """Pure metadata mapping: per-axis units, dataset and multiscales-wide transforms."""
    from igneous.formats.omezarr import to_info

    axes = [{"name": "z", "type": "space", "unit": "micrometer"},
            {"name": "x", "type": "space", "unit": "angstrom"},
            {"name": "y", "type": "space"}]  # no unit: nanometers
    group = {"zarr_format": 3, "node_type": "group", "attributes": {"ome": {
        "version": "0.5", "multiscales": [{
            "axes": axes,
            "coordinateTransformations": [{"type": "scale", "scale": [2, 1, 1]},
                                          {"type": "translation", "translation": [0.08, 0, 0]}],
            "datasets": [{"path": "a", "coordinateTransformations": [
                {"type": "scale", "scale": [0.02, 40, 8]},
                {"type": "translation", "translation": [0.06, 400, 24]}]}]}]}}}
    array = {"zarr_format": 3, "node_type": "array", "shape": [5, 7, 9], "data_type": "int16",
             "chunk_grid": {"name": "regular", "configuration": {"chunk_shape": [5, 7, 9]}},
             "codecs": [{"name": "bytes"}]}
    info = to_info(group, 3, {"a": array}, "mem://x")
    (scale,) = info["scales"]
    # z: 2 * 0.02 um = 40 nm; x: 40 A = 4 nm; y: 8 nm; array order z, x, y -> size x, y, z
    assert scale["resolution"] == [4, 8, 40]
    assert scale["size"] == [7, 9, 5]
    # offsets: x 400/40 = 10, y 24/8 = 3, z (2 * 0.06 + 0.08) / 0.04 = 5
    assert scale["voxel_offset"] == [10, 3, 5]
    assert info["data_type"] == "int16" and info["zarr"]["axes"] == ["z", "x", "y"]


def test_axes_in_another_order_are_transposed(tmp_path):
    """x, z, y arrays (written by zarr-python) read back as x, y, z voxels."""
    import zarr

    data = image((21, 13, 7), seed=12, dtype=np.uint16)  # x, y, z
    axes = [{"name": a, "type": "space", "unit": "nanometer"} for a in "xzy"]
    root = tmp_path / "xzy.zarr"
    write_group(root, ome(axes, scale=(4, 40, 6)), {"0": ((21, 7, 13), "uint16")})
    zarr.open_array(str(root / "0"), mode="r+")[...] = data.transpose(0, 2, 1)
    dest = f"file://{tmp_path}/pre"
    xfer(str(root), dest, skip_downsamples=True)
    got, _ = read_mip(dest, 0)
    np.testing.assert_array_equal(got, data)
    back = str(tmp_path / "back.zarr")  # and back to OME-Zarr (z, y, x) through ZarrVolume
    xfer(str(root), back, skip_downsamples=True)
    np.testing.assert_array_equal(zarr_level(back, "0"), data)


def test_downsample_keeps_other_attributes(tmp_path):
    """A group written by zarr-python with attributes of its own keeps them when levels are added."""
    import zarr

    from igneous.task_creation.image import plan_downsample

    data = image((40, 24, 4), seed=13)
    root = tmp_path / "ext.zarr"
    attrs = ome(ZYX)
    attrs["ome"]["omero"] = {"channels": [{"label": "em"}]}
    attrs["lab"] = {"scanner": 7}
    write_group(root, attrs, {"0": ((4, 24, 40), "uint8")})
    zarr.open_array(str(root / "0"), mode="r+")[...] = data.T
    run_local(plan_downsample(str(root), 0, 1), progress=False)
    meta = json.loads((root / "zarr.json").read_text())["attributes"]
    assert meta["lab"] == {"scanner": 7} and meta["ome"]["omero"] == {"channels": [{"label": "em"}]}
    assert [d["path"] for d in meta["ome"]["multiscales"][0]["datasets"]] == ["0", "1"]
    expected, _ = average(data, (0, 0, 0), (2, 2, 1), 1)
    np.testing.assert_array_equal(zarr_level(str(root), "1"), expected)
