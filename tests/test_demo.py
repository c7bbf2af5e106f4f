"""README command 1: `igneous -p 2 demo DIR` runs the main job end to end
(pyramids, meshes, skeletons) through a durable local queue."""

from __future__ import annotations

import numpy as np
from cloudvolume import CloudVolume


def test_demo_runs_the_main_job(tmp_path, igneous):
    proc = igneous("-p", "2", "demo", tmp_path / "d", "--size", "small", timeout=300, check=True)
    out = proc.stdout
    assert "(0 dead-lettered)" in proc.stderr
    seg_url = f"file://{tmp_path}/d/segmentation"
    for line in ("image: ", "segmentation: ", "meshes: ", "skeletons: ", "view: igneous view"):
        assert line in out
    cv = CloudVolume(seg_url, progress=False)
    assert len(cv.info["scales"]) > 1 and len(CloudVolume(f"file://{tmp_path}/d/image").info["scales"]) > 1

    # the five largest labels of the segmentation (numpy) each have a mesh and a skeleton
    labels, counts = np.unique(np.asarray(cv[:, :, :]), return_counts=True)
    order = [int(x) for x in labels[np.argsort(-counts)] if x != 0]
    big = order[:5]
    assert len(big) == 5
    for label in big:
        assert len(cv.mesh.get(label).vertices) > 0
    # skeletons: wherever kimimaro on the whole array (same TEASAR, dust and tick
    # settings as the demo) keeps a skeleton, the demo wrote one
    import kimimaro

    data = np.asarray(cv[:, :, :])[..., 0]
    whole = kimimaro.skeletonize(data, teasar_params={"scale": 10, "const": 10},
                                 object_ids=big, anisotropy=cv.resolution, dust_threshold=1000)
    expected = [label for label, skel in whole.items()
                if len(kimimaro.postprocess(skel, dust_threshold=1000,
                                            tick_threshold=6000).vertices)]
    for label in expected:
        assert len(cv.skeleton.get(label).vertices) > 0, label
