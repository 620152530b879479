"""Array hand-over between JAX and torch through DLPack (zero-copy where they share a device)."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import torch


def jax_to_torch(x: jax.Array, device: torch.device) -> torch.Tensor:
    """A JAX array as a torch tensor on ``device``; no copy when both sit on the same device."""
    try:
        tensor = torch.from_dlpack(x)
    except (RuntimeError, TypeError, BufferError):  # e.g. a device pair DLPack cannot bridge
        tensor = torch.from_numpy(jax.device_get(x).copy())
    return tensor.to(device, non_blocking=True)


def torch_to_jax(t: torch.Tensor) -> jax.Array:
    """A torch tensor as a JAX array (DLPack; falls back to a host copy)."""
    t = t.detach().contiguous()
    try:
        return jnp.from_dlpack(t)
    except (RuntimeError, TypeError, BufferError):
        return jnp.asarray(t.cpu().numpy())
