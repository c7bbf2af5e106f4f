"""The one block IO (igneous.blockio over igneous.chunkio.Volume): region
deletes, request/byte accounting of block writes and reads, and tasks that
open Volumes (not CloudVolume)."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest
from cloudvolume import CloudVolume

from igneous import storage
from igneous.blockio import BlockVolume, open_volume, read_block, write_region
from igneous.errors import UserError
from tests.test_chunkio import CHUNK, OFFSET, SHAPE, blank_layer, data_for


def chunk_files(path: Path) -> dict[str, int]:
    return {str(p.relative_to(path)): p.stat().st_size for p in path.rglob("*")
            if p.is_file() and p.name != "info"}


def test_volume_is_a_block_volume(tmp_path):
    vol: BlockVolume = blank_layer(tmp_path / "l", np.uint8, "raw")
    assert vol.layer_type == "image" and vol.num_channels == 1
    assert list(vol.resolution(0)) == [4, 4, 40]


def test_delete_whole_chunks_only(tmp_path):
    data = data_for(np.uint16)
    vol = blank_layer(tmp_path / "l", np.uint16, "raw")
    write_region(vol, data[..., None], np.array(OFFSET), 0)
    before = chunk_files(tmp_path / "l")
    lo = np.array(OFFSET)
    with pytest.raises(UserError, match="whole chunks"):
        vol.delete(lo + 1, lo + np.array(CHUNK), 0)
    assert chunk_files(tmp_path / "l") == before  # nothing deleted on refusal
    # the first two chunks along x; and the last chunk on every axis (cut by the end)
    vol.delete(lo, lo + np.array(CHUNK) * (2, 1, 1), 0)
    stop = lo + np.array(SHAPE)
    vol.delete(stop - (stop - lo) % np.array(CHUNK), stop, 0)
    gone = set(before) - set(chunk_files(tmp_path / "l"))
    key = "4_4_40"
    x0, y0, z0 = OFFSET
    assert gone == {f"{key}/{x0}-{x0 + 16}_{y0}-{y0 + 16}_{z0}-{z0 + 8}.gz",
                    f"{key}/{x0 + 16}-{x0 + 32}_{y0}-{y0 + 16}_{z0}-{z0 + 8}.gz",
                    f"{key}/{x0 + 32}-{stop[0]}_{y0 + 32}-{stop[1]}_{z0 + 16}-{stop[2]}.gz"}
    # CloudVolume reads the deleted chunks as missing, the rest as written
    cv = CloudVolume(vol.cloudpath, fill_missing=True, progress=False)
    got = cv[OFFSET[0]:stop[0], OFFSET[1]:stop[1], OFFSET[2]:stop[2]][..., 0]
    assert not got[:32, :16, :8].any()
    assert np.array_equal(got[:, 16:32], data[:, 16:32])


def test_block_io_is_accounted(tmp_path):
    data = data_for(np.uint8)
    vol = blank_layer(tmp_path / "l", np.uint8, "raw", compress="gzip")
    before = storage.totals()
    write_region(vol, data[..., None], np.array(OFFSET), 0)
    wrote = storage.totals() - before
    on_disk = chunk_files(tmp_path / "l")
    assert wrote.writes == len(on_disk) and wrote.bytes_out == sum(on_disk.values())
    assert (wrote.reads, wrote.lists, wrote.deletes, wrote.bytes_in) == (0, 0, 0, 0)
    before = storage.totals()
    got = read_block(open_volume(vol.cloudpath, 0), np.array(OFFSET),
                     np.array(OFFSET) + np.array(SHAPE), 0)
    read = storage.totals() - before
    assert np.array_equal(got[..., 0], data)
    assert read.reads == len(on_disk) + 1  # every chunk, and the info
    assert read.bytes_in == sum(on_disk.values()) + os.path.getsize(tmp_path / "l" / "info")


def test_mesh_task_opens_no_cloudvolume(tmp_path):
    """A mesh task reads its block through our chunk IO: a worker running it
    never imports CloudVolume (about 0.8 s and 75 MB)."""
    code = f"""
        import sys
        import numpy as np
        from igneous import sample
        labels = np.zeros((64, 64, 32), np.uint64)
        labels[10:30, 10:30, 5:20] = 7
        path = sample.create_layer({str(tmp_path / "seg")!r}, labels, layer_type="segmentation",
                                   chunk_size=(32, 32, 16))
        assert "cloudvolume" not in sys.modules
        from igneous.tasks.mesh import mesh_forge
        mesh_forge(path, 0, [0, 0, 0], [64, 64, 32], "mesh", spatial_index=False)
        print("cloudvolume" in sys.modules)
    """
    proc = subprocess.run([sys.executable, "-c", textwrap.dedent(code)], capture_output=True,
                          text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert proc.stdout.strip() == "False"
    from cloudvolume import Mesh

    frags = storage.open_store(str(tmp_path / "seg" / "mesh"))
    (name,) = frags.list()
    assert name == "7:0:0-64_0-64_0-32"
    verts = Mesh.from_precomputed(frags.get(name)).vertices
    assert verts.min(axis=0).tolist() >= [9, 9, 4] and verts.max(axis=0).tolist() <= [31, 31, 21]
