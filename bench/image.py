"""Image pyramids and transfers on the two benchmark layers (issue #3).

Workflows (each on a fresh copy of the input, ours and reference alternating):

* ``image-downsample`` / ``seg-downsample``: 3 more mips in place::

      igneous image downsample file://SRC --mip 0 --num-mips 3 --queue Q
      igneous -p 2 execute -x Q

* ``image-xfer`` / ``seg-xfer``: rechunk to 64^3 with downsamples::

      igneous image xfer file://SRC file://DEST --chunk-size 64,64,64 --queue Q
      igneous -p 2 execute -x Q

The reference gets ``fq://Q``, ours the plain directory. After the first pair
of runs the outputs are compared voxel for voxel at every mip the reference
wrote (and the scale metadata too). If ``igneous image downsample --help`` (or
``xfer``) fails for ours, ours is reported as not available.

    python -m bench.image [--only downsample|xfer] [--data image|seg] [--repeat 2]
"""

from __future__ import annotations

import argparse
import subprocess
import sys
from pathlib import Path

from bench.harness import ROOT

DOWNSAMPLE = [
    "{igneous} image downsample file://{src} --mip 0 --num-mips 3 --queue {queue_url}",
    "{igneous} -p 2 execute -x -q {queue_url}",
]
XFER = [
    "{igneous} image xfer file://{src} file://{dest} --chunk-size 64,64,64 --queue {queue_url}",
    "{igneous} -p 2 execute -x -q {queue_url}",
]
SCALE_KEYS = ("size", "voxel_offset", "resolution", "chunk_sizes", "encoding")


def compare_in_subprocess(ours: Path, ref: Path, *, mips: list[int] | None = None) -> list[str]:
    """``compare_layers`` in a child process.

    Reading whole layers makes a process large; a large harness would pass its
    size on to every later command through fork, inflating their ``ru_maxrss``.
    """
    argv = [sys.executable, "-m", "bench.image", "compare", str(ours), str(ref)]
    argv += [str(m) for m in mips or []]
    r = subprocess.run(argv, cwd=ROOT, capture_output=True, text=True, check=False)
    if r.returncode != 0:
        return [f"comparison failed (exit {r.returncode}): {r.stderr.strip()[-500:]}"]
    return r.stdout.splitlines()


def compare_layers(ours: Path, ref: Path, *, mips: list[int] | None = None) -> list[str]:
    """Voxel-for-voxel comparison of two layers at each mip (default: all of ref's)."""
    import numpy as np
    from cloudvolume import CloudVolume

    lines = []
    try:
        vo = CloudVolume(f"file://{ours}", progress=False)
        vr = CloudVolume(f"file://{ref}", progress=False)
    except Exception as e:  # noqa: BLE001 - report, don't crash the benchmark
        return [f"cannot open layers: {type(e).__name__}: {e}"]
    so, sr = vo.info["scales"], vr.info["scales"]
    if len(so) != len(sr):
        lines.append(f"number of mips differs: ours {len(so)}, reference {len(sr)}")
    if vo.info.get("data_type") != vr.info.get("data_type"):
        lines.append(f"data_type differs: ours {vo.info.get('data_type')}, "
                     f"reference {vr.info.get('data_type')}")
    for mip in (mips if mips is not None else range(len(sr))):
        if mip >= len(so):
            lines.append(f"mip {mip}: missing in ours")
            continue
        meta = [k for k in SCALE_KEYS if so[mip].get(k) != sr[mip].get(k)]
        meta_note = ""
        if meta:
            meta_note = "; metadata differs: " + ", ".join(
                f"{k} ours={so[mip].get(k)} ref={sr[mip].get(k)}" for k in meta)
        try:
            a = CloudVolume(f"file://{ours}", mip=mip, progress=False, parallel=2)[:]
            b = CloudVolume(f"file://{ref}", mip=mip, progress=False, parallel=2)[:]
        except Exception as e:  # noqa: BLE001
            lines.append(f"mip {mip}: cannot read: {type(e).__name__}: {e}{meta_note}")
            continue
        shape = "x".join(str(x) for x in b.shape[:3])
        if a.shape != b.shape:
            lines.append(f"mip {mip} ({shape}): shape differs, ours {a.shape}{meta_note}")
        elif np.array_equal(a, b):
            lines.append(f"mip {mip} ({shape}, {sr[mip]['encoding']}): identical{meta_note}")
        else:
            diff = a != b
            n = int(diff.sum())
            worst = int(np.abs(a.astype(np.int64) - b.astype(np.int64)).max())
            lines.append(f"mip {mip} ({shape}): NOT identical: {n:,} voxels differ "
                         f"({n / diff.size:.4%}), max |diff| {worst}{meta_note}")
    return lines


def _workflow(data: str, op: str):
    from bench import inputs
    from bench.harness import Step, Workflow, fresh_copy

    templates = DOWNSAMPLE if op == "downsample" else XFER

    def prepare(run_dir: Path, impl):
        src = fresh_copy(inputs.ensure(data), run_dir / "src")
        (src / inputs.MARKER).unlink(missing_ok=True)
        return {"src": src, "dest": run_dir / "dest", "queue": run_dir / "queue"}

    def compare(ctx_ours, ctx_ref):
        if op == "downsample":
            return compare_in_subprocess(ctx_ours["src"], ctx_ref["src"], mips=[1, 2, 3])
        return compare_in_subprocess(ctx_ours["dest"], ctx_ref["dest"])

    what = {"image": "1024x1024x128 uint8 image", "seg": "512^3 connectomics segmentation"}[data]
    desc = {"downsample": "downsample 3 mips", "xfer": "xfer to 64^3 chunks + downsamples"}[op]
    probe = f"{{igneous}} image {op} --help"
    return Workflow(
        name=f"{data}-{op}",
        description=f"{desc}, {what}",
        steps=[Step("create", {"ours": templates[0], "reference": templates[0]}),
               Step("execute", {"ours": templates[1], "reference": templates[1]})],
        prepare=prepare,
        compare=compare,
        probe={"ours": probe, "reference": probe},
        timeout=1200,
    )


def workflows() -> list:
    """Called by bench.harness.load_workflows."""
    return [_workflow(data, op) for op in ("downsample", "xfer") for data in ("image", "seg")]


def main(argv: list[str] | None = None) -> None:
    from bench import harness, inputs

    argv = sys.argv[1:] if argv is None else argv
    if argv[:1] == ["compare"]:  # internal: compare OURS REF [MIP ...]
        mips = [int(m) for m in argv[3:]] or None
        print("\n".join(compare_layers(Path(argv[1]), Path(argv[2]), mips=mips)))
        return
    ap = argparse.ArgumentParser(prog="python -m bench.image", description=__doc__.split("\n")[0])
    ap.add_argument("--only", choices=["downsample", "xfer"], help="one operation only")
    ap.add_argument("--data", choices=["image", "seg"], help="one input layer only")
    harness.add_common_args(ap)
    args = ap.parse_args(argv)
    ops = [args.only] if args.only else ["downsample", "xfer"]
    datas = [args.data] if args.data else ["image", "seg"]
    for data in datas:  # build inputs before any timing starts
        inputs.ensure(data)
    names = [f"{d}-{o}" for o in ops for d in datas]
    harness.run_and_report(names, repeat=args.repeat, compare=not args.no_compare,
                           keep=args.keep, impls=args.impl)


if __name__ == "__main__":
    main()
