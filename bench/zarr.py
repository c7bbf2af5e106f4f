"""Precomputed -> sharded OME-Zarr: our xfer against a direct tensorstore script.

Both write zarr v3 arrays of 64^3 chunks in the same shards (seg: 256^3,
image: 512x512x128), zstd level 3, crc32c shard index, from the same
benchmark input layers (bench/inputs.py):

* ours:   ``igneous image xfer file://SRC DEST.zarr --sharded --chunk-size 64,64,64
  --shard-shape S --skip-downsample --queue Q`` then ``igneous -p 2 execute -x -q Q``
  (planning, queue, tasks, metadata: the whole CLI path);
* direct: ``python -m bench.zarr direct SRC DEST S``, one process: CloudVolume
  reads the whole precomputed layer, tensorstore writes the whole array.

Runs alternate ours / direct; wall, CPU (user+sys of the command tree) and
peak tree RSS are measured by bench.harness.measure. After the first pair
the two arrays are compared voxel for voxel (tensorstore reads both).

    python -m bench.zarr [--data seg|image] [--repeat 2]
"""

from __future__ import annotations

import argparse
import json
import shutil
import statistics
import sys
import time
from pathlib import Path

from bench.harness import RESULTS, ROOT, RUNS, Impl, measure, ours

SHARDS = {"seg": (256, 256, 256), "image": (512, 512, 128)}
CHUNK = (64, 64, 64)


def direct(src: str, dest: str, shard: tuple[int, int, int]) -> None:
    """The baseline: read the layer whole with CloudVolume, write it with tensorstore."""
    import numpy as np
    import tensorstore as ts
    from cloudvolume import CloudVolume

    cv = CloudVolume(f"file://{src}", progress=False, parallel=1)
    data = np.asarray(cv[:, :, :])[..., 0]
    zyx = data.T  # x-fastest Fortran -> C-ordered z, y, x without a copy
    bytes_codec = {"name": "bytes", "configuration": {"endian": "little"}}
    codecs = [bytes_codec, {"name": "zstd", "configuration": {"level": 3, "checksum": False}}]
    meta = {
        "shape": list(zyx.shape), "data_type": str(zyx.dtype),
        "chunk_grid": {"name": "regular", "configuration": {"chunk_shape": list(shard[::-1])}},
        "codecs": [{"name": "sharding_indexed", "configuration": {
            "chunk_shape": list(CHUNK[::-1]), "codecs": codecs,
            "index_codecs": [bytes_codec, {"name": "crc32c"}], "index_location": "end"}}],
        "fill_value": 0,
    }
    arr = ts.open({"driver": "zarr3", "kvstore": {"driver": "file", "path": f"{dest}/0/"},
                   "metadata": meta}, create=True).result()
    arr.write(zyx).result()


def same_voxels(a: Path, b: Path) -> str:
    import numpy as np
    import tensorstore as ts

    def read(p: Path):
        return ts.open({"driver": "zarr3", "kvstore": {"driver": "file", "path": f"{p}/0/"}}
                       ).result().read().result()

    x, y = read(a), read(b)
    return "identical" if x.shape == y.shape and np.array_equal(x, y) else "NOT identical"


def run(data: str, repeat: int) -> dict:
    from bench import inputs

    src = inputs.ensure(data)
    shard = SHARDS[data]
    me = ours()
    direct_impl = Impl("direct", sys.executable, me.igneous, "")
    commands = {
        "ours": [f"{me.igneous} image xfer file://{src} {{dest}} --sharded --chunk-size "
                 f"{','.join(map(str, CHUNK))} --shard-shape {','.join(map(str, shard))} "
                 "--skip-downsample --queue {queue}",
                 f"{me.igneous} -p 2 execute -x -q {{queue}}"],
        "direct": [f"{sys.executable} -m bench.zarr direct {src} {{dest}} "
                   f"{','.join(map(str, shard))}"],
    }
    samples: dict[str, list[dict]] = {"ours": [], "direct": []}
    compared = None
    for r in range(repeat):
        outs = {}
        for name, impl in (("ours", me), ("direct", direct_impl)):
            run_dir = RUNS / f"zarr-{data}" / f"{name}-{r}"
            shutil.rmtree(run_dir, ignore_errors=True)
            run_dir.mkdir(parents=True)
            dest, queue = run_dir / "dest.zarr", run_dir / "queue"
            total = {"wall": 0.0, "cpu": 0.0, "peak_tree_rss": 0}
            for i, template in enumerate(commands[name]):
                s = measure(template.format(dest=dest, queue=queue), impl=impl, cwd=ROOT,
                            log=run_dir / "logs" / f"{i}.log")
                if s.returncode != 0:
                    raise SystemExit(f"{name} failed; see {run_dir / 'logs'}")
                total["wall"] += s.wall
                total["cpu"] += s.cpu
                total["peak_tree_rss"] = max(total["peak_tree_rss"], s.peak_tree_rss)
            samples[name].append(total)
            outs[name] = dest
            print(f"[zarr-{data}] run {r + 1} {name}: wall {total['wall']:.2f} s, "
                  f"cpu {total['cpu']:.2f} s, peak {total['peak_tree_rss'] / 2**20:.0f} MiB",
                  flush=True)
        if compared is None:
            compared = same_voxels(outs["ours"], outs["direct"])
    med = {n: {k: statistics.median(s[k] for s in v) for k in v[0]} for n, v in samples.items()}
    return {"data": data, "shard": shard, "chunk": CHUNK, "samples": samples, "median": med,
            "cpu_ratio": med["ours"]["cpu"] / med["direct"]["cpu"],
            "wall_ratio": med["ours"]["wall"] / med["direct"]["wall"], "voxels": compared}


def main(argv: list[str] | None = None) -> None:
    argv = sys.argv[1:] if argv is None else argv
    if argv[:1] == ["direct"]:  # internal: direct SRC DEST SHARD
        direct(argv[1], argv[2], tuple(int(x) for x in argv[3].split(",")))
        return
    ap = argparse.ArgumentParser(prog="python -m bench.zarr", description=__doc__.split("\n")[0])
    ap.add_argument("--data", choices=sorted(SHARDS), action="append")
    ap.add_argument("--repeat", type=int, default=2)
    args = ap.parse_args(argv)
    results = [run(d, args.repeat) for d in args.data or ["seg", "image"]]
    print("\n| data | ours wall s | ours CPU s | ours peak MiB | direct wall s | direct CPU s | "
          "direct peak MiB | CPU ours/direct | voxels |")
    print("|---|---|---|---|---|---|---|---|---|")
    for r in results:
        o, d = r["median"]["ours"], r["median"]["direct"]
        print(f"| {r['data']} | {o['wall']:.2f} | {o['cpu']:.2f} | {o['peak_tree_rss'] / 2**20:.0f} "
              f"| {d['wall']:.2f} | {d['cpu']:.2f} | {d['peak_tree_rss'] / 2**20:.0f} "
              f"| {r['cpu_ratio']:.2f} | {r['voxels']} |")
    RESULTS.mkdir(parents=True, exist_ok=True)
    out = RESULTS / f"zarr-{time.strftime('%Y%m%dT%H%M%S')}.json"
    out.write_text(json.dumps(results, indent=1, default=list))
    print(f"saved {out}")


if __name__ == "__main__":
    main()
