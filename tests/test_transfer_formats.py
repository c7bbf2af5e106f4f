"""Transfer from non-precomputed sources: OME-Zarr 0.4 (zarr v2, blosc; read
by igneous.zarrio through tensorstore, more in tests/test_omezarr.py) and N5
(gzip; read through CloudVolume). The source files are written here by hand
from numpy arrays, so the check does not rest on any library's writer."""

from __future__ import annotations

import gzip
import json
import struct
from pathlib import Path

import numpy as np
import pytest
from cloudvolume import CloudVolume

from tests.volumes import average


def write_zarr(root: Path, data: np.ndarray, chunk, resolution) -> str:
    """An OME-Zarr 0.4 group with one blosc-compressed, nested ('/') scale."""
    import blosc

    (root / "0").mkdir(parents=True)
    axes = [{"name": n, "type": "space", "unit": "nanometer"} for n in "zyx"]
    scale = [{"scale": list(resolution)[::-1], "type": "scale"}]
    (root / ".zgroup").write_text(json.dumps({"zarr_format": 2}))
    (root / ".zattrs").write_text(json.dumps({"multiscales": [{
        "axes": axes, "version": "0.4",
        "datasets": [{"path": "0", "coordinateTransformations": scale}]}]}))
    (root / "0" / ".zarray").write_text(json.dumps({
        "zarr_format": 2, "dtype": data.dtype.str, "shape": list(data.shape)[::-1],
        "chunks": list(chunk)[::-1], "order": "C", "fill_value": 0, "filters": None,
        "dimension_separator": "/",
        "compressor": {"id": "blosc", "cname": "lz4", "clevel": 5, "shuffle": 1, "blocksize": 0}}))
    zyx = data.transpose(2, 1, 0)
    cz, cy, cx = list(chunk)[::-1]
    for z in range(0, zyx.shape[0], cz):
        for y in range(0, zyx.shape[1], cy):
            for x in range(0, zyx.shape[2], cx):
                block = np.zeros((cz, cy, cx), data.dtype)  # zarr stores whole edge chunks
                part = zyx[z:z + cz, y:y + cy, x:x + cx]
                block[:part.shape[0], :part.shape[1], :part.shape[2]] = part
                path = root / "0" / str(z // cz) / str(y // cy) / str(x // cx)
                path.parent.mkdir(parents=True, exist_ok=True)
                path.write_bytes(blosc.compress(block.tobytes(), typesize=data.dtype.itemsize))
    return f"zarr://file://{root}"


def write_n5(root: Path, data: np.ndarray, block, resolution) -> str:
    """An N5 container with one gzip scale; blocks are big-endian, x fastest."""
    (root / "s0").mkdir(parents=True)
    (root / "attributes.json").write_text(json.dumps(
        {"n5": "2.0.0", "resolution": list(resolution), "scales": [[1, 1, 1]]}))
    (root / "s0" / "attributes.json").write_text(json.dumps({
        "dimensions": list(data.shape), "blockSize": list(block), "dataType": data.dtype.name,
        "compression": {"type": "gzip"}}))
    bx, by, bz = block
    for x in range(0, data.shape[0], bx):
        for y in range(0, data.shape[1], by):
            for z in range(0, data.shape[2], bz):
                part = data[x:x + bx, y:y + by, z:z + bz]
                header = struct.pack(">HH", 0, 3) + struct.pack(">III", *part.shape)
                body = part.astype(part.dtype.newbyteorder(">")).tobytes(order="F")
                path = root / "s0" / str(x // bx) / str(y // by) / str(z // bz)
                path.parent.mkdir(parents=True, exist_ok=True)
                path.write_bytes(header + gzip.compress(body))
    return f"n5://file://{root}"


def volume(dtype, shape=(45, 38, 11), seed=3) -> np.ndarray:
    hi = np.iinfo(dtype).max
    return np.random.RandomState(seed).randint(0, hi, size=shape, dtype=np.int64).astype(dtype)


@pytest.mark.parametrize("fmt,dtype", [("zarr", np.uint8), ("zarr", np.uint16),
                                       ("n5", np.uint8), ("n5", np.uint16)])
def test_xfer_from_zarr_and_n5(tmp_path, igneous, fmt, dtype):
    data = volume(dtype)
    res = (8, 8, 30)
    writer = write_zarr if fmt == "zarr" else write_n5
    src = writer(tmp_path / f"src.{fmt}", data, (16, 16, 4), res)
    dest = f"file://{tmp_path}/dest"

    igneous("image", "xfer", src, dest, "--chunk-size", "16,16,8", check=True)

    cv = CloudVolume(dest, mip=0)
    assert cv.info["scales"][0]["encoding"] == "raw"
    assert list(cv.resolution) == list(res)
    np.testing.assert_array_equal(cv[:, :, :][..., 0], data)
    # the downsamples written in the same pass are numpy's 2x2x1 averages
    for mip in range(1, len(cv.info["scales"])):
        expected, _ = average(data, (0, 0, 0), (2, 2, 1), mip)
        got = CloudVolume(dest, mip=mip)[:, :, :][..., 0]
        np.testing.assert_array_equal(got, expected)


def test_https_source(tmp_path):
    """A read-only http(s) source (as --use-https-src makes of gs:// and s3://
    paths): served here by our own loopback file server, which answers NAME
    from NAME.gz with Content-Encoding: gzip as cloud storage does."""
    import igneous.task_creation as tc
    from igneous.layers import https_path
    from igneous.view import LayerServer
    from igneous.worker import run_local
    from tests.volumes import make_layer, read_mip

    assert https_path("gs://bucket/em/img") == "https://storage.googleapis.com/bucket/em/img"
    assert https_path("s3://bucket/em") == "https://s3.amazonaws.com/bucket/em"
    assert https_path("file:///x/y") == "file:///x/y"
    data = np.asfortranarray(np.random.RandomState(5).randint(0, 255, (70, 50, 12)).astype(np.uint8))
    make_layer(str(tmp_path / "src"), data, offset=(3, 0, 1))
    server = LayerServer({"src": str(tmp_path / "src")}, 0).start()
    try:
        dest = f"file://{tmp_path}/dest"
        run_local([tc.create_transfer_tasks(f"{server.url}/src", dest, chunk_size=(32, 32, 8))],
                  progress=False)
    finally:
        server.stop()
    got, off = read_mip(dest, 0)
    assert list(off) == [3, 0, 1] and np.array_equal(got, data)
