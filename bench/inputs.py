"""Benchmark input layers, built once into ``.bench/inputs`` and reused.

Both implementations read these exact layers (fresh copies per run), so they
are written with CloudVolume itself rather than with either igneous.

* ``image``: 1024x1024x128 uint8 "microscopy-like" volume (smooth background,
  thin membrane-like sheets, fine grain), deterministic seed, 4x4x40 nm,
  chunks 128x128x64, raw encoding, gzip-compressed chunk files.
* ``seg``: the real 512^3 connectomics segmentation from
  /work/shared/data/connectomics.npy.ckl.gz, 16x16x40 nm, chunks 64^3,
  raw encoding, gzip-compressed chunk files.

A layer counts as built only once its ``.complete`` marker exists, so an
interrupted build is redone rather than trusted.

    python -m bench.inputs            # build (or just report) both layers
    python -m bench.inputs --rebuild  # throw them away and build again
"""

from __future__ import annotations

import argparse
import shutil
import subprocess
import sys
import time
from pathlib import Path

from bench.harness import INPUTS, ROOT

SEG_SOURCE = Path("/work/shared/data/connectomics.npy.ckl.gz")
IMAGE_SHAPE = (1024, 1024, 128)
IMAGE_SEED = 20240601
MARKER = ".complete"

LAYERS = {
    "image": INPUTS / "image_1024x1024x128_u8",
    "seg": INPUTS / "seg_512_connectomics",
}


def _make_image(shape: tuple[int, int, int] = IMAGE_SHAPE, seed: int = IMAGE_SEED):
    """A smooth uint8 volume with some structure, the same on every machine."""
    import numpy as np
    from scipy.ndimage import gaussian_filter

    rng = np.random.default_rng(seed)

    def smooth(sigma):
        field = gaussian_filter(rng.standard_normal(shape, dtype=np.float32), sigma=sigma)
        field -= field.mean()
        field /= field.std() + 1e-12
        return field

    background = smooth((24, 24, 6))  # slow illumination / tissue density changes
    cells = smooth((10, 10, 3))  # zero crossings of this field form closed sheets
    membranes = np.exp(-((cells / 0.12) ** 2))
    del cells
    grain = smooth((1, 1, 0.5))  # detector noise, slightly correlated
    img = 140.0 + 30.0 * background - 90.0 * membranes + 8.0 * grain
    return np.clip(np.rint(img), 0, 255).astype(np.uint8, order="F")


def _load_seg():
    import crackle

    return crackle.load(str(SEG_SOURCE))


def _write(path: Path, arr, *, resolution, chunk_size, layer_type: str) -> None:
    from cloudvolume import CloudVolume

    if path.exists():
        shutil.rmtree(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    CloudVolume.from_numpy(
        arr, vol_path=f"file://{path}", resolution=resolution, voxel_offset=(0, 0, 0),
        chunk_size=chunk_size, layer_type=layer_type, encoding="raw", progress=False,
    )
    (path / MARKER).write_text("")


def build(name: str, *, rebuild: bool = False, quiet: bool = False) -> Path:
    """Path of input layer ``name`` ("image" or "seg"), building it if needed."""
    path = LAYERS[name]
    if (path / MARKER).exists() and not rebuild:
        return path
    t0 = time.perf_counter()
    if not quiet:
        print(f"building benchmark input {name!r} in {path} ...", flush=True)
    if name == "image":
        _write(path, _make_image(), resolution=(4, 4, 40), chunk_size=(128, 128, 64),
               layer_type="image")
    elif name == "seg":
        if not SEG_SOURCE.exists():
            raise FileNotFoundError(f"{SEG_SOURCE} is missing; the seg input needs it")
        _write(path, _load_seg(), resolution=(16, 16, 40), chunk_size=(64, 64, 64),
               layer_type="segmentation")
    else:
        raise KeyError(name)
    if not quiet:
        print(f"  done in {time.perf_counter() - t0:.1f} s", flush=True)
    return path


def ensure(name: str) -> Path:
    """Path of input layer ``name``, built in a child process if not cached.

    A child, so the harness stays small (see bench.harness.Sample.spawner_rss).
    """
    path = LAYERS[name]
    if not (path / MARKER).exists():
        subprocess.run([sys.executable, "-m", "bench.inputs", name], cwd=ROOT, check=True)
    return path


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(prog="python -m bench.inputs", description=__doc__.split("\n")[0])
    ap.add_argument("names", nargs="*", metavar="NAME", help="image and/or seg (default both)")
    ap.add_argument("--rebuild", action="store_true", help="build again even if cached")
    args = ap.parse_args(argv)
    unknown = [n for n in args.names if n not in LAYERS]
    if unknown:
        ap.error(f"unknown layer(s) {unknown}; choose from {sorted(LAYERS)}")
    for name in args.names or sorted(LAYERS):
        print(build(name, rebuild=args.rebuild))


if __name__ == "__main__":
    main()
