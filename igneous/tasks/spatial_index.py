"""The standalone spatial-index task: index the labels of one task box of a
segmentation without meshing or skeletonizing it (see igneous/formats/spatial_index.py)."""

from __future__ import annotations

from igneous.formats.spatial_index import label_boxes, write_index


def spatial_index(layer_path: str, mip: int, lo: list[int], hi: list[int], index_dir: str,
                  fill_missing: bool = False) -> None:
    """Index the labels of one task box of a segmentation without meshing it."""
    from igneous.chunkio import open_volume
    from igneous.grid import resolution
    from igneous.tasks.pyramid import read_block

    vol = open_volume(layer_path, mip, fill_missing=fill_missing)
    img = read_block(vol, lo, hi, mip)[..., 0]
    write_index(index_dir, lo, hi, resolution(vol.info, mip), label_boxes(img, lo))
