"""Sharding specifications for labelled objects (meshes, skeletons).

Neuroglancer's ``neuroglancer_uint64_sharded_v1`` with murmurhash keys: the
label ids are hashed, so shards fill evenly and the sizes follow from the
label count alone (CloudVolume's ``compute_shard_params_for_hashed``).
"""

from __future__ import annotations

import math

from igneous.errors import UserError

ENCODINGS = (None, "raw", "gzip")


def hashed_sharding(num_labels: int, *, shard_index_bytes: int = 2**13,
                    minishard_index_bytes: int = 2**15, min_shards: int = 1,
                    max_labels_per_shard: int | None = None,
                    minishard_index_encoding: str | None = "gzip",
                    data_encoding: str | None = "gzip", bytes_per_label: float = 0.0,
                    memory_target: float | None = None, shard_bits: int | None = None,
                    minishard_bits: int | None = None,
                    preshift_bits: int | None = None) -> dict:
    """A hashed sharding spec for ``num_labels`` objects.

    Shards: enough for the index sizes, at least ``min_shards`` and
    ``num_labels / max_labels_per_shard``, and, given ``memory_target``, few
    enough labels per shard that building one (about ``bytes_per_label`` each,
    times 4 for decoding and levels of detail) fits it. Bit counts given
    explicitly win.
    """
    from cloudvolume.datasource.precomputed.sharding import compute_shard_params_for_hashed

    for name, value in (("minishard_index_encoding", minishard_index_encoding),
                        ("data_encoding", data_encoding)):
        if value not in ENCODINGS:
            raise UserError(f"{name} must be gzip or raw, not {value!r}")
    if min(shard_index_bytes, minishard_index_bytes) <= 0 or min_shards < 1:
        raise UserError("shard/minishard index bytes must be > 0 and min_shards >= 1")
    if max_labels_per_shard is not None:
        if max_labels_per_shard < 1:
            raise UserError("max_labels_per_shard must be >= 1")
        min_shards = max(min_shards, math.ceil(num_labels / max_labels_per_shard))
    sb, mb, pb = compute_shard_params_for_hashed(max(num_labels, 1), shard_index_bytes,
                                                 minishard_index_bytes, min_shards)
    if memory_target is not None:
        want = num_labels * bytes_per_label * 4 / max(memory_target, 1.0)
        need = math.ceil(math.log2(want)) if want > 1 else 0
        if need > sb:
            mb, sb = max(mb - (need - sb), 0), need
    sb = sb if shard_bits is None else shard_bits
    mb = mb if minishard_bits is None else minishard_bits
    pb = pb if preshift_bits is None else preshift_bits
    if min(sb, mb, pb) < 0 or sb + mb + pb > 64:
        raise UserError("shard, minishard and preshift bits must be >= 0 and sum to <= 64")
    return {
        "@type": "neuroglancer_uint64_sharded_v1",
        "preshift_bits": int(pb),
        "hash": "murmurhash3_x86_128",
        "minishard_bits": int(mb),
        "shard_bits": int(sb),
        "minishard_index_encoding": minishard_index_encoding or "raw",
        "data_encoding": data_encoding or "raw",
    }
