"""``igneous view``: the file server, the viewer state, the CLI, and a real headless browser.

Layers are written with CloudVolume/zmesh/kimimaro (and downsampled with our
own ``igneous image downsample``) and read back over HTTP with CloudVolume,
so the served bytes are checked by an independent client. The browser test
renders them with the Neuroglancer client shipped in the ``neuroglancer``
package in headless Chromium and checks the server's request log and the
screenshot's pixels.
"""

from __future__ import annotations

import gzip
import io
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import threading
import urllib.error
import urllib.parse
import urllib.request
from pathlib import Path

import numpy as np
import pytest

from igneous import sample
from igneous.errors import UserError
from igneous.view import LayerServer, build_state, open_layers, pick_segments, view

RESOLUTION = (16, 16, 40)
OFFSET = (192, 192, 224)
CHROMIUM = "/usr/lib/chromium/chromium"
CHROMEDRIVER = "/usr/bin/chromedriver"
CHROMIUM_FLAGS = [
    "--headless=new", "--no-sandbox", "--use-angle=swiftshader", "--enable-unsafe-swiftshader",
    "--disable-dev-shm-usage", "--disable-background-networking", "--disable-component-update",
    "--disable-sync", "--disable-extensions", "--disable-default-apps",
    "--disable-domain-reliability", "--disable-breakpad", "--disable-quic", "--no-first-run",
    "--no-default-browser-check", "--host-resolver-rules=MAP * ~NOTFOUND , EXCLUDE 127.0.0.1",
    "--proxy-server=http://127.0.0.1:9", "--window-size=1280,800",
]
SCREENSHOT_TIMEOUT = 60


# ---------------------------------------------------------------- layers on disk


def write_meshes(path: str, labels: np.ndarray, ids, mesh_info: bool = True) -> None:
    """Meshes of ``ids`` (zmesh, whole array) as unsharded legacy meshes."""
    import zmesh
    from cloudvolume import CloudVolume, Mesh

    cv = CloudVolume(path, progress=False)
    cv.info["mesh"] = "mesh"
    cv.commit_info()
    if mesh_info:
        cv.mesh.meta.commit_info()  # mesh/info: neuroglancer_legacy_mesh
    mesher = zmesh.Mesher(cv.resolution)
    mesher.mesh(labels)
    offset = np.asarray(cv.voxel_offset) * np.asarray(cv.resolution)
    meshes = []
    for label in ids:
        m = mesher.get(int(label), normals=False, reduction_factor=10, max_error=40)
        meshes.append(Mesh(m.vertices + offset, m.faces, None, segid=int(label)))
    cv.mesh.put(meshes, compress="gzip")


def write_skeletons(path: str, labels: np.ndarray, ids) -> dict:
    """kimimaro skeletons of ``ids`` (whole array) as unsharded, gzipped skeletons."""
    import kimimaro
    from cloudvolume import CloudVolume

    cv = CloudVolume(path, progress=False, compress="gzip")
    cv.info["skeletons"] = "skeletons"
    cv.commit_info()
    cv.skeleton.meta.commit_info()
    skels = kimimaro.skeletonize(labels, anisotropy=cv.resolution, object_ids=[int(i) for i in ids],
                                 dust_threshold=0, progress=False, parallel=1,
                                 fix_branching=False, fix_borders=False)
    offset = np.asarray(cv.voxel_offset) * np.asarray(cv.resolution)
    for label, skel in skels.items():
        skel.id = int(label)
        skel.vertices += offset
    cv.skeleton.upload(list(skels.values()))
    return skels


def largest_labels(labels: np.ndarray, n: int) -> np.ndarray:
    ids, counts = np.unique(labels[labels != 0], return_counts=True)
    return ids[np.argsort(-counts, kind="stable")][:n]


@pytest.fixture(scope="module")
def dataset(tmp_path_factory):
    """A downsampled connectomics segmentation with meshes + skeletons, and a sharded image."""
    full = sample.connectomics()
    if full is None:
        pytest.skip("the connectomics sample (shared/data/connectomics.npy.ckl.gz) is absent")
    # an inner cutout (the low corner is nearly empty), kept at its place in the volume
    seg = np.asfortranarray(full[OFFSET[0]:OFFSET[0] + 128, OFFSET[1]:OFFSET[1] + 128,
                                 OFFSET[2]:OFFSET[2] + 64])
    del full
    root = tmp_path_factory.mktemp("view")
    seg_path = sample.create_layer(str(root / "seg"), seg, resolution=RESOLUTION, offset=OFFSET,
                                   chunk_size=(64, 64, 32), layer_type="segmentation",
                                   encoding="compressed_segmentation")
    image = sample.smooth_image((128, 128, 64), seed=3)
    sample.create_layer(str(root / "image-src"), image, resolution=RESOLUTION, offset=OFFSET,
                        chunk_size=(64, 64, 32))
    image_path = "file://" + str(root / "image")
    for args in (["image", "downsample", seg_path, "--num-mips", "2"],
                 ["image", "xfer", "file://" + str(root / "image-src"), image_path, "--sharded"],
                 ["image", "downsample", image_path, "--num-mips", "2", "--sharded"]):
        proc = subprocess.run([sys.executable, "-m", "igneous", *args], capture_output=True,
                              text=True, timeout=120)
        assert proc.returncode == 0, proc.stderr
    meshed = largest_labels(seg, 24)
    write_meshes(seg_path, seg, meshed)
    skeletons = write_skeletons(seg_path, seg, meshed[:20])
    return {"root": root, "seg": seg, "image": image, "seg_path": seg_path,
            "image_path": image_path, "meshed": {int(i) for i in meshed},
            "skeletons": skeletons}


def http_get(url: str, headers: dict | None = None):
    """(status, headers, body) without urllib's automatic handling of errors."""
    req = urllib.request.Request(url, headers=headers or {})
    try:
        with urllib.request.urlopen(req, timeout=10) as r:
            return r.status, r.headers, r.read()
    except urllib.error.HTTPError as e:
        return e.code, e.headers, e.read()


# ---------------------------------------------------------------- the file server


@pytest.fixture
def served(dataset):
    server = LayerServer({"seg": dataset["seg_path"][7:], "image": dataset["image_path"][7:]})
    server.start()
    try:
        yield server
    finally:
        server.stop()


def test_cloudvolume_reads_served_layers(dataset, served):
    """gzip chunks and Range-read shards come back as the arrays written."""
    from cloudvolume import CloudVolume

    seg = CloudVolume(f"precomputed://{served.url}/seg", progress=False, mip=0)
    assert np.array_equal(seg[:, :, :][..., 0], dataset["seg"])
    image = CloudVolume(f"precomputed://{served.url}/image", progress=False, mip=0)
    assert np.array_equal(image[:, :, :][..., 0], dataset["image"])
    local = CloudVolume(dataset["image_path"], progress=False, mip=1)
    remote = CloudVolume(f"precomputed://{served.url}/image", progress=False, mip=1)
    assert np.array_equal(remote[:, :, :], local[:, :, :])
    skel = CloudVolume(f"precomputed://{served.url}/seg", progress=False).skeleton
    label, expected = next(iter(dataset["skeletons"].items()))
    got = skel.get(int(label))
    assert np.allclose(got.vertices, expected.vertices) and np.array_equal(got.edges, expected.edges)
    assert any(r.status == 206 for r in served.requests), "shards should be read with Range"
    # provenance is optional: CloudVolume asks for it and carries on without
    failed = [r for r in served.requests if r.status >= 400 and not r.path.endswith("/provenance")]
    assert not failed, failed


def test_gzip_range_cors_and_errors(dataset, served):
    seg_dir = Path(dataset["seg_path"][7:])
    gz = next(p for p in sorted((seg_dir / "16_16_40").iterdir()) if p.name.endswith(".gz"))
    url = f"{served.url}/seg/16_16_40/{gz.name[:-3]}"
    status, headers, body = http_get(url, {"Accept-Encoding": "gzip"})
    assert status == 200 and headers["Content-Encoding"] == "gzip"
    assert headers["Access-Control-Allow-Origin"] == "*"
    assert gzip.decompress(body) == gzip.decompress(gz.read_bytes())
    # a client that does not take gzip, or asks for a range, gets plain bytes
    status, headers, body = http_get(url)
    assert status == 200 and "Content-Encoding" not in headers
    assert body == gzip.decompress(gz.read_bytes())
    status, headers, body = http_get(url, {"Range": "bytes=10-19", "Accept-Encoding": "gzip"})
    assert status == 206 and body == gzip.decompress(gz.read_bytes())[10:20]
    assert headers["Content-Range"].endswith(f"/{len(gzip.decompress(gz.read_bytes()))}")

    shard = next((Path(dataset["image_path"][7:])).rglob("*.shard"))
    raw = shard.read_bytes()
    shard_url = f"{served.url}/image/{shard.relative_to(dataset['image_path'][7:])}"
    for spec, want in ((f"bytes=5-{len(raw) + 50}", raw[5:]), ("bytes=-7", raw[-7:]),
                       ("bytes=3-", raw[3:])):
        status, _, body = http_get(shard_url, {"Range": spec})
        assert (status, body) == (206, want), spec
    assert http_get(shard_url, {"Range": f"bytes={len(raw)}-"})[0] == 416
    status, _, body = http_get(shard_url)
    assert (status, body) == (200, raw)
    with urllib.request.urlopen(urllib.request.Request(shard_url, method="HEAD"), timeout=10) as r:
        assert r.headers["Content-Length"] == str(len(raw)) and r.read() == b""

    req = urllib.request.Request(f"{served.url}/seg/info", method="OPTIONS")
    with urllib.request.urlopen(req, timeout=10) as r:
        assert r.status == 204 and r.headers["Access-Control-Allow-Origin"] == "*"
    for missing in ("/seg/no-such-file", "/seg/../image/info", "/other/info", "/"):
        assert http_get(served.url + missing)[0] == 404, missing
    logged = {(r.path, r.status) for r in served.requests}
    assert ("/seg/no-such-file", 404) in logged


# ---------------------------------------------------------------- layers and viewer state


def source_url(layer: dict) -> str:
    """A layer's single source URL from Neuroglancer state JSON (a string or [{"url": ...}])."""
    source = layer["source"]
    return source if isinstance(source, str) else source[0]["url"]


def test_segments_and_state(dataset):
    (seg,) = open_layers([dataset["seg_path"]], names=["cells"])
    both = dataset["meshed"] & {int(i) for i in dataset["skeletons"]}
    assert seg.name == "cells" and seg.kind == "segmentation"
    assert len(seg.segments) == min(16, len(both)) and set(seg.segments) <= both
    # the largest stored objects come first: every one left out is no bigger
    stored = {}
    for sub in ("mesh", "skeletons"):
        for p in (Path(seg.directory) / sub).iterdir():
            label = int(p.name.split(":")[0].split(".")[0]) if p.name[0].isdigit() else None
            if label is not None:
                stored[label] = stored.get(label, 0) + p.stat().st_size
    left_out = both - set(seg.segments)
    assert min(stored[i] for i in seg.segments) >= max((stored[i] for i in left_out), default=0)

    (odd,) = open_layers([dataset["seg_path"]], names=["my cells/v1"])
    assert odd.name == "my cells/v1" and re.fullmatch(r"[A-Za-z0-9._-]+", odd.mount)
    (image,) = open_layers([dataset["image_path"]])
    assert image.kind == "image" and image.segments == []
    state = build_state([image, seg], "http://127.0.0.1:1", pos=(10, 20, 30)).to_json()
    assert list(state["position"]) == [10.5, 20.5, 30.5]
    assert state["layout"] == "4panel"
    layers = {layer["name"]: layer for layer in state["layers"]}
    assert layers["image"]["type"] == "image"
    assert source_url(layers["image"]) == "precomputed://http://127.0.0.1:1/image"
    assert layers["cells"]["type"] == "segmentation"
    assert sorted(map(int, layers["cells"]["segments"])) == sorted(seg.segments)


def test_big_ids_offset_and_background(tmp_path):
    """uint64 ids above 2**53 survive into the state; odd sizes/offsets centre the view."""
    labels = np.zeros((37, 29, 11), dtype=np.uint64, order="F")
    big = [2**60 + 12345, 2**53 + 1]
    labels[2:20, 3:15, 1:9] = big[0]
    labels[21:35, 3:25, 2:10] = big[1]
    path = sample.create_layer(str(tmp_path / "big"), labels, resolution=(4, 6, 30),
                               offset=(3, 5, 7), chunk_size=(16, 16, 8),
                               layer_type="segmentation", encoding="raw")
    write_meshes(path, labels, big, mesh_info=False)
    write_skeletons(path, labels, big)
    (layer,) = open_layers([path])
    assert sorted(layer.segments) == sorted(big)
    # as an info written without CloudVolume's commit_info may be: Neuroglancer rejects null
    disk = json.loads((tmp_path / "big" / "skeletons" / "info").read_text())
    disk["sharding"] = None
    (tmp_path / "big" / "skeletons" / "info").write_text(json.dumps(disk))
    with view(path, port=0, ng="http://ng.invalid/") as handle:
        base = f"{handle.files.url}/{layer.mount}"
        # no mesh/info on disk: the legacy default; skeleton info: float32 attributes only
        assert json.loads(http_get(base + "/mesh/info")[2])["@type"] == "neuroglancer_legacy_mesh"
        served = json.loads(http_get(base + "/skeletons/info")[2])
        assert [a["id"] for a in served["vertex_attributes"]] == ["radius"]
        assert {k: v for k, v in served.items() if k != "vertex_attributes"} == \
            {k: v for k, v in disk.items() if k not in ("vertex_attributes", "sharding")}
        assert http_get(base + "/skeletons/./info")[0] == 200
    assert [a["data_type"] for a in disk["vertex_attributes"]] == ["float32", "uint8"]
    state = build_state([layer], "http://127.0.0.1:1").to_json()
    assert sorted(state["layers"][0]["segments"]) == sorted(str(i) for i in big)
    assert list(state["position"]) == [3 + 37 / 2, 5 + 29 / 2, 7 + 11 / 2]

    empty = sample.create_layer(str(tmp_path / "empty"), np.zeros((9, 9, 9), np.uint32),
                                layer_type="segmentation", encoding="raw")
    (layer,) = open_layers([empty])
    assert layer.segments == [] and pick_segments(layer) == []
    assert build_state([layer], "http://127.0.0.1:1").to_json()["layout"] == "xy"


def test_sharded_skeletons_are_listed_and_served(tmp_path):
    from cloudvolume import CloudVolume, Skeleton
    from cloudvolume.datasource.precomputed.sharding import (
        ShardingSpecification,
        synthesize_shard_files,
    )

    labels = np.zeros((16, 16, 16), dtype=np.uint32, order="F")
    path = sample.create_layer(str(tmp_path / "sk"), labels, layer_type="segmentation",
                               encoding="raw")
    spec = ShardingSpecification("neuroglancer_uint64_sharded_v1", preshift_bits=0, hash="identity",
                                 minishard_bits=1, shard_bits=0)
    skels = {i: Skeleton([[0, 0, 0], [i, 1, 2]], [[0, 1]], segid=i) for i in (3, 7, 11)}
    cv = CloudVolume(path, progress=False)
    cv.info["skeletons"] = "skeletons"
    cv.commit_info()
    info = cv.skeleton.meta.default_info()
    info["sharding"] = spec.to_dict()
    os.makedirs(tmp_path / "sk" / "skeletons")
    (tmp_path / "sk" / "skeletons" / "info").write_text(json.dumps(info, default=int))
    for name, data in synthesize_shard_files(spec, {i: s.to_precomputed() for i, s in skels.items()}).items():
        (tmp_path / "sk" / "skeletons" / name).write_bytes(data)
    (layer,) = open_layers([path])
    assert sorted(layer.segments) == [3, 7, 11]
    server = LayerServer({"sk": str(tmp_path / "sk")}).start()
    try:
        got = CloudVolume(f"precomputed://{server.url}/sk", progress=False).skeleton.get(7)
    finally:
        server.stop()
    assert np.allclose(got.vertices, skels[7].vertices)
    assert any(r.status == 206 for r in server.requests)


def test_path_traversal_refused_and_loopback_only(tmp_path):
    """Keys leaving a mount, plainly or percent-encoded, are 404 and never
    read the file outside; the server listens on 127.0.0.1 only."""
    import gzip as gz

    (tmp_path / "layer").mkdir()
    (tmp_path / "layer" / "info").write_text('{"ok": 1}')
    (tmp_path / "layer" / "chunk.gz").write_bytes(gz.compress(b"inside"))
    (tmp_path / "secret").write_text("outside the mount")
    (tmp_path / "secret.gz").write_bytes(gz.compress(b"outside the mount"))
    server = LayerServer({"layer": str(tmp_path / "layer")}).start()
    try:
        assert server.server_address[0] == "127.0.0.1"
        assert http_get(f"{server.url}/layer/info")[:1] == (200,)
        assert http_get(f"{server.url}/layer/chunk")[2] == b"inside"
        for path in ("/layer/../secret", "/layer/%2e%2e/secret", "/layer/%2E%2E%2Fsecret",
                     "/layer/..%2fsecret", "/layer/sub/../../secret", "/layer/%2e%2e%2f%2e%2e/secret",
                     "/layer//secret", "/layer/%2fsecret", "/layer/.", "/layer/"):
            status, _, body = http_get(server.url + path)
            assert status == 404 and b"outside" not in body, path
        # a double-encoded dot-dot is a (missing) file name, not a way out
        assert http_get(server.url + "/layer/%252e%252e/secret")[0] == 404
    finally:
        server.stop()
    # raw request lines, as a hostile client sends them (no client-side normalization)
    server = LayerServer({"layer": str(tmp_path / "layer")}).start()
    try:
        for target in ("/layer/../secret", "/layer/%2e%2e/secret"):
            with socket.create_connection(("127.0.0.1", server.server_address[1]), timeout=10) as sock:
                sock.sendall(f"GET {target} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n".encode())
                reply = b""
                while chunk := sock.recv(65536):
                    reply += chunk
            assert reply.startswith(b"HTTP/1.1 404") and b"outside" not in reply, target
    finally:
        server.stop()


def test_bad_input(tmp_path):
    (tmp_path / "notalayer").mkdir()
    with pytest.raises(UserError, match="no layer"):
        open_layers([str(tmp_path / "notalayer")])
    with pytest.raises(UserError, match="no layer"):
        open_layers([str(tmp_path / "missing")])
    with pytest.raises(UserError, match="local layers only"):
        open_layers(["s3://bucket/layer"])
    empty = sample.create_layer(str(tmp_path / "ok"), np.zeros((4, 4, 4), np.uint8))
    with pytest.raises(UserError, match="once per path"):
        open_layers([empty], names=["a", "b"])
    (tmp_path / "bad").mkdir()
    (tmp_path / "bad" / "info").write_text("{not json")
    with pytest.raises(UserError, match="malformed"):
        view(str(tmp_path / "bad"), port=0, ng="http://example.invalid/")


def test_cli_not_a_layer(igneous, tmp_path):
    proc = igneous("view", str(tmp_path), "--no-browser")
    assert proc.returncode != 0
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and "no layer" in lines[0], proc.stderr


def test_cli_serves_skips_busy_port_and_stops_on_ctrl_c(dataset):
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen(1)
        port = busy.getsockname()[1]
        proc = subprocess.Popen(
            [sys.executable, "-m", "igneous", "view", dataset["seg_path"], dataset["image_path"],
             "--no-browser", "--port", str(port), "--pos", "64,64,32", "--name", "cells",
             "--name", "em"],
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        try:
            url = proc.stdout.readline().strip()
            assert url.startswith("http://127.0.0.1:"), proc.stderr.read() if proc.poll() else url
            status, _, page = http_get(url)
            assert status == 200 and b"<html" in page.lower()
            err = ""
            while "Ctrl-C" not in err:
                line = proc.stderr.readline()
                assert line, "igneous view exited early"
                err += line
            served = re.search(r"http://127\.0\.0\.1:(\d+)/cells", err)
            assert served and int(served.group(1)) != port, err
            status, _, body = http_get(f"http://127.0.0.1:{served.group(1)}/cells/info")
            assert status == 200
            assert json.loads(body) == json.loads(Path(dataset["seg_path"][7:], "info").read_text())
        finally:
            proc.send_signal(signal.SIGINT)
            try:
                out, err = proc.communicate(timeout=20)
            except subprocess.TimeoutExpired:
                os.kill(proc.pid, signal.SIGKILL)
                proc.wait()
                raise
    assert proc.returncode == 0, err
    assert "Traceback" not in err


def test_cli_ng_prefix(dataset):
    """--ng: a link to another Neuroglancer page carrying the state (checked with
    --no-browser). Started with SIGINT ignored, as a shell starts a background
    job: Ctrl-C (SIGINT) must still stop it."""
    proc = subprocess.Popen(
        [sys.executable, "-m", "igneous", "view", dataset["seg_path"], "--no-browser",
         "--port", "0", "--ng", "https://ng.example/"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_IGN))
    try:
        url = proc.stdout.readline().strip()
    finally:
        proc.send_signal(signal.SIGINT)
        try:
            _, err = proc.communicate(timeout=20)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
            raise
    assert proc.returncode == 0, err
    assert url.startswith("https://ng.example/#!"), err
    state = json.loads(urllib.parse.unquote(url.split("#!", 1)[1]))
    assert source_url(state["layers"][0]).startswith("precomputed://http://127.0.0.1:")


# ---------------------------------------------------------------- a real browser


def _children(pid: int) -> list[int]:
    out = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                stat = (entry / "stat").read_text()
            except OSError:
                continue
            if int(stat.rsplit(")", 1)[1].split()[1]) == pid:
                out.append(int(entry.name))
    return out


@pytest.fixture
def chromium(tmp_path, monkeypatch):
    """A headless Chromium driven by selenium; every process it started is stopped by PID."""
    if not (os.path.exists(CHROMIUM) and shutil.which(CHROMEDRIVER)):
        pytest.skip(f"headless browser test needs {CHROMIUM} and {CHROMEDRIVER} "
                    "(Debian packages chromium, chromium-driver)")
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    monkeypatch.setenv("SE_OFFLINE", "true")  # selenium must not try to download a driver
    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for flag in CHROMIUM_FLAGS + [f"--user-data-dir={tmp_path / 'chromium-profile'}"]:
        options.add_argument(flag)
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    service = Service(CHROMEDRIVER)
    driver = webdriver.Chrome(service=service, options=options)
    driver_pid = service.process.pid
    browser_pids = _children(driver_pid)
    try:
        yield driver
    finally:
        try:
            driver.quit()
        finally:
            for pid in [*browser_pids, driver_pid]:
                try:
                    os.kill(pid, signal.SIGKILL)
                except ProcessLookupError:
                    pass


def panel_fractions(png: bytes) -> tuple[list[float], list[float]]:
    """Per quadrant (a panel of the 4-panel layout): fractions of non-black and of coloured pixels."""
    from PIL import Image

    rgb = np.asarray(Image.open(io.BytesIO(png)).convert("RGB")).astype(int)
    h, w = rgb.shape[:2]
    lit = rgb.max(axis=2) > 16
    colored = rgb.max(axis=2) - rgb.min(axis=2) > 40  # the image is grey; segments are not

    def per_panel(mask):
        return [float(mask[y0 + 4:y1 - 4, x0 + 4:x1 - 4].mean())
                for y0, y1 in ((0, h // 2), (h // 2, h)) for x0, x1 in ((0, w // 2), (w // 2, w))]

    return per_panel(lit), per_panel(colored)


def screenshot(handle, chromium) -> tuple[bool, list, list]:
    """Open ``handle``'s viewer in the browser with black backgrounds (the 3D
    panel shows objects only) and take a screenshot; stops the server.
    Returns (finished in time, [screenshot reply], request log)."""
    try:
        with handle.viewer.config_state.txn() as s:
            s.show_ui_controls = False
            s.show_panel_borders = False
        with handle.viewer.txn() as s:
            s.cross_section_background_color = "black"
            s.projection_background_color = "black"
            s.show_slices = False
        chromium.get(handle.url)
        done = threading.Event()
        reply: list = []

        def got(shot):
            reply.append(shot)
            done.set()

        handle.viewer.async_screenshot(got)
        finished = done.wait(SCREENSHOT_TIMEOUT)
        return finished, reply, handle.requests
    finally:
        handle.stop()


def test_browser_renders_layers(dataset, chromium, tmp_path):
    handle = view([dataset["image_path"], dataset["seg_path"]], port=0, names=["em", "cells"])
    finished, reply, log = screenshot(handle, chromium)
    failed = [r for r in log if r.status >= 400]
    assert finished, f"no screenshot within {SCREENSHOT_TIMEOUT} s; failed requests: {failed}"
    assert not failed, failed
    paths = [r.path for r in log if r.method == "GET"]
    selected = handle.layers[1].segments
    assert selected
    for label in selected:
        assert f"/cells/mesh/{label}:0" in paths
        assert any(p.startswith(f"/cells/mesh/{label}:0:") for p in paths), label
        assert f"/cells/skeletons/{label}" in paths
    assert any(p.startswith("/cells/16_16_40/") or p.startswith("/cells/32_32_40/") for p in paths)
    assert any(p.endswith(".shard") for p in paths), "image shards should be read"
    assert any(r.status == 206 for r in log)

    shot = reply[0].screenshot
    out = tmp_path / "screenshot.png"
    out.write_bytes(shot.image)
    lit, colored = panel_fractions(out.read_bytes())
    # panels: xy, xz / 3d, yz; every one drawn, and segmentation colours over the grey image
    assert all(f > 0.05 for f in lit), (lit, str(out))
    assert all(colored[i] > 0.05 for i in (0, 1, 3)), (colored, str(out))
    assert colored[2] > 0.05, ("no objects drawn in 3D", colored, str(out))
