"""The bad-input catalogue: every case is refused with one line, no traceback,
nothing written and the sources byte-identical.

One table drives the whole test. A CLI case runs ``igneous ARGS`` in a
subprocess and must exit non-zero with exactly one line on stderr; an API case
calls a planner of ``igneous.task_creation`` (or the pipeline/worker API) and
must raise a ``UserError``. In both, a hash of every source layer and file is
taken before and after, and the destination and queue paths the case names
must not exist afterwards (unless the case made them itself).
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest
from cloudvolume import CloudVolume

from igneous.errors import UserError
from tests.volumes import make_layer


def tree_digest(root: Path) -> dict[str, str]:
    """sha256 of every file under ``root``."""
    out = {}
    for p in sorted(root.rglob("*")):
        if p.is_file() and not p.is_symlink():
            out[str(p.relative_to(root))] = hashlib.sha256(p.read_bytes()).hexdigest()
    return out


def _edit_info(src: Path, dest: Path, edit: Callable[[dict], object]) -> None:
    """A copy of layer ``src`` at ``dest`` with its info changed by ``edit``."""
    shutil.copytree(src, dest)
    info = json.loads((dest / "info").read_text())
    edit(info)
    (dest / "info").write_text(json.dumps(info))


@pytest.fixture(scope="module")
def sources(tmp_path_factory) -> Path:
    """Every layer and file the catalogue reads, under one root."""
    root = tmp_path_factory.mktemp("bad-input") / "src"
    root.mkdir()
    rng = np.random.RandomState(0)
    make_layer(str(root / "img"), rng.randint(0, 255, (64, 64, 16)).astype(np.uint8),
               chunk=(32, 32, 8))
    make_layer(str(root / "seg"), (rng.randint(0, 4, (64, 64, 16)) + 1).astype(np.uint32),
               chunk=(32, 32, 8), layer_type="segmentation")
    flt = rng.random_sample((64, 64, 16)).astype(np.float32)
    flt[3, 4, 5], flt[7, 8, 9] = np.nan, np.inf
    make_layer(str(root / "flt"), flt, chunk=(32, 32, 8))
    info = CloudVolume.create_new_info(3, "image", "uint8", "raw", [4, 4, 40], [0, 0, 0],
                                       [64, 64, 16], chunk_size=[32, 32, 8])
    rgb = CloudVolume(f"file://{root / 'rgb'}", info=info, progress=False)
    rgb.commit_info()
    rgb[:, :, :] = rng.randint(0, 255, (64, 64, 16, 3)).astype(np.uint8)
    info = CloudVolume.create_new_info(2, "segmentation", "uint32", "raw", [4, 4, 40],
                                       [0, 0, 0], [64, 64, 16], chunk_size=[32, 32, 8])
    seg2 = CloudVolume(f"file://{root / 'seg2'}", info=info, progress=False)
    seg2.commit_info()
    seg2[:, :, :] = rng.randint(0, 4, (64, 64, 16, 2)).astype(np.uint32)

    img = root / "img"
    _edit_info(img, root / "noscales", lambda i: i.pop("scales"))
    _edit_info(img, root / "nores", lambda i: i["scales"][0].pop("resolution"))
    _edit_info(img, root / "nochunks", lambda i: i["scales"][0].pop("chunk_sizes"))
    _edit_info(img, root / "nosize", lambda i: i["scales"][0].pop("size"))
    _edit_info(img, root / "zerochunk", lambda i: i["scales"][0].update(chunk_sizes=[[0, 32, 8]]))
    _edit_info(img, root / "negsize", lambda i: i["scales"][0].update(size=[64, -64, 16]))
    _edit_info(img, root / "zerores", lambda i: i["scales"][0].update(resolution=[0, 4, 40]))
    _edit_info(img, root / "baddtype", lambda i: i.update(data_type="uint7"))
    _edit_info(img, root / "zerochan", lambda i: i.update(num_channels=0))
    _edit_info(img, root / "badtype", lambda i: i.update(type="picture"))

    def finer_mip1(i):  # mip 1 claims a finer resolution than mip 0
        s = dict(i["scales"][0], key="2_2_40", resolution=[2, 2, 40], size=[128, 128, 16])
        i["scales"].append(s)

    _edit_info(img, root / "finermip", finer_mip1)

    def dup_key(i):
        s = dict(i["scales"][0], resolution=[8, 8, 40], size=[32, 32, 16])
        i["scales"].append(s)  # same key as mip 0: both mips would share one directory

    _edit_info(img, root / "dupkey", dup_key)
    (root / "notjson").mkdir()
    (root / "notjson" / "info").write_text("{ this is not json")
    (root / "listinfo").mkdir()
    (root / "listinfo" / "info").write_text("[1, 2, 3]")

    (root / "a-file").write_text("I am a file, not a queue directory\n")
    (root / "notdb").mkdir()
    (root / "notdb" / "queue.sqlite").write_bytes(b"garbage, not an SQLite database" * 10)
    (root / "badmap.json").write_text("{1: 2")
    (root / "negmap.json").write_text(json.dumps({"1": -5}))
    pipes = {
        "p-type.toml": 'source = "./img"\n[[steps]]\nstep = "downsample"\nnum_mips = "two"\n',
        "p-chunk.toml": ('source = "./img"\n[[steps]]\nstep = "transfer"\n'
                         'dest_layer_path = "../dest"\nchunk_size = [0, 16, 8]\n'),
        "p-factor.toml": ('source = "./img"\n[[steps]]\nstep = "downsample"\n'
                          'factor = [2, 2.5, 1]\n'),
        "p-shape.toml": ('source = "./seg"\n[[steps]]\nstep = "mesh-forge"\n'
                         'shape = "big"\n'),
    }
    for name, text in pipes.items():
        (root / name).write_text(text)
    return root


@dataclass
class Case:
    """``args``: CLI arguments, or a callable ``f(paths)`` for an API case.
    Placeholders: {src} (the sources root), {dest}, {q} (fresh paths)."""

    id: str
    args: tuple | Callable
    says: str  # a piece of the error line (lower case)


def _tc():
    import igneous.task_creation as tc

    return tc


CLI = [
    # -- chunk sizes, shapes, factors, resolutions --------------------------------
    Case("xfer-chunk-zero", ("image", "xfer", "{src}/img", "{dest}", "--chunk-size", "0,64,64",
                             "--queue", "{q}"), "--chunk-size"),
    Case("xfer-chunk-negative", ("image", "xfer", "{src}/img", "{dest}", "--chunk-size",
                                 "-32,32,8"), "--chunk-size"),
    Case("xfer-chunk-float", ("image", "xfer", "{src}/img", "{dest}", "--chunk-size",
                              "32.5,32,8"), "--chunk-size"),
    Case("xfer-chunk-two", ("image", "xfer", "{src}/img", "{dest}", "--chunk-size", "32,32"),
         "--chunk-size"),
    Case("xfer-shape-zero", ("image", "xfer", "{src}/img", "{dest}", "--shape", "0,0,0"),
         "--shape"),
    Case("xfer-shape-negative", ("image", "xfer", "{src}/img", "{dest}", "--shape", "-64,64,16"),
         "--shape"),
    Case("xfer-factor-zero", ("image", "xfer", "{src}/img", "{dest}", "--factor", "0,2,1"),
         "factor"),
    Case("xfer-factor-float", ("image", "xfer", "{src}/img", "{dest}", "--factor", "2.5,2,1"),
         "--factor"),
    Case("ds-factor-negative", ("image", "downsample", "{src}/img", "--factor", "-2,2,1",
                                "--queue", "{q}"), "factor"),
    Case("ds-factor-ones", ("image", "downsample", "{src}/img", "--factor", "1,1,1"), "factor"),
    Case("ds-chunk-zero", ("image", "downsample", "{src}/img", "--chunk-size", "0,32,8"),
         "--chunk-size"),
    Case("ds-num-mips-negative", ("image", "downsample", "{src}/img", "--num-mips", "-1"),
         "num_mips"),
    Case("sharded-ds-chunk-zero", ("image", "downsample", "{src}/img", "--sharded",
                                   "--chunk-size", "32,0,8"), "--chunk-size"),
    Case("sharded-xfer-chunk-neg", ("image", "xfer", "{src}/img", "{dest}", "--sharded",
                                    "--chunk-size", "32,32,-8"), "--chunk-size"),
    Case("mesh-shape-zero", ("mesh", "forge", "{src}/seg", "--shape", "0,64,64", "--queue", "{q}"),
         "shape"),
    Case("skel-shape-negative", ("skeleton", "forge", "{src}/seg", "--shape", "64,-64,64"),
         "shape"),
    Case("ccl-shape-zero", ("image", "ccl", "faces", "{src}/seg", "--shape", "64,0,64"), "shape"),
    Case("voxels-shape-zero", ("image", "voxels", "count", "{src}/seg", "--shape", "0,0,0",
                               "--queue", "{q}"), "shape"),
    Case("create-resolution-zero", ("image", "create", "{src}/arr.npy", "{dest}", "--resolution",
                                    "0,4,40"), "--resolution"),
    Case("create-chunk-zero", ("image", "create", "{src}/arr.npy", "{dest}", "--chunk-size",
                               "64,0,64"), "--chunk-size"),
    Case("design-shape-zero", ("design", "ds-shape", "{src}/img", "--shape", "0,64,64"),
         "--shape"),
    # -- mips, regions ------------------------------------------------------------
    Case("ds-mip-beyond-top", ("image", "downsample", "{src}/img", "--mip", "7"), "mip 7"),
    Case("xfer-mip-beyond-top", ("image", "xfer", "{src}/img", "{dest}", "--mip", "3"), "mip 3"),
    Case("mesh-mip-beyond-top", ("mesh", "forge", "{src}/seg", "--mip", "2"), "mip 2"),
    Case("xfer-range-reversed", ("image", "xfer", "{src}/img", "{dest}", "--xrange", "40,10"),
         "--xrange"),
    Case("xfer-range-outside", ("image", "xfer", "{src}/img", "{dest}", "--xrange", "500,600"),
         "outside"),
    Case("xfer-bounds-mip-beyond", ("image", "xfer", "{src}/img", "{dest}", "--xrange", "0,8",
                                    "--bounds-mip", "4"), "mip 4"),
    # -- encodings, dtypes, channels ----------------------------------------------
    Case("xfer-jpeg-float", ("image", "xfer", "{src}/flt", "{dest}", "--encoding", "jpeg"),
         "jpeg"),
    Case("xfer-unknown-encoding", ("image", "xfer", "{src}/img", "{dest}", "--encoding", "zip"),
         "unknown encoding"),
    Case("xfer-cseg-on-image", ("image", "xfer", "{src}/img", "{dest}", "--encoding",
                                "compressed_segmentation"), "compressed_segmentation"),
    Case("mesh-multichannel", ("mesh", "forge", "{src}/seg2", "--queue", "{q}"), "channel"),
    Case("skel-multichannel", ("skeleton", "forge", "{src}/seg2"), "channel"),
    Case("ccl-multichannel", ("image", "ccl", "faces", "{src}/seg2"), "channel"),
    Case("voxels-multichannel", ("image", "voxels", "count", "{src}/seg2"), "channel"),
    Case("contrast-multichannel", ("image", "contrast", "histogram", "{src}/rgb"), "channel"),
    Case("mesh-float-image", ("mesh", "forge", "{src}/flt"), "flt"),
    Case("ccl-float-nan-threshold", ("image", "ccl", "faces", "{src}/flt", "--threshold-gte",
                                     "nan"), "threshold"),
    Case("ccl-float-inf-threshold", ("image", "ccl", "faces", "{src}/flt", "--threshold-lte",
                                     "inf"), "threshold"),
    Case("quantize-nan-range", ("image", "quantize", "{src}/flt", "{dest}", "--range", "nan,1"),
         "range"),
    Case("quantize-inf-range", ("image", "quantize", "{src}/flt", "{dest}", "--range", "0,inf"),
         "range"),
    Case("quantize-channel-beyond", ("image", "quantize", "{src}/flt", "{dest}", "--channel", "1"),
         "channel 1"),
    Case("quantize-already-uint8", ("image", "quantize", "{src}/rgb", "{dest}"), "already uint8"),
    # -- info files ---------------------------------------------------------------
    Case("info-no-scales", ("image", "downsample", "{src}/noscales", "--queue", "{q}"), "scales"),
    Case("info-no-resolution", ("image", "downsample", "{src}/nores"), "resolution"),
    Case("info-no-chunk-sizes", ("image", "xfer", "{src}/nochunks", "{dest}"), "chunk_sizes"),
    Case("info-no-size", ("mesh", "forge", "{src}/nosize"), "size"),
    Case("info-zero-chunk", ("image", "downsample", "{src}/zerochunk"), "chunk_sizes"),
    Case("info-negative-size", ("image", "xfer", "{src}/negsize", "{dest}"), "size"),
    Case("info-zero-resolution", ("image", "downsample", "{src}/zerores"), "resolution"),
    Case("info-bad-dtype", ("image", "xfer", "{src}/baddtype", "{dest}"), "data_type"),
    Case("info-zero-channels", ("image", "downsample", "{src}/zerochan"), "num_channels"),
    Case("info-bad-type", ("image", "downsample", "{src}/badtype"), "type"),
    Case("info-finer-mip", ("image", "downsample", "{src}/finermip", "--mip", "1"), "resolution"),
    Case("info-duplicate-key", ("image", "xfer", "{src}/dupkey", "{dest}"), "key"),
    Case("info-not-json", ("image", "downsample", "{src}/notjson"), "malformed"),
    Case("info-a-list", ("image", "downsample", "{src}/listinfo"), "malformed"),
    Case("no-layer", ("image", "downsample", "{src}/nothing-here"), "no layer"),
    # -- memory -------------------------------------------------------------------
    Case("memory-zero", ("image", "downsample", "{src}/img", "--memory", "0"), "memory"),
    Case("memory-negative", ("image", "downsample", "{src}/img", "--memory", "-4G"), "memory"),
    Case("memory-tiny", ("mesh", "forge", "{src}/seg", "--memory", "10"), "memory"),
    Case("memory-absurd", ("image", "xfer", "{src}/img", "{dest}", "--memory", "5e18"), "memory"),
    Case("memory-words", ("skeleton", "forge", "{src}/seg", "--memory", "lots"), "memory"),
    # -- queues -------------------------------------------------------------------
    Case("queue-is-a-file", ("image", "xfer", "{src}/img", "{dest}", "--queue", "{src}/a-file"),
         "is a file"),
    Case("queue-under-a-file", ("image", "downsample", "{src}/img", "--queue",
                                "{src}/a-file/q"), "not a directory"),
    Case("queue-not-sqlite", ("image", "xfer", "{src}/img", "{dest}", "--queue", "{src}/notdb"),
         "queue"),
    Case("queue-bad-scheme", ("image", "xfer", "{src}/img", "{dest}", "--queue", "zmq://x"),
         "scheme"),
    Case("execute-queue-is-file", ("execute", "{src}/a-file"), "is a file"),
    Case("execute-no-queue", ("execute", "-x", "{q}"), "no queue"),
    Case("execute-lease-zero", ("execute", "--lease-sec", "0", "{src}/notdb"), "--lease-sec"),
    Case("execute-attempts-zero", ("execute", "--max-attempts", "0", "{q}"), "--max-attempts"),
    Case("parallel-negative", ("-p", "-3", "execute", "{q}"), "-p"),
    # -- mapping files, pipelines -------------------------------------------------
    Case("remap-bad-json", ("image", "remap", "{src}/seg", "{dest}", "--mapping-file",
                            "{src}/badmap.json"), "not valid json"),
    Case("remap-negative-label", ("image", "remap", "{src}/seg", "{dest}", "--mapping-file",
                                  "{src}/negmap.json"), "mapping"),
    Case("pipeline-wrong-type", ("run", "{src}/p-type.toml", "--queue", "{q}"), "num_mips"),
    Case("pipeline-zero-chunk", ("run", "{src}/p-chunk.toml", "--queue", "{q}"), "chunk_size"),
    Case("pipeline-float-factor", ("run", "{src}/p-factor.toml", "--queue", "{q}"), "factor"),
    Case("pipeline-shape-string", ("run", "{src}/p-shape.toml", "--queue", "{q}"), "shape"),
]

API = [
    Case("api-xfer-chunk-zero",
         lambda p: _tc().create_transfer_tasks(p["img"], p["dest"], chunk_size=(0, 64, 64)),
         "chunk_size"),
    Case("api-xfer-shape-float",
         lambda p: _tc().create_transfer_tasks(p["img"], p["dest"], shape=(32.5, 32, 8)),
         "shape"),
    Case("api-ds-factor-zero",
         lambda p: _tc().create_downsampling_tasks(p["img"], factor=(2, 0, 1)), "factor"),
    Case("api-ds-mip-beyond",
         lambda p: _tc().create_downsampling_tasks(p["img"], mip=9), "mip 9"),
    Case("api-ds-memory-negative",
         lambda p: _tc().create_downsampling_tasks(p["img"], memory_target=-5), "memory"),
    Case("api-ds-chunk-two",
         lambda p: _tc().create_downsampling_tasks(p["img"], chunk_size=(32, 32)), "chunk_size"),
    Case("api-mesh-shape-zero",
         lambda p: _tc().create_meshing_tasks(p["seg"], shape=(0, 64, 64)), "shape"),
    Case("api-mesh-multichannel", lambda p: _tc().create_meshing_tasks(p["seg2"]), "channel"),
    Case("api-skel-shape-float",
         lambda p: _tc().create_skeletonizing_tasks(p["seg"], shape=(64, 64.5, 64)), "shape"),
    Case("api-ccl-shape-negative",
         lambda p: _tc().create_ccl_face_tasks(p["seg"], shape=(-1, 64, 64)), "shape"),
    Case("api-voxels-shape-zero",
         lambda p: _tc().create_voxel_counting_tasks(p["seg"], shape=(64, 64, 0)), "shape"),
    Case("api-xfer-bad-info", lambda p: _tc().create_transfer_tasks(p["zerochunk"], p["dest"]),
         "chunk_sizes"),
    Case("api-delete-shape-zero",
         lambda p: _tc().create_deletion_tasks(p["img"], shape=(0, 32, 8)), "shape"),
    Case("api-sharded-ds-factor",
         lambda p: _tc().create_image_shard_downsample_tasks(p["img"], factor=(2, 2, 0)),
         "factor"),
]


def _fill(arg: str, root: Path, dest: Path, q: Path) -> str:
    return arg.format(src=root, dest=dest, q=q)


@pytest.mark.parametrize("case", CLI + API, ids=lambda c: c.id)
def test_bad_input_is_refused(case: Case, sources: Path, tmp_path: Path, igneous):
    if not (sources / "arr.npy").exists():
        np.save(sources / "arr.npy", np.zeros((8, 8, 8), np.uint8))
    dest, q = tmp_path / "dest", tmp_path / "q"
    before = tree_digest(sources)
    if callable(case.args):
        paths = {p.name: f"file://{p}" for p in sources.iterdir()}
        paths["dest"] = f"file://{dest}"
        with pytest.raises(UserError) as err:
            case.args(paths)
        message = str(err.value)
    else:
        proc = igneous(*[_fill(a, sources, dest, q) for a in case.args], timeout=120)
        assert proc.returncode != 0, f"accepted: {proc.stderr}"
        message = proc.stderr.strip()
        assert "Traceback" not in message, message
        assert len(message.splitlines()) == 1, message
        assert "warning" not in message.lower(), message
    assert message, "an empty error message"
    assert case.says.lower() in message.lower(), message
    assert tree_digest(sources) == before, "a source changed"
    assert not dest.exists(), "the destination was created"
    assert not q.exists(), "the queue was created"


def test_catalogue_is_large():
    assert len(CLI) + len(API) >= 40
    assert len({c.id for c in CLI + API}) == len(CLI + API)


def test_read_only_filesystem_queue(tmp_path, igneous, sources):
    """A queue on a read-only filesystem is refused before anything is planned."""
    mnt = tmp_path / "ro"
    mnt.mkdir()
    if os.geteuid() != 0 or subprocess.run(
            ["mount", "-t", "tmpfs", "-o", "size=1M,ro", "tmpfs", str(mnt)],
            capture_output=True).returncode != 0:
        pytest.skip("mounting a tmpfs needs root")
    try:
        dest = tmp_path / "dest"
        before = tree_digest(sources)
        proc = igneous("image", "xfer", f"{sources}/img", dest, "--queue", mnt / "q")
        assert proc.returncode != 0
        line = proc.stderr.strip()
        assert len(line.splitlines()) == 1 and "read-only" in line, line
        assert not dest.exists()
        assert tree_digest(sources) == before
    finally:
        subprocess.run(["umount", str(mnt)], check=False)
