"""Installs without a compiler: meshoptimizer (source only) is optional and the
pyfqmr wheel simplifies meshes when it is absent."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import tomllib

from tests.compat.helpers import OFFSET, make_layer, segmentation

ROOT = Path(__file__).resolve().parents[2]


def test_source_only_packages_are_extras():
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    names = [d.split(">")[0].split("=")[0].split("[")[0].strip().lower()
             for d in project["dependencies"]]
    assert "meshoptimizer" not in names and "pyfqmr" in names
    assert any(d.startswith("meshoptimizer") for d in project["optional-dependencies"]["fast-mesh"])
    assert "fast-mesh" in (ROOT / ".ci" / "run").read_text()
    assert "fast-mesh" in (ROOT / "Dockerfile").read_text()


@pytest.fixture
def fallback(monkeypatch):
    from igneous.formats import multires

    monkeypatch.setenv("IGNEOUS_SIMPLIFIER", "pyfqmr")
    multires.has_meshoptimizer.cache_clear()
    assert not multires.has_meshoptimizer()
    yield
    monkeypatch.delenv("IGNEOUS_SIMPLIFIER")
    multires.has_meshoptimizer.cache_clear()


def test_meshing_with_the_fallback_simplifier(tmp_path, fallback):
    """Forge + merge with pyfqmr: every label meshed, fewer triangles than
    zmesh's unsimplified mesh, the original surface within the 40 nm budget."""
    import zmesh
    from cloudvolume import CloudVolume

    import igneous.task_creation as tc
    from igneous.worker import run_local
    from tests.test_mesh import point_triangle_distance

    seg = segmentation(31)
    path = make_layer(tmp_path / "seg", seg)
    run_local([tc.create_meshing_tasks(path, mip=0, shape=(24, 24, 8))], progress=False)
    run_local([tc.create_mesh_manifest_tasks(path, magnitude=1)], progress=False)
    cv = CloudVolume(path, progress=False)
    mesher = zmesh.Mesher((4, 4, 40))
    mesher.mesh(np.pad(seg, 1))
    shift = (np.array(OFFSET) - 1) * np.array((4, 4, 40), float)
    before = after = 0
    for label in (int(x) for x in np.unique(seg) if x):
        want = mesher.get(label, reduction_factor=0)
        got = cv.mesh.get(label)
        got = got[label] if isinstance(got, dict) else got
        before, after = before + len(want.faces), after + len(got.faces)
        pts = (want.vertices + shift).astype(np.float64)
        pts = pts[np.random.default_rng(0).choice(len(pts), min(200, len(pts)), replace=False)]
        d = point_triangle_distance(pts, got.vertices[got.faces].astype(np.float64)).min(axis=1)
        assert np.percentile(d, 99) <= 40, label
    assert after * 2 < before
