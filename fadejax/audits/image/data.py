"""Image data sets: the embedded digits (shipped inside scikit-learn), local .npz files,
image folders (one sub-folder per class) and ``datasets`` saved with ``save_to_disk``.

Images are ``(N, H, W, C)`` float32 in ``[0, 1]``; labels ``(N,)`` int32 in ``[0, num_classes)``.
Folders and ``datasets`` carry class names, which :func:`map_classes` matches to a model's.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import tempfile
import zipfile
from dataclasses import dataclass, replace
from importlib.metadata import version
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np

from fadejax.engine.audit import AuditError
from fadejax.engine.compilation_cache import fadejax_cache


class DataError(AuditError):
    """A data set is missing, empty or mis-shaped."""


@dataclass(frozen=True)
class ImageDataset:
    images: np.ndarray  # (N, H, W, C) float32 in [0, 1]
    labels: np.ndarray  # (N,) int32
    num_classes: int
    name: str
    class_names: tuple[str, ...] | None = None  # by label index, where the data names its classes
    skipped: tuple[str, ...] = ()  # unreadable files left out (data.skip_unreadable)
    converted: str | None = None  # how the images' channels were converted (data.channels), if they were

    def __len__(self) -> int:
        return int(self.labels.shape[0])


def validate(images: np.ndarray, labels: np.ndarray, where: str) -> tuple[np.ndarray, np.ndarray]:
    """Check shapes and ranges; return float32 images in [0, 1] and int32 labels."""
    images = np.asarray(images)
    labels = np.asarray(labels)
    if images.ndim == 3:  # (N, H, W) grey -> add a channel
        images = images[..., None]
    if images.ndim != 4 or images.shape[-1] not in (1, 3):
        raise DataError(f"{where}: images must be (N, H, W, C) with C = 1 or 3, got shape {images.shape}")
    if images.shape[0] == 0:
        raise DataError(f"{where}: the data set is empty (0 images)")
    if labels.shape != (images.shape[0],):
        raise DataError(f"{where}: labels must be ({images.shape[0]},) to match the images, got {labels.shape}")
    if not np.issubdtype(labels.dtype, np.integer) or labels.min() < 0:
        raise DataError(f"{where}: labels must be non-negative integers, got dtype {labels.dtype}")
    if images.dtype == np.uint8:
        images = images.astype(np.float32) / 255.0
    images = images.astype(np.float32)
    if not np.all(np.isfinite(images)) or images.min() < 0.0 or images.max() > 1.0:
        raise DataError(f"{where}: float images must be finite and in [0, 1] (or uint8 0..255)")
    return images, labels.astype(np.int32)


def load_digits_split(image_size: int = 32, held_out_fraction: float = 0.3, seed: int = 0) -> tuple[ImageDataset, ImageDataset]:
    """scikit-learn's 1,797 bundled 8x8 digits, bilinearly upsampled, split stratified.

    Returns ``(train, held_out)``; the same arguments always give the same split. The split
    is kept in fadejax's cache (``$FADEJAX_CACHE/data``, keyed by the arguments and the
    versions of scikit-learn and jax) after the first time: making it imports scikit-learn
    and compiles the resize, about 2.5 s of every command's start on a CPU.
    """
    path = _digits_cache_path(image_size, held_out_fraction, seed)
    try:
        with np.load(path, allow_pickle=False) as cached:
            arrays = [cached[k] for k in ("train_images", "train_labels", "held_images", "held_labels")]
    except (OSError, KeyError, ValueError, EOFError, zipfile.BadZipFile):  # not made yet, or damaged: make it again
        arrays = _make_digits_split(image_size, held_out_fraction, seed)
        _save_quietly(path, dict(zip(("train_images", "train_labels", "held_images", "held_labels"), arrays)))
    train_images, train_labels, held_images, held_labels = arrays
    return ImageDataset(train_images, train_labels, 10, "digits-train"), ImageDataset(held_images, held_labels, 10, "digits-held_out")


#: Smallest difference of luma (0.299 R + 0.587 G + 0.114 B) between a colour digit's stroke
#: and its darker background: the digit stays legible, and a grey-scale view of it too.
COLOUR_CONTRAST = 0.35


def load_colour_digits_split(image_size: int = 32, held_out_fraction: float = 0.3, seed: int = 0) -> tuple[ImageDataset, ImageDataset]:
    """The digits of :func:`load_digits_split` in colour, ``(N, S, S, 3)``: each image's stroke
    and background get their own colours, drawn uniformly from the RGB cube (seeded by
    ``seed``) until the stroke's luma exceeds the background's by at least
    :data:`COLOUR_CONTRAST` (light on dark, as the grey digits are); the pixel is
    ``background + (stroke - background) * ink``. Colours carry nothing about the class, so a
    model must read the shape, and the corruptions that act on colour (saturation,
    brightness, contrast, fog, frost, spatter) act on real colour images.
    """
    train, held_out = load_digits_split(image_size, held_out_fraction, seed)
    rng = np.random.default_rng([seed, 3])
    return _coloured(train, rng, "colour_digits-train"), _coloured(held_out, rng, "colour_digits-held_out")


def _coloured(data: ImageDataset, rng: np.random.Generator, name: str) -> ImageDataset:
    luma = np.asarray([0.299, 0.587, 0.114], np.float32)
    n = len(data.labels)
    stroke, background = np.empty((n, 3), np.float32), np.empty((n, 3), np.float32)
    for i in range(n):
        while True:
            a, b = rng.random(3, dtype=np.float32), rng.random(3, dtype=np.float32)
            if float(a @ luma - b @ luma) >= COLOUR_CONTRAST:
                stroke[i], background[i] = a, b
                break
    ink = data.images  # (N, S, S, 1) in [0, 1]
    images = background[:, None, None, :] + (stroke - background)[:, None, None, :] * ink
    return ImageDataset(np.clip(images, 0.0, 1.0).astype(np.float32), data.labels, data.num_classes, name)


def _make_digits_split(image_size: int, held_out_fraction: float, seed: int) -> list[np.ndarray]:
    """``[train images, train labels, held-out images, held-out labels]`` made from scikit-learn's digits."""
    from sklearn.datasets import load_digits
    from sklearn.model_selection import train_test_split

    digits = load_digits()
    small = (digits.images / 16.0).astype(np.float32)[..., None]  # (N, 8, 8, 1)
    images = np.asarray(
        jax.image.resize(jnp.asarray(small), (small.shape[0], image_size, image_size, 1), "bilinear")
    ).clip(0.0, 1.0)
    labels = digits.target.astype(np.int32)
    rows = np.arange(len(labels))
    train_rows, held_rows = train_test_split(rows, test_size=held_out_fraction, random_state=seed, stratify=labels)
    train_rows, held_rows = np.sort(train_rows), np.sort(held_rows)
    return [images[train_rows], labels[train_rows], images[held_rows], labels[held_rows]]


def _digits_cache_path(image_size: int, held_out_fraction: float, seed: int) -> Path:
    key = hashlib.sha256(json.dumps([image_size, float(held_out_fraction), seed, version("scikit-learn"), jax.__version__]).encode()).hexdigest()[:16]
    return fadejax_cache() / "data" / f"digits-{image_size}px-{key}.npz"


def _save_quietly(path: Path, arrays: dict[str, np.ndarray]) -> None:
    """Write ``arrays`` to ``path`` whole or not at all (a cache: a failure to write is not an error)."""
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        with tempfile.NamedTemporaryFile(dir=path.parent, suffix=".tmp", delete=False) as f:
            np.savez(f, **arrays)
        os.chmod(f.name, 0o644)  # readable by whoever shares the cache, as a plain file would be
        os.replace(f.name, path)
    except OSError:
        with contextlib.suppress(OSError, NameError):
            os.unlink(f.name)


def load_npz(path: str | Path) -> ImageDataset:
    """A local ``.npz`` with arrays ``images`` and ``labels`` (see :func:`validate`)."""
    path = Path(path)
    if not path.is_file():
        raise DataError(f"data file '{path}' does not exist")
    try:
        with np.load(path, allow_pickle=False) as archive:
            missing = {"images", "labels"} - set(archive.files)
            if missing:
                raise DataError(f"data file '{path}' lacks arrays {sorted(missing)}; it has {archive.files}")
            images, labels = archive["images"], archive["labels"]
    except DataError:
        raise
    except Exception as exc:  # zip / format errors from numpy
        raise DataError(f"data file '{path}' is not a readable .npz: {exc}") from None
    images, labels = validate(images, labels, where=str(path))
    return ImageDataset(images, labels, int(labels.max()) + 1, path.stem)


def _decode(image, size: int, where: str):
    """One PIL image (or an open file) as ``(size, size, 3)`` float32 in [0, 1]."""
    from PIL import Image

    picture = image if isinstance(image, Image.Image) else Image.open(image)
    picture.load()  # a truncated or corrupt file fails here, not later
    picture = picture.convert("RGB").resize((size, size), Image.BILINEAR)
    return np.asarray(picture, np.float32) / 255.0


def _collect(items, size: int, skip_unreadable: bool, what: str) -> tuple[np.ndarray, np.ndarray, list[str]]:
    """Decode ``(label, image or path, where)`` items: ``(images, labels, skipped)``; an
    unreadable image is a :class:`DataError` naming it unless ``skip_unreadable``."""
    images, labels, skipped = [], [], []
    for label, image, where in items:
        try:
            images.append(_decode(image, size, where))
        except Exception as exc:  # PIL raises OSError, SyntaxError, ValueError, DecompressionBombError ...
            if not skip_unreadable:
                raise DataError(f"{where} is not a readable image ({type(exc).__name__}: {exc}); "
                                "remove it, or set data.skip_unreadable: true to leave such files out") from None
            skipped.append(where)
            continue
        labels.append(label)
    if not images:
        raise DataError(f"{what}: no readable images")
    return np.stack(images), np.asarray(labels, np.int32), skipped


#: file endings an image folder's images may have
IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg")


def load_folder(path: str | Path, size: int, per_class: int | None = None, skip_unreadable: bool = False) -> ImageDataset:
    """An ImageFolder layout: ``path/CLASS/*.png|jpg|jpeg``, classes in sorted folder-name
    order; every image RGB, resized to ``size`` x ``size``; at most ``per_class`` per class
    (the first in file-name order)."""
    root = Path(path)
    if not root.is_dir():
        raise DataError(f"data folder '{root}' does not exist")
    classes = sorted(p.name for p in root.iterdir() if p.is_dir() and not p.name.startswith("."))
    if not classes:
        raise DataError(f"data folder '{root}' has no class sub-folders (expected {root}/CLASS/image.png ...)")
    items = []
    for index, name in enumerate(classes):
        files = sorted(f for f in (root / name).iterdir() if f.suffix.lower() in IMAGE_SUFFIXES and f.is_file())
        items += [(index, f, str(f)) for f in files[:per_class]]
    if not items:
        raise DataError(f"data folder '{root}': its class folders hold no {'/'.join(IMAGE_SUFFIXES)} files")
    images, labels, skipped = _collect(items, size, skip_unreadable, f"data folder '{root}'")
    return ImageDataset(images, labels, len(classes), root.name, tuple(classes), tuple(skipped))


def load_hf_dataset(path: str | Path, size: int, image_column: str, label_column: str, split: str | None = None,
                    per_class: int | None = None, skip_unreadable: bool = False) -> ImageDataset:
    """A ``datasets`` data set saved with ``save_to_disk`` (read with ``load_from_disk``,
    offline); ``split`` picks one of a ``DatasetDict``'s splits. Class names come from the
    label column's ``ClassLabel`` feature, if it has one."""
    root = Path(path)
    if not root.is_dir():
        raise DataError(f"data set directory '{root}' does not exist")
    try:
        import datasets
    except ImportError as exc:
        raise DataError(f"data.source 'hf_dataset' needs the 'datasets' package (pip install 'fadejax[text]'): {exc}") from None
    try:
        loaded = datasets.load_from_disk(str(root))
    except Exception as exc:  # FileNotFoundError, or a directory that is not a saved data set
        raise DataError(f"'{root}' is not a data set saved with save_to_disk: {exc}") from None
    if isinstance(loaded, datasets.DatasetDict):
        if split is None or split not in loaded:
            raise DataError(f"data set '{root}' has splits {sorted(loaded)}; choose one with data.split" + ("" if split is None else f" (not '{split}')"))
        loaded = loaded[split]
    missing = [c for c in (image_column, label_column) if c not in loaded.column_names]
    if missing:
        raise DataError(f"data set '{root}' has no column {missing}; its columns are {loaded.column_names} "
                        "(set data.image_column and data.label_column)")
    feature = loaded.features[label_column]
    names = tuple(feature.names) if isinstance(feature, datasets.ClassLabel) else None
    labels = [int(v) for v in loaded[label_column]]
    if any(v < 0 for v in labels):
        raise DataError(f"data set '{root}': column '{label_column}' must hold class indices >= 0")
    taken: dict[int, int] = {}
    rows = []
    for row, label in enumerate(labels):
        if per_class is None or taken.get(label, 0) < per_class:
            taken[label] = taken.get(label, 0) + 1
            rows.append(row)
    images_column = loaded.select(rows).cast_column(image_column, datasets.Image(decode=False))[image_column] if rows else []
    items = [(labels[row], _raw_image(value), f"data set '{root}' row {row}") for row, value in zip(rows, images_column)]
    images, kept, skipped = _collect(items, size, skip_unreadable, f"data set '{root}'")
    num_classes = len(names) if names else int(max(labels)) + 1
    return ImageDataset(images, kept, num_classes, root.name, names, tuple(skipped))


def _raw_image(value):
    """An undecoded ``datasets.Image`` value (``{"bytes", "path"}``) as something PIL opens."""
    import io

    if isinstance(value, dict):
        return io.BytesIO(value["bytes"]) if value.get("bytes") is not None else value.get("path")
    return value


#: ITU-R 601-2 luma weights (PIL's ``convert("L")``): RGB -> grey
LUMA = np.asarray([0.299, 0.587, 0.114], np.float32)


def convert_channels(data: ImageDataset, channels: int | None) -> ImageDataset:
    """``data`` with images of ``channels`` channels (``converted`` says how, if they were
    converted); ``channels=None`` keeps the images as they are."""
    have = int(data.images.shape[-1])
    if channels is None or channels == have:
        return data
    if channels == 1:
        images = np.clip(data.images @ LUMA, 0.0, 1.0)[..., None].astype(np.float32)
        how = "RGB -> grey by luminance (0.299 R + 0.587 G + 0.114 B)"
    else:
        images = np.repeat(data.images, 3, axis=-1)
        how = "grey -> RGB by repeating the channel"
    return replace(data, images=images, converted=how)


def map_classes(data: ImageDataset, model_names: list[str] | None, by: str) -> ImageDataset:
    """The data with its labels as the model's class indices.

    ``by: name``: each data class must be one of the model's names (compared without case
    or surrounding space); a data class the model does not know is a :class:`DataError`
    naming it. ``by: index``: the data's class ``i`` is the model's class ``i`` (checked
    against the number of the model's classes)."""
    if by == "index" or data.class_names is None or model_names is None:
        if model_names is not None and data.num_classes > len(model_names):
            raise DataError(f"the data has {data.num_classes} classes but the model only {len(model_names)}")
        return data
    known = {n.strip().lower(): i for i, n in enumerate(model_names)}
    unknown = [n for n in data.class_names if n.strip().lower() not in known]
    if unknown:
        shown = ", ".join(repr(n) for n in model_names[:12]) + (" ..." if len(model_names) > 12 else "")
        raise DataError(f"data classes {unknown} are not classes of the model (its classes: {shown}); "
                        "rename them, or set data.class_map: index to match by position")
    lookup = np.asarray([known[n.strip().lower()] for n in data.class_names], np.int32)
    return replace(data, labels=lookup[data.labels], num_classes=len(model_names), class_names=tuple(model_names))
