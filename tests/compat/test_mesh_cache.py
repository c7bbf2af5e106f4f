"""``create_meshing_tasks(cdn_cache=False)`` (the default, and the spec's
meshing example) writes the mesh fragments with ``Cache-Control: no-cache``
as the original does; ``cdn_cache=True`` leaves the header out; MeshTask's
``cache_control`` is written as given. Read back from S3 (moto), where
objects carry the header; a local layer has no object metadata, so there the
tasks' keywords are checked and the fragments written."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from tests.compat.helpers import OFFSET, make_layer, segmentation

SHAPE = (32, 32, 32)


def forge(cloudpath: str, **kw) -> list:
    import igneous.task_creation as tc
    from igneous.worker import run_local

    plan = tc.create_meshing_tasks(cloudpath, mip=0, shape=SHAPE, **kw)
    tasks = list(plan)
    run_local([tasks], parallel=1, progress=False)
    return tasks


def fragment_keys(client, bucket: str, prefix: str) -> list[str]:
    found = client.list_objects_v2(Bucket=bucket, Prefix=prefix).get("Contents", [])
    return [o["Key"] for o in found if ":0:" in o["Key"]]


def test_cache_control_keyword_on_a_local_layer(tmp_path: Path):
    cloudpath = make_layer(tmp_path / "seg", segmentation(3))
    default = forge(cloudpath, mesh_dir="nocache")
    cached = forge(cloudpath, mesh_dir="cdn", cdn_cache=True)
    assert {t.kwargs["cache_control"] for t in default} == {"no-cache"}
    assert {t.kwargs["cache_control"] for t in cached} == {None}
    labels = {int(x) for x in np.unique(segmentation(3)) if x}
    for sub in ("nocache", "cdn"):
        names = [p.name for p in (tmp_path / "seg" / sub).iterdir() if ":0:" in p.name]
        assert {int(n.split(":")[0]) for n in names} == labels


def test_cache_control_on_s3(s3_bucket):
    import boto3

    from igneous.sample import create_layer
    from igneous.tasks import MeshTask

    seg = segmentation(4)
    cloudpath = create_layer(f"{s3_bucket.url}/seg", seg, resolution=(4, 4, 40), offset=OFFSET,
                             chunk_size=(16, 16, 8))
    forge(cloudpath, mesh_dir="nocache")  # cdn_cache=False: the default
    forge(cloudpath, mesh_dir="cdn", cdn_cache=True)
    MeshTask(shape=(64, 64, 16), offset=OFFSET, layer_path=cloudpath, mesh_dir="given",
             cache_control="public, max-age=60").execute()
    client = boto3.client("s3")
    labels = {int(x) for x in np.unique(seg) if x}
    for sub, want in (("nocache", "no-cache"), ("cdn", None), ("given", "public, max-age=60")):
        keys = fragment_keys(client, s3_bucket.name, f"seg/{sub}/")
        assert {int(k.rsplit("/", 1)[1].split(":")[0]) for k in keys} == labels, sub
        for key in keys:
            head = client.head_object(Bucket=s3_bucket.name, Key=key)
            assert head.get("CacheControl") == want, (sub, key, head.get("CacheControl"))
