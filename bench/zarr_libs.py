"""tensorstore vs zarr-python v3 on our segmentation: sharded OME-Zarr writes.

Each library writes the 512^3 uint64 connectomics segmentation as one zarr v3
array (shards 256^3 of 64^3 chunks, zstd level 3), first from one process,
then from N processes at once each writing whole shards; and reads it back.
Reports wall, CPU (user+sys of this process and its children) and peak RSS.

    python -m bench.zarr_libs [--procs 2]
"""

from __future__ import annotations

import argparse
import json
import multiprocessing as mp
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

SEG = Path("/work/shared/data/connectomics.npy.ckl.gz")
SHARD, CHUNK = (256, 256, 256), (64, 64, 64)


def load() -> np.ndarray:
    import crackle

    return np.ascontiguousarray(crackle.load(str(SEG)).T)  # z, y, x


def ts_open(path: str, shape, dtype, create: bool):
    import tensorstore as ts

    spec = {"driver": "zarr3", "kvstore": {"driver": "file", "path": path}}
    if create:
        spec["metadata"] = {
            "shape": list(shape), "data_type": np.dtype(dtype).name,
            "chunk_grid": {"name": "regular", "configuration": {"chunk_shape": list(SHARD)}},
            "codecs": [{"name": "sharding_indexed", "configuration": {
                "chunk_shape": list(CHUNK),
                "codecs": [{"name": "bytes", "configuration": {"endian": "little"}},
                           {"name": "zstd", "configuration": {"level": 3}}],
                "index_codecs": [{"name": "bytes", "configuration": {"endian": "little"}},
                                 {"name": "crc32c"}]}}]}
        return ts.open(spec, create=True, delete_existing=True).result()
    return ts.open(spec).result()


def zp_open(path: str, shape, dtype, create: bool):
    import zarr
    from zarr.codecs import ZstdCodec

    if create:
        return zarr.create_array(path, shape=shape, dtype=dtype, shards=SHARD, chunks=CHUNK,
                                 compressors=[ZstdCodec(level=3)], overwrite=True, fill_value=0)
    return zarr.open_array(path, mode="r+")


OPEN = {"tensorstore": ts_open, "zarr-python": zp_open}


def shards(shape):
    for z in range(0, shape[0], SHARD[0]):
        for y in range(0, shape[1], SHARD[1]):
            for x in range(0, shape[2], SHARD[2]):
                yield z, y, x


def write_part(args) -> None:
    lib, path, idx, n = args
    data = load()
    arr = OPEN[lib](path, data.shape, data.dtype, False)
    for i, (z, y, x) in enumerate(shards(data.shape)):
        if i % n != idx:
            continue
        sl = np.s_[z:z + SHARD[0], y:y + SHARD[1], x:x + SHARD[2]]
        if lib == "tensorstore":
            arr[sl].write(data[sl]).result()
        else:
            arr[sl] = data[sl]


def cpu() -> float:
    a, b = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
    return a.ru_utime + a.ru_stime + b.ru_utime + b.ru_stime


def measure(lib: str, procs: int, tmp: Path) -> dict:
    data = load()
    path = str(tmp / f"{lib}.zarr")
    out = {"lib": lib}
    c0, t0 = cpu(), time.perf_counter()
    arr = OPEN[lib](path, data.shape, data.dtype, True)
    if lib == "tensorstore":
        arr.write(data).result()
    else:
        arr[...] = data
    out["write_1proc_s"] = round(time.perf_counter() - t0, 2)
    out["write_1proc_cpu_s"] = round(cpu() - c0, 2)
    out["bytes"] = sum(f.stat().st_size for f in Path(path).rglob("*") if f.is_file())
    c0, t0 = cpu(), time.perf_counter()
    arr = OPEN[lib](path, data.shape, data.dtype, False)
    back = arr.read().result() if lib == "tensorstore" else arr[...]
    out["read_s"] = round(time.perf_counter() - t0, 2)
    out["read_cpu_s"] = round(cpu() - c0, 2)
    assert np.array_equal(back, data)
    OPEN[lib](path, data.shape, data.dtype, True)  # empty again
    t0 = time.perf_counter()
    with mp.get_context("spawn").Pool(procs) as pool:
        pool.map(write_part, [(lib, path, i, procs) for i in range(procs)])
    out[f"write_{procs}proc_whole_shards_s"] = round(time.perf_counter() - t0, 2)
    arr = OPEN[lib](path, data.shape, data.dtype, False)
    back = arr.read().result() if lib == "tensorstore" else arr[...]
    out["parallel_write_exact"] = bool(np.array_equal(back, data))
    out["peak_rss_mb"] = round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024)
    return out


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--procs", type=int, default=2)
    ap.add_argument("--lib", choices=sorted(OPEN), action="append")
    args = ap.parse_args()
    libs = args.lib or sorted(OPEN)
    if len(libs) > 1:  # each library in its own process, so peak RSS is its own
        for lib in libs:
            subprocess.run([sys.executable, "-m", "bench.zarr_libs", "--procs", str(args.procs),
                            "--lib", lib], check=True)
        return
    tmp = Path(tempfile.mkdtemp(prefix="zarr_libs_"))
    try:
        print(json.dumps(measure(libs[0], args.procs, tmp)), flush=True)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
