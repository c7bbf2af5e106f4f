"""Every workflow with source and destination on S3 (moto) and on GCS (the
emulator): the objects it leaves equal those of the same commands on local
disk, object by object, compared decoded (decompressed; JSON with the
layer's root written as ROOT).

Each workflow runs on a small segmentation (32x32x16, 7 labels that touch)
or image, once locally (per session) and once per store, through the CLI in
this process (click's runner: no interpreter start per command).
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np
import pytest

from igneous.storage import open_store
from tests.volumes import make_layer

SHAPE = (32, 32, 16)
# (name, commands); {seg} and {img} are source layers, {out} a new layer, {root}
# the folder (prefix) holding them all, {pipeline} a pipeline file naming {seg}
WORKFLOWS: dict[str, list[tuple[str, ...]]] = {
    "downsample": [("image", "downsample", "{seg}", "--num-mips", "2")],
    "xfer": [("image", "xfer", "{img}", "{out}", "--chunk-size", "32,32,8", "--max-mips", "1")],
    "xfer-sharded": [("image", "xfer", "{seg}", "{out}", "--sharded", "--skip-downsample")],
    "mesh": [("mesh", "forge", "{seg}", "--shape", "16,16,16"), ("mesh", "merge", "{seg}")],
    "mesh-sharded": [("mesh", "forge", "{seg}", "--shape", "16,16,16", "--sharded"),
                     ("mesh", "merge-sharded", "{seg}")],
    "skeleton": [("skeleton", "forge", "{seg}", "--shape", "16,16,16"),
                 ("skeleton", "merge", "{seg}")],
    "skeleton-sharded": [("skeleton", "forge", "{seg}", "--shape", "16,16,16", "--sharded"),
                         ("skeleton", "merge-sharded", "{seg}")],
    "ccl": [("image", "ccl", "auto", "{seg}", "{out}", "--shape", "16,16,16")],
    "voxels": [("image", "voxels", "count", "{seg}", "--shape", "16,16,16"),
               ("image", "voxels", "sum", "{seg}")],
    "contrast": [("image", "contrast", "histogram", "{img}"),
                 ("image", "contrast", "equalize", "{img}", "{out}")],
    "pipeline": [("run", "{pipeline}", "--queue", "{queue}")],
}
# the default run: every kind once on S3 (downsample, mesh forge/merge and a
# plain xfer within the pipeline and tests/test_image_s3.py), the sharded
# image writer on GCS too (~40 s); the whole table (~2 min) is marked `slow`
DEFAULT = {("s3", "xfer-sharded"), ("s3", "mesh-sharded"), ("s3", "skeleton"),
           ("s3", "skeleton-sharded"), ("s3", "ccl"), ("s3", "voxels"), ("s3", "contrast"),
           ("s3", "pipeline"), ("gs", "xfer-sharded")}
PIPELINE = """source = "{seg}"

[[steps]]
step = "downsample"
num_mips = 1

[[steps]]
step = "mesh-forge"
shape = [16, 16, 16]

[[steps]]
step = "mesh-merge"
"""


def segmentation() -> np.ndarray:
    """7 Voronoi regions of random seeds: every label touches others."""
    rng = np.random.default_rng(11)
    seeds = rng.uniform(0, 1, (7, 3)) * np.array(SHAPE)
    grid = np.stack(np.meshgrid(*[np.arange(n) + 0.5 for n in SHAPE], indexing="ij"), -1)
    dist = ((grid[..., None, :] - seeds) ** 2).sum(-1)
    return (np.argmin(dist, axis=-1) + 1).astype(np.uint32)


def image() -> np.ndarray:
    rng = np.random.default_rng(12)
    return rng.integers(30, 200, SHAPE, dtype=np.uint8)


@pytest.fixture(scope="module")
def sources(tmp_path_factory) -> Path:
    """The source layers on local disk (copied into each store per test)."""
    root = tmp_path_factory.mktemp("cloud-sources")
    make_layer(str(root / "seg"), segmentation(), chunk=(16, 16, 8))
    make_layer(str(root / "img"), image(), chunk=(16, 16, 8))
    return root


def copy_tree(src: str, dest: str) -> None:
    """Every object under ``src`` into ``dest``, as stored."""
    store = open_store(src)
    store.copy_to(open_store(dest), list(store.list()))


def cli(*args: str) -> None:
    from click.testing import CliRunner

    from igneous.cli import main

    result = CliRunner().invoke(main, list(args))
    if result.exception is not None and not isinstance(result.exception, SystemExit):
        raise result.exception
    assert result.exit_code == 0, f"igneous {' '.join(args)}: {result.stderr}"


def run_workflow(name: str, root: str, sources: Path, work: Path) -> None:
    """Copy the sources under ``root`` and run workflow ``name`` there."""
    copy_tree(f"file://{sources}", root)
    pipeline = work / f"{name}.toml"
    pipeline.write_text(PIPELINE.format(seg=f"{root}/seg"))
    places = {"seg": f"{root}/seg", "img": f"{root}/img", "out": f"{root}/out", "root": root,
              "pipeline": str(pipeline), "queue": str(work / f"{name}.queue")}
    for command in WORKFLOWS[name]:
        cli(*(part.format(**places) for part in command))


def decoded(root: str) -> dict[str, object]:
    """{key: content} of every object under ``root``: decompressed, JSON parsed
    with ``root`` replaced by ROOT."""
    store = open_store(root)
    out: dict[str, object] = {}
    for key, data in store.get_many(sorted(store.list())):
        assert data is not None, key
        try:
            out[key] = json.loads(data.decode().replace(root, "ROOT"))
        except (UnicodeDecodeError, ValueError):
            out[key] = data
    return out


_local: dict[str, dict[str, object]] = {}


def local_result(name: str, sources: Path, tmp_path_factory) -> dict[str, object]:
    """The workflow's objects on local disk (run once per session)."""
    if name not in _local:
        work = tmp_path_factory.mktemp(f"local-{name}")
        root = f"file://{work}/data"
        os.makedirs(work / "data")
        run_workflow(name, root, sources, work)
        _local[name] = decoded(root)
    return _local[name]


CASES = [pytest.param(store, name, id=f"{store}-{name}",
                      marks=() if (store, name) in DEFAULT else pytest.mark.slow)
         for name in WORKFLOWS for store in ("s3", "gs")]


@pytest.mark.parametrize(("store", "name"), CASES)
def test_workflow_on_object_storage(store, name, request, sources, tmp_path, tmp_path_factory):
    bucket = request.getfixturevalue("s3_bucket" if store == "s3" else "gcs_bucket")
    root = f"{bucket.url}/data"
    run_workflow(name, root, sources, tmp_path)
    want = local_result(name, sources, tmp_path_factory)
    got = decoded(root)
    assert sorted(got) == sorted(want)
    differ = [k for k in want if not _same(got[k], want[k])]
    assert not differ, differ[:10]
    assert len(want) > 10  # the sources' chunks and the workflow's output


def _same(a: object, b: object) -> bool:
    return a == b
