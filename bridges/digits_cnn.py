"""The embedded default audited model: a small CNN trained by the project on scikit-learn's digits.

Training is seeded and deterministic on the CPU; the weights are cached as safetensors
under ``$FADEJAX_CACHE`` (default ``~/.cache/fadejax``) in ``models/``, keyed by
everything that shapes them, and reused on later runs.
"""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path

import numpy as np
import torch
from safetensors.torch import load_file, save_file
from torch import nn

ARCHITECTURE_VERSION = 1


class DigitsCNN(nn.Module):
    """``(B, 1, S, S)`` grey images in [0, 1] -> ``(B, 10)`` logits, S divisible by 4.

    No input normalisation layer, so darkening the input changes what the network sees.
    """

    def __init__(self, image_size: int = 32, num_classes: int = 10):
        super().__init__()
        self.features = nn.Sequential(
            nn.Conv2d(1, 32, 3, padding=1), nn.ReLU(),
            nn.Conv2d(32, 32, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
            nn.Conv2d(32, 64, 3, padding=1), nn.ReLU(),
            nn.Conv2d(64, 64, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
            nn.Flatten(),
            nn.Linear(64 * (image_size // 4) ** 2, 128), nn.ReLU(),
        )
        self.head = nn.Linear(128, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.features(x))


def cache_dir() -> Path:
    return Path(os.environ.get("FADEJAX_CACHE", Path.home() / ".cache" / "fadejax"))


def _cache_key(recipe: dict) -> str:
    blob = json.dumps({**recipe, "architecture_version": ARCHITECTURE_VERSION}, sort_keys=True)
    return hashlib.sha256(blob.encode()).hexdigest()[:16]


def train(images: np.ndarray, labels: np.ndarray, *, epochs: int, learning_rate: float, batch_size: int, seed: int, progress: bool = True) -> DigitsCNN:
    """Train a :class:`DigitsCNN` on ``(N, S, S, 1)`` images in [0, 1], deterministically."""
    torch.manual_seed(seed)
    generator = torch.Generator().manual_seed(seed)
    model = DigitsCNN(image_size=images.shape[1])
    x = torch.from_numpy(np.ascontiguousarray(images.transpose(0, 3, 1, 2)))
    y = torch.from_numpy(labels.astype(np.int64))
    optimizer = torch.optim.Adam(model.parameters(), lr=learning_rate)
    model.train()
    for epoch in range(epochs):
        order = torch.randperm(len(y), generator=generator)
        total = 0.0
        for start in range(0, len(y), batch_size):
            batch = order[start : start + batch_size]
            loss = nn.functional.cross_entropy(model(x[batch]), y[batch])
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
            total += float(loss.detach()) * len(batch)
        if progress:
            print(f"  embedded digits CNN: epoch {epoch + 1}/{epochs}, train loss {total / len(y):.4f}", flush=True)
    return model.eval()


@torch.inference_mode()
def accuracy(model: nn.Module, images: np.ndarray, labels: np.ndarray) -> float:
    x = torch.from_numpy(np.ascontiguousarray(images.transpose(0, 3, 1, 2)))
    return float((model(x).argmax(-1).numpy() == labels).mean())


def load_or_train(train_set, held_out, recipe: dict, progress: bool = True) -> tuple[DigitsCNN, dict]:
    """The embedded model for this recipe: from the cache if present, else trained and cached.

    Args:
      train_set, held_out: :class:`fadejax.data.ImageDataset` splits (the model never sees held_out).
      recipe: epochs, learning_rate, batch_size, seed, plus the data settings that shaped the split.

    Returns:
      ``(model in eval mode, info)`` where info has the cache path and clean accuracies.
    """
    key = _cache_key(recipe)
    directory = cache_dir() / "models"
    weights = directory / f"digits_cnn-{key}.safetensors"
    info_path = weights.with_suffix(".json")
    model = DigitsCNN(image_size=train_set.images.shape[1])
    if weights.is_file() and info_path.is_file():
        model.load_state_dict(load_file(weights))
        return model.eval(), json.loads(info_path.read_text())
    if progress:
        print(f"training the embedded digits CNN once (cached at {weights})", flush=True)
    model = train(
        train_set.images, train_set.labels,
        epochs=recipe["epochs"], learning_rate=recipe["learning_rate"], batch_size=recipe["batch_size"],
        seed=recipe["seed"], progress=progress,
    )
    info = {
        "weights": str(weights),
        "recipe": recipe,
        "train_accuracy": accuracy(model, train_set.images, train_set.labels),
        "held_out_accuracy": accuracy(model, held_out.images, held_out.labels),
    }
    directory.mkdir(parents=True, exist_ok=True)
    # Write to temporary names first so an interrupted run never leaves half a cache entry.
    tmp_weights = weights.with_suffix(".tmp")
    save_file({k: v.contiguous() for k, v in model.state_dict().items()}, str(tmp_weights))
    tmp_info = info_path.with_suffix(".jsontmp")
    tmp_info.write_text(json.dumps(info, indent=2))
    os.replace(tmp_weights, weights)
    os.replace(tmp_info, info_path)
    return model, info
