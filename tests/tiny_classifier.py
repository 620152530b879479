"""A tiny RGB classifier for audits of generated images, built and saved in tests.

``TinyRGB(num_classes, image_size)``: flatten, a hidden layer of 8, the class head (the
fine-tuner's final linear layer). ``make_tiny_classifier(path, seed)`` saves a seeded
random one as safetensors; ``model.source: file`` with ``architecture:
tiny_classifier:TinyRGB`` loads it (the tests directory is on the path).
"""

from __future__ import annotations

from pathlib import Path

import torch
from torch import nn


class TinyRGB(nn.Module):
    def __init__(self, num_classes: int = 3, image_size: int = 16):
        super().__init__()
        self.features = nn.Sequential(nn.Flatten(), nn.Linear(3 * image_size * image_size, 8), nn.ReLU())
        self.head = nn.Linear(8, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # (B, 3, S, S) -> (B, classes)
        return self.head(self.features(x))


def make_tiny_classifier(path: str | Path, seed: int = 0, num_classes: int = 3, image_size: int = 16) -> Path:
    from safetensors.torch import save_file

    torch.manual_seed(seed)
    model = TinyRGB(num_classes, image_size)
    save_file({k: v.contiguous() for k, v in model.state_dict().items()}, str(path))
    return Path(path)


class TinyGrey(nn.Module):
    """A one-channel convolutional classifier (a LeNet's first layer takes grey images)."""

    def __init__(self, num_classes: int = 3, image_size: int = 16):
        super().__init__()
        self.conv = nn.Conv2d(1, 4, 3)
        self.head = nn.Linear(4 * (image_size - 2) ** 2, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # (B, 1, S, S) -> (B, classes)
        return self.head(torch.relu(self.conv(x)).flatten(1))


def save_seeded(model: nn.Module, path: str | Path, seed: int = 0) -> Path:
    """Save ``model``'s state (re-initialised with ``seed``) as safetensors."""
    from safetensors.torch import save_file

    torch.manual_seed(seed)
    for module in model.modules():
        if hasattr(module, "reset_parameters"):
            module.reset_parameters()
    save_file({k: v.contiguous() for k, v in model.state_dict().items()}, str(path))
    return Path(path)


class TinyNormalised(TinyRGB):
    """A ``TinyRGB`` whose class states the input normalisation it was trained on (as a
    file model may): the pre-flight refuses a config that does not apply it."""

    normalize_mean = (0.5, 0.4, 0.3)
    normalize_std = (0.25, 0.25, 0.2)
