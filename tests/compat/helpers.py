"""Shared pieces of the python-task-queue compatibility tests: small layers with
odd sizes, offsets and uint64 ids above 2^53, and running a user's script as a
file in its own interpreter (as the spec's examples are run)."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np

REFERENCE = Path(__file__).resolve().parents[2] / ".bench" / "reference" / "bin" / "python"
# its CLI appears only once pip installed the reference completely
REFERENCE_READY = (REFERENCE.parent / "igneous").exists()
BIG = np.uint64(2**60 + 12345)  # ids above 2^53: JSON floats would corrupt them
OFFSET = (8, 4, 3)  # x/y multiples of 4 (two 2x2x1 mips align), odd z
SHAPE = (45, 37, 11)  # odd sizes: ragged last chunks and windows


def segmentation(seed: int = 0) -> np.ndarray:
    """Blocks of labels (some > 2^53) with gaps of background."""
    rng = np.random.default_rng(seed)
    coarse = rng.integers(0, 6, size=(5, 4, 2)).astype(np.uint64)
    img = np.kron(coarse, np.ones((10, 10, 6), np.uint64))[: SHAPE[0], : SHAPE[1], : SHAPE[2]]
    img = np.where(img > 0, img + BIG, 0).astype(np.uint64)
    img[::7, :, :] = 0  # thin background sheets split some blocks
    return np.asfortranarray(img)


def image(seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    return np.asfortranarray(rng.integers(0, 256, size=SHAPE, dtype=np.uint8))


def make_layer(path: Path, data: np.ndarray, chunk=(16, 16, 8)) -> str:
    from igneous.sample import create_layer

    return create_layer(f"file://{path}", data, resolution=(4, 4, 40), offset=OFFSET,
                        chunk_size=chunk)


def run_script(code: str, *, python: str = sys.executable, timeout: float = 240,
               cwd: Path | None = None, env: dict | None = None) -> subprocess.CompletedProcess:
    """Run ``code`` as a script file (spawned pools re-import it by path)."""
    where = cwd or Path.cwd()
    script = where / f"script_{abs(hash(code)) % 10**8}.py"
    script.write_text(textwrap.dedent(code))
    full = dict(os.environ, **(env or {}))
    proc = subprocess.run([python, str(script)], capture_output=True, text=True, timeout=timeout,
                          cwd=str(where), env=full)
    assert proc.returncode == 0, f"script failed:\n{proc.stdout[-3000:]}\n{proc.stderr[-3000:]}"
    return proc


def mean_pool_2x2(img: np.ndarray, mips: int = 1) -> np.ndarray:
    """Independent 2x2x1 average pyramid: edge windows repeat the edge value,
    sums are carried exactly across mips and floored once (docs/architecture.md)."""
    s = img.astype(np.int64)
    for _ in range(mips):
        x, y = s.shape[:2]
        s = np.pad(s, ((0, x % 2), (0, y % 2), (0, 0)), mode="edge")
        s = s.reshape(s.shape[0] // 2, 2, s.shape[1] // 2, 2, -1).sum(axis=(1, 3))
    return (s // 4**mips).astype(img.dtype)


def read(path: str, mip: int = 0) -> np.ndarray:
    from cloudvolume import CloudVolume

    return np.asarray(CloudVolume(path, mip=mip, progress=False)[:][..., 0])
