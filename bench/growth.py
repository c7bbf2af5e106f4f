"""Growth: every workflow on 1x, 4x and 16x the voxels, ours vs the reference vs the floor.

Inputs are the benchmark layers tiled in x and y (built once into
``.bench/inputs/``):

* segmentation: the 512^3 connectomics volume as 2x2 and 4x4 tiles
  (1024x1024x512 and 2048x2048x512); each tile's labels are shifted by
  ``tile * (max label + 1)`` so objects stay distinct (the label count grows
  with the volume, as in real data) and nothing merges across tile seams;
* image: the 1024x1024x128 image as 2x2 and 4x4 tiles (hard links to the
  same chunk files under shifted names).

For every size and workflow, in one invocation and in this order: ours, the
reference (killed after ``--ref-timeout`` seconds and recorded as "did not
finish"), and the floor (bench/floor.py, one process; the floor for 2 workers
is its CPU / 2). Ours and the reference run the same commands as the other
benchmarks (bench/image.py, bench/analysis.py, bench/mesh.py,
bench/skeleton.py) with 2 workers through the durable queue (ours: SQLite
directory; reference: ``fq://``).

    python -m bench.growth                                   # everything (hours)
    python -m bench.growth --sizes 1,4 --workflows image-downsample,ccl,voxels
    python -m bench.growth --sizes 16 --no-reference --workflows mesh
    python -m bench.growth --table .bench/results/growth-*.json   # tables + exponents from saved runs

The growth exponent is the slope of log(figure) against log(voxels), least
squares over the sizes measured (1.0 = linear).
"""

from __future__ import annotations

import argparse
import json
import math
import os
import shutil
import sys
import time
from pathlib import Path

import numpy as np

from bench import floor
from bench.harness import (
    INPUTS,
    RESULTS,
    ROOT,
    RUNS,
    Step,
    Workflow,
    fresh_copy,
    machine_notes,
    measure,
    ours,
    reference,
    run_workflow,
)

SIZES = (1, 4, 16)
WORKFLOWS = ("image-downsample", "image-xfer", "seg-downsample", "seg-xfer", "ccl", "voxels",
             "mesh", "skeleton")
DEFAULT_WORKFLOWS = ("image-downsample", "image-xfer", "ccl", "voxels", "mesh", "skeleton")
TILES = {1: (1, 1), 4: (2, 2), 16: (4, 4)}
MARKER = ".complete"


# -- inputs ------------------------------------------------------------------------

def _chunk_names(layer: Path) -> tuple[dict, list[tuple[Path, list[int]]]]:
    info = json.loads((layer / "info").read_text())
    key = info["scales"][0]["key"]
    out = []
    for f in sorted((layer / key).iterdir()):
        stem = f.name[:-3] if f.name.endswith(".gz") else f.name
        bounds = [int(v) for part in stem.split("_") for v in part.split("-")]
        out.append((f, bounds))
    return info, out


def tiled(data: str, factor: int) -> Path:
    """The base layer ``data`` ("seg" or "image") tiled ``factor`` times in x-y (built once)."""
    from bench import inputs

    base = inputs.ensure(data)
    if factor == 1:
        return base
    tx, ty = TILES[factor]
    info, chunks = _chunk_names(base)
    scale = info["scales"][0]
    sx, sy, sz = scale["size"]
    dest = INPUTS / f"{data}_{sx * tx}x{sy * ty}x{sz}_tiled"
    if (dest / MARKER).exists():
        return dest
    print(f"building {dest} ...", flush=True)
    shutil.rmtree(dest, ignore_errors=True)
    (dest / scale["key"]).mkdir(parents=True)
    dtype = np.dtype(info["data_type"])
    if data == "seg":
        import deflate

        top = max(int(np.frombuffer(deflate.gzip_decompress(f.read_bytes()), dtype=dtype).max())
                  for f, _ in chunks)
        if (top + 1) * tx * ty > np.iinfo(dtype).max:
            raise SystemExit(f"labels up to {top} do not fit {tx * ty} tiles in {dtype}")
    for i in range(tx):
        for j in range(ty):
            shift = (i + tx * j) * (top + 1) if data == "seg" else 0
            for f, (x0, x1, y0, y1, z0, z1) in chunks:
                name = f"{x0 + i * sx}-{x1 + i * sx}_{y0 + j * sy}-{y1 + j * sy}_{z0}-{z1}"
                out = dest / scale["key"] / (name + (".gz" if f.name.endswith(".gz") else ""))
                if shift == 0:
                    os.link(f, out)
                    continue
                raw = deflate.gzip_decompress(f.read_bytes())
                arr = np.frombuffer(raw, dtype=dtype)
                arr = np.where(arr != 0, arr + dtype.type(shift), arr).astype(dtype)
                out.write_bytes(deflate.gzip_compress(arr.tobytes(), 6))
    scale["size"] = [sx * tx, sy * ty, sz]
    (dest / "info").write_text(json.dumps(info, indent=2))
    (dest / MARKER).write_text("")
    return dest


# -- workflows ---------------------------------------------------------------------

def _steps(name: str) -> list[tuple[str, str]]:
    from bench import analysis, image, mesh, skeleton

    execute = mesh.EXECUTE
    if name.endswith("downsample"):
        return list(zip(("create", "execute"), image.DOWNSAMPLE))
    if name.endswith("xfer"):
        return list(zip(("create", "execute"), image.XFER))
    if name == "ccl":
        return [("ccl auto", analysis.CCL)]
    if name == "voxels":
        return list(zip(("count", "execute", "sum"), analysis.COUNT))
    if name == "mesh":
        return [("forge", "{igneous} mesh forge file://{src} --queue {queue_url}"),
                ("forge-exec", execute),
                ("merge", "{igneous} mesh merge file://{src} --queue {queue_url}"),
                ("merge-exec", execute)]
    if name == "skeleton":
        return [("forge", skeleton.FORGE), ("forge-exec", execute),
                ("merge", "{igneous} skeleton merge file://{src} " + skeleton.MERGE_OPTS),
                ("merge-exec", execute)]
    raise KeyError(name)


def data_of(name: str) -> str:
    return "image" if name.startswith("image-") else "seg"


def workflow(name: str, factor: int, src: Path, timeout: float) -> Workflow:
    def prepare(run_dir: Path, impl):
        copy = fresh_copy(src, run_dir / "src")
        (copy / MARKER).unlink(missing_ok=True)
        return {"src": copy, "dest": run_dir / "dest", "queue": run_dir / "queue",
                "counts": run_dir / "counts.im", "shape": "256,256,256"}

    steps = [Step(label, {"ours": t, "reference": t}) for label, t in _steps(name)]
    return Workflow(name=f"growth-{name}-{factor}x", description=f"{name} on {src.name}",
                    steps=steps, prepare=prepare, timeout=timeout)


def floor_args(name: str, out_layer: Path | None) -> list[str]:
    """bench.floor arguments: the same work as the workflow (mips from ours' output)."""
    kind = name.split("-")[-1]
    args = [kind]
    if kind in ("downsample", "xfer"):
        mips = 3
        if kind == "xfer" and out_layer is not None and (out_layer / "info").exists():
            mips = len(json.loads((out_layer / "info").read_text())["scales"]) - 1
        args += ["--num-mips", str(mips)]
    return args


# -- running ---------------------------------------------------------------------

def _total(run: dict) -> dict:
    steps = list(run["steps"].values())
    timed_out = any(s.get("timed_out") for s in steps)
    return {"ok": run["ok"], "timed_out": timed_out,
            "wall": sum(s["wall"] for s in steps), "cpu": sum(s["cpu"] for s in steps),
            "peak_tree_rss": max(s["peak_tree_rss"] for s in steps),
            "max_rss": max(s["max_rss"] for s in steps),
            "steps": {k: {"wall": s["wall"], "cpu": s["cpu"], "peak_tree_rss": s["peak_tree_rss"]}
                      for k, s in run["steps"].items()}}


def run_one(name: str, factor: int, *, impls: list[str], ref_timeout: float,
            our_timeout: float, floor_procs: int = 1) -> dict:
    src = tiled(data_of(name), factor)
    info = json.loads((src / "info").read_text())
    voxels = int(np.prod(info["scales"][0]["size"]))
    row: dict = {"workflow": name, "factor": factor, "voxels": voxels, "layer": src.name}
    out_layer = None
    for impl_name in (i for i in impls if i != "floor"):
        impl = ours() if impl_name == "ours" else reference()
        timeout = our_timeout if impl_name == "ours" else ref_timeout
        wf = workflow(name, factor, src, timeout)
        result = run_workflow(wf, [impl], repeat=1, compare=False, keep=True)
        run = result["runs"][0] if result["runs"] else None
        row[impl_name] = _total(run) if run else {"ok": False, "timed_out": False}
        row[impl_name]["timeout"] = timeout
        run_dir = RUNS / wf.name / f"{impl_name}-0"
        if impl_name == "ours" and (run_dir / "dest").exists():
            out_layer = run_dir / "dest"
            row["floor_args"] = floor_args(name, out_layer)
        if impl_name != "ours" or "floor" not in impls:
            shutil.rmtree(run_dir, ignore_errors=True)
    if "floor" in impls:
        args = row.get("floor_args") or floor_args(name, None)
        if floor_procs > 1 and args[0] in floor.PARALLEL:
            args = [*args, "--procs", str(floor_procs)]
        cmd = " ".join([sys.executable, "-m", "bench.floor", *args, str(src)])
        print(f"[growth-{name}-{factor}x] floor: {cmd}", flush=True)
        sample = measure(cmd, impl=ours(), cwd=ROOT, log=RUNS / "growth-floor" / f"{name}-{factor}x.log",
                         timeout=our_timeout)
        row["floor"] = {"ok": sample.returncode == 0 and not sample.timed_out, "wall": sample.wall,
                        "cpu": sample.cpu, "peak_tree_rss": sample.peak_tree_rss,
                        "max_rss": sample.max_rss, "command": cmd,
                        "inner": json.loads(sample.stdout.strip().splitlines()[-1])
                        if sample.returncode == 0 else None}
        print(f"    floor: {sample.wall:.2f}s wall {sample.cpu:.2f}s cpu", flush=True)
        if out_layer is not None:
            shutil.rmtree(out_layer.parent, ignore_errors=True)
    return row


# -- tables ----------------------------------------------------------------------

def exponent(voxels: list[int], values: list[float]) -> float | None:
    """Least-squares slope of log(value) against log(voxels)."""
    pts = [(math.log(v), math.log(y)) for v, y in zip(voxels, values) if y and y > 0]
    if len(pts) < 2:
        return None
    x, y = np.array(pts).T
    return float(np.polyfit(x, y, 1)[0])


def _cell(side: dict | None, key: str, scale: float = 1.0, fmt: str = "{:.1f}") -> str:
    if not side:
        return "n/a"
    if side.get("timed_out"):
        return f"DNF >{side['timeout']:.0f}s" if key == "wall" else "DNF"
    if not side.get("ok"):
        return "failed"
    return fmt.format(side[key] * scale)


def _ratio(a: dict | None, b: float | None) -> str:
    if not a or not a.get("ok") or a.get("timed_out") or not b:
        return "n/a"
    return f"{a['wall'] / b:.2f}"


def tables(rows: list[dict], workers: int = 2) -> str:
    """Markdown: one table per workflow, then the growth exponents."""
    out = []
    mb = 1 / 2**20
    for name in dict.fromkeys(r["workflow"] for r in rows):
        mine = sorted((r for r in rows if r["workflow"] == name), key=lambda r: r["voxels"])
        out += [f"### {name}", "",
                "| size | voxels | ours wall s | ours CPU s | ours tree MB | ref wall s | ref CPU s "
                "| ref tree MB | floor CPU s | floor wall s (CPU/2) | floor MB | ours/ref wall "
                "| ours/ref CPU | ours/floor wall | ours/floor CPU |",
                "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|"]
        for r in mine:
            o, ref, fl = r.get("ours"), r.get("reference"), r.get("floor")
            floor_wall = fl["cpu"] / workers if fl and fl.get("ok") else None
            ref_wall = ref["wall"] if ref and ref.get("ok") and not ref.get("timed_out") else None
            cpu_ratio = (f"{o['cpu'] / fl['cpu']:.2f}" if o and o.get("ok") and floor_wall else "n/a")
            ref_cpu = (f"{o['cpu'] / ref['cpu']:.2f}" if o and o.get("ok") and ref_wall else "n/a")
            out.append(
                f"| {r['factor']}x | {r['voxels']:,} | {_cell(o, 'wall', fmt='{:.2f}')} | "
                f"{_cell(o, 'cpu')} | {_cell(o, 'peak_tree_rss', mb, '{:.0f}')} | "
                f"{_cell(ref, 'wall', fmt='{:.2f}')} | {_cell(ref, 'cpu')} | "
                f"{_cell(ref, 'peak_tree_rss', mb, '{:.0f}')} | {_cell(fl, 'cpu')} | "
                f"{'n/a' if floor_wall is None else f'{floor_wall:.2f}'} | "
                f"{_cell(fl, 'peak_tree_rss', mb, '{:.0f}')} | {_ratio(o, ref_wall)} | {ref_cpu} | "
                f"{_ratio(o, floor_wall)} | {cpu_ratio} |")
        ok = [r for r in mine if r.get("ours", {}).get("ok")]
        vox = [r["voxels"] for r in ok]
        exps = {k: exponent(vox, [r["ours"][k] for r in ok]) for k in ("wall", "cpu", "peak_tree_rss")}
        fl_ok = [r for r in mine if r.get("floor", {}).get("ok")]
        fexp = exponent([r["voxels"] for r in fl_ok], [r["floor"]["cpu"] for r in fl_ok])

        def fmt(v):
            return "n/a" if v is None else f"{v:.2f}"
        out += ["", f"Growth exponents over {len(ok)} sizes (ours): wall {fmt(exps['wall'])}, "
                f"CPU {fmt(exps['cpu'])}, peak tree memory {fmt(exps['peak_tree_rss'])}; "
                f"floor CPU {fmt(fexp)}.", ""]
    return "\n".join(out)


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(prog="python -m bench.growth", description=__doc__.split("\n")[0])
    ap.add_argument("--sizes", default="1,4,16", help="voxel multiples of the base layers (1, 4, 16)")
    ap.add_argument("--workflows", default=",".join(DEFAULT_WORKFLOWS),
                    help=f"comma-separated, from {', '.join(WORKFLOWS)}")
    ap.add_argument("--ref-timeout", type=float, default=600,
                    help="seconds before a reference command is killed (default 600)")
    ap.add_argument("--timeout", type=float, default=3600, help="the same for ours and the floor")
    ap.add_argument("--no-reference", action="store_true", help="ours and the floor only")
    ap.add_argument("--no-floor", action="store_true", help="skip the floor")
    ap.add_argument("--floor-procs", type=int, default=1,
                    help="mesh and skeleton floors: processes (same CPU-seconds, less waiting; "
                         "the tables' floor MB is then the process tree's)")
    ap.add_argument("--table", nargs="+", type=Path, help="print tables from saved result files")
    args = ap.parse_args(argv)
    if args.table:
        rows = [r for p in args.table for r in json.loads(p.read_text())["rows"]]
        print(tables(rows))
        return
    sizes = [int(s) for s in args.sizes.split(",")]
    names = [w for w in args.workflows.split(",") if w]
    bad = [s for s in sizes if s not in SIZES] + [w for w in names if w not in WORKFLOWS]
    if bad:
        ap.error(f"unknown size(s) / workflow(s): {bad}")
    impls = ["ours"] + ([] if args.no_reference else ["reference"]) + ([] if args.no_floor else ["floor"])
    for factor in sizes:  # build every input before anything is timed
        for data in dict.fromkeys(data_of(n) for n in names):
            tiled(data, factor)
    RESULTS.mkdir(parents=True, exist_ok=True)
    out = RESULTS / f"growth-{time.strftime('%Y%m%d-%H%M%S')}.json"
    doc = {"started": time.strftime("%Y-%m-%dT%H:%M:%S"), "machine": machine_notes(), "rows": []}
    for factor in sizes:
        for name in names:
            doc["rows"].append(run_one(name, factor, impls=impls, ref_timeout=args.ref_timeout,
                                       our_timeout=args.timeout, floor_procs=args.floor_procs))
            out.write_text(json.dumps(doc, indent=1))  # partial results survive an interruption
    print()
    print(tables(doc["rows"]))
    print(f"results saved to {out}")


if __name__ == "__main__":
    main()
