"""The behaviour every storage backend promises (igneous.storage.base.Store).

A backend's test module subclasses ``StoreTests`` and provides a
``make_store`` fixture: a callable returning a new handle on one fresh,
empty store per test (two calls give two handles on the same objects).
Contents are checked against what was put and, independently, against
cloud-files reading the same place.
"""

from __future__ import annotations

import json
import random

import pytest

from igneous.storage import Store, totals
from igneous.storage.cloud import BATCH

METHODS = [None, "gzip", "br", "zstd", "xz", "bzip2"]


def payload(n: int, seed: int = 0) -> bytes:
    """Compressible but not trivial bytes, the same for the same (n, seed)."""
    return bytes((i * 7 + seed) % 251 for i in range(n)) + random.Random(seed).randbytes(16)


class StoreTests:
    """Subclass with a ``make_store`` fixture to run the contract on a backend."""

    @pytest.fixture
    def store(self, make_store) -> Store:
        return make_store()

    # -- reading what is not there -------------------------------------------
    def test_missing(self, store):
        assert store.get("nope") is None
        assert store.get_stored("nope") is None
        assert store.get_json("a/b/nope") is None
        assert not store.exists("nope")
        assert store.size("nope") is None and store.stat("nope") is None
        assert list(store.list()) == []
        assert list(store.get_many(["x", "y"])) == [("x", None), ("y", None)]

    # -- round trips -----------------------------------------------------------
    @pytest.mark.parametrize("method", METHODS)
    def test_put_get_each_compression(self, store, make_store, method):
        data = payload(5000)
        store.put("dir/obj", data, compress=method)
        assert store.get("dir/obj") == data
        stored = store.get_stored("dir/obj")
        assert stored is not None and stored.compression == method
        if method is not None:
            assert stored.data != data and len(stored.data) < len(data)
        assert store.exists("dir/obj") and store.size("dir/obj") == len(stored.data)
        assert store.stat("dir/obj") == (len(stored.data), method)
        assert list(store.list()) == ["dir/obj"]
        assert make_store().get("dir/obj") == data  # another handle sees it

    def test_other_client_reads_and_writes(self, store):
        """cloud-files, reading the same place on its own, agrees with us."""
        from cloudfiles import CloudFiles

        data = payload(3000, 1)
        store.put("a/gz", data, compress="gzip")
        store.put("a/raw", data)
        cf = CloudFiles(store.url, progress=False)
        assert cf.get("a/gz") == data and cf.get("a/raw") == data
        cf.put("b/theirs", data, compress="gzip")
        assert store.get("b/theirs") == data

    def test_rewrite_with_other_compression_replaces(self, store):
        store.put("k", b"old" * 100, compress="gzip")
        store.put("k", b"new", compress=None)
        assert store.get("k") == b"new"
        store.put("k", b"newer" * 50, compress="br")
        assert store.get("k") == b"newer" * 50
        assert list(store.list()) == ["k"]

    def test_empty_object(self, store):
        store.put("empty", b"")
        assert store.get("empty") == b"" and store.exists("empty")

    def test_json(self, store):
        value = {"a": [1, 2, 3], "b": {"c": None}}
        store.put_json("x/info", value)
        assert store.get_json("x/info") == value
        assert json.loads(store.get("x/info")) == value

    def test_many_in_order_with_gaps(self, store):
        n = BATCH * 2 + 5  # more than one batch
        items = ((f"m/{i}", payload(100 + i, i)) for i in range(n) if i % 3)  # a generator
        store.put_many(items, compress="gzip")
        keys = [f"m/{i}" for i in range(n)]
        got = list(store.get_many(iter(keys)))
        assert [k for k, _ in got] == keys
        for i, (_, data) in enumerate(got):
            assert data == (payload(100 + i, i) if i % 3 else None)
        assert sorted(store.list("m/")) == sorted(k for i, k in enumerate(keys) if i % 3)

    def test_range(self, store):
        data = payload(1000)
        store.put("shard", data)
        assert store.get_range("shard", 10, 20) == data[10:20]
        assert store.get_range("shard", 990, len(data)) == data[990:]

    # -- delete / list ---------------------------------------------------------
    def test_delete(self, store):
        for key, method in [("a", None), ("b", "gzip"), ("c/d", "br")]:
            store.put(key, b"x" * 10, compress=method)
        store.delete("a")
        store.delete(["b", "c/d", "never-there"])
        assert [store.exists(k) for k in ("a", "b", "c/d")] == [False, False, False]
        assert list(store.list()) == []

    def test_list_prefix(self, store):
        for key in ("x/1", "x/2", "x/sub/3", "xy/4", "y/5"):
            store.put(key, b"1", compress="gzip")
        assert sorted(store.list("x/")) == ["x/1", "x/2", "x/sub/3"]
        assert sorted(store.list("x")) == ["x/1", "x/2", "x/sub/3", "xy/4"]
        assert sorted(store.list()) == ["x/1", "x/2", "x/sub/3", "xy/4", "y/5"]
        assert sorted(store.list("x/", flat=True)) == ["x/1", "x/2"]
        assert sorted(store.list(flat=True)) == []
        store.put("top", b"2")
        assert sorted(store.list(flat=True)) == ["top"]
        assert sorted(store.list("x/s", flat=True)) == []
        assert sorted(store.list("x/s")) == sorted(store.list("x/sub/")) == ["x/sub/3"]
        assert sorted(store.list("x/2")) == ["x/2"]
        assert sorted(store.list("z")) == []
        assert sorted(store.child("x").list()) == ["1", "2", "sub/3"]
        assert store.child("x").get("sub/3") == b"1"

    def test_copy_to_keeps_compression(self, store, tmp_path):
        from igneous.storage import open_store

        data = payload(2000, 3)
        store.put("a/gz", data, compress="gzip")
        store.put("a/br", data, compress="br")
        dest = open_store(str(tmp_path / "copy"))
        assert store.copy_to(dest, ["a/gz", "a/br", "a/none"]) == 2
        assert sorted(dest.list()) == ["a/br", "a/gz"]
        assert dest.get_stored("a/gz") == store.get_stored("a/gz")
        assert dest.get("a/br") == data
        back = store.child("back")
        assert dest.copy_to(back, ["a/gz"]) == 1 and back.get("a/gz") == data

    # -- keys ------------------------------------------------------------------
    @pytest.mark.parametrize("key", ["../escape", "a/../../b", "/abs", ""])
    def test_bad_keys_refused(self, store, key):
        with pytest.raises(ValueError):
            store.put(key, b"x")
        with pytest.raises(ValueError):
            store.get(key)

    # -- accounting ------------------------------------------------------------
    def test_counts(self, store):
        data = payload(4000)
        before, mine = totals(), store.counts
        store.put_many([("c/1", data), ("c/2", data)], compress="gzip")
        stored = store.get_stored("c/1")
        assert stored is not None
        assert store.get("c/2") == data and store.get("c/none") is None
        assert sorted(store.list("c/")) == ["c/1", "c/2"]
        store.delete(["c/1", "c/2"])
        used = store.counts - mine
        assert (used.writes, used.reads, used.lists, used.deletes) == (2, 3, 1, 2)
        assert used.bytes_out == 2 * len(stored.data)
        assert used.bytes_in == 2 * len(stored.data)
        assert used.requests == 8
        assert totals() - before == used  # the process-wide meter saw the same
