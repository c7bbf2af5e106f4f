"""Skeletons: forge + merge on the 512^3 connectomics segmentation (issue #5).

Workflows (fresh copy of the input per run, ours and reference alternating,
2 workers, durable local queue)::

    skeleton-unsharded:
      igneous skeleton forge file://SRC --queue Q --scale 4 --const 10
      igneous -p 2 execute -x -q Q
      igneous skeleton merge file://SRC --queue Q --min-cable-length 1000 --tick-threshold 3500
      igneous -p 2 execute -x -q Q

    skeleton-sharded: the same with ``forge --sharded`` and ``merge-sharded``.

Each side uses its own default task shape (the reference's is 512^3: the
whole volume is one forge task). Every command is killed after ``--timeout``
seconds (default 1200) and reported as "timed out"; the reference did not
finish forge on this volume in 28 minutes during development.

Quality (after the runs, from the kept run directories): each side's
skeletons against kimimaro on the whole volume in memory with the same
parameters (same postprocess thresholds), as total cable length, vertex count
and the share of labels within 5%. The whole-volume run takes several minutes
and is cached in ``.bench/cache/``.

    python -m bench.skeleton [--only unsharded|sharded] [--timeout 1200] [--repeat 1]
    python -m bench.skeleton --only unsharded --cutout 192   # the reference finishes here

With ``--cutout N`` both sides run on the low N^3 corner; where both finish,
the report compares them per label: each against whole-volume kimimaro on the
cutout, and ours against the reference's skeletons (cable length ratios), so
the seams of the two can be told apart.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
from pathlib import Path

from bench.harness import BENCH, ROOT, RUNS

SCALE, CONST, DUST_VOXELS = 4, 10, 1000
MIN_CABLE, TICK = 1000, 3500
FORGE = ("{igneous} skeleton forge file://{src} --queue {queue_url} "
         f"--scale {SCALE} --const {CONST} --dust-threshold {DUST_VOXELS}")
EXECUTE = "{igneous} -p 2 execute -x -q {queue_url}"
MERGE_OPTS = f"--queue {{queue_url}} --min-cable-length {MIN_CABLE} --tick-threshold {TICK}"
CACHE = BENCH / "cache"


def _workflow(kind: str, timeout: float, source: Path | None = None):
    from bench import inputs
    from bench.harness import Step, Workflow, fresh_copy

    sharded = kind == "sharded"
    forge = FORGE + (" --sharded" if sharded else "")
    merge = ("{igneous} skeleton merge-sharded file://{src} " if sharded
             else "{igneous} skeleton merge file://{src} ") + MERGE_OPTS

    def prepare(run_dir: Path, impl):
        src = fresh_copy(source or inputs.ensure("seg"), run_dir / "src")
        (src / inputs.MARKER).unlink(missing_ok=True)
        return {"src": src, "queue": run_dir / "queue"}

    def same(cmd):
        return {"ours": cmd, "reference": cmd}

    probe = "{igneous} skeleton merge-sharded --help" if sharded else "{igneous} skeleton merge --help"
    return Workflow(
        name=f"skeleton-{kind}",
        description=f"skeleton forge + {'merge-sharded' if sharded else 'merge'}, "
                    f"{source.name if source else '512^3 connectomics segmentation'}, 2 workers",
        steps=[Step("forge", same(forge)), Step("forge-exec", same(EXECUTE)),
               Step("merge", same(merge)), Step("merge-exec", same(EXECUTE))],
        prepare=prepare,
        compare=None,  # quality is measured against whole-volume kimimaro instead
        probe={"ours": probe, "reference": probe},
        timeout=timeout,
    )


def workflows(timeout: float = 1200, source: Path | None = None) -> list:
    """Called by bench.harness.load_workflows."""
    return [_workflow(kind, timeout, source) for kind in ("unsharded", "sharded")]


# -- quality ----------------------------------------------------------------------

def whole_volume(path: Path) -> dict:
    """label -> (cable length, vertex count) of kimimaro on the whole layer, cached."""
    key = f"skeleton_whole_{path.name}_s{SCALE}_c{CONST}_d{DUST_VOXELS}_m{MIN_CABLE}_t{TICK}.json"
    cached = CACHE / key
    if cached.exists():
        return {int(k): tuple(v) for k, v in json.loads(cached.read_text()).items()}
    import kimimaro
    import numpy as np
    from cloudvolume import CloudVolume

    cv = CloudVolume(f"file://{path}", progress=False)
    labels = np.asfortranarray(cv[:, :, :][..., 0])
    res = cv.resolution
    skels = kimimaro.skeletonize(
        labels, teasar_params={"scale": SCALE, "const": CONST * 1.0},
        anisotropy=res, dust_threshold=DUST_VOXELS, fix_branching=True, fix_borders=True,
        progress=False, parallel=2,
    )
    out = {}
    for label, s in skels.items():
        s = kimimaro.postprocess(s, dust_threshold=MIN_CABLE, tick_threshold=TICK)
        if not s.empty():
            out[int(label)] = (float(s.cable_length()), int(len(s.vertices)))
    CACHE.mkdir(parents=True, exist_ok=True)
    cached.write_text(json.dumps({str(k): v for k, v in out.items()}))
    return out


def lengths(layer: Path, labels) -> dict:
    """label -> (cable length, vertex count) of a layer's skeletons (missing labels left out)."""
    from cloudvolume import CloudVolume

    cv = CloudVolume(f"file://{layer}", progress=False)
    got = {}
    for label in labels:
        try:
            s = cv.skeleton.get(label)
        except Exception:  # noqa: BLE001 - a missing label is a finding, not a crash
            continue
        got[label] = (float(s.cable_length()), int(len(s.vertices)))
    return got


def quality(layer: Path, whole: dict, against: str = "whole-volume") -> list[str]:
    """Cable length and vertex count of a layer's skeletons vs ``whole`` (label -> (cable, vertices))."""
    import numpy as np

    got = lengths(layer, whole)
    missing = len(set(whole) - set(got))
    wc = sum(v[0] for v in whole.values())
    wv = sum(v[1] for v in whole.values())
    oc = sum(v[0] for v in got.values())
    ov = sum(v[1] for v in got.values())
    ratios = np.array([got[k][0] / whole[k][0] for k in got if whole[k][0] > 0])
    within = float(np.mean(np.abs(ratios - 1) <= 0.05)) if ratios.size else 0.0
    p = (lambda q: float(np.percentile(ratios, q))) if ratios.size else (lambda q: float("nan"))
    return [f"labels: {len(got)} of {len(whole)} ({missing} missing)",
            f"cable length: {oc / 1e6:.2f} mm vs {wc / 1e6:.2f} mm {against} "
            f"({oc / wc - 1:+.1%})",
            f"vertices: {ov:,} vs {wv:,} ({ov / wv - 1:+.1%})",
            f"labels within 5% cable length: {within:.0%}; per-label ratio median "
            f"{p(50):.3f}, 5th-95th percentile {p(5):.3f}-{p(95):.3f}"]


def against_reference(ours: Path, ref: Path, whole: dict) -> list[str]:
    """Both sides per label against whole-volume kimimaro, then ours against the reference's."""
    ref_lengths = lengths(ref, whole)
    return (["ours vs whole-volume kimimaro:"] + quality(ours, whole)
            + ["reference vs whole-volume kimimaro:"] + quality(ref, whole)
            + ["ours vs the reference (labels the reference has):"]
            + quality(ours, ref_lengths, against="reference"))


def _child(*args: str) -> str:
    """Run ``python -m bench.skeleton ARGS`` (quality checks are big: keep the harness small)."""
    r = subprocess.run([sys.executable, "-m", "bench.skeleton", *args],
                       cwd=ROOT, capture_output=True, text=True, check=False)
    body = r.stdout if r.returncode == 0 else f"failed: {r.stderr.strip()[-400:]}"
    return "    " + body.strip().replace("\n", "\n    ")


def report_quality(names: list[str], base: Path, results: list[dict]) -> None:
    """Quality lines for every kept run of ``names``; per label against the
    reference's skeletons where both sides finished."""
    finished = {(r["workflow"], run["impl"]) for r in results for run in r["runs"]
                if run["ok"] and run["repeat"] == 0}
    for name in names:
        runs = {d.name: d / "src" for d in sorted((RUNS / name).glob("*-0"))
                if (d / "src" / "info").exists()}
        ours_src, ref_src = runs.get("ours-0"), runs.get("reference-0")
        both = {(name, "ours"), (name, "reference")} <= finished
        if ours_src is not None and ref_src is not None and both:
            print(f"[{name}] per label: ours, the reference, whole-volume kimimaro on {base.name}:")
            print(_child("compare", str(ours_src), str(ref_src), str(base)), flush=True)
            continue
        for run_name, src in runs.items():
            print(f"[{name}] {run_name} quality vs whole-volume kimimaro:")
            print(_child("quality", str(src), str(base)), flush=True)


def unfinished(results: list[dict], timeout: float) -> list[str]:
    """One line per run whose step timed out or failed (the tables show only runs that finished)."""
    lines = []
    for result in results:
        for run in result["runs"]:
            for label, step in run["steps"].items():
                if step.get("timed_out"):
                    lines.append(f"[{result['workflow']}] {run['impl']} run {run['repeat'] + 1}: "
                                 f"{label} did not finish within {timeout:.0f} s "
                                 f"(peak tree RSS {step['peak_tree_rss'] / 2**20:.0f} MB)")
                elif step.get("returncode"):
                    lines.append(f"[{result['workflow']}] {run['impl']} run {run['repeat'] + 1}: "
                                 f"{label} failed (exit {step['returncode']})")
    return lines


def main(argv: list[str] | None = None) -> None:
    from bench import harness, inputs

    argv = sys.argv[1:] if argv is None else argv
    if argv[:1] == ["quality"]:  # internal: quality LAYER [BASE]
        base = Path(argv[2]) if len(argv) > 2 else inputs.ensure("seg")
        print("\n".join(quality(Path(argv[1]), whole_volume(base))))
        return
    if argv[:1] == ["compare"]:  # internal: compare OURS REF BASE
        print("\n".join(against_reference(Path(argv[1]), Path(argv[2]), whole_volume(Path(argv[3])))))
        return
    ap = argparse.ArgumentParser(prog="python -m bench.skeleton", description=__doc__.split("\n")[0])
    ap.add_argument("--only", choices=["unsharded", "sharded"], help="one workflow only")
    ap.add_argument("--timeout", type=float, default=1200,
                    help="seconds before a command is killed (default 1200)")
    ap.add_argument("--no-quality", action="store_true",
                    help="skip the comparison with whole-volume kimimaro")
    ap.add_argument("--cutout", type=int, default=None,
                    help="use the low N^3 corner (small enough for the reference to finish)")
    harness.add_common_args(ap)
    ap.set_defaults(repeat=1)
    args = ap.parse_args(argv)
    if args.cutout:
        from bench.mesh import cutout_input

        source = base = cutout_input(args.cutout)
    else:
        source, base = None, inputs.ensure("seg")
    for wf in workflows(args.timeout, source):
        harness.register(wf)  # with this timeout, before load_workflows' defaults
    kinds = [args.only] if args.only else ["unsharded", "sharded"]
    names = [f"skeleton-{k}" for k in kinds]
    results = harness.run_and_report(names, repeat=args.repeat, compare=False,
                                     keep=args.keep or not args.no_quality, impls=args.impl)
    for line in unfinished(results, args.timeout):
        print(line)
    if not args.no_quality:
        report_quality(names, base, results)


if __name__ == "__main__":
    main()
