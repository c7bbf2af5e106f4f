"""The spec's keyword-by-keyword planner calls (igneous-README.md: downsampling,
sharded downsampling, transfer, sharded transfer, deletion, meshing), run with
every keyword as the spec spells it. The spec's text is kept; only its syntax
errors are fixed (a comma missing after ``encoding=None`` and after
``encoding='precomputed'``). Outputs are checked against numpy or read back."""

from __future__ import annotations

import textwrap
from pathlib import Path

import numpy as np

from tests.compat.helpers import OFFSET, image, make_layer, mean_pool_2x2, read, segmentation

DOWNSAMPLE = """
tasks = create_downsampling_tasks(
    layer_path, # e.g. 'gs://bucket/dataset/layer'
    mip=0, # Start downsampling from this mip level (writes to next level up)
    fill_missing=False, # Ignore missing chunks and fill them with black
    axis='z',
    num_mips=5, # number of downsamples to produce. Downloaded shape is chunk_size * 2^num_mip
    chunk_size=None, # manually set chunk size of next scales, overrides preserve_chunk_size
    preserve_chunk_size=True, # use existing chunk size, don't halve to get more downsamples
    sparse=False, # for sparse segmentation, allow inflation of pixels against background
    bounds=None, # mip 0 bounding box to downsample
    encoding=None, # e.g. 'raw', 'compressed_segmentation', etc
    delete_black_uploads=False, # issue a delete instead of uploading files containing all background
    background_color=0, # Designates the background color
    compress='gzip', # None, 'gzip', and 'br' (brotli) are options
    factor=(2,2,1), # common options are (2,2,1) and (2,2,2)
  )
"""

SHARD_DOWNSAMPLE = """
# for sharded downsample (only 1 mip at a time)
tasks = create_image_shard_downsample_tasks(
  cloudpath, mip=0, fill_missing=False,
  sparse=False, chunk_size=None,
  encoding=None, memory_target=MEMORY_TARGET,
  agglomerate=False, timestamp=None,
  factor=(2,2,1)
)
"""

TRANSFER = """
tasks = create_transfer_tasks(
  src_layer_path, dest_layer_path,
  chunk_size=None, shape=None,
  fill_missing=False, translate=None,
  bounds=None, mip=0, preserve_chunk_size=True,
  encoding=None, skip_downsamples=False,
  delete_black_uploads=False, background_color=0,
  agglomerate=False, timestamp=None, compress='gzip',
  factor=None, sparse=False, dest_voxel_offset=None,
  memory_target=3.5e9, max_mips=5
)
"""

SHARD_TRANSFER = """
# To create a sharded volume from a non-sharded volume
tasks = create_image_shard_transfer_tasks(
  src_layer_path, dst_layer_path,
  mip=0, chunk_size=None,
  encoding=None, bounds=None, fill_missing=False,
  translate=(0, 0, 0), dest_voxel_offset=None,
  agglomerate=False, timestamp=None,
  memory_target=3.5e9,
)
"""

DELETE = """
tasks = create_deletion_tasks(
  layer_path, # data layer to target
  mip=0, # Which layer to start deleting from
  num_mips=5, # How many mip levels above to delete (limited by shape)
  shape=None, # (optional) size of an individual deletion task (must be chunk aligned)
  bounds=None # Delete only part of a dataset by specifying a cloudvolume.Bbox
)
"""

MESH = """
tasks = create_meshing_tasks(             # First Pass
  layer_path, # Which data layer
  mip, # Which resolution level to mesh at (we often choose near isotropic resolutions)
  shape=(448, 448, 448), # Size of a task to mesh, chunk alignment not needed
  simplification=True, # Whether to enable quadratic edge collapse mesh simplification
  max_simplification_error=40, # Maximum physical deviation of mesh vertices during simplification
  mesh_dir=None, # Optionally choose a non-default location for saving meshes
  cdn_cache=False, # Disable caching in the cloud so updates aren't painful to view
  dust_threshold=None, # Don't bother meshing below this number of voxels
  object_ids=None, # Optionally, only mesh these labels.
  progress=False, # Display a progress bar (more useful locally than in the cloud)
  fill_missing=False, # If part of the data is missing, fill with zeros instead of raising an error
  encoding='precomputed', # 'precomputed' or 'draco' (don't change this unless you know what you're doing)
  spatial_index=True, # generate a spatial index for querying meshes by bounding box
  sharded=False, # generate intermediate shard fragments for later processing into sharded format
)
"""

MANIFESTS = """
tasks = create_mesh_manifest_tasks(layer_path, magnitude=3) # Second Pass
"""


def run_block(code: str, **names) -> None:
    """Execute a spec block as a script would (``from igneous.task_creation
    import *``) and run the plan it leaves in ``tasks``."""
    import igneous.task_creation as tc
    from igneous.worker import run_local

    scope = {name: getattr(tc, name) for name in tc.__all__}
    scope.update(MEMORY_TARGET=tc.DEFAULT_MEMORY_TARGET, **names)
    exec(textwrap.dedent(code), scope)  # noqa: S102 - the spec's own text
    run_local([scope["tasks"]], progress=False)


def test_downsampling_keywords(tmp_path: Path):
    img = image(41)
    path = make_layer(tmp_path / "img", img)
    run_block(DOWNSAMPLE, layer_path=path)
    for mip in (1, 2):  # as many as fit: the top one is one chunk
        assert np.array_equal(read(path, mip), mean_pool_2x2(img, mip))
    path = make_layer(tmp_path / "img2", img)
    run_block(SHARD_DOWNSAMPLE, cloudpath=path)
    assert np.array_equal(read(path, 1), mean_pool_2x2(img))


def test_transfer_and_deletion_keywords(tmp_path: Path):
    img = image(42)
    src = make_layer(tmp_path / "src", img)
    dest, sharded = f"file://{tmp_path / 'dest'}", f"file://{tmp_path / 'sharded'}"
    run_block(TRANSFER, src_layer_path=src, dest_layer_path=dest)
    run_block(SHARD_TRANSFER, src_layer_path=src, dst_layer_path=sharded)
    for path in (dest, sharded):
        assert np.array_equal(read(path), img)
    assert np.array_equal(read(dest, 1), mean_pool_2x2(img))
    run_block(DELETE, layer_path=dest)
    assert not any((tmp_path / "dest" / "4_4_40").iterdir())


def test_meshing_keywords(tmp_path: Path):
    from cloudvolume import CloudVolume

    seg = segmentation(43)
    path = make_layer(tmp_path / "seg", seg)
    run_block(MESH, layer_path=path, mip=0)
    run_block(MANIFESTS, layer_path=path)
    cv = CloudVolume(path, progress=False)
    for label in (int(x) for x in np.unique(seg) if x):
        mesh = cv.mesh.get(label)
        mesh = mesh[label] if isinstance(mesh, dict) else mesh
        xyz = np.argwhere(seg == label) + OFFSET
        assert len(mesh.vertices), label
        assert np.all(mesh.vertices.min(0) >= xyz.min(0) * (4, 4, 40) - (2, 2, 20)), label
