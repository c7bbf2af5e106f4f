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
parameters (``TEASAR``: the CLIs' defaults, not kimimaro.trace's; the same
postprocess thresholds), as total cable length, vertex count and the share
of labels within 5%. The whole-volume run takes several minutes and is cached
in ``.bench/cache/``.

    python -m bench.skeleton [--only unsharded|sharded] [--timeout 1200] [--repeat 1]
    python -m bench.skeleton --only unsharded --cutout 256              # one task per side
    python -m bench.skeleton --only unsharded --cutout 256 --shape 128  # 8 tasks: seams

With ``--cutout N`` both sides run on the low N^3 corner; where both finish,
the report compares them per label: each against whole-volume kimimaro on the
cutout, and ours against the reference's skeletons (cable length ratios:
share within 5% and 10%, percentiles, labels inside vs crossing a task
boundary, the worst labels with their size and the seams they cross), so the
seams of the two can be told apart. ``--shape N`` gives both sides N^3 forge
tasks (default: each its own, ours 256^3, the reference 512^3). The
per-label figures are also saved as JSON in ``.bench/results/``.
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
# TEASAR as both CLIs run it with the options above and their defaults for the
# rest (penalty field, somata): the yardstick must use them too, not
# kimimaro.trace's own defaults (pdrf_scale 5000, pdrf_exponent 16, somata
# accepted at 4000 nm and invalidated with scale 0.5, const 0)
TEASAR = {"scale": SCALE, "const": CONST, "pdrf_scale": 100000, "pdrf_exponent": 4,
          "soma_detection_threshold": 1100, "soma_acceptance_threshold": 3500,
          "soma_invalidation_scale": 1.0, "soma_invalidation_const": 300}
FORGE = ("{igneous} skeleton forge file://{src} --queue {queue_url} "
         f"--scale {SCALE} --const {CONST} --dust-threshold {DUST_VOXELS}")
EXECUTE = "{igneous} -p 2 execute -x -q {queue_url}"
MERGE_OPTS = f"--queue {{queue_url}} --min-cable-length {MIN_CABLE} --tick-threshold {TICK}"
CACHE = BENCH / "cache"


def _workflow(kind: str, timeout: float, source: Path | None = None, shape: int | None = None):
    from bench import inputs
    from bench.harness import Step, Workflow, fresh_copy

    sharded = kind == "sharded"
    forge = FORGE + (" --sharded" if sharded else "") + (f" --shape {shape},{shape},{shape}" if shape else "")
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


def workflows(timeout: float = 1200, source: Path | None = None, shape: int | None = None) -> list:
    """Called by bench.harness.load_workflows."""
    return [_workflow(kind, timeout, source, shape) for kind in ("unsharded", "sharded")]


# -- quality ----------------------------------------------------------------------

def whole_volume(path: Path) -> dict:
    """label -> (cable length, vertex count) of kimimaro on the whole layer, cached."""
    key = f"skeleton_whole_{path.name}_cli_s{SCALE}_c{CONST}_d{DUST_VOXELS}_m{MIN_CABLE}_t{TICK}.json"
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
        labels, teasar_params=TEASAR,
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


def label_extents(base: Path) -> dict[int, tuple[int, list[int], list[int]]]:
    """label -> (voxels, bounding box low corner, high corner inclusive) in ``base``."""
    import cc3d
    import fastremap
    import numpy as np
    from cloudvolume import CloudVolume

    labels = CloudVolume(f"file://{base}", progress=False)[:, :, :][..., 0]
    renumbered, mapping = fastremap.renumber(np.asfortranarray(labels), in_place=False)
    stats = cc3d.statistics(renumbered)
    out = {}
    for label, new in mapping.items():
        if new == 0:
            continue
        box = stats["bounding_boxes"][new]
        out[int(label)] = (int(stats["voxel_counts"][new]), [b.start for b in box],
                           [b.stop - 1 for b in box])
    return out


def seams_crossed(lo: list[int], hi: list[int], shape: int, size: list[int]) -> int:
    """Task boundaries (planes at multiples of ``shape``) inside a label's bounding box."""
    n = 0
    for a in range(3):
        last = (size[a] - 1) // shape  # planes k * shape with 0 < k <= last exist
        n += max(0, min(hi[a] // shape, last) - lo[a] // shape)
    return n


def _ratio_row(name: str, ratios, missing: int) -> str:
    import numpy as np

    r = np.asarray(ratios, dtype=float)
    if r.size == 0:
        return f"| {name} | 0 | | | | | {missing} |"
    dev = np.abs(r - 1)
    q = np.percentile(r, [5, 25, 50, 75, 95])
    return (f"| {name} | {r.size} | {np.mean(dev <= 0.05):.0%} ({int(np.sum(dev <= 0.05))}) | "
            f"{np.mean(dev <= 0.10):.0%} ({int(np.sum(dev <= 0.10))}) | "
            f"{q[0]:.3f} / {q[1]:.3f} / {q[2]:.3f} / {q[3]:.3f} / {q[4]:.3f} | "
            f"{np.percentile(dev, 99):.3f} | {missing} |")


def against_reference(ours: Path, ref: Path, base: Path, whole: dict,
                      shapes: tuple[int, int] = (256, 512)) -> list[str]:
    """Per label: each side against whole-volume kimimaro, and ours against the
    reference's; the worst labels with their size and the task seams they cross
    (``shapes``: each side's forge task edge). Also saved as JSON in RESULTS."""
    import numpy as np

    from bench.harness import save_results

    o, r = lengths(ours, whole), lengths(ref, whole)
    ext = label_extents(base)
    size = [max(hi[a] for _, _, hi in ext.values()) + 1 for a in range(3)]
    rows = []
    for label, (cable, _) in sorted(whole.items()):
        voxels, lo, hi = ext.get(label, (0, [0, 0, 0], [0, 0, 0]))
        rows.append({"label": label, "voxels": voxels, "kimimaro": cable,
                     "ours": o.get(label, (None,))[0], "reference": r.get(label, (None,))[0],
                     "seams_ours": seams_crossed(lo, hi, shapes[0], size),
                     "seams_reference": seams_crossed(lo, hi, shapes[1], size)})
    both = [x for x in rows if x["ours"] is not None and x["reference"] is not None]
    lines = [f"{len(whole)} labels skeletonized by whole-volume kimimaro on {base.name}; "
             f"forge task edge ours {shapes[0]}, reference {shapes[1]}",
             "| per-label cable length ratio | labels | within 5% | within 10% | "
             "p5 / p25 / median / p75 / p95 | p99 abs. dev. | missing |",
             "|---|---:|---:|---:|---:|---:|---:|",
             _ratio_row("ours / kimimaro", [x["ours"] / x["kimimaro"] for x in rows if x["ours"]],
                        sum(x["ours"] is None for x in rows)),
             _ratio_row("reference / kimimaro",
                        [x["reference"] / x["kimimaro"] for x in rows if x["reference"]],
                        sum(x["reference"] is None for x in rows)),
             _ratio_row("ours / reference", [x["ours"] / x["reference"] for x in both], 0)]
    for side in ("ours", "reference"):
        for crossing in (False, True):
            sel = [x for x in rows if x[side] and (x[f"seams_{side}"] > 0) == crossing]
            dev = np.array([abs(x[side] / x["kimimaro"] - 1) for x in sel])
            if dev.size:
                lines.append(f"{side}, labels {'crossing' if crossing else 'inside'} a task "
                             f"boundary: {dev.size}, within 5% {np.mean(dev <= .05):.0%}, "
                             f"median |ratio - 1| {np.median(dev):.3f}, "
                             f"total cable {sum(x[side] for x in sel) / sum(x['kimimaro'] for x in sel) - 1:+.2%}")
    d_o = np.array([abs(x["ours"] / x["kimimaro"] - 1) for x in both])
    d_r = np.array([abs(x["reference"] / x["kimimaro"] - 1) for x in both])
    lines.append(f"closer to kimimaro by more than 1 point: ours {int(np.sum(d_o < d_r - .01))}, "
                 f"reference {int(np.sum(d_r < d_o - .01))}, within 1 point "
                 f"{int(np.sum(np.abs(d_o - d_r) <= .01))} (of {len(both)} on both sides)")
    tot = {k: sum(x[k] for x in both) for k in ("ours", "reference", "kimimaro")}
    lines.append(f"total cable on labels both have: ours {tot['ours'] / 1e3:.1f} um, reference "
                 f"{tot['reference'] / 1e3:.1f} um, kimimaro {tot['kimimaro'] / 1e3:.1f} um")
    for side in ("ours", "reference"):
        worst = sorted((x for x in rows if x[side]), key=lambda x: -abs(x[side] / x["kimimaro"] - 1))
        lines.append(f"worst 10 labels, {side} / kimimaro (label: ratio, other side's ratio, "
                     "kimimaro cable um, voxels, seams crossed by ours/reference tasks):")
        other = "reference" if side == "ours" else "ours"
        for x in worst[:10]:
            oth = f"{x[other] / x['kimimaro']:.3f}" if x[other] else "missing"
            lines.append(f"  {x['label']}: {x[side] / x['kimimaro']:.3f}, {oth}, "
                         f"{x['kimimaro'] / 1e3:.1f}, {x['voxels']:,}, "
                         f"{x['seams_ours']}/{x['seams_reference']}")
    for side in ("ours", "reference"):
        gone = [x for x in rows if x[side] is None]
        if gone:
            lines.append(f"missing in {side}: " + ", ".join(
                f"{x['label']} ({x['kimimaro'] / 1e3:.2f} um, {x['voxels']:,} vx)" for x in gone[:20]))
    out = save_results(f"skeleton-labels-{base.name}-{shapes[0]}-{shapes[1]}.json",
                       {"base": str(base), "shapes": shapes, "labels": rows})
    lines.append(f"per-label figures saved to {out}")
    return lines


def _child(*args: str) -> str:
    """Run ``python -m bench.skeleton ARGS`` (quality checks are big: keep the harness small)."""
    r = subprocess.run([sys.executable, "-m", "bench.skeleton", *args],
                       cwd=ROOT, capture_output=True, text=True, check=False)
    body = r.stdout if r.returncode == 0 else f"failed: {r.stderr.strip()[-400:]}"
    return "    " + body.strip().replace("\n", "\n    ")


def report_quality(names: list[str], base: Path, results: list[dict],
                   shapes: tuple[int, int] = (256, 512)) -> None:
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
            print(_child("compare", str(ours_src), str(ref_src), str(base), *map(str, shapes)), flush=True)
            continue
        for run_name, src in runs.items():
            if (name, run_name.rsplit("-", 1)[0]) not in finished:
                continue  # left by an earlier invocation, or did not finish in this one
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
    if argv[:1] == ["compare"]:  # internal: compare OURS REF BASE [OURS_SHAPE REF_SHAPE]
        base = Path(argv[3])
        shapes = (int(argv[4]), int(argv[5])) if len(argv) > 5 else (256, 512)
        print("\n".join(against_reference(Path(argv[1]), Path(argv[2]), base, whole_volume(base),
                                           shapes)))
        return
    ap = argparse.ArgumentParser(prog="python -m bench.skeleton", description=__doc__.split("\n")[0])
    ap.add_argument("--only", choices=["unsharded", "sharded"], help="one workflow only")
    ap.add_argument("--timeout", type=float, default=1200,
                    help="seconds before a command is killed (default 1200)")
    ap.add_argument("--no-quality", action="store_true",
                    help="skip the comparison with whole-volume kimimaro")
    ap.add_argument("--cutout", type=int, default=None,
                    help="use the low N^3 corner (small enough for the reference to finish)")
    ap.add_argument("--shape", type=int, default=None,
                    help="forge task edge N (N^3 tasks) for both sides; default: each side's own "
                         "(ours 256, the reference 512)")
    harness.add_common_args(ap)
    ap.set_defaults(repeat=1)
    args = ap.parse_args(argv)
    if args.cutout:
        from bench.mesh import cutout_input

        source = base = cutout_input(args.cutout)
    else:
        source, base = None, inputs.ensure("seg")
    for wf in workflows(args.timeout, source, args.shape):
        harness.register(wf)  # with this timeout, before load_workflows' defaults
    kinds = [args.only] if args.only else ["unsharded", "sharded"]
    names = [f"skeleton-{k}" for k in kinds]
    results = harness.run_and_report(names, repeat=args.repeat, compare=False,
                                     keep=args.keep or not args.no_quality, impls=args.impl)
    for line in unfinished(results, args.timeout):
        print(line)
    if not args.no_quality:
        report_quality(names, base, results, (args.shape or 256, args.shape or 512))


if __name__ == "__main__":
    main()
