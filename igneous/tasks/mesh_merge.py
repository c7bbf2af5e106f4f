"""Merge forged mesh fragments: legacy manifests, multi-resolution meshes
(unsharded or sharded), deletion and transfer of mesh files.

Label groups are chosen by decimal prefix: a task with prefix ``p`` owns every
label whose decimal string starts with ``p`` (``exact`` tasks own just the
label ``p``, for ids shorter than the prefix length). A task works through
its labels in batches sized to its memory target (``label_batches``), so its
memory does not grow with the label count. Every fragment of a batch is
decoded before the batch is written, so a corrupt file fails the task with
its name and no manifest points at a broken or missing fragment.

The sharded merge has two stages (``mesh_scatter``, then ``mesh_multires``
per shard), so each shard reads only its own labels' fragments.
"""

from __future__ import annotations

import re
from collections import defaultdict
from collections.abc import Iterable, Iterator, Sequence
from typing import TYPE_CHECKING, Any

import numpy as np

from igneous.errors import UserError
from igneous.tasks.merging import MESH_FRAGMENT_OVERHEAD, memory_budget

if TYPE_CHECKING:
    from igneous.storage import Store

FRAGMENT = re.compile(r"^(\d+):0:(-?\d+)-(-?\d+)_(-?\d+)-(-?\d+)_(-?\d+)-(-?\d+)$")


# the planner's fragment lists, one per prefix task: LISTING + PLAN.PREFIX (flat,
# beside the fragments: local disk would keep an emptied directory)
LISTING = "merge-listing."


def listing_key(listing: str, prefix: str) -> str:
    return f"{listing}.{prefix}"


def _fragment_keys(cf: Store, magnitude: int) -> Iterator[tuple[int, str]]:
    """(the owning task's prefix as a number, name) of every fragment file: a
    label's first ``magnitude`` digits, or the label itself when shorter."""
    for name in cf.list_stored(flat=True):  # a name may come twice (two compressions)
        m = FRAGMENT.match(name)
        if m is not None and name[0] != "0":  # no prefix task owns "0..." (nor label 0)
            yield int(m.group(1)[:magnitude]), name


def write_listings(cf: Store, pre: Sequence[tuple[str, bool]],
                   memory_target: float | None = None) -> str:
    """List the mesh directory for the prefix tasks ``pre`` and write each
    one's fragment names to ``LISTING + PLAN.PREFIX`` (gzip, one per line).

    On local disk (``Store.lists_by_scan``) a task's own listing reads the
    names of the whole directory: 10^magnitude tasks x every fragment file.
    This reads them a few times: once to count each task's bytes of names,
    then once per group of tasks whose names (held as bytes) fit the memory
    budget. A task reads its list and deletes it when done (a task run again
    without it lists for itself). Returns ``LISTING + PLAN``; earlier plans'
    lists are removed.
    """
    import secrets
    from collections import Counter

    magnitude = max(len(p) for p, exact in pre if not exact)
    cf.delete(list(cf.list(prefix=LISTING, flat=True)))
    size_of: Counter[int] = Counter()
    for key, name in _fragment_keys(cf, magnitude):
        size_of[key] += len(name) + 1
    budget = memory_budget(memory_target)
    groups: list[list[str]] = [[]]
    size = 0
    for p, _ in pre:
        n = size_of.get(int(p), 0)
        if groups[-1] and size + n > budget:
            groups.append([])
            size = 0
        groups[-1].append(p)
        size += n
    plan = LISTING + secrets.token_hex(4)
    for group in groups:
        mine: dict[int, bytearray] = {int(p): bytearray() for p in group}
        if any(size_of.get(k) for k in mine):
            for key, name in _fragment_keys(cf, magnitude):
                buf = mine.get(key)
                if buf is not None:
                    buf += name.encode("utf8") + b"\n"
        cf.put_many(((listing_key(plan, p), _sorted_lines(mine.pop(int(p)))) for p in group),
                    compress="gzip")
    return plan


def _sorted_lines(buf: bytearray) -> bytes:
    """Distinct lines of ``buf``, sorted (a name listed twice comes once)."""
    return b"\n".join(sorted(set(bytes(buf).split(b"\n")) - {b""}))


def list_fragments(cf: Store, prefix: str, exact: bool, listing: str | None = None
                   ) -> dict[int, list[str]]:
    """{label: sorted fragment names} for the labels a prefix task owns (from
    the planner's ``listing`` when there is one: ``write_listings``)."""
    out: dict[int, list[str]] = defaultdict(list)
    content = cf.get(listing_key(listing, prefix)) if listing else None
    if content is not None:
        for name in content.decode("utf8").split("\n") if content else ():
            out[int(name.split(":", 1)[0])].append(name)
        return dict(out)
    for name in cf.list(prefix=f"{prefix}:" if exact else prefix, flat=True):
        name = name.rsplit("/", 1)[-1]
        if name.endswith(".gz") or name.endswith(".br"):
            name = name[:-3]
        m = FRAGMENT.match(name)
        if m is None or (exact and m.group(1) != prefix):
            continue
        out[int(m.group(1))].append(name)
    return {k: sorted(set(v)) for k, v in out.items()}


def read_meshes(cf: Store, names: Iterable[str]) -> dict[str, object]:
    """Decode fragment files; any unreadable or corrupt file is a clear error."""
    from igneous.formats.multires import mesh_from_precomputed

    names = list(names)
    out = {}
    for name, content in cf.get_many(names):
        if content is None:
            raise UserError(f"mesh fragment {cf.url}/{name} is missing; re-run forge for that box")
        try:
            out[name] = mesh_from_precomputed(content)
        except ValueError as e:
            raise UserError(f"mesh fragment {cf.url}/{name} is corrupt ({e}); delete it "
                            "and re-run forge for that box") from None
    return out


# labels whose fragments are fetched together (one get_many)
FETCH_LABELS = 256
SCATTER_DIR = "scatter"  # the sharded merge's first stage files fragments here, by shard
SCATTER_DONE = f"{SCATTER_DIR}/done"


def mesh_bytes(meshes: Iterable) -> int:
    """Memory that decoded meshes hold: their arrays and the objects around them."""
    return sum(m.vertices.nbytes + m.faces.nbytes + MESH_FRAGMENT_OVERHEAD for m in meshes)


def label_batches(cf: Store, frags: dict[int, list[str]], budget: float
                  ) -> Iterator[dict[int, list]]:
    """{label: decoded fragments} in label order, a batch at a time: a batch
    stops growing once its fragments reach ``budget`` bytes, so a task's
    memory does not grow with its label count."""
    labels = sorted(frags)
    batch: dict[int, list] = {}
    size = 0
    for i in range(0, len(labels), FETCH_LABELS):
        chunk = labels[i:i + FETCH_LABELS]
        meshes = read_meshes(cf, (n for label in chunk for n in frags[label]))
        for label in chunk:
            batch[label] = [meshes.pop(n) for n in frags[label]]
            size += mesh_bytes(batch[label])
            if size >= budget:
                yield batch
                batch, size = {}, 0
    if batch:
        yield batch


def mesh_manifest(layer_path: str, mesh_dir: str, prefix: str, exact: bool = False,
                  memory_target: float | None = None, listing: str | None = None) -> int:
    """Write ``LABEL:0`` manifests listing the fragments of every label this prefix owns."""
    import json

    from igneous.storage import open_store

    cf = open_store(f"{layer_path}/{mesh_dir}")
    frags = list_fragments(cf, prefix, exact, listing)
    for batch in label_batches(cf, frags, memory_budget(memory_target)):  # validate first
        cf.put_many(((f"{label}:0", json.dumps({"fragments": frags[label]}).encode("utf8"))
                     for label in batch), content_type="application/json")
    if listing:
        cf.delete(listing_key(listing, prefix))
    return len(frags)


def _encode_label(meshes: list, opts: dict) -> tuple[bytes, bytes] | None:
    """(fragment data, manifest) of one label's multi-resolution mesh (None: empty)."""
    from igneous.formats.multires import encode_multires, fuse

    v, f = fuse(meshes)
    if len(f) == 0:
        return None
    return encode_multires(v, f, **opts)


def multires_options(info: dict, mip: int, nlod: int, vqb: int, min_chunk_size: Sequence[int],
                     compression_level: int,
                     max_error: float) -> dict:
    scale = info["scales"][mip]
    res = np.asarray(scale["resolution"], dtype=np.float64)
    return dict(nlod=int(nlod), vqb=int(vqb), compression_level=int(compression_level),
                chunk_shape=np.asarray(min_chunk_size, dtype=np.float64) * res,
                grid_origin=np.asarray(scale.get("voxel_offset", (0, 0, 0)), dtype=np.float64) * res
                - res,  # one voxel of room below the volume's low faces
                max_error=float(max_error))


def mesh_multires(layer_path: str, mesh_dir: str, mip: int, nlod: int, vqb: int = 16,
                  min_chunk_size: Sequence[int] = (256, 256, 256), compression_level: int = 7,
                  max_error: float = 40, prefix: str | None = None, exact: bool = False,
                  shard: str | None = None, expect: int = 0,
                  memory_target: float | None = None, listing: str | None = None) -> int:
    """Build multi-resolution meshes for a prefix (unsharded: ``LABEL.index`` +
    ``LABEL``) or for one shard (sharded: from what ``mesh_scatter`` filed
    under it once all ``expect`` scatter tasks are done; before that, or with
    ``expect`` 0, from the forge's files directly)."""
    from igneous.layers import LayerInfo
    from igneous.storage import open_store

    info = LayerInfo(layer_path).info
    opts = multires_options(info, mip, nlod, vqb, min_chunk_size, compression_level, max_error)
    cf = open_store(f"{layer_path}/{mesh_dir}")
    if shard is not None:
        return _build_shard(cf, str(shard), expect, opts)
    frags = list_fragments(cf, prefix or "", exact, listing)
    written = 0
    for batch in label_batches(cf, frags, memory_budget(memory_target)):
        outputs = []
        for label in sorted(batch):
            enc = _encode_label(batch.pop(label), opts)
            if enc is not None:
                outputs += [(f"{label}.index", enc[1]), (str(label), enc[0])]
        cf.put_many(outputs, content_type="application/octet-stream")
        written += len(outputs) // 2
    if listing:
        cf.delete(listing_key(listing, prefix or ""))
    return written


def shard_plan(cf: Store, labels_file: str, command: str) -> dict[str, list[str]]:
    """{label: input files} of one shard, as its planner wrote it."""
    plan = cf.get_json(labels_file)
    if plan is None:
        raise UserError(f"{cf.url}/{labels_file} is missing; re-run `igneous mesh {command}`")
    return plan


def _frags_error(cf: Store, name: str, e: Exception) -> UserError:
    return UserError(f"mesh fragment file {cf.url}/{name} is corrupt ({e}); "
                     "delete it and re-run forge for that box")


def map_entries(mb: Any) -> Iterator[tuple[int, bytes]]:
    """(label, bytes) of each entry of a MapBuffer, by position: its lookup by
    key (``get``, ``items``) overflows on ids >= 2**63."""
    for i, label in enumerate(mb.index()[:, 0].tolist()):
        yield int(label), bytes(mb.getindex(i))


def mesh_scatter(layer_path: str, mesh_dir: str, files: Sequence[str], sharding: dict,
                 name: str) -> int:
    """First stage of the sharded merge: split forge ``.frags`` files by shard.

    Each file's fragments go, still encoded, into one MapBuffer per shard they
    hash to, ``scatter/SHARD/STEM.frags``; the shard stage then reads only its
    own, instead of every forge file of the volume per shard.
    """
    from cloudvolume.datasource.precomputed.sharding import ShardingSpecification
    from mapbuffer import MapBuffer

    from igneous.storage import open_store
    from igneous.tasks.merging import mark_done

    cf = open_store(f"{layer_path}/{mesh_dir}")
    spec = ShardingSpecification.from_dict(sharding)
    count = 0
    for file in files:
        blob = cf.get(file)
        if blob is None:
            raise UserError(f"mesh fragment file {cf.url}/{file} is missing; re-run forge")
        groups: dict[str, dict[int, bytes]] = defaultdict(dict)
        try:
            for label, raw in map_entries(MapBuffer(blob)):
                groups[spec.compute_shard_location(label).shard_number][label] = raw
        except ValueError as e:
            raise _frags_error(cf, file, e) from None
        stem = file.rsplit("/", 1)[-1]
        cf.put_many(((f"{SCATTER_DIR}/{shard}/{stem}", MapBuffer(g).tobytes())
                     for shard, g in groups.items()), content_type="application/octet-stream")
        count += sum(map(len, groups.values()))
    mark_done(cf, SCATTER_DONE, name)
    return count


def _build_shard(cf: Store, shard: str, expect: int, opts: dict) -> int:
    """Assemble one shard file from what the scatter stage filed under it or,
    where that stage has not run (a queue without stages, such as SQS, may
    deliver this task first, or was given none), from the forge's files: each
    read whole, its fragments of other shards skipped (the original Igneous's
    way: every shard reads every forge file)."""
    from mapbuffer import MapBuffer

    from igneous.formats.multires import mesh_from_precomputed
    from igneous.tasks.merging import count_done

    if expect and count_done(cf, SCATTER_DONE) >= expect:
        names = sorted(cf.list(prefix=f"{SCATTER_DIR}/{shard}/"))
        mine = None
    else:
        from cloudvolume.datasource.precomputed.sharding import ShardingSpecification

        # the forge's files, in name order: scatter files are named like them
        names = sorted(n for n in cf.list(flat=True) if n.endswith(".frags"))
        spec = ShardingSpecification.from_dict(cf.get_json("info")["sharding"])
        mine = shard
    pieces: dict[int, list] = defaultdict(list)
    for name, blob in cf.get_many(names):
        if blob is None:
            raise UserError(f"{cf.url}/{name} vanished while it was read; re-run the merge")
        try:
            for label, raw in map_entries(MapBuffer(blob)):
                if mine is None or spec.compute_shard_location(label).shard_number == mine:
                    pieces[label].append(mesh_from_precomputed(raw))
        except ValueError as e:
            raise _frags_error(cf, name, e) from None
    return write_shard(cf, pieces, opts)


def write_shard(cf: Store, pieces: dict[int, list], opts: dict) -> int:
    """Encode the multi-resolution mesh of each label of ``pieces`` ({label:
    meshes}, all in one shard of the directory ``cf``) and write that shard;
    returns how many labels it holds."""
    from cloudvolume.datasource.precomputed.sharding import (
        ShardingSpecification,
        synthesize_shard_files,
    )

    spec = ShardingSpecification.from_dict(cf.get_json("info")["sharding"])
    data, offsets = {}, {}
    for label in sorted(pieces):
        enc = _encode_label(pieces.pop(label), opts)
        if enc is None:
            continue
        data[label] = enc[0] + enc[1]
        offsets[label] = len(enc[1])
    if not data:
        return 0
    files = synthesize_shard_files(spec, data, data_offset=offsets)
    cf.put_many(files.items(), content_type="application/octet-stream")
    return len(data)


def mesh_delete(layer_path: str, mesh_dir: str, prefix: str, rest: bool = False) -> int:
    """Delete mesh files starting with ``prefix`` (``rest``: every file not starting
    with ``len(prefix)`` digits, i.e. the ones no prefix task owns)."""
    from igneous.storage import open_store

    cf = open_store(f"{layer_path}/{mesh_dir}")
    if rest:
        n = len(prefix)
        names = [x for x in cf.list(flat=True) if not (len(x) >= n and x[:n].isdigit())]
    else:
        names = list(cf.list(prefix=prefix, flat=True))
    cf.delete(names)
    return len(names)


def mesh_xfer(src_dir: str, dest_dir: str, prefix: str, rest: bool = False) -> int:
    """Copy mesh files starting with ``prefix`` from one mesh directory to another."""
    from igneous.storage import open_store

    cf = open_store(src_dir)
    if rest:
        n = len(prefix)
        names = [x for x in cf.list(flat=True) if not (len(x) >= n and x[:n].isdigit()) and x != "info"]
    else:
        names = list(cf.list(prefix=prefix, flat=True))
    cf.copy_to(open_store(dest_dir), names)
    return len(names)
