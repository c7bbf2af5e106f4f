"""Volumes on S3, for real, against the moto server: the configuration in
docs/storage.md works in this process and in fresh ones."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap

import numpy as np
import pytest

SIZE = (67, 45, 13)  # odd on purpose: partial chunks on every axis
OFFSET = (3, 5, 7)
CHUNK = (32, 32, 8)

LAYERS = {
    "uint8": {"layer_type": "image", "data_type": "uint8", "encoding": "raw"},
    "uint64": {
        "layer_type": "segmentation",
        "data_type": "uint64",
        "encoding": "compressed_segmentation",
    },
}


def make_volume(kind: str) -> np.ndarray:
    rng = np.random.default_rng(7)
    if kind == "uint8":
        return rng.integers(0, 256, size=SIZE, dtype=np.uint8)
    # labels spanning the full 64 bits, in runs like a real segmentation
    labels = rng.integers(1, 2**64 - 1, size=40, dtype=np.uint64)
    return labels[rng.integers(0, 40, size=SIZE) // 3 * 3]


def write_layer(path: str, kind: str, data: np.ndarray) -> None:
    from cloudvolume import CloudVolume

    info = CloudVolume.create_new_info(
        num_channels=1,
        resolution=[16, 16, 40],
        voxel_offset=list(OFFSET),
        chunk_size=list(CHUNK),
        volume_size=list(SIZE),
        **LAYERS[kind],
    )
    cv = CloudVolume(path, info=info, progress=False)
    cv.commit_info()
    cv[:, :, :] = data


def run_python(code: str, env: dict | None = None) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-c", textwrap.dedent(code)],
        check=False,
        capture_output=True,
        text=True,
        timeout=120,
        env=env if env is not None else dict(os.environ),
    )


READ_BACK = """
    import numpy as np
    from cloudvolume import CloudVolume
    expected = np.load({npy!r})
    for path in {paths!r}:
        cv = CloudVolume(path, progress=False)
        assert tuple(cv.bounds.minpt) == {offset!r}, cv.bounds
        got = cv[:, :, :][..., 0]
        assert got.dtype == expected.dtype, (path, got.dtype)
        assert np.array_equal(got, expected), path
    print("ok")
"""


@pytest.mark.parametrize("kind", sorted(LAYERS))
def test_layer_roundtrip(s3_bucket, tmp_path, kind):
    import boto3
    from cloudvolume import CloudVolume

    data = make_volume(kind)
    path = f"{s3_bucket.url}/layer"
    write_layer(path, kind, data)

    # independent check: the objects really are in the emulator's bucket
    keys = {o["Key"] for o in boto3.client("s3").list_objects_v2(Bucket=s3_bucket.name)["Contents"]}
    assert "layer/info" in keys
    assert "layer/16_16_40/3-35_5-37_7-15" in keys  # first chunk, named by its bounds
    assert "layer/16_16_40/67-70_37-50_15-20" in keys  # last, partial chunk
    info = json.loads(
        boto3.client("s3").get_object(Bucket=s3_bucket.name, Key="layer/info")["Body"].read()
    )
    assert info["data_type"] == kind and info["scales"][0]["size"] == list(SIZE)

    cv = CloudVolume(path, progress=False)
    assert np.array_equal(cv[:, :, :][..., 0], data)
    # a cutout across chunk boundaries, in global coordinates
    assert np.array_equal(cv[30:60, 20:40, 10:17][..., 0], data[27:57, 15:35, 3:10])

    # another interpreter, configured by nothing but the environment, reads it
    # back through both spellings CloudVolume accepts (it rejects s3://http://...)
    npy = tmp_path / "expected.npy"
    np.save(npy, data)
    paths = [path, f"{s3_bucket.alias_url}/layer"]
    proc = run_python(READ_BACK.format(npy=str(npy), paths=paths, offset=OFFSET))
    assert proc.returncode == 0 and "ok" in proc.stdout, proc.stderr[-3000:]


def test_write_in_subprocess_read_here(s3_bucket, tmp_path):
    from cloudvolume import CloudVolume

    data = make_volume("uint8")
    npy = tmp_path / "data.npy"
    np.save(npy, data)
    path = f"{s3_bucket.url}/from-child"
    code = f"""
        import sys
        import numpy as np
        sys.path.insert(0, {os.path.dirname(os.path.dirname(os.path.abspath(__file__)))!r})
        from tests.test_storage_s3 import write_layer
        write_layer({path!r}, "uint8", np.load({str(npy)!r}))
    """
    proc = run_python(code)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert np.array_equal(CloudVolume(path, progress=False)[:, :, :][..., 0], data)


def test_credentials_from_secrets_file(s3_bucket, tmp_path):
    """cloud-files also takes credentials from $CLOUD_VOLUME_DIR/secrets/aws-secret.json."""
    data = make_volume("uint8")
    write_layer(f"{s3_bucket.url}/layer", "uint8", data)
    npy = tmp_path / "expected.npy"
    np.save(npy, data)

    env = dict(os.environ)
    secrets = tmp_path / "cv-home" / "secrets"
    secrets.mkdir(parents=True)
    (secrets / "aws-secret.json").write_text(
        json.dumps({"AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing"})
    )
    env["CLOUD_VOLUME_DIR"] = str(secrets.parent)
    for name in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN"):
        env.pop(name)
    proc = run_python(
        READ_BACK.format(npy=str(npy), paths=[f"{s3_bucket.url}/layer"], offset=OFFSET), env=env
    )
    assert proc.returncode == 0 and "ok" in proc.stdout, proc.stderr[-3000:]


def test_buckets_are_isolated(s3_bucket):
    from cloudfiles import CloudFiles

    cf = CloudFiles(s3_bucket.url)
    assert list(cf.list()) == []
    cf.put("hello.txt", b"hi", compress=None)
    assert cf.get("hello.txt") == b"hi"
    assert CloudFiles(s3_bucket.endpoint_url).get("hello.txt") == b"hi"
