"""The classifier oracle: one batched, checked call of a torch classifier per iteration."""

from __future__ import annotations

from typing import Sequence

import jax
import torch
from torch import nn

from bridges.arrays import jax_to_torch, torch_to_jax


class OracleError(RuntimeError):
    """The audited model returned something the engine cannot score."""


class ClassifierOracle:
    """Wraps any ``nn.Module`` mapping ``(B, C, H, W)`` images to ``(B, num_classes)`` logits.

    Args:
      model: the audited classifier (put in eval mode here).
      num_classes: the number of classes its output must have.
      device: torch device to run on, e.g. ``"cpu"`` or ``"cuda:0"``.
      mean, std: optional per-channel input normalisation applied before the model.

    Calling it takes JAX images ``(B, H, W, C)`` in [0, 1] and returns JAX logits
    ``(B, num_classes)`` float32; the arrays cross by DLPack.
    """

    def __init__(self, model: nn.Module, num_classes: int, device: str = "cpu", mean: Sequence[float] | None = None, std: Sequence[float] | None = None):
        try:
            self.device = torch.device(device)
        except RuntimeError as exc:
            raise OracleError(f"model.device '{device}' is not a torch device: {exc}") from None
        try:
            self.model = model.to(self.device).eval()
        except (RuntimeError, AssertionError) as exc:  # e.g. a CUDA device on a CPU-only torch
            raise OracleError(f"model.device '{device}' cannot be used here: {exc}") from None
        self.num_classes = num_classes
        shape = (1, -1, 1, 1)
        self.mean = None if mean is None else torch.tensor(mean, dtype=torch.float32, device=self.device).view(shape)
        self.std = None if std is None else torch.tensor(std, dtype=torch.float32, device=self.device).view(shape)
        self._penultimate = _last_linear(self.model)
        self._captured: torch.Tensor | None = None

    def _prepare(self, images: jax.Array) -> torch.Tensor:
        x = jax_to_torch(images, self.device).permute(0, 3, 1, 2)
        if self.mean is not None:
            x = x - self.mean
        if self.std is not None:
            x = x / self.std
        return x

    def _check(self, logits: torch.Tensor, batch: int) -> None:
        if logits.ndim != 2 or logits.shape[0] != batch:
            raise OracleError(f"the audited model returned shape {tuple(logits.shape)}; expected ({batch}, {self.num_classes})")
        if logits.shape[1] != self.num_classes:
            raise OracleError(
                f"the audited model returned {logits.shape[1]} classes; the data set has {self.num_classes} "
                "(set model.num_classes or use a model for this data)"
            )
        if not bool(torch.isfinite(logits).all()):
            raise OracleError("the audited model returned NaN or Inf logits")

    @torch.inference_mode()
    def __call__(self, images: jax.Array) -> jax.Array:
        logits = self.model(self._prepare(images)).float()
        self._check(logits, images.shape[0])
        return torch_to_jax(logits)

    @torch.inference_mode()
    def features(self, images: jax.Array) -> jax.Array:
        """Penultimate activations ``(B, F)``: the input of the model's last ``nn.Linear``."""
        if self._penultimate is None:
            raise OracleError("the audited model has no nn.Linear layer to read penultimate features from")

        def capture(module, inputs, output):
            self._captured = inputs[0].detach().flatten(1)

        handle = self._penultimate.register_forward_hook(capture)
        try:
            self.model(self._prepare(images))
        finally:
            handle.remove()
        return torch_to_jax(self._captured.float())


def _last_linear(model: nn.Module) -> nn.Linear | None:
    linears = [m for m in model.modules() if isinstance(m, nn.Linear)]
    return linears[-1] if linears else None
