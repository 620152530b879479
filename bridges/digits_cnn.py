"""The embedded default audited model: a small CNN trained by the project on scikit-learn's digits.

Training is seeded and deterministic on the CPU; the weights are cached as safetensors
under ``$FADEJAX_CACHE`` (default ``~/.cache/fadejax``) in ``models/``, keyed by
everything that shapes them, and reused on later runs.

The training loop and the cache serve every embedded architecture in :data:`EMBEDDED`
(``model.architecture`` under ``model.source: embedded``): this CNN, and the LeNet of
``bridges/digits_lenet.py`` that the second image audit uses.
"""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path
from typing import Callable

import numpy as np
import torch
from safetensors.torch import load_file, save_file
from torch import nn

from fadejax.engine.compilation_cache import fadejax_cache

ARCHITECTURE_VERSION = 1

DEFAULT_ARCHITECTURE = "digits_cnn"

# model.architecture name -> "package.module:Class" (built with image_size=...) and the
# version of that architecture's code, part of its cache key.
EMBEDDED: dict[str, tuple[str, int]] = {
    "digits_cnn": ("bridges.digits_cnn:DigitsCNN", ARCHITECTURE_VERSION),
    "digits_lenet": ("bridges.digits_lenet:DigitsLeNet", 1),
}


class DigitsCNN(nn.Module):
    """``(B, C, S, S)`` images in [0, 1] (``channels`` C: 1 grey, 3 colour) -> ``(B, 10)``
    logits, S divisible by 4.

    No input normalisation layer, so darkening the input changes what the network sees.
    """

    def __init__(self, image_size: int = 32, num_classes: int = 10, channels: int = 1):
        super().__init__()
        self.features = nn.Sequential(
            nn.Conv2d(channels, 32, 3, padding=1), nn.ReLU(),
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
    """fadejax's cache directory (``$FADEJAX_CACHE``, default ``~/.cache/fadejax``)."""
    return fadejax_cache()


def embedded_module(architecture: str) -> Callable[..., nn.Module]:
    """The module class of an embedded architecture name (see :data:`EMBEDDED`)."""
    import importlib

    if architecture not in EMBEDDED:
        raise ValueError(f"'{architecture}' is not an embedded model; the embedded ones are {sorted(EMBEDDED)}")
    module, name = EMBEDDED[architecture][0].split(":")
    return getattr(importlib.import_module(module), name)


def _cache_key(recipe: dict, architecture: str = DEFAULT_ARCHITECTURE) -> str:
    # The default's key is what it has always been; other architectures add their name.
    named = {} if architecture == DEFAULT_ARCHITECTURE else {"architecture": architecture}
    blob = json.dumps({**recipe, **named, "architecture_version": EMBEDDED[architecture][1]}, sort_keys=True)
    return hashlib.sha256(blob.encode()).hexdigest()[:16]


def train(
    images: np.ndarray, labels: np.ndarray, *, epochs: int, learning_rate: float, batch_size: int, seed: int,
    progress: bool = True, module: Callable[..., nn.Module] = DigitsCNN, label: str = "embedded digits CNN",
) -> nn.Module:
    """Train ``module(image_size=S, channels=C)`` on ``(N, S, S, C)`` images in [0, 1], deterministically.

    The module is built after seeding torch, so its initial weights follow ``seed`` too;
    Adam with ``learning_rate``, cross-entropy, shuffled mini-batches, ``epochs`` passes.
    """
    torch.manual_seed(seed)
    generator = torch.Generator().manual_seed(seed)
    model = module(image_size=images.shape[1], channels=images.shape[-1])
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
            print(f"  {label}: epoch {epoch + 1}/{epochs}, train loss {total / len(y):.4f}", flush=True)
    return model.eval()


@torch.inference_mode()
def accuracy(model: nn.Module, images: np.ndarray, labels: np.ndarray) -> float:
    x = torch.from_numpy(np.ascontiguousarray(images.transpose(0, 3, 1, 2)))
    return float((model(x).argmax(-1).numpy() == labels).mean())


def load_or_train(
    train_set, held_out, recipe: dict, progress: bool = True, architecture: str = DEFAULT_ARCHITECTURE,
) -> tuple[nn.Module, dict]:
    """The embedded model for this recipe: from the cache if present, else trained and cached.

    Args:
      train_set, held_out: :class:`fadejax.audits.image.data.ImageDataset` splits (the model never sees held_out).
      recipe: epochs, learning_rate, batch_size, seed, plus the data settings that shaped the split.
      architecture: a name in :data:`EMBEDDED` (the cache file is named after it).

    Returns:
      ``(model in eval mode, info)`` where info has the cache path and clean accuracies.
    """
    module = embedded_module(architecture)
    key = _cache_key(recipe, architecture)
    directory = cache_dir() / "models"
    weights = directory / f"{architecture}-{key}.safetensors"
    info_path = weights.with_suffix(".json")
    model = module(image_size=train_set.images.shape[1], channels=train_set.images.shape[-1])
    if weights.is_file() and info_path.is_file():
        model.load_state_dict(load_file(weights))
        return model.eval(), json.loads(info_path.read_text())
    label = "embedded digits CNN" if architecture == DEFAULT_ARCHITECTURE else f"embedded {architecture}"
    if progress:
        print(f"training the {label} once (cached at {weights})", flush=True)
    model = train(
        train_set.images, train_set.labels,
        epochs=recipe["epochs"], learning_rate=recipe["learning_rate"], batch_size=recipe["batch_size"],
        seed=recipe["seed"], progress=progress, module=module, label=label,
    )
    info = {
        "weights": str(weights),
        "architecture": architecture,
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
