"""Tasks on S3 with latency added per request: ours vs the reference.

Each case plans one workflow on a fresh copy of its layer on moto_server and
runs its tasks with one worker process (``-p 1``: a task's own wall time,
not hidden by a second worker), once with the loopback proxy
(tests/fault_proxy.py) passing requests straight through and once with it
holding each request ``--latency`` seconds (default 0.05) before forwarding
it. Reported per implementation: the task stage's wall and CPU seconds at
both latencies and the wall ratio (delayed / undelayed; the goal for ours is
at most 1.5). Both implementations and both latencies alternate in one
invocation, on the same endpoint.

    python -m bench.latency
    python -m bench.latency --only downsample --latency 0.05
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path

from bench.harness import RESULTS, ROOT, ours, reference, save_results
from bench.requests import run_case, s3_endpoint

RUN = "{igneous} -p 1 execute -x -q {queue}"
# name -> (input layer, planning command, task stage)
CASES: dict[str, tuple[str, str, str]] = {
    "downsample": ("image", "{igneous} image downsample {src} --mip 0 --num-mips 2 "
                   "--queue {queue}", RUN),
    "xfer": ("image", "{igneous} image xfer {src} {dest} --chunk-size 64,64,64 --max-mips 0 "
             "--queue {queue}", RUN),
    "mesh forge": ("seg", "{igneous} mesh forge {src} --queue {queue}", RUN),
    "voxels count": ("seg", "{igneous} image voxels count {src} --queue {queue}", RUN),
    # every ccl stage, planned and run by one command (the reference's fails with -p 1)
    "ccl": ("seg", "{igneous} -p 2 image ccl auto {src} {dest} --queue {queue}", ""),
}


def measure_latency(names: list[str], latency: float, impl_names: list[str]) -> dict:
    impls = [{"ours": ours, "reference": reference}[n]() for n in impl_names]
    results: dict = {"latency": latency, "when": time.strftime("%Y-%m-%d %H:%M:%S"),
                     "cases": {}}
    with tempfile.TemporaryDirectory(prefix="igneous-latency-") as tmp:
        work = Path(tmp)
        with s3_endpoint(work) as endpoint:
            for name in names:
                layer, plan, stage = CASES[name]
                steps = [plan] + ([stage] if stage else [])
                case: dict = {}
                for impl in impls:
                    for delay in (0.0, latency):
                        endpoint.proxy.latency = delay  # type: ignore[attr-defined]
                        tag = f"{impl.name}-{name.replace(' ', '-')}-{int(delay * 1000)}ms"
                        try:
                            timed = run_case(endpoint, layer, steps, impl, work, tag)[-1]
                        except RuntimeError as err:
                            print(f"[{name}] {err}", flush=True)
                            case.setdefault(impl.name, {})["failed"] = str(err)
                            break
                        case.setdefault(impl.name, {})[f"{int(delay * 1000)}ms"] = {
                            "wall": timed.wall, "cpu": timed.cpu, "requests": timed.total}
                        print(f"[{name}] {impl.name} at {delay * 1000:.0f} ms: "
                              f"{timed.wall:.2f} s wall, {timed.cpu:.2f} s CPU, "
                              f"{timed.total} requests", flush=True)
                results["cases"][name] = case
    return results


def format_table(results: dict) -> str:
    ms = f"{int(results['latency'] * 1000)}ms"
    lines = [f"| task stage | impl | wall 0 ms (CPU) | wall {ms} (CPU) | requests | ratio |",
             "|---|---|---|---|---|---|"]
    for name, case in results["cases"].items():
        for impl, r in case.items():
            if "failed" in r:
                lines.append(f"| {name} | {impl} | failed: {r['failed']} | | | |")
                continue
            a, b = r["0ms"], r[ms]
            lines.append(f"| {name} | {impl} | {a['wall']:.2f} s ({a['cpu']:.2f}) | "
                         f"{b['wall']:.2f} s ({b['cpu']:.2f}) | {b['requests']} | "
                         f"**{b['wall'] / a['wall']:.2f}x** |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(prog="python -m bench.latency", description=__doc__.split("\n")[0])
    ap.add_argument("--only", nargs="+", choices=sorted(CASES), help="these cases only")
    ap.add_argument("--latency", type=float, default=0.05, help="seconds added per request")
    ap.add_argument("--impl", nargs="+", choices=["ours", "reference"],
                    default=["ours", "reference"])
    args = ap.parse_args(argv)
    results = measure_latency(args.only or list(CASES), args.latency, args.impl)
    earlier = RESULTS / "latency.json"
    same_delay = earlier.exists() and json.loads(earlier.read_text()).get("latency") == results["latency"]
    out = save_results("latency.json", results, keep="cases" if same_delay else None)
    print(format_table(results))
    print(f"\nresults in {out.relative_to(ROOT)}")


if __name__ == "__main__":
    main()
