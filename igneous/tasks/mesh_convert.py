"""``mesh xfer --sharded``: finished unsharded meshes (legacy ``LABEL:0``
manifests or unsharded multi-resolution ``LABEL.index`` files) rewritten as
sharded multi-resolution meshes in another layer, one task per shard.

Each label's mesh is read whole from the source (a legacy mesh is the fusion
of its fragments; a multi-resolution mesh is its finest level), then encoded
exactly as ``merge-sharded`` encodes forged meshes, levels of detail included.
"""

from __future__ import annotations

from collections.abc import Sequence

from igneous.errors import UserError


def source_meshes(src_layer: str, src_dir: str, labels: Sequence[int]) -> dict[int, list]:
    """{label: meshes} of finished unsharded meshes (every label must exist)."""
    from igneous.storage import join, open_store
    from igneous.tasks.mesh_merge import read_meshes

    cf = open_store(join(src_layer, src_dir))
    out: dict[int, list] = {}
    multires: list[int] = []
    for label in labels:
        manifest = cf.get_json(f"{label}:0")
        if manifest is None:
            multires.append(label)
            continue
        names = manifest.get("fragments", [])
        out[label] = list(read_meshes(cf, names).values())
    if multires:
        from igneous.blockio import open_volume

        try:
            got = open_volume(src_layer, mesh_dir=src_dir).meshes(multires)
        except Exception as e:  # noqa: BLE001 - any failure names the source
            raise UserError(f"cannot read meshes {multires[:5]} from {src_layer}/{src_dir}: {e}") from None
        for label in multires:
            mesh = got.get(label) if isinstance(got, dict) else got
            if mesh is None:
                raise UserError(f"mesh {label} is missing from {src_layer}/{src_dir}")
            out[label] = [mesh]
    return out


def mesh_xfer_sharded(src_layer: str, src_dir: str, layer_path: str, mesh_dir: str, mip: int,
                      nlod: int, shard: int, labels_file: str, vqb: int = 16,
                      min_chunk_size: Sequence[int] = (256, 256, 256), compression_level: int = 7,
                      max_error: float = 40) -> int:
    """Write one shard of ``layer_path/mesh_dir`` from the labels its plan lists."""
    from igneous.layers import LayerInfo
    from igneous.storage import join, open_store
    from igneous.tasks.mesh_merge import multires_options, shard_plan, write_shard

    cf = open_store(join(layer_path, mesh_dir))
    plan = shard_plan(cf, labels_file, "xfer --sharded")
    opts = multires_options(LayerInfo(layer_path).info, mip, nlod, vqb, min_chunk_size,
                          compression_level, max_error)
    pieces = source_meshes(src_layer, src_dir, sorted(int(k) for k in plan))
    return write_shard(cf, pieces, opts)
