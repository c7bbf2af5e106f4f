"""``igneous view`` of OME-Zarr layers (an image and its labels, with the
Precomputed meshes and skeletons written beside the labels), rendered by the
bundled Neuroglancer in headless Chromium (fixtures from tests/test_view.py)."""

from __future__ import annotations

import subprocess
import sys

import numpy as np

from igneous.view import build_state, view
from tests import test_view
from tests.test_view import SCREENSHOT_TIMEOUT, panel_fractions

# the layers and the browser of tests/test_view.py
dataset = test_view.dataset
chromium = test_view.chromium


def igneous_ok(*args: str) -> None:
    proc = subprocess.run([sys.executable, "-m", "igneous", *args], capture_output=True, text=True,
                          timeout=300)
    assert proc.returncode == 0, proc.stderr


def omezarr_pair(dataset) -> tuple[str, str]:
    """The test_view dataset as OME-Zarr: sharded image, labels with meshes and skeletons."""
    root = dataset["root"] / "ome.zarr"
    if not (root / "labels" / "cells" / "zarr.json").exists():
        igneous_ok("image", "xfer", dataset["image_path"], str(root), "--sharded",
                   "--chunk-size", "32,32,16", "--shard-shape", "64,64,32")
        labels = str(root / "labels" / "cells")
        igneous_ok("image", "xfer", dataset["seg_path"], labels, "--chunk-size", "64,64,32")
        igneous_ok("mesh", "forge", labels, "--shape", "128,128,64")
        igneous_ok("mesh", "merge", labels)
        igneous_ok("skeleton", "forge", labels, "--shape", "128,128,64")
        igneous_ok("skeleton", "merge", labels)
    return str(root), str(root / "labels" / "cells")


def test_state_uses_zarr_sources(dataset):
    image, labels = omezarr_pair(dataset)
    from igneous.view import open_layers

    layers = open_layers([image, labels], ["em", "cells"])
    state = build_state(layers, "http://127.0.0.1:1")
    assert state.layers["em"].source[0].url == "zarr3://http://127.0.0.1:1/em"
    urls = [s.url for s in state.layers["cells"].source]
    assert urls[0] == "zarr3://http://127.0.0.1:1/cells"
    assert any(u.startswith("precomputed://http://127.0.0.1:1/cells/mesh") for u in urls)
    assert any(u.startswith("precomputed://http://127.0.0.1:1/cells/skeletons") for u in urls)


def test_browser_renders_omezarr(dataset, chromium, tmp_path):
    image, labels = omezarr_pair(dataset)
    handle = view([image, labels], port=0, names=["em", "cells"])
    finished, reply, log = test_view.screenshot(handle, chromium)
    # absent zarr chunks (all background) are 404s by design; nothing else may fail
    failed = [r for r in log if r.status >= 400 and not r.path.rsplit("/", 1)[-1].isdigit()]
    assert finished, f"no screenshot within {SCREENSHOT_TIMEOUT} s; failed requests: {failed}"
    assert not failed, failed
    paths = [r.path for r in log if r.method == "GET"]
    assert "/em/zarr.json" in paths and "/cells/zarr.json" in paths
    assert any(r.path.startswith("/em/0/c/") and r.status == 206 for r in log), \
        "image shards should be read in ranges"
    assert any(p.startswith("/cells/0/c/") for p in paths)
    selected = handle.layers[1].segments
    assert selected
    assert any(p.startswith("/cells/mesh") and p.endswith(f"/{selected[0]}:0") for p in paths)
    assert any(p.startswith("/cells/skeletons") for p in paths)
    out = tmp_path / "screenshot.png"
    out.write_bytes(reply[0].screenshot.image)
    lit, colored = panel_fractions(out.read_bytes())
    assert all(f > 0.05 for f in lit), (lit, str(out))
    assert all(colored[i] > 0.05 for i in (0, 1, 3)), (colored, str(out))
    assert colored[2] > 0.05, ("no objects drawn in 3D", colored, str(out))
    assert np.isfinite(lit).all()
