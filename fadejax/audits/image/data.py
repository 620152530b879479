"""Image data sets: the embedded digits (shipped inside scikit-learn) and local .npz files.

Images are ``(N, H, W, C)`` float32 in ``[0, 1]``; labels ``(N,)`` int32 in ``[0, num_classes)``.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np

from fadejax.audits.base import AuditError


class DataError(AuditError):
    """A data set is missing, empty or mis-shaped."""


@dataclass(frozen=True)
class ImageDataset:
    images: np.ndarray  # (N, H, W, C) float32 in [0, 1]
    labels: np.ndarray  # (N,) int32
    num_classes: int
    name: str

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

    Returns ``(train, held_out)``; the same arguments always give the same split.
    """
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
    make = lambda r, split: ImageDataset(images[r], labels[r], 10, f"digits-{split}")  # noqa: E731
    return make(np.sort(train_rows), "train"), make(np.sort(held_rows), "held_out")


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
