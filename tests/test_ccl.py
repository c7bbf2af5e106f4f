"""Whole-volume CCL checked against cc3d run on the whole array in memory."""

from __future__ import annotations

import cc3d
import numpy as np
import pytest
from click.testing import CliRunner
from cloudfiles import CloudFiles

import igneous.task_creation as tc
from igneous import sample
from igneous.cli import main
from igneous.errors import UserError
from igneous.task_creation.ccl import plan_ccl_auto
from igneous.tasks.ccl import create_relabeling
from igneous.worker import run_local
from tests.volumes import BIG, make_layer, read_mip

RNG = np.random.default_rng(11)


def worms(shape, n=40, steps=120, labels=3, big=False) -> np.ndarray:
    """Random-walk tubes: long thin objects that cross many block faces, some
    touching each other with different labels, plus speckle (tiny objects)."""
    img = np.zeros(shape, np.uint64)
    for _ in range(n):
        p = np.array([RNG.integers(0, s) for s in shape])
        lab = RNG.integers(1, labels + 1)
        for _ in range(steps):
            p = np.clip(p + RNG.integers(-1, 2, 3), 0, np.array(shape) - 1)
            img[p[0], p[1], p[2]] = lab
            img[min(p[0] + 1, shape[0] - 1), p[1], p[2]] = lab
    speckle = RNG.random(shape) < 0.02
    img[speckle] = RNG.integers(1, labels + 1, int(speckle.sum()))
    if big:
        img[img > 0] += np.uint64(BIG)
    return np.asfortranarray(img)


def expected(data: np.ndarray, dust: int = 0) -> np.ndarray:
    if dust:
        data = cc3d.dust(data, dust, connectivity=6)
    return cc3d.connected_components(data, connectivity=6)


def assert_same_objects(got: np.ndarray, exp: np.ndarray) -> None:
    """Equal up to a bijection of labels, background kept, ids consecutive 1..N."""
    assert got.shape == exp.shape
    assert np.array_equal(got == 0, exp == 0)
    pairs = np.unique(np.stack([got.ravel(), exp.ravel().astype(np.uint64)], axis=1), axis=0)
    ug, ue = np.unique(got), np.unique(exp)
    assert len(pairs) == len(ug) == len(ue)
    assert np.array_equal(ug[ug > 0], np.arange(1, len(ug[ug > 0]) + 1))


def cli(*args: str, ok: bool = True):
    """``igneous ARGS`` in this process (fast); the auto test uses a real subprocess."""
    r = CliRunner().invoke(main, [str(a) for a in args])
    if ok:
        assert r.exit_code == 0, r.output + repr(r.exception)
    return r


def run_steps(src: str, dest: str, shape, dust: int = 0, **kw) -> None:
    """The four steps through the scripting API, each executed before the next."""
    run_local([tc.create_ccl_face_tasks(src, 0, shape=shape, dust_threshold=dust, **kw)],
              progress=False)
    run_local([tc.create_ccl_equivalence_tasks(src, 0, shape=shape, dust_threshold=dust)],
              progress=False)
    create_relabeling(src, 0, shape)
    run_local([tc.create_ccl_relabel_tasks(src, dest, 0, shape=shape, dust_threshold=dust)],
              progress=False)


@pytest.fixture(scope="module")
def cutout():
    data = sample.connectomics()
    if data is None:
        pytest.skip("connectomics sample is not on this machine")
    # a busy region (~130 labels); the low corner holds only 2-3
    return np.asfortranarray(data[384:512, 384:512, 256:320])


@pytest.mark.parametrize("dust, big", [(0, False), (4, True), (30, False)])
def test_synthetic_crossing_many_blocks(tmp_path, dust, big):
    data = worms((45, 38, 21), big=big)
    src = make_layer(str(tmp_path / "seg"), data, offset=(7, 3, 11), resolution=(8, 8, 33),
                     chunk=(8, 8, 4))
    run_steps(src, str(tmp_path / "cc"), (16, 16, 4), dust)
    got, off = read_mip(f"file://{tmp_path / 'cc'}", 0)
    assert off.tolist() == [7, 3, 11]
    assert_same_objects(got, expected(data, dust))


def test_connectomics_cutout_auto_with_dust(tmp_path, cutout):
    src = make_layer(str(tmp_path / "seg"), cutout, resolution=(16, 16, 40), chunk=(32, 32, 32),
                     encoding="compressed_segmentation")
    dest = f"file://{tmp_path / 'cc'}"
    run_local(plan_ccl_auto(src, dest, 0, (64, 64, 32), dust_threshold=200,
                            encoding="compressed_segmentation"), parallel=2, progress=False)
    got, _ = read_mip(dest, 0)
    assert got.dtype == np.uint32  # compressed_segmentation needs 32 bits or more
    assert_same_objects(got, expected(cutout, 200))
    assert not list(CloudFiles(src).list("16_16_40/ccl/"))  # auto cleans up


def test_thresholded_image(tmp_path):
    img = (RNG.random((37, 29, 17)) * 255).astype(np.uint8)
    src = make_layer(str(tmp_path / "img"), img, chunk=(8, 8, 8))
    run_steps(src, str(tmp_path / "cc"), (16, 8, 8), threshold_gte=100, threshold_lte=200)
    got, _ = read_mip(f"file://{tmp_path / 'cc'}", 0)
    assert_same_objects(got, expected(((img >= 100) & (img <= 200)).astype(np.uint8)))


def test_float_image_lte_only(tmp_path):
    img = RNG.random((20, 20, 10)).astype(np.float32)
    src = make_layer(str(tmp_path / "img"), img, chunk=(10, 10, 5), layer_type="image")
    run_local(plan_ccl_auto(src, f"file://{tmp_path / 'cc'}", 0, (10, 10, 5),
                            threshold_lte=0.3, encoding="raw"), progress=False)
    got, _ = read_mip(f"file://{tmp_path / 'cc'}", 0)
    assert_same_objects(got, expected((img <= 0.3).astype(np.uint8)))


def test_all_background(tmp_path):
    src = make_layer(str(tmp_path / "seg"), np.zeros((20, 18, 9), np.uint64), chunk=(8, 8, 8))
    run_steps(src, str(tmp_path / "cc"), (8, 8, 8))
    got, _ = read_mip(f"file://{tmp_path / 'cc'}", 0)
    assert got.shape == (20, 18, 9) and not got.any()


def test_cli_steps_through_a_queue(tmp_path):
    data = worms((40, 40, 16), n=20)
    src = make_layer(str(tmp_path / "seg"), data, chunk=(16, 16, 8))
    dest, q = f"file://{tmp_path / 'cc'}", str(tmp_path / "q")
    for step in ("faces", "links"):
        extra = ["--shape", "16,16,8", "--dust", "3"] if step == "faces" else []
        cli("image", "ccl", step, src, "--queue", q, *extra)
        cli("execute", "-x", "-q", q)
    cli("image", "ccl", "calc-labels", src)
    cli("image", "ccl", "relabel", src, dest, "--queue", q, "--encoding", "cseg",
        "--chunk-size", "8,8,8")
    cli("execute", "-x", "-q", q)
    got, _ = read_mip(dest, 0)
    assert_same_objects(got, expected(data, 3))
    assert list(CloudFiles(src).list("4_4_40/ccl/"))
    cli("image", "ccl", "clean", src)
    assert not list(CloudFiles(src).list("4_4_40/ccl/"))


def test_cli_auto_executes_its_queue(tmp_path, igneous):
    data = worms((33, 30, 12), n=15)
    src = make_layer(str(tmp_path / "seg"), data, chunk=(8, 8, 4))
    dest = f"file://{tmp_path / 'cc'}"
    igneous("-p", "2", "image", "ccl", "auto", src, dest, "--shape", "16,16,8", "--queue",
            str(tmp_path / "q"), "--encoding", "crackle", check=True)
    got, _ = read_mip(dest, 0)
    assert_same_objects(got, expected(data))


def test_bad_input(tmp_path):
    seg = make_layer(str(tmp_path / "seg"), worms((20, 20, 8), n=5), chunk=(8, 8, 8))
    img = make_layer(str(tmp_path / "img"), RNG.random((16, 16, 8)).astype(np.float32),
                     chunk=(8, 8, 8))
    dest = str(tmp_path / "cc")

    def fails(*args, says: str):
        r = cli("image", "ccl", *args, ok=False)
        assert r.exit_code == 1 and says in r.output, r.output + repr(r.exception)

    fails("faces", seg, "--threshold-gte", "3", says="make no sense")
    fails("faces", img, says="--threshold-gte")
    fails("faces", str(tmp_path / "nothing"), says="no layer")
    fails("faces", seg, "--mip", "3", says="mip 3 does not exist")
    fails("links", seg, says="faces` first")  # out of order: nothing stored yet
    cli("image", "ccl", "faces", seg, "--shape", "8,8,8")
    fails("faces", seg, "--shape", "16,16,8", says="clean")  # another run's scratch
    fails("links", seg, "--shape", "16,16,8", says="differs")
    fails("links", seg, "--dust", "5", says="differs")
    fails("relabel", seg, dest, says="after links")
    fails("calc-labels", seg, says="after links")
    cli("image", "ccl", "links", seg, "--queue", str(tmp_path / "q"))
    fails("calc-labels", seg, says="is missing")  # links planned, not executed
    fails("relabel", seg, dest, says="after calc-labels")
    with pytest.raises(UserError, match="multiple of the output chunk"):
        tc.create_ccl_relabel_tasks(seg, dest, 0, chunk_size=(16, 16, 8))


def test_union_find_matches_scipy():
    """The global merge step against scipy's connected components on random
    graphs (chains, stars, many small sets, ids far above 2**53)."""
    from scipy.sparse import coo_matrix
    from scipy.sparse.csgraph import connected_components

    from igneous.tasks.ccl import _merge_sets

    rs = np.random.RandomState(3)
    chain = np.arange(1, 3000, dtype=np.uint64)
    graphs = [rs.randint(0, 500, (300, 2)).astype(np.uint64),
              rs.randint(0, 50_000, (40_000, 2)).astype(np.uint64) + np.uint64(2**60),
              np.stack([chain[::-1][1:], chain[::-1][:-1]], axis=1),  # a long chain, worst first
              np.stack([np.full(100, 7, np.uint64), np.arange(100, 200, dtype=np.uint64)], axis=1),
              np.zeros((0, 2), np.uint64)]
    for edges in graphs:
        nodes, sets = _merge_sets(edges)
        want_nodes, inv = np.unique(edges, return_inverse=True)
        inv = inv.reshape(edges.shape)
        m = want_nodes.size
        graph = coo_matrix((np.ones(len(inv)), (inv[:, 0], inv[:, 1])), shape=(m, m))
        n, want = connected_components(graph, directed=False)
        np.testing.assert_array_equal(nodes, want_nodes)
        assert sets.size == m and (m == 0 or sets.max() + 1 == n)
        # the same partition: a bijection between set ids
        pairs = np.unique(np.stack([sets, want], axis=1), axis=0) if m else np.zeros((0, 2))
        assert len(pairs) == n
        # sets numbered in order of their smallest node
        if m:
            firsts = np.unique(sets, return_index=True)[1]
            assert np.all(np.diff(firsts) > 0)
