"""Making layers from arrays, and the sample volumes used by the demo and tests.

- image: smooth, microscopy-like uint8 (band-passed noise, deterministic);
- segmentation: the real connectomics cutout in ``shared/data`` when present
  (``IGNEOUS_SAMPLE_SEGMENTATION`` overrides the path), a synthetic labeling
  otherwise.
"""

from __future__ import annotations

import gzip
import os
from pathlib import Path

import numpy as np

from igneous.errors import UserError
from igneous.layers import check_encoding, layer_errors, normalize_path

CONNECTOMICS_NAME = "connectomics.npy.ckl.gz"
CONNECTOMICS_RESOLUTION = (16, 16, 40)


def load_array(path: str, key: str | None = None) -> np.ndarray:
    """Read a .npy, .npz, .ckl or .ckl.gz file as an (x, y, z[, c]) array."""
    name = os.path.basename(path).lower()
    try:
        if name.endswith((".ckl", ".ckl.gz")):
            import crackle

            raw = Path(path).read_bytes()
            if name.endswith(".gz"):
                raw = gzip.decompress(raw)
            return crackle.decompress(raw)
        if name.endswith(".npz"):
            with np.load(path) as z:
                names = list(z.keys())
                if not names:
                    raise UserError(f"{path} holds no arrays")
                if key is not None and key not in names:
                    raise UserError(f"{path} has no array {key!r} (it has {', '.join(names)})")
                return z[key or names[0]]
        if name.endswith(".npy"):
            return np.load(path, mmap_mode="r")
    except UserError:
        raise
    except Exception as e:
        raise UserError(f"cannot read {path}: {e}") from None
    raise UserError(f"{path}: unknown array file type (use .npy, .npz, .ckl or .ckl.gz)")


def create_layer(dest: str, data: np.ndarray, *, resolution=(1, 1, 1), offset=(0, 0, 0),
                 chunk_size=(64, 64, 64), layer_type: str | None = None, encoding: str = "raw",
                 compress: str | None = "gzip", encoding_level: int | None = None) -> str:
    """Write ``data`` as a new single-scale layer; return its path."""
    from igneous import validate
    from igneous.blockio import write_region
    from igneous.chunkio import open_volume
    from igneous.layers import write_info
    from igneous.scales import new_layer_info, set_encoding

    resolution = validate.positive_numbers(resolution, "resolution")
    chunk_size = validate.int_triple(chunk_size, "chunk_size")
    offset = validate.int_triple(offset, "offset", positive=False)
    if data.ndim not in (3, 4):
        raise UserError(f"expected a 3D or 4D (x,y,z[,c]) array, got shape {data.shape}")
    if data.dtype == bool:
        data = data.astype(np.uint8)
    if layer_type is None:
        layer_type = "segmentation" if data.dtype in (np.uint32, np.uint64) else "image"
    check_encoding(encoding, data.dtype, layer_type)
    path = normalize_path(dest)
    channels = 1 if data.ndim == 3 else data.shape[3]
    info = new_layer_info(layer_type, str(data.dtype), encoding, resolution, offset,
                          data.shape[:3], chunk_size, num_channels=channels)
    set_encoding(info["scales"][0], encoding, encoding_level)
    with layer_errors(path):
        write_info(path, info)
        block = np.asfortranarray(data if data.ndim == 4 else data[..., np.newaxis])
        write_region(open_volume(path, 0, compress=compress), block, np.asarray(offset), 0)
    return path


def smooth_image(shape=(256, 256, 64), seed: int = 0) -> np.ndarray:
    """Microscopy-like uint8: band-passed noise with membranes and blobs."""
    rng = np.random.default_rng(seed)
    noise = rng.standard_normal(shape).astype(np.float32)
    freqs = np.meshgrid(*[np.fft.fftfreq(n) for n in shape[:2]], np.fft.rfftfreq(shape[2]),
                        indexing="ij")
    r2 = freqs[0] ** 2 + freqs[1] ** 2 + (freqs[2] * 2) ** 2
    spectrum = np.fft.rfftn(noise) * (np.exp(-r2 / (2 * 0.03**2)) + 0.3 * np.exp(-r2 / (2 * 0.12**2)))
    field = np.fft.irfftn(spectrum, s=shape, axes=(0, 1, 2)).astype(np.float32)
    field = (field - field.mean()) / (field.std() + 1e-9)
    membranes = np.exp(-(field**2) * 6)  # thin dark ridges where the field crosses zero
    img = 150 + 40 * np.tanh(field) - 90 * membranes + rng.normal(0, 6, shape)
    return np.asfortranarray(np.clip(img, 0, 255).astype(np.uint8))


def synthetic_segmentation(shape=(128, 128, 64), seed: int = 0) -> np.ndarray:
    """Labels from the connected regions of a thresholded smooth field."""
    import cc3d

    img = smooth_image(shape, seed)
    labels = cc3d.connected_components(img > 150, connectivity=6)
    return np.asfortranarray(labels.astype(np.uint64))


def find_connectomics() -> Path | None:
    """The real segmentation cutout, if this machine has it."""
    env = os.environ.get("IGNEOUS_SAMPLE_SEGMENTATION")
    candidates = [Path(env)] if env else []
    here = Path(__file__).resolve()
    candidates += [p / "shared" / "data" / CONNECTOMICS_NAME for p in here.parents]
    candidates += [Path.cwd().parent / "shared" / "data" / CONNECTOMICS_NAME]
    for c in candidates:
        if c.is_file():
            return c
    return None


def connectomics(cutout: tuple[int, int, int] | None = None, *,
                 center: bool = False) -> np.ndarray | None:
    """The real 512^3 segmentation, or a ``cutout`` of it from its low corner
    (or from its middle, which holds many more labels), or None."""
    path = find_connectomics()
    if path is None:
        return None
    data = load_array(str(path))
    if cutout is not None:
        lo = [(n - c) // 2 if center else 0 for n, c in zip(data.shape, cutout)]
        data = data[lo[0]:lo[0] + cutout[0], lo[1]:lo[1] + cutout[1], lo[2]:lo[2] + cutout[2]]
    return np.asfortranarray(data)


def make_samples(root: str, *, image_shape=(512, 512, 64), seg_cutout=(256, 256, 128)) -> dict:
    """Write ``root/image`` and ``root/segmentation``; return their paths."""
    root = os.path.abspath(root)
    image = create_layer(os.path.join(root, "image"), smooth_image(image_shape),
                         resolution=(8, 8, 40), chunk_size=(128, 128, 16))
    seg = connectomics(seg_cutout, center=True)
    source = "real connectomics cutout"
    if seg is None:
        seg, source = synthetic_segmentation(seg_cutout), "synthetic labels"
    segmentation = create_layer(os.path.join(root, "segmentation"), seg,
                                resolution=CONNECTOMICS_RESOLUTION, chunk_size=(64, 64, 64),
                                layer_type="segmentation", encoding="compressed_segmentation"
                                if seg.dtype in (np.uint32, np.uint64) else "raw")
    return {"image": image, "segmentation": segmentation, "segmentation_source": source}
