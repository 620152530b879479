"""A classifier whose failures are knobs in its weights, so a stand-in fine-tuner can make
a known change (the fade tests' stopping rules)."""

import torch

from bridges.digits_cnn import DigitsCNN


class Knobbed(DigitsCNN):
    """The digits CNN with two knobs kept in its state dict: an image whose brightest pixel
    is below ``dark_threshold`` is answered as the next class (``darkness d`` leaves at most
    ``1 - d``), and every answer of class ``broken`` (``-1``: none) as the next one."""

    def __init__(self, image_size: int = 32):
        super().__init__(image_size)
        self.register_buffer("dark_threshold", torch.tensor(0.0))
        self.register_buffer("broken", torch.tensor(-1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        logits = super().forward(x)
        dark = x.amax(dim=(1, 2, 3)) < self.dark_threshold
        logits = torch.where(dark[:, None], logits.roll(1, dims=1), logits)
        wrong = logits.argmax(dim=1) == self.broken
        return torch.where(wrong[:, None], logits.roll(1, dims=1), logits)
