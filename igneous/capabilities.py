"""The one registration of every capability.

A capability (downsampling, meshing, skeletons, ...) declares here, once:

- ``tasks``: the module of its task functions and their names. A queued task
  is ``{"task": NAME, "kwargs": {...}}`` where NAME is the function's own
  ``__name__``; the worker imports only the module of the task it runs.
- ``planners``: the scripting functions ``igneous.task_creation`` exports
  (``tc.create_meshing_tasks``), by module.
- ``steps``: the pipeline steps (``igneous run``) and the planner each runs.
- ``commands``: click commands or groups and the command they go under.
- ``aliases``: task names earlier versions wrote, so queues they filled still drain.

This module only names things (dotted module paths and attribute names) and
imports nothing from igneous, so every layer may read it and importing it is
free. Planners build tasks from the functions themselves (``Task.of(mesh_forge,
...)``), so go-to-definition leads from a planner to its task;
tests/test_capabilities.py checks that every name here resolves.
"""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass(frozen=True)
class Capability:
    name: str
    tasks: dict[str, tuple[str, ...]] = field(default_factory=dict)  # module -> functions
    planners: dict[str, tuple[str, ...]] = field(default_factory=dict)  # module -> functions
    steps: dict[str, str] = field(default_factory=dict)  # pipeline step -> planner
    commands: tuple[tuple[str, str], ...] = ()  # ("module:attr", parent command path)
    aliases: dict[str, str] = field(default_factory=dict)  # old task name -> function name


CAPABILITIES: tuple[Capability, ...] = (
    Capability(
        "image",  # downsample, transfer (rechunk, shard), delete
        tasks={"igneous.tasks.downsample": ("downsample",),
               "igneous.tasks.transfer": ("transfer",),
               "igneous.tasks.delete": ("delete",)},
        planners={"igneous.task_creation.image": ("create_downsampling_tasks",
                                                  "create_transfer_tasks",
                                                  "create_deletion_tasks", "plan_downsample"),
                  "igneous.task_creation.image_shards": ("create_image_shard_downsample_tasks",
                                                         "create_image_shard_transfer_tasks",
                                                         "plan_shard_downsample")},
        steps={"transfer": "create_transfer_tasks", "downsample": "plan_downsample",
               "delete": "create_deletion_tasks"},
        commands=(("igneous.cli.image:image_group", ""),),
    ),
    Capability(
        "mesh",
        tasks={"igneous.tasks.mesh": ("mesh_forge",),
               "igneous.tasks.mesh_merge": ("mesh_manifest", "mesh_multires", "mesh_delete",
                                            "mesh_xfer"),
               "igneous.tasks.mesh_convert": ("mesh_xfer_sharded",)},
        planners={"igneous.task_creation.mesh": (
            "create_meshing_tasks", "create_mesh_manifest_tasks",
            "create_unsharded_multires_mesh_tasks", "create_sharded_multires_mesh_tasks",
            "create_mesh_deletion_tasks", "create_xfer_meshes_tasks",
            "create_spatial_index_mesh_tasks")},
        steps={"mesh-forge": "create_meshing_tasks", "mesh-merge": "create_mesh_manifest_tasks",
               "mesh-merge-sharded": "create_sharded_multires_mesh_tasks",
               "mesh-merge-multires": "create_unsharded_multires_mesh_tasks"},
        commands=(("igneous.cli.mesh:mesh_group", ""),),
        aliases={"mesh": "mesh_forge"},
    ),
    Capability(
        "skeleton",
        tasks={"igneous.tasks.skeleton": ("skeleton_forge",),
               "igneous.tasks.skeleton_merge": ("skeleton_merge", "skeleton_shard",
                                                "skeleton_delete", "skeleton_xfer"),
               # the original Igneous's merge tasks over SkeletonTask's fragments
               "igneous.compat.skeletons": ("compat_skeleton_merge", "compat_skeleton_shard")},
        planners={"igneous.task_creation.skeleton": (
            "create_skeletonizing_tasks", "create_unsharded_skeleton_merge_tasks",
            "create_sharded_skeleton_merge_tasks", "plan_sharded_skeleton_merge",
            "create_skeleton_deletion_tasks", "create_skeleton_transfer_tasks",
            "create_spatial_index_skeleton_tasks")},
        steps={"skeleton-forge": "create_skeletonizing_tasks",
               "skeleton-merge": "create_unsharded_skeleton_merge_tasks",
               "skeleton-merge-sharded": "create_sharded_skeleton_merge_tasks"},
        commands=(("igneous.cli.skeleton:skeleton_group", ""),),
    ),
    Capability(
        "spatial index",  # of meshes and skeletons (planners: the two above)
        tasks={"igneous.tasks.spatial_index": ("spatial_index",)},
        commands=(("igneous.cli.spatial_index:mesh_spatial_index", "mesh"),
                  ("igneous.cli.spatial_index:skeleton_spatial_index", "skeleton")),
    ),
    Capability(
        "ccl",  # connected components over the whole volume
        tasks={"igneous.tasks.ccl": ("ccl_faces", "ccl_links", "ccl_calc_labels", "ccl_relabel",
                                     "ccl_clean")},
        planners={"igneous.task_creation.ccl": ("create_ccl_face_tasks",
                                                "create_ccl_equivalence_tasks",
                                                "create_ccl_relabel_tasks"),
                  "igneous.tasks.ccl": ("create_relabeling",)},
        steps={"ccl-faces": "create_ccl_face_tasks", "ccl-links": "create_ccl_equivalence_tasks",
               "ccl-relabel": "create_ccl_relabel_tasks"},
        commands=(("igneous.cli.ccl:ccl_group", "image"),),
    ),
    Capability(
        "voxels",  # voxel counts per label
        tasks={"igneous.tasks.voxels": ("count_voxels",)},
        planners={"igneous.task_creation.voxels": ("create_voxel_counting_tasks",
                                                   "accumulate_voxel_counts")},
        steps={"voxels-count": "create_voxel_counting_tasks"},
        commands=(("igneous.cli.voxels:voxels_group", "image"),),
    ),
    Capability(
        "contrast",
        tasks={"igneous.tasks.contrast": ("luminance_levels", "contrast_normalize", "clahe")},
        planners={"igneous.task_creation.contrast": ("create_luminance_levels_tasks",
                                                     "create_contrast_normalization_tasks",
                                                     "create_clahe_tasks")},
        steps={"contrast-histogram": "create_luminance_levels_tasks",
               "contrast-equalize": "create_contrast_normalization_tasks"},
        commands=(("igneous.cli.contrast:contrast_group", "image"),),
    ),
    Capability(
        "roi",  # tissue regions of interest (computed at once, no tasks)
        planners={"igneous.task_creation.roi": ("compute_rois",)},
        commands=(("igneous.cli.analysis:roi", "image"),),
    ),
    Capability(
        "reorder",
        tasks={"igneous.tasks.reorder": ("reorder",)},
        planners={"igneous.task_creation.reorder": ("create_reordering_tasks",)},
        commands=(("igneous.cli.analysis:reorder", "image"),),
    ),
    Capability(
        "quantize",
        tasks={"igneous.tasks.quantize": ("quantize",)},
        planners={"igneous.task_creation.quantize": ("create_quantize_tasks",)},
        commands=(("igneous.cli.analysis:quantize", "image"),),
    ),
    Capability(
        "remap",
        tasks={"igneous.tasks.remap": ("remap",)},
        planners={"igneous.task_creation.remap": ("create_remap_tasks",)},
        commands=(("igneous.cli.analysis:remap", "image"),),
    ),
    Capability(
        "pipeline",  # `igneous run`: its planning task enqueues, so it lives with pipelines
        tasks={"igneous.pipeline": ("pipeline_step",)},
        commands=(("igneous.cli.run:run", ""), ("igneous.cli.demo:demo", "")),
        aliases={"pipeline-step": "pipeline_step"},
    ),
    Capability(
        "queues",  # running and inspecting queues
        commands=(("igneous.cli.execute:execute", ""), ("igneous.cli.queue:queue_group", "")),
    ),
    Capability("design", commands=(("igneous.cli.design:design_group", ""),)),
    Capability("view", commands=(("igneous.cli.view:view", ""),)),
    Capability(
        "testing",  # tasks for measuring and testing queues and workers
        tasks={"igneous.tasks.testing": ("noop", "touch", "sleep", "fail", "allocate",
                                           "crash")},
    ),
)


def _index(pick: str) -> dict[str, str]:
    out: dict[str, str] = {}
    for cap in CAPABILITIES:
        for module, names in getattr(cap, pick).items():
            for name in names:
                if name in out:
                    raise RuntimeError(f"{name!r} is registered twice ({out[name]}, {module})")
                out[name] = module
    return out


TASK_MODULES: dict[str, str] = _index("tasks")  # task name -> module defining it
PLANNER_MODULES: dict[str, str] = _index("planners")  # planner name -> module defining it
TASK_ALIASES: dict[str, str] = {old: new for cap in CAPABILITIES for old, new in cap.aliases.items()}
PIPELINE_STEPS: dict[str, str] = {step: planner for cap in CAPABILITIES
                                  for step, planner in cap.steps.items()}


def task_name(name: str) -> str:
    """The current name of a task (earlier versions' names map to it)."""
    return TASK_ALIASES.get(name, name)


# The original Igneous's task classes (the spec's capability table), importable
# from igneous and igneous.tasks and translated onto our tasks (igneous.compat):
# class name -> the module defining our translation. SkeletonMergeTask is the
# spec's capability name for the unsharded merge.
ORIGINAL_TASK_CLASSES: dict[str, str] = {
    **dict.fromkeys(("DownsampleTask", "TransferTask", "DeleteTask", "QuantizeTask",
                     "CountVoxelsTask", "LuminanceLevelsTask", "ContrastNormalizationTask",
                     "WatershedRemapTask"), "igneous.compat.original"),
    **dict.fromkeys(("CCLFacesTask", "CCLEquivalancesTask", "RelabelCCLTask", "MeshTask",
                     "MeshManifestTask", "MeshManifestPrefixTask", "MeshManifestFilesystemTask"),
                    "igneous.compat.original_labels"),
    **dict.fromkeys(("SkeletonTask", "UnshardedSkeletonMergeTask", "ShardedSkeletonMergeTask"),
                    "igneous.compat.skeletons"),
}
ORIGINAL_TASK_ALIASES: dict[str, str] = {"SkeletonMergeTask": "UnshardedSkeletonMergeTask"}


def original_task_class(name: str):
    """The class translating the original's task ``name`` (AttributeError if none)."""
    import importlib

    real = ORIGINAL_TASK_ALIASES.get(name, name)
    module = ORIGINAL_TASK_CLASSES.get(real)
    if module is None:
        raise AttributeError(name)
    return getattr(importlib.import_module(module), real)
