"""The classifier oracle: one batched, checked call of a torch classifier per iteration."""

from __future__ import annotations

import copy
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
    ``(B, num_classes)`` float32; the arrays cross by DLPack. A batch sharded over several
    JAX devices (multi-device discovery) is run shard by shard, each on the torch device
    matching its JAX device (a model replica per GPU; the one model on a CPU), and the
    logits come back sharded the same way.
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
        #: ``(channels, layer name)`` the model's first convolution takes, or ``None`` (unknown)
        self.input_channels = first_layer_channels(self.model)
        #: ``(mean, std)`` the model says its inputs were normalised with, or ``None``
        self.stated_normalisation = stated_normalisation(self.model)
        self._replicas: dict[torch.device, nn.Module] = {}
        self._captured: torch.Tensor | None = None

    def _prepare(self, images: jax.Array, device: torch.device | None = None) -> torch.Tensor:
        """JAX ``(B, H, W, C)`` -> normalised torch ``(B, C, H, W)`` on ``device`` (default the model's)."""
        device = device or self.device
        x = jax_to_torch(images, device).permute(0, 3, 1, 2)
        if self.mean is not None:
            x = x - self.mean.to(device)
        if self.std is not None:
            x = x / self.std.to(device)
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
        if isinstance(images, jax.Array) and len(images.sharding.device_set) > 1:
            return self._call_sharded(images)
        logits = self.model(self._prepare(images)).float()
        self._check(logits, images.shape[0])
        return torch_to_jax(logits)

    def _replica(self, device: jax.Device) -> tuple[nn.Module, torch.device]:
        """The model on the torch device that matches a JAX device (copied there once)."""
        if device.platform != "gpu" or self.device.type != "cuda":
            return self.model, self.device
        target = torch.device("cuda", device.local_hardware_id)
        if target == self.device:
            return self.model, self.device
        if target not in self._replicas:
            self._replicas[target] = copy.deepcopy(self.model).to(target).eval()
        return self._replicas[target], target

    def _call_sharded(self, images: jax.Array) -> jax.Array:
        spec = getattr(images.sharding, "spec", None)
        if spec is None or len(spec) == 0 or any(axis is not None for axis in spec[1:]):
            raise OracleError(f"a sharded batch must be split along its first (batch) axis only; got sharding {images.sharding}")
        parts = []
        for shard in sorted(images.addressable_shards, key=lambda s: s.index[0].start or 0):
            model, device = self._replica(shard.device)
            logits = model(self._prepare(shard.data, device)).float()
            self._check(logits, shard.data.shape[0])
            parts.append(jax.device_put(torch_to_jax(logits), shard.device))
        sharding = jax.sharding.NamedSharding(images.sharding.mesh, jax.sharding.PartitionSpec(spec[0]))
        return jax.make_array_from_single_device_arrays((images.shape[0], self.num_classes), sharding, parts)

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


def first_layer_channels(model: nn.Module) -> tuple[int, str] | None:
    """``(input channels, layer name)`` of the model's first convolution, the input it
    fixes; ``None`` for a model without one (or whose first layer is not a convolution), or
    one that adapts its input's channels itself (``adapts_channels = True``)."""
    for name, module in model.named_modules():
        if getattr(module, "adapts_channels", False):
            return None
        if isinstance(module, nn.Conv2d) and not isinstance(module, nn.LazyConv2d):  # a lazy one takes any
            return int(module.in_channels), name
        if isinstance(module, (nn.Linear, nn.Conv1d, nn.Conv3d)):
            return None
    return None


def stated_normalisation(model: nn.Module) -> tuple[list[float], list[float]] | None:
    """``(mean, std)`` per channel that the model states its inputs were normalised with
    (its ``normalize_mean`` and ``normalize_std`` attributes: a file model's class may set
    them, and :func:`bridges.weights.build_vision_model` sets them from the library's
    pretrained weights); ``None`` where it states none."""
    mean, std = getattr(model, "normalize_mean", None), getattr(model, "normalize_std", None)
    if mean is None or std is None:
        return None
    return [float(v) for v in mean], [float(v) for v in std]


def _last_linear(model: nn.Module) -> nn.Linear | None:
    linears = [m for m in model.modules() if isinstance(m, nn.Linear)]
    return linears[-1] if linears else None
