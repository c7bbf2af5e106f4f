"""Meshes: forge + merge on the 512^3 connectomics segmentation (issue #4).

Workflows (fresh copy of the input per run, ours and reference alternating,
2 workers, durable local queue, each side with its own defaults)::

    mesh-unsharded:
      igneous mesh forge file://SRC --queue Q
      igneous -p 2 execute -x -q Q
      igneous mesh merge file://SRC --queue Q
      igneous -p 2 execute -x -q Q

    mesh-sharded: ``forge --sharded`` then ``merge-sharded`` (default --nlod 1).

Quality (after the first pair of runs): for each side, the total triangle
count over all labels (level 0) and the simplification error measured
against zmesh's unsimplified meshes of the whole volume: the distance from
sampled original vertices to the simplified surface (99th percentile and
maximum, nm) on the largest labels; plus labels missing on either side.

    python -m bench.mesh [--only unsharded|sharded] [--cutout 192] [--repeat 1]

``--cutout N`` runs on the low N^3 corner of the segmentation instead (a quick
check; the input is built once into .bench/inputs/).
"""

from __future__ import annotations

import argparse
import subprocess
import sys
from pathlib import Path

import numpy as np

from bench.harness import ROOT

EXECUTE = "{igneous} -p 2 execute -x -q {queue_url}"
LARGEST = 12  # labels measured for the error
SAMPLES = 20000  # original vertices sampled per label


def _workflow(kind: str, source, timeout: float):
    from bench.harness import Step, Workflow, fresh_copy

    sharded = kind == "sharded"
    forge = "{igneous} mesh forge file://{src} --queue {queue_url}" + (" --sharded" if sharded else "")
    merge = "{igneous} mesh " + ("merge-sharded" if sharded else "merge") + " file://{src} --queue {queue_url}"

    def prepare(run_dir: Path, impl):
        from bench import inputs

        src = fresh_copy(source(), run_dir / "src")
        (src / inputs.MARKER).unlink(missing_ok=True)
        return {"src": src, "queue": run_dir / "queue"}

    def same(cmd):
        return {"ours": cmd, "reference": cmd}

    def compare(ctx_ours, ctx_ref):
        argv = [sys.executable, "-m", "bench.mesh", "quality", str(ctx_ours["src"]), str(ctx_ref["src"])]
        r = subprocess.run(argv, cwd=ROOT, capture_output=True, text=True, check=False)
        if r.returncode != 0:
            return [f"quality check failed: {r.stderr.strip()[-600:]}"]
        return r.stdout.splitlines()

    probe = "{igneous} mesh " + ("merge-sharded" if sharded else "merge") + " --help"
    return Workflow(
        name=f"mesh-{kind}",
        description=f"mesh forge + {'merge-sharded' if sharded else 'merge'}, connectomics "
                    "segmentation, 2 workers",
        steps=[Step("forge", same(forge)), Step("forge-exec", same(EXECUTE)),
               Step("merge", same(merge)), Step("merge-exec", same(EXECUTE))],
        prepare=prepare,
        compare=compare,
        probe={"ours": probe, "reference": probe},
        timeout=timeout,
    )


def workflows(timeout: float = 1800, source=None) -> list:
    """Called by bench.harness.load_workflows (the 512^3 input)."""
    if source is None:
        from bench import inputs

        def source():
            return inputs.ensure("seg")
    return [_workflow(kind, source, timeout) for kind in ("unsharded", "sharded")]


def cutout_input(n: int) -> Path:
    """The low n^3 corner of the benchmark segmentation as its own layer (built once)."""
    from bench import inputs

    dest = inputs.INPUTS / f"seg_cutout_{n}"
    if (dest / inputs.MARKER).exists():
        return dest
    from cloudvolume import CloudVolume

    src = CloudVolume(f"file://{inputs.ensure('seg')}", progress=False)
    data = np.asfortranarray(src[:n, :n, :n][..., 0])
    info = CloudVolume.create_new_info(1, "segmentation", str(data.dtype), src.encoding,
                                       list(src.resolution), [0, 0, 0], list(data.shape),
                                       chunk_size=list(src.chunk_size))
    cv = CloudVolume(f"file://{dest}", info=info, progress=False)
    cv.commit_info()
    cv[:, :, :] = data
    (dest / inputs.MARKER).write_text("ok")
    return dest


# -- quality ----------------------------------------------------------------------


def closest_points(p: np.ndarray, a: np.ndarray, b: np.ndarray, c: np.ndarray) -> np.ndarray:
    """Closest point of each triangle (a, b, c) to each point p (rows), by Voronoi region."""
    ab, ac = b - a, c - a

    def dots(x):
        return np.einsum("ij,ij->i", ab, x), np.einsum("ij,ij->i", ac, x)

    d1, d2 = dots(p - a)
    d3, d4 = dots(p - b)
    d5, d6 = dots(p - c)
    va, vb, vc = d3 * d6 - d5 * d4, d5 * d2 - d1 * d6, d1 * d4 - d3 * d2
    denom = va + vb + vc
    denom = np.where(np.abs(denom) < 1e-30, 1e-30, denom)
    out = a + ab * (vb / denom)[:, None] + ac * (vc / denom)[:, None]
    with np.errstate(divide="ignore", invalid="ignore"):
        edges = [
            ((vc <= 0) & (d1 >= 0) & (d3 <= 0), a, ab, d1 / (d1 - d3)),
            ((vb <= 0) & (d2 >= 0) & (d6 <= 0), a, ac, d2 / (d2 - d6)),
            ((va <= 0) & (d4 >= d3) & (d5 >= d6), b, c - b, (d4 - d3) / ((d4 - d3) + (d5 - d6))),
        ]
        for mask, start, direction, t in edges:
            out[mask] = (start + direction * t[:, None])[mask]
    for mask, corner in (((d1 <= 0) & (d2 <= 0), a), ((d3 >= 0) & (d4 <= d3), b),
                         ((d6 >= 0) & (d5 <= d6), c)):
        out[mask] = corner[mask]
    return out


def subdivide(tri: np.ndarray, max_edge: float) -> np.ndarray:
    """The same surface as triangles (n, 3, 3) with no edge longer than ``max_edge``
    (midpoint splits into four)."""
    done = []
    while len(tri):
        edges = np.linalg.norm(tri - np.roll(tri, 1, axis=1), axis=2).max(axis=1)
        done.append(tri[edges <= max_edge])
        a, b, c = (tri[edges > max_edge][:, i] for i in range(3))
        ab, bc, ca = (a + b) / 2, (b + c) / 2, (c + a) / 2
        tri = np.concatenate([np.stack(t, axis=1) for t in ((a, ab, ca), (ab, b, bc), (ca, bc, c), (ab, bc, ca))])
    return np.concatenate(done)


def surface_distance(points: np.ndarray, verts: np.ndarray, faces: np.ndarray, k: int = 8,
                     max_edge: float = 64.0) -> np.ndarray:
    """Distance from each point to the mesh, over the k triangles with the nearest centroids.

    Long triangles (flat areas decimate into a few, microns long) are split
    first: the triangle under a point can have its centroid far away, and the
    nearest-centroid shortcut would then report a distance far too large.
    """
    from scipy.spatial import cKDTree

    tri = subdivide(verts[faces].astype(np.float64), max_edge)
    k = min(k, len(faces))
    _, idx = cKDTree(tri.mean(axis=1)).query(points, k=k)
    idx = idx.reshape(len(points), -1)
    best = np.full(len(points), np.inf)
    for j in range(idx.shape[1]):
        t = tri[idx[:, j]]
        best = np.minimum(best, np.linalg.norm(points - closest_points(points, t[:, 0], t[:, 1], t[:, 2]),
                                               axis=1))
    return best


def _read_mesh(cv, label: int):
    if cv.mesh.meta.info.get("@type") == "neuroglancer_multilod_draco":
        return cv.mesh.get(label, lod=0)[label]
    return cv.mesh.get(label)


def quality(ours: Path, ref: Path) -> list[str]:
    """Triangle counts and simplification error of both sides' meshes."""
    import zmesh
    from cloudvolume import CloudVolume

    cv = CloudVolume(f"file://{ours}", progress=False)
    data = np.asfortranarray(cv[:, :, :][..., 0])
    res = np.asarray(cv.resolution, dtype=np.float64)
    labels, counts = np.unique(data, return_counts=True)
    nonzero = labels != 0
    labels, counts = labels[nonzero], counts[nonzero]
    largest = [int(x) for x in labels[np.argsort(-counts)[:LARGEST]]]
    mesher = zmesh.Mesher(tuple(res))
    mesher.mesh(np.pad(data, 1))
    shift = (np.asarray(cv.voxel_offset) - 1 + 0.5) * res  # voxel i drawn over [i, i + 1) * res
    originals = {}
    rng = np.random.default_rng(0)
    for label in largest:
        v = mesher.get(label, reduction_factor=0).vertices + shift
        originals[label] = v[rng.choice(len(v), min(SAMPLES, len(v)), replace=False)]
    del mesher
    lines = []
    for name, path in (("ours", ours), ("reference", ref)):
        side = CloudVolume(f"file://{path}", progress=False)
        tris, missing, errs = 0, 0, []
        for label in (int(x) for x in labels):
            try:
                mesh = _read_mesh(side, label)
            except Exception:  # noqa: BLE001 - a missing mesh is a finding
                missing += 1
                continue
            tris += len(mesh.faces)
            if label in originals and len(mesh.faces):
                errs.append(surface_distance(originals[label], mesh.vertices, mesh.faces))
        err = np.concatenate(errs) if errs else np.array([np.nan])
        lines.append(f"{name}: {tris:,} triangles over {len(labels) - missing} labels "
                     f"({missing} missing); error on the {LARGEST} largest labels: "
                     f"p99 {np.nanpercentile(err, 99):.1f} nm, max {np.nanmax(err):.1f} nm")
    return lines


def main(argv: list[str] | None = None) -> None:
    from bench import harness, inputs

    argv = sys.argv[1:] if argv is None else argv
    if argv[:1] == ["quality"]:  # internal: quality OURS REF
        print("\n".join(quality(Path(argv[1]), Path(argv[2]))))
        return
    ap = argparse.ArgumentParser(prog="python -m bench.mesh", description=__doc__.split("\n")[0])
    ap.add_argument("--only", choices=["unsharded", "sharded"], help="one workflow only")
    ap.add_argument("--cutout", type=int, default=None, help="use the low N^3 corner (quick check)")
    ap.add_argument("--timeout", type=float, default=1800, help="seconds before a command is killed")
    harness.add_common_args(ap)
    ap.set_defaults(repeat=1)
    args = ap.parse_args(argv)
    if args.cutout:
        path = cutout_input(args.cutout)

        def source():
            return path
    else:
        inputs.ensure("seg")
        source = None
    for wf in workflows(args.timeout, source):
        harness.register(wf)
    kinds = [args.only] if args.only else ["unsharded", "sharded"]
    harness.run_and_report([f"mesh-{k}" for k in kinds], repeat=args.repeat,
                           compare=not args.no_compare, keep=args.keep, impls=args.impl)


if __name__ == "__main__":
    main()
