"""What a run costs (igneous.cost): usage per task and per run on every queue
and the no-queue pool, CloudVolume's own IO counted, the price table.

Usage is checked against what is on disk afterwards (files written, their
sizes), prices against arithmetic done here from the published figures.
"""

from __future__ import annotations

import dataclasses
import glob
import json
import os
import threading

import numpy as np
import pytest

from igneous import cost
from igneous.storage import Counts
from tests.volumes import make_layer


def _image(tmp_path, shape=(64, 64, 32), chunk=(16, 16, 8)) -> str:
    rng = np.random.default_rng(3)
    return make_layer(str(tmp_path / "img"), rng.integers(0, 255, shape, dtype=np.uint8),
                      chunk=chunk)


def _files(root: str) -> list[str]:
    return [p for p in glob.glob(os.path.join(root, "**"), recursive=True) if os.path.isfile(p)]


def _reports(where) -> list[dict]:
    return [json.loads(open(p).read()) for p in sorted(glob.glob(os.path.join(where, "*.json")))]


# -- prices -------------------------------------------------------------------

def test_price_of_known_counts():
    """S3 and GCS list prices applied by hand to known counts."""
    row = {"reads": 25_000, "writes": 4_000, "lists": 1_000, "deletes": 700,
           "bytes_in": 3 * 2**30, "bytes_out": 2**30, "cpu_sec": 7200.0}
    est = cost.estimate(row, cost.load_prices())
    s3_requests = 25 * 0.0004 + 4 * 0.005 + 1 * 0.005  # GET; PUT; LIST; DELETE is free
    assert est["s3"]["requests"] == pytest.approx(s3_requests)
    assert est["s3"]["cpu"] == pytest.approx(2 * 0.04463)
    assert est["s3"]["total"] == pytest.approx(s3_requests + 2 * 0.04463)
    assert est["s3"]["egress"] == pytest.approx(3 * 0.09)
    assert est["s3"]["stored_month"] == pytest.approx(0.023)
    gcs_requests = 25 * 0.0004 + 4 * 0.005 + 1 * 0.005  # class B; class A; class A
    assert est["gcs"]["total"] == pytest.approx(gcs_requests + 2 * 0.04856)
    assert est["gcs"]["egress"] == pytest.approx(3 * 0.12)


def test_user_price_table_overrides_part(tmp_path, monkeypatch):
    mine = tmp_path / "prices.toml"
    mine.write_text('[s3.per_1000_requests]\nreads = 1.0\n[cheap.per_1000_requests]\nwrites = 2.0\n')
    monkeypatch.setenv(cost.PRICES_ENV, str(mine))
    prices = cost.load_prices()
    est = cost.estimate({"reads": 3000, "writes": 1000}, prices)
    assert est["s3"]["requests"] == pytest.approx(3 * 1.0 + 1 * 0.005)  # writes kept
    assert est["cheap"]["requests"] == pytest.approx(2.0)
    assert prices["date"]  # the shipped table's date stays


def test_bad_price_table_is_one_line(tmp_path, igneous):
    bad = tmp_path / "p.toml"
    bad.write_text("[s3\n")
    r = igneous("queue", "status", str(tmp_path / "q"), "--prices", str(bad))
    assert r.returncode != 0
    assert "Traceback" not in r.stderr and len(r.stderr.strip().splitlines()) == 1


def test_render_shows_every_counts_field(monkeypatch):
    """A counter added to Counts is shown without code changes (retries came
    that way), and retries are shown too."""
    extended = dataclasses.make_dataclass(
        "Counts", [(f.name, int, 0) for f in dataclasses.fields(Counts)] + [("redirects", int, 0)])
    monkeypatch.setattr(cost, "Counts", extended)
    usage = {"transfer": {"tasks": 2, "reads": 5, "retries": 3, "redirects": 4, "bytes_in": 2048}}
    text = "\n".join(cost.render(usage, cost.load_prices()))
    assert "3 retries" in text and "4 redirects" in text and "5 reads" in text
    assert "2.0 KiB in" in text
    assert cost.total(usage)["retries"] == 3 and cost.total(usage)["redirects"] == 4


# -- usage of real runs -------------------------------------------------------

def test_queued_run_counts_what_it_wrote(tmp_path, igneous, monkeypatch):
    """Local queue: the run totals (status --json, report file) count exactly
    the chunk files the downsample wrote, with their sizes."""
    src = _image(tmp_path)
    q, reports = tmp_path / "q", tmp_path / "reports"
    env = {"IGNEOUS_REPORT_DIR": str(reports)}
    igneous("image", "downsample", src, "--mip", "0", "--num-mips", "1", "--queue", q,
            env=env, check=True)
    r = igneous("-p", "2", "execute", "-x", q, env=env, check=True)
    assert "run report:" in r.stderr
    info = json.loads(open(tmp_path / "img" / "info").read())
    mip1 = _files(str(tmp_path / "img" / info["scales"][1]["key"]))
    mip0 = _files(str(tmp_path / "img" / info["scales"][0]["key"]))
    status = json.loads(igneous("queue", "status", q, "--json", check=True).stdout)
    used = status["usage"]["by_task"]["downsample"]
    assert used["writes"] == len(mip1)
    assert used["bytes_out"] == sum(os.path.getsize(p) for p in mip1)
    assert used["bytes_in"] >= sum(os.path.getsize(p) for p in mip0)  # + info files
    assert used["tasks"] == status["completed"]
    assert used["cpu_sec"] > 0 and used["failed"] == 0
    assert status["usage"]["price_usd"]["s3"]["total"] > 0
    (report,) = _reports(reports)
    assert report["total"]["writes"] == len(mip1) and report["queue"].endswith(str(q))
    text = igneous("queue", "status", q, check=True).stdout
    assert f"{len(mip1):,} writes" in text and "Price:" in text


def test_no_queue_pool_reports_usage(tmp_path, igneous):
    src = _image(tmp_path)
    reports = tmp_path / "reports"
    r = igneous("-p", "2", "image", "downsample", src, "--mip", "0", "--num-mips", "1",
                env={"IGNEOUS_REPORT_DIR": str(reports)}, check=True)
    assert "run report:" in r.stderr
    info = json.loads(open(tmp_path / "img" / "info").read())
    mip1 = _files(str(tmp_path / "img" / info["scales"][1]["key"]))
    (report,) = _reports(reports)
    assert report["by_task"]["downsample"]["writes"] == len(mip1)
    assert report["total"]["bytes_out"] == sum(os.path.getsize(p) for p in mip1)
    assert report["total"]["tasks"] >= 1
    assert set(report["price_usd"]) >= {"s3", "gcs"}


def test_cloudvolume_io_is_counted(tmp_path, igneous):
    """A sharded destination is written by CloudVolume, not a Store: its
    shard files are counted all the same."""
    src = _image(tmp_path, shape=(64, 64, 64), chunk=(32, 32, 32))
    reports = tmp_path / "reports"
    dest = f"file://{tmp_path}/sharded"
    igneous("image", "xfer", src, dest, "--sharded", "--mip", "0",
            env={"IGNEOUS_REPORT_DIR": str(reports)}, check=True)
    info = json.loads(open(tmp_path / "sharded" / "info").read())
    shards = _files(str(tmp_path / "sharded" / info["scales"][0]["key"]))
    assert shards and all(p.endswith(".shard") for p in shards)
    (report,) = _reports(reports)
    assert report["total"]["writes"] >= len(shards)
    assert report["total"]["bytes_out"] >= sum(os.path.getsize(p) for p in shards)


def test_cloudvolume_requests_counted_in_process(tmp_path):
    """CloudVolume reading a layer back through our open_layer adds its reads
    and bytes to the process totals."""
    from igneous import storage
    from igneous.layers import open_layer

    src = _image(tmp_path, shape=(32, 32, 16), chunk=(16, 16, 8))
    chunks = _files(str(tmp_path / "img" / "4_4_40"))
    cv = open_layer(src)
    before = storage.totals()
    cv[:, :, :]
    used = storage.totals() - before
    assert used.reads >= len(chunks)
    assert used.bytes_in >= sum(os.path.getsize(p) for p in chunks)


def test_ptq_queue_keeps_usage(tmp_path):
    """A python-task-queue FileQueue keeps usage in a file beside its own."""
    from igneous.queues.ptq import PTQFileQueue

    (tmp_path / "queue").mkdir()
    q = PTQFileQueue(str(tmp_path))
    handles = [PTQFileQueue(str(tmp_path)) for _ in range(4)]

    def work(h):
        for _ in range(25):
            h.add_usage({"mesh": {"tasks": 1, "writes": 3}})

    threads = [threading.Thread(target=work, args=(h,)) for h in handles]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert q.usage() == {"mesh": {"tasks": 100, "writes": 300}}
    q.purge()
    assert q.usage() == {}


def test_tensorstore_io_is_counted(tmp_path, igneous):
    """An OME-Zarr destination is written by tensorstore: its chunk files
    are counted in the run's writes and bytes all the same."""
    src = _image(tmp_path)
    reports = tmp_path / "reports"
    dest = tmp_path / "out.zarr"
    igneous("image", "xfer", src, dest, "--skip-downsample",
            env={"IGNEOUS_REPORT_DIR": str(reports)}, check=True)
    written = [p for p in _files(str(dest)) if not p.endswith(("zarr.json", ".zattrs",
                                                               ".zgroup", ".zarray"))]
    assert written
    (report,) = _reports(reports)
    assert report["total"]["writes"] >= len(written)
    assert report["total"]["bytes_out"] >= sum(os.path.getsize(p) for p in written)
