"""StoreTests on every backend: local disk, mem://, S3 (moto), GCS (emulator);
plus what only local disk has (atomic writes, leftover temporary files)."""

from __future__ import annotations

import fcntl
import os
import uuid

import pytest

from igneous.storage import open_store
from igneous.storage.cloud import CloudStore
from igneous.storage.gcs import GCSStore
from igneous.storage.local import LocalStore
from igneous.storage.memory import MemoryStore
from tests.store_contract import StoreTests


def opener(url: str, kind: type):
    """``make_store`` for StoreTests: new handles on ``url``, checked to be a ``kind``."""

    def make():
        store = open_store(url)
        assert isinstance(store, kind)
        return store

    return make


class TestLocalStore(StoreTests):
    @pytest.fixture
    def make_store(self, tmp_path):
        return opener(str(tmp_path / "layer"), LocalStore)


class TestMemoryStore(StoreTests):
    @pytest.fixture
    def make_store(self):
        return opener(f"mem://igneous-test-{uuid.uuid4().hex[:12]}/layer", MemoryStore)


class TestS3Store(StoreTests):
    @pytest.fixture
    def make_store(self, s3_bucket):
        return opener(f"{s3_bucket.url}/layer", CloudStore)


class TestGCSStore(StoreTests):
    @pytest.fixture
    def make_store(self, gcs_bucket):
        return opener(f"{gcs_bucket.url}/layer", GCSStore)


def test_s3_objects_really_there(s3_bucket):
    import boto3

    open_store(f"{s3_bucket.url}/layer").put("a/b", b"hello", compress="gzip")
    obj = boto3.client("s3").get_object(Bucket=s3_bucket.name, Key="layer/a/b")
    assert obj["ContentEncoding"] == "gzip"
    import gzip

    assert gzip.decompress(obj["Body"].read()) == b"hello"


def test_gcs_objects_really_there(gcs_bucket):
    import json
    import urllib.parse
    import urllib.request

    open_store(f"{gcs_bucket.url}/layer").put("a/b", b"hello", compress="gzip")
    name = urllib.parse.quote("layer/a/b", safe="")
    with urllib.request.urlopen(f"{gcs_bucket.endpoint}/storage/v1/b/{gcs_bucket.name}/o/{name}") as r:
        meta = json.loads(r.read())
    assert meta["contentEncoding"] == "gzip" and int(meta["size"]) > 5


# -- local disk: atomic writes and leftovers ----------------------------------


def test_local_layout_is_cloudfiles(tmp_path):
    store = open_store(str(tmp_path))
    store.put("a/b", b"x" * 100, compress="gzip")
    store.put("a/c", b"y")
    assert sorted(os.listdir(tmp_path / "a")) == ["b.gz", "c"]


def test_leftover_tmp_never_read_and_taken_over(tmp_path):
    store = open_store(str(tmp_path))
    (tmp_path / "a").mkdir()
    (tmp_path / "a" / "k.tmp").write_bytes(b"half a chunk")  # a killed writer's
    assert store.get("a/k") is None and not store.exists("a/k")
    assert list(store.list()) == []
    store.put("a/k", b"whole", compress="gzip")
    assert sorted(os.listdir(tmp_path / "a")) == ["k.gz"]
    assert store.get("a/k") == b"whole"


def test_remove_leftovers_spares_live_writers(tmp_path):
    store = open_store(str(tmp_path))
    store.put("s/keep", b"1")
    (tmp_path / "s" / "dead.tmp").write_bytes(b"x")
    (tmp_path / "s" / "dead.gz.1a2b3c4d.tmp").write_bytes(b"x")
    live = os.open(tmp_path / "s" / "live.tmp", os.O_WRONLY | os.O_CREAT)
    fcntl.flock(live, fcntl.LOCK_EX)
    try:
        assert store.remove_leftovers() == 2
        assert sorted(os.listdir(tmp_path / "s")) == ["keep", "live.tmp"]
        # a write of the live writer's name goes beside it, not into it
        store.put("s/live", b"mine")
        assert store.get("s/live") == b"mine"
        assert os.path.exists(tmp_path / "s" / "live.tmp")
    finally:
        os.close(live)
    assert store.remove_leftovers("s/") == 1
    assert sorted(os.listdir(tmp_path / "s")) == ["keep", "live"]


def test_tmp_keys_refused(tmp_path):
    with pytest.raises(ValueError):
        open_store(str(tmp_path)).put("a.tmp", b"x")


def test_corrupt_object_is_a_user_error(tmp_path):
    from igneous.errors import UserError

    (tmp_path / "bad.gz").write_bytes(b"not gzip at all")
    with pytest.raises(UserError, match="corrupt"):
        open_store(str(tmp_path)).get("bad")


def test_interrupted_write_keeps_old_object(tmp_path, monkeypatch):
    store = open_store(str(tmp_path))
    store.put("k", b"old")

    def boom(src, dst):
        raise OSError("disk full")

    monkeypatch.setattr(os, "replace", boom)
    with pytest.raises(OSError):
        store.put("k", b"new")
    monkeypatch.undo()
    assert store.get("k") == b"old"
    assert os.listdir(tmp_path) == ["k"]


def test_concurrent_writers_of_one_name(tmp_path):
    """Writers racing on one key (at-least-once queues run a task twice, with
    the same options) and a reader: every read is one writer's whole object,
    and no temporary file is left behind."""
    import random
    import threading

    store = open_store(str(tmp_path))
    payloads = [random.Random(i).randbytes(2_000_000) for i in range(4)]
    errors: list[BaseException] = []
    done = threading.Event()

    def write(i: int) -> None:
        try:
            for _ in range(25):
                store.put("k", payloads[i])
        except BaseException as e:  # noqa: BLE001 - reported by the test
            errors.append(e)

    def read() -> None:
        while not done.is_set():
            data = store.get("k")
            if data is not None and data not in payloads:
                errors.append(AssertionError(f"partial object of {len(data)} bytes"))

    writers = [threading.Thread(target=write, args=(i,)) for i in range(4)]
    reader = threading.Thread(target=read)
    reader.start()
    for t in writers:
        t.start()
    for t in writers:
        t.join()
    done.set()
    reader.join()
    assert not errors, errors[:3]
    assert store.get("k") in payloads
    assert [n for n in os.listdir(tmp_path) if n.endswith(".tmp")] == []
    assert os.listdir(tmp_path) == ["k"]
