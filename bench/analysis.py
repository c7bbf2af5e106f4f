"""Whole-volume analysis on the 512^3 connectomics segmentation (issue #6).

Workflows (each on a fresh copy of the input, ours and reference alternating):

* ``seg-ccl``: 6-connected components of the whole volume, every step through
  a durable local queue with 2 workers; ``auto`` enqueues and executes::

      igneous -p 2 image ccl auto file://SRC file://DEST --shape 256,256,256 \\
          --encoding crackle --queue Q

  (crackle: the reference's environment has no compresso codec.) Shape 256^3
  gives 8 blocks, so both workers have something to do; the default 512^3
  would be a single block.

* ``seg-voxels``: per-label voxel counts::

      igneous image voxels count file://SRC --queue Q
      igneous -p 2 execute -x -q Q
      igneous image voxels sum file://SRC -o OUT.im

The reference gets ``fq://Q``, ours the plain directory. After the first pair
of runs: the two CCL outputs must be equal up to a bijection of labels, and
each equal to cc3d.connected_components(connectivity=6) of the whole array;
the two IntMaps must hold the same counts, equal to numpy's.

    python -m bench.analysis [--only ccl|voxels] [--shape 256,256,256] [--input DIR] [--repeat 2]

``--input DIR`` runs on another layer (e.g. a small cutout, to check the
workflow quickly).
"""

from __future__ import annotations

import argparse
import subprocess
import sys
from pathlib import Path

from bench.harness import ROOT

CCL = "{igneous} -p 2 image ccl auto file://{src} file://{dest} --shape {shape} " \
      "--encoding crackle --queue {queue_url}"
COUNT = [
    "{igneous} image voxels count file://{src} --queue {queue_url}",
    "{igneous} -p 2 execute -x -q {queue_url}",
    "{igneous} image voxels sum file://{src} -o {counts}",
]


def _in_subprocess(*args: str) -> list[str]:
    """Compare in a child process so the harness stays small (see bench.image)."""
    argv = [sys.executable, "-m", "bench.analysis", *args]
    r = subprocess.run(argv, cwd=ROOT, capture_output=True, text=True, check=False)
    if r.returncode != 0:
        return [f"comparison failed (exit {r.returncode}): {r.stderr.strip()[-500:]}"]
    return r.stdout.splitlines()


def _read(path: Path):
    import numpy as np
    from cloudvolume import CloudVolume

    return np.asarray(CloudVolume(f"file://{path}", progress=False, parallel=2)[:])[..., 0]


def _bijective(a, b) -> str:
    import fastremap
    import numpy as np

    if a.shape != b.shape:
        return f"shapes differ: {a.shape} vs {b.shape}"
    if not np.array_equal(a == 0, b == 0):
        return f"background differs in {int(((a == 0) != (b == 0)).sum()):,} voxels"
    pairs = fastremap.unique((a.astype(np.uint64) << np.uint64(32)) | b.astype(np.uint64))
    na, nb = len(fastremap.unique(a)), len(fastremap.unique(b))
    if len(pairs) == na == nb:
        return f"same objects ({na - 1:,}) up to relabeling"
    return f"NOT the same objects: {na - 1:,} vs {nb - 1:,} labels, {len(pairs):,} label pairs"


def compare_ccl(src: Path, ours: Path, ref: Path) -> list[str]:
    import cc3d

    a, b = _read(ours), _read(ref)
    lines = [f"ours vs reference: {_bijective(a, b)}"]
    whole = cc3d.connected_components(_read(src), connectivity=6)
    lines.append(f"ours vs cc3d on the whole array: {_bijective(a, whole)}")
    return lines


def compare_counts(src: Path, ours: Path, ref: Path) -> list[str]:
    import fastremap
    from mapbuffer import IntMap

    def load(path: Path) -> dict[int, int]:
        try:
            return {int(k): int(v) for k, v in IntMap(path.read_bytes()).items()}
        except OSError as e:
            return {-1: e.errno or 0}

    a, b = load(ours), load(ref)
    labels, counts = fastremap.unique(_read(src), return_counts=True)
    truth = {int(k): int(v) for k, v in zip(labels, counts)}
    return [f"ours vs reference: {'identical' if a == b else 'DIFFERENT'} ({len(a):,} vs {len(b):,} labels)",
            f"ours vs numpy: {'identical' if a == truth else 'DIFFERENT'}"]


def _workflow(op: str, shape: str, source: Path | None):
    from bench import inputs
    from bench.harness import Step, Workflow, fresh_copy

    def prepare(run_dir: Path, impl):
        src = fresh_copy(source or inputs.ensure("seg"), run_dir / "src")
        (src / inputs.MARKER).unlink(missing_ok=True)
        return {"src": src, "dest": run_dir / "dest", "queue": run_dir / "queue",
                "counts": run_dir / "counts.im", "shape": shape}

    if op == "ccl":
        steps = [Step("ccl auto", {"ours": CCL, "reference": CCL})]
        probe = "{igneous} image ccl auto --help"

        def compare(o, r):
            return _in_subprocess("ccl", str(o["src"]), str(o["dest"]), str(r["dest"]))
    else:
        steps = [Step(label, {"ours": t, "reference": t})
                 for label, t in zip(("count", "execute", "sum"), COUNT)]
        probe = "{igneous} image voxels sum --help"

        def compare(o, r):
            return _in_subprocess("voxels", str(o["src"]), str(o["counts"]), str(r["counts"]))

    what = f"{source}" if source else "512^3 connectomics segmentation"
    desc = {"ccl": f"ccl auto (shape {shape}), 2 workers", "voxels": "voxels count + sum, 2 workers"}[op]
    return Workflow(name=f"seg-{op}", description=f"{desc}, {what}", steps=steps, prepare=prepare,
                    compare=compare, probe={"ours": probe, "reference": probe}, timeout=1800)


def workflows(shape: str = "256,256,256", source: Path | None = None) -> list:
    """Called by bench.harness.load_workflows."""
    return [_workflow(op, shape, source) for op in ("ccl", "voxels")]


def main(argv: list[str] | None = None) -> None:
    from bench import harness, inputs

    argv = sys.argv[1:] if argv is None else argv
    if argv[:1] in (["ccl"], ["voxels"]):  # internal: KIND SRC OURS REF
        fn = compare_ccl if argv[0] == "ccl" else compare_counts
        print("\n".join(fn(*(Path(p) for p in argv[1:4]))))
        return
    ap = argparse.ArgumentParser(prog="python -m bench.analysis", description=__doc__.split("\n")[0])
    ap.add_argument("--only", choices=["ccl", "voxels"], help="one workflow only")
    ap.add_argument("--shape", default="256,256,256", help="CCL task shape (default 256,256,256)")
    ap.add_argument("--input", type=Path, default=None, help="another input layer directory")
    harness.add_common_args(ap)
    args = ap.parse_args(argv)
    if args.input is None:
        inputs.ensure("seg")  # build before any timing starts
    for wf in workflows(args.shape, args.input and args.input.resolve()):
        harness.register(wf)
    names = [f"seg-{args.only}"] if args.only else ["seg-ccl", "seg-voxels"]
    harness.run_and_report(names, repeat=args.repeat, compare=not args.no_compare,
                           keep=args.keep, impls=args.impl)


if __name__ == "__main__":
    main()
