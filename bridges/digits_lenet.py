"""The second embedded audited model: a LeNet-5-style network for scikit-learn's digits.

Deliberately unlike the default CNN (``bridges/digits_cnn.py``: ReLU, max pooling, four
3x3 convolutions at 32x32): two 5x5 convolutions with tanh and average pooling, three
fully connected layers, meant for 28x28 inputs. Trained, cached and loaded by
``bridges.digits_cnn.load_or_train(..., architecture="digits_lenet")``; a config selects
it with ``model: {source: embedded, architecture: digits_lenet}``.
"""

from __future__ import annotations

import torch
from torch import nn


class DigitsLeNet(nn.Module):
    """``(B, C, S, S)`` images in [0, 1] (``channels`` C: 1 grey, 3 colour) -> ``(B, 10)`` logits, S >= 12.

    conv 5x5 (6, same padding) -> tanh -> avg-pool 2 -> conv 5x5 (16, valid) -> tanh ->
    avg-pool 2 -> 120 -> tanh -> 84 -> tanh -> classes. At S = 28 that is LeNet-5's
    shape (16 x 5 x 5 = 400 features into the first linear layer). No input normalisation.
    """

    def __init__(self, image_size: int = 28, num_classes: int = 10, channels: int = 1):
        super().__init__()
        side = (image_size // 2 - 4) // 2
        if side < 1:
            raise ValueError(f"DigitsLeNet needs image_size >= 12, got {image_size}")
        self.features = nn.Sequential(
            nn.Conv2d(channels, 6, 5, padding=2), nn.Tanh(), nn.AvgPool2d(2),
            nn.Conv2d(6, 16, 5), nn.Tanh(), nn.AvgPool2d(2),
            nn.Flatten(),
            nn.Linear(16 * side * side, 120), nn.Tanh(),
            nn.Linear(120, 84), nn.Tanh(),
        )
        self.head = nn.Linear(84, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.features(x))
