"""Planners: split a volume into tasks and write the info files they need.

``import igneous.task_creation as tc`` then ``tc.create_downsampling_tasks(...)``
as in the original Igneous. Each planner returns a lazy ``TaskPlan``. Names
resolve lazily so importing this package stays cheap.
"""

from __future__ import annotations

import importlib

_WHERE = {
    "create_downsampling_tasks": "igneous.task_creation.image",
    "create_image_shard_downsample_tasks": "igneous.task_creation.image_shards",
    "create_transfer_tasks": "igneous.task_creation.image",
    "create_image_shard_transfer_tasks": "igneous.task_creation.image_shards",
    "plan_shard_downsample": "igneous.task_creation.image_shards",
    "create_deletion_tasks": "igneous.task_creation.image",
    "plan_downsample": "igneous.task_creation.image",
    "create_skeletonizing_tasks": "igneous.task_creation.skeleton",
    "create_unsharded_skeleton_merge_tasks": "igneous.task_creation.skeleton",
    "create_sharded_skeleton_merge_tasks": "igneous.task_creation.skeleton",
    "plan_sharded_skeleton_merge": "igneous.task_creation.skeleton",
    "create_skeleton_deletion_tasks": "igneous.task_creation.skeleton",
    "create_skeleton_transfer_tasks": "igneous.task_creation.skeleton",
    "create_spatial_index_skeleton_tasks": "igneous.task_creation.skeleton",
    "create_luminance_levels_tasks": "igneous.task_creation.contrast",
    "create_contrast_normalization_tasks": "igneous.task_creation.contrast",
    "create_clahe_tasks": "igneous.task_creation.contrast",
    "compute_rois": "igneous.task_creation.roi",
    "create_reordering_tasks": "igneous.task_creation.reorder",
    "create_quantize_tasks": "igneous.task_creation.quantize",
    "create_remap_tasks": "igneous.task_creation.remap",
    "create_ccl_face_tasks": "igneous.task_creation.ccl",
    "create_ccl_equivalence_tasks": "igneous.task_creation.ccl",
    "create_ccl_relabel_tasks": "igneous.task_creation.ccl",
    "create_relabeling": "igneous.tasks.ccl",
    "create_voxel_counting_tasks": "igneous.task_creation.voxels",
    "accumulate_voxel_counts": "igneous.task_creation.voxels",
    "create_meshing_tasks": "igneous.task_creation.mesh",
    "create_mesh_manifest_tasks": "igneous.task_creation.mesh",
    "create_unsharded_multires_mesh_tasks": "igneous.task_creation.mesh",
    "create_sharded_multires_mesh_tasks": "igneous.task_creation.mesh",
    "create_mesh_deletion_tasks": "igneous.task_creation.mesh",
    "create_xfer_meshes_tasks": "igneous.task_creation.mesh",
    "create_spatial_index_mesh_tasks": "igneous.task_creation.mesh",
    "TaskPlan": "igneous.task_creation.common",
    "DEFAULT_MEMORY_TARGET": "igneous.task_creation.common",
}

__all__ = sorted(_WHERE)


def __getattr__(name: str):
    module = _WHERE.get(name)
    if module is None:
        raise AttributeError(f"module 'igneous.task_creation' has no attribute {name!r}")
    return getattr(importlib.import_module(module), name)
