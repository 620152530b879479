"""A classifier built to fail on one known concept, for the model-family tests."""

import torch

from bridges.digits_cnn import DigitsCNN


class DarkBlind(DigitsCNN):
    """The digits CNN, except on dark images: when an image's brightest pixel is below
    ``threshold`` it answers the next class (``darkness 0.62`` leaves at most 0.38)."""

    def __init__(self, image_size: int = 32, threshold: float = 0.4):
        super().__init__(image_size)
        self.threshold = threshold

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        logits = super().forward(x)
        dark = x.amax(dim=(1, 2, 3)) < self.threshold
        return torch.where(dark[:, None], logits.roll(1, dims=1), logits)
