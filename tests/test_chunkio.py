"""Our chunk reader and writer (igneous.chunkio) against CloudVolume's own
download and upload: the same files, the same decoded voxels, at the gzip
level asked for."""

from __future__ import annotations

import gzip
import os
from pathlib import Path

import numpy as np
import pytest
from cloudvolume import CloudVolume

from igneous.blockio import read_block, write_region
from igneous.chunkio import open_volume
from tests.volumes import BIG

SHAPE, OFFSET, CHUNK = (45, 38, 21), (3, 7, 11), (16, 16, 8)


def blank_layer(path: Path, dtype, encoding: str, **kw):
    """A new empty layer at ``path``, opened as our Volume with options ``kw``."""
    layer_type = "segmentation" if dtype in (np.uint32, np.uint64) else "image"
    info = CloudVolume.create_new_info(1, layer_type, np.dtype(dtype).name, encoding, [4, 4, 40],
                                       list(OFFSET), list(SHAPE), chunk_size=list(CHUNK))
    CloudVolume(f"file://{path}", info=info, progress=False).commit_info()
    return open_volume(f"file://{path}", 0, **kw)


def files(path: Path) -> dict[str, bytes]:
    return {str(p.relative_to(path)): p.read_bytes() for p in path.rglob("*")
            if p.is_file() and p.name != "info"}


def data_for(dtype) -> np.ndarray:
    rs = np.random.RandomState(4)
    if dtype == np.uint64:
        return (rs.randint(0, 5, SHAPE).astype(np.uint64) + np.uint64(BIG)).astype(np.uint64)
    return rs.randint(0, 200, SHAPE).astype(dtype)


@pytest.mark.parametrize("dtype,encoding", [(np.uint8, "raw"), (np.uint16, "raw"),
                                            (np.uint64, "compressed_segmentation"),
                                            (np.uint32, "compresso"), (np.uint8, "jpeg")])
def test_same_files_as_cloudvolume(tmp_path, dtype, encoding):
    data = data_for(dtype)
    ours = blank_layer(tmp_path / "ours", dtype, encoding, compress="gzip", compress_level=9)
    theirs = CloudVolume(blank_layer(tmp_path / "theirs", dtype, encoding).cloudpath,
                         compress="gzip", progress=False)
    write_region(ours, data[..., None], np.array(OFFSET), 0)
    lo, hi = np.array(OFFSET), np.array(OFFSET) + SHAPE
    theirs[lo[0]:hi[0], lo[1]:hi[1], lo[2]:hi[2]] = data
    a, b = files(tmp_path / "ours"), files(tmp_path / "theirs")
    assert sorted(a) == sorted(b)  # names, edge chunks cut at the volume's end, .gz suffixes
    for name in a:  # identical content once decompressed
        unzip = gzip.decompress if name.endswith(".gz") else (lambda x: x)
        assert unzip(a[name]) == unzip(b[name]), name
    got = CloudVolume(f"file://{tmp_path}/ours")[lo[0]:hi[0], lo[1]:hi[1], lo[2]:hi[2]][..., 0]
    if encoding != "jpeg":
        np.testing.assert_array_equal(got, data)


def test_compress_level_is_applied(tmp_path):
    from cloudvolume import CloudVolume as CV

    seg = (np.arange(np.prod(SHAPE)) // 7 % 13).reshape(SHAPE).astype(np.uint32)
    sizes = {}
    for level in (1, 9):
        cv = blank_layer(tmp_path / str(level), np.uint32, "raw", compress="gzip",
                         compress_level=level)
        write_region(cv, seg[..., None], np.array(OFFSET), 0)
        d = tmp_path / str(level)
        sizes[level] = sum(p.stat().st_size for p in d.rglob("*.gz"))
        np.testing.assert_array_equal(CV(f"file://{d}")[:, :, :][..., 0], seg)
    assert sizes[1] > sizes[9]


def test_delete_black_uploads_removes_stale_chunks(tmp_path):
    data = np.zeros(SHAPE, np.uint8)
    data[:16, :16, :8] = 5  # only the first chunk holds data
    cv = blank_layer(tmp_path / "l", np.uint8, "raw", compress="gzip")
    write_region(cv, np.full(SHAPE, 9, np.uint8)[..., None], np.array(OFFSET), 0)  # stale data
    before = len(files(tmp_path / "l"))
    cv = open_volume(f"file://{tmp_path}/l", 0, delete_black_uploads=True, background_color=0,
                     compress="gzip")
    write_region(cv, data[..., None], np.array(OFFSET), 0)
    after = files(tmp_path / "l")
    assert before > 1 and len(after) == 1
    out = CloudVolume(f"file://{tmp_path}/l", fill_missing=True)[:, :, :][..., 0]
    np.testing.assert_array_equal(out, data)


def test_unaligned_region_falls_back_to_cloudvolume(tmp_path):
    """A region not on whole chunks goes through CloudVolume (which refuses it
    unless non_aligned_writes): we never write a partial chunk file ourselves."""
    cv = blank_layer(tmp_path / "l", np.uint8, "raw", non_aligned_writes=True, fill_missing=True)
    part = np.full((5, 5, 5, 1), 7, np.uint8)
    write_region(cv, part, np.array(OFFSET) + 2, 0)
    got = CloudVolume(f"file://{tmp_path}/l", fill_missing=True)[:, :, :][..., 0]
    assert (got[2:7, 2:7, 2:7] == 7).all() and got.sum() == 7 * 125
    assert os.path.exists(tmp_path / "l" / "4_4_40")


# -- the reader -----------------------------------------------------------------

def written_by_cloudvolume(path: Path, dtype, encoding: str, data: np.ndarray, **kw) -> str:
    url = blank_layer(path, dtype, encoding).cloudpath
    cv = CloudVolume(url, progress=False, **kw)
    lo, hi = np.array(OFFSET), np.array(OFFSET) + SHAPE
    cv[lo[0]:hi[0], lo[1]:hi[1], lo[2]:hi[2]] = data
    return url


@pytest.mark.parametrize("dtype,encoding", [(np.uint8, "raw"), (np.float32, "raw"),
                                            (np.uint64, "compressed_segmentation"),
                                            (np.uint32, "compresso"), (np.uint64, "crackle"),
                                            (np.uint8, "jpeg")])
def test_reads_what_cloudvolume_reads(tmp_path, dtype, encoding):
    data = data_for(dtype) if dtype != np.float32 else np.random.RandomState(1).rand(*SHAPE).astype(dtype)
    url = written_by_cloudvolume(tmp_path / "l", dtype, encoding, data)
    cv = CloudVolume(url, progress=False)
    vol = open_volume(url, 0)
    rs = np.random.RandomState(7)
    start, stop = np.array(OFFSET), np.array(OFFSET) + SHAPE
    regions = [(start, stop)] + [tuple(sorted(rs.randint(start, stop + 1, size=(2, 3)), key=tuple))
                                 for _ in range(6)]
    for lo, hi in regions:
        lo, hi = np.minimum(lo, hi), np.maximum(lo, hi)
        hi = np.maximum(hi, lo + 1)
        hi = np.minimum(hi, stop)
        lo = np.minimum(lo, hi - 1)
        got = read_block(vol, lo, hi, 0)
        want = np.asarray(cv[lo[0]:hi[0], lo[1]:hi[1], lo[2]:hi[2]])
        assert got.flags.f_contiguous and got.shape == want.shape
        np.testing.assert_array_equal(got, want)
    if encoding != "jpeg":
        np.testing.assert_array_equal(read_block(vol, start, stop, 0)[..., 0], data)


def test_missing_chunks(tmp_path):
    from igneous.chunkio import MissingChunkError

    data = data_for(np.uint16)
    url = written_by_cloudvolume(tmp_path / "l", np.uint16, "raw", data)
    key = next(p for p in (tmp_path / "l" / "4_4_40").iterdir())
    key.unlink()
    start, stop = np.array(OFFSET), np.array(OFFSET) + SHAPE
    with pytest.raises(MissingChunkError, match="fill-missing"):
        read_block(open_volume(url, 0), start, stop, 0)
    got = read_block(open_volume(url, 0, fill_missing=True), start, stop, 0)
    want = CloudVolume(url, fill_missing=True, progress=False)[:, :, :]
    np.testing.assert_array_equal(got, want)
    assert (got == 0).any()


def test_refuses_regions_outside_and_corrupt_chunks(tmp_path):
    from igneous.errors import UserError

    url = written_by_cloudvolume(tmp_path / "l", np.uint8, "raw", data_for(np.uint8))
    vol = open_volume(url, 0)
    start = np.array(OFFSET)
    with pytest.raises(UserError, match="outside mip 0"):
        read_block(vol, start - 1, start + 4, 0)
    chunk = tmp_path / "l" / "4_4_40" / f"{OFFSET[0]}-{OFFSET[0] + 16}_{OFFSET[1]}-{OFFSET[1] + 16}_{OFFSET[2]}-{OFFSET[2] + 8}.gz"
    chunk.write_bytes(gzip.compress(b"short"))
    with pytest.raises(UserError, match="cannot be decoded"):
        read_block(vol, start, start + 4, 0)


def test_rewrite_with_other_compression_leaves_no_stale_copy(tmp_path):
    data = data_for(np.uint8)
    vol = blank_layer(tmp_path / "l", np.uint8, "raw", compress="gzip")
    write_region(vol, np.full(SHAPE, 3, np.uint8)[..., None], np.array(OFFSET), 0)
    vol = open_volume(vol.cloudpath, 0, compress=False)
    write_region(vol, data[..., None], np.array(OFFSET), 0)
    names = files(tmp_path / "l")
    assert names and not any(n.endswith(".gz") or n.endswith(".tmp") for n in names)
    np.testing.assert_array_equal(CloudVolume(vol.cloudpath)[:, :, :][..., 0], data)


def test_reads_brotli_chunks_written_by_cloudvolume(tmp_path):
    data = data_for(np.uint64)
    url = written_by_cloudvolume(tmp_path / "l", np.uint64, "raw", data, compress="br")
    assert any(n.endswith(".br") for n in files(tmp_path / "l"))
    got = read_block(open_volume(url, 0), np.array(OFFSET), np.array(OFFSET) + SHAPE, 0)
    np.testing.assert_array_equal(got[..., 0], data)
    assert got.dtype == np.uint64 and int(got.max()) > 2**53


def test_gzip_variants(tmp_path):
    """Several gzip members are read whole (libdeflate alone stops after the
    first); a truncated gzip file is refused with its name."""
    from igneous.errors import UserError
    from igneous.storage import open_store

    files = open_store(f"file://{tmp_path}")
    (tmp_path / "two.gz").write_bytes(gzip.compress(b"abc") + gzip.compress(b"defg"))
    assert bytes(files.get("two")) == b"abcdefg"
    files.put("one", b"x" * 5000, compress="gzip")
    assert gzip.decompress((tmp_path / "one.gz").read_bytes()) == b"x" * 5000
    (tmp_path / "bad.gz").write_bytes(gzip.compress(b"y" * 5000)[:-20])
    with pytest.raises(UserError, match="bad.gz is corrupt"):
        files.get("bad")
    assert files.get("absent") is None


def test_remote_layer_in_batches():
    """A non-local layer (cloud-files' in-memory protocol) with more chunks than
    one concurrent batch: written and read by us, checked through CloudVolume."""
    from igneous.storage.cloud import BATCH as REMOTE_BATCH
    from igneous.storage.local import LocalStore

    shape, chunk = (160, 176, 8), (16, 16, 8)  # 110 chunks
    info = CloudVolume.create_new_info(1, "segmentation", "uint64", "compressed_segmentation",
                                       [8, 8, 30], [5, 0, 2], list(shape), chunk_size=list(chunk))
    url = "mem://igneous-test-chunkio/seg"
    CloudVolume(url, info=info, progress=False).commit_info()
    data = (np.random.RandomState(2).randint(0, 9, shape).astype(np.uint64) + np.uint64(BIG))
    vol = open_volume(url, 0)
    assert vol.native(0) and not isinstance(vol.store, LocalStore)
    assert len(list(vol.chunk_boxes(np.array([5, 0, 2]), np.array([5, 0, 2]) + shape, 0))) > REMOTE_BATCH
    write_region(vol, data[..., None], np.array([5, 0, 2]), 0)
    np.testing.assert_array_equal(CloudVolume(url, progress=False)[:, :, :][..., 0], data)
    got = read_block(open_volume(url, 0), np.array([9, 3, 2]), np.array([150, 170, 10]), 0)
    np.testing.assert_array_equal(got[..., 0], data[4:145, 3:170, :])
