"""meshoptimizer (needs a C++ compiler to install) vs the pyfqmr fallback
(wheels): speed, triangles and error of the forge-time simplification.

The meshes are zmesh's unsimplified meshes of a cutout of the real
segmentation (as tests/test_mesh.py does); each is simplified the way a mesh
task does (igneous.tasks.mesh.simplify: factor 100, 40 nm error budget, task
seams locked), and the error is the distance from sampled original vertices
to the simplified surface.

    python -m bench.simplifier [--cutout 256,256,128]
"""

from __future__ import annotations

import argparse
import time

import numpy as np

RES = (16, 16, 40)


def run(simplifier: str, meshes: list, rng_seed: int = 0) -> dict:
    from igneous.formats import multires
    from igneous.tasks.mesh import simplify
    from tests.test_mesh import point_triangle_distance

    multires.has_meshoptimizer.cache_clear()
    import os

    os.environ["IGNEOUS_SIMPLIFIER"] = simplifier
    assert multires.has_meshoptimizer() == (simplifier == "meshoptimizer")
    rng = np.random.default_rng(rng_seed)
    before = after = 0
    seconds = 0.0
    dists = []
    for v, f in meshes:
        t0 = time.perf_counter()
        sv, sf = simplify(v, f, 100, 40)
        seconds += time.perf_counter() - t0
        before, after = before + len(f), after + len(sf)
        if len(f) > 2000 and len(sf):
            pts = v[rng.choice(len(v), 150, replace=False)].astype(np.float64)
            dists.append(point_triangle_distance(pts, sv[sf].astype(np.float64)).min(axis=1))
    d = np.concatenate(dists)
    return dict(simplifier=simplifier, seconds=seconds, triangles_before=before,
                triangles_after=after, error_p50=float(np.percentile(d, 50)),
                error_p99=float(np.percentile(d, 99)), error_max=float(d.max()), samples=len(d))


def main() -> None:
    import zmesh

    from igneous.sample import connectomics

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--cutout", default="256,256,128")
    args = ap.parse_args()
    data = connectomics(tuple(int(x) for x in args.cutout.split(",")), center=True)
    if data is None:
        raise SystemExit("the connectomics test volume is not here (../shared/data)")
    mesher = zmesh.Mesher(RES)
    mesher.mesh(data)
    meshes = []
    for label in mesher.ids():
        m = mesher.get(label, reduction_factor=0)
        meshes.append((np.asarray(m.vertices, np.float32), np.asarray(m.faces, np.uint32)))
    print(f"{len(meshes)} meshes, cutout {args.cutout}")
    for name in ("meshoptimizer", "pyfqmr"):
        r = run(name, meshes)
        print(f"{name:14s} {r['seconds']:6.2f} s  triangles {r['triangles_before']:,} -> "
              f"{r['triangles_after']:,}  error p50/p99/max {r['error_p50']:.1f} / "
              f"{r['error_p99']:.1f} / {r['error_max']:.1f} nm ({r['samples']} samples)")


if __name__ == "__main__":
    main()
