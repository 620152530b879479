"""Image operations the perturbation families share: grey levels, per-sample strengths and
a separable Gaussian blur that jits with per-sample sigmas.

Images are ``(B, H, W, C)`` float32 in ``[0, 1]`` (C = 1 grey or 3 RGB).
"""

from __future__ import annotations

import math
from typing import Callable

import jax
import jax.numpy as jnp

#: ``apply(images (B, H, W, C), strengths (B,), key) -> images (B, H, W, C)``
ApplyFn = Callable[[jax.Array, jax.Array, jax.Array], jax.Array]

# ITU-R 601-2 luma, the weights PIL uses for its "L" (grey) conversion.
LUMA = jnp.array([0.299, 0.587, 0.114], dtype=jnp.float32)

#: scipy.ndimage's edge modes and the jnp.pad mode that gives the same padding
_PAD_MODES = {"reflect": "symmetric", "nearest": "edge", "mirror": "reflect", "constant": "constant"}


def grey(images: jax.Array) -> jax.Array:
    """Luma of ``(B, H, W, C)`` images, shape ``(B, H, W, 1)``; C = 1 passes through."""
    if images.shape[-1] == 1:
        return images
    return jnp.sum(images * LUMA, axis=-1, keepdims=True)


def per_sample(params: jax.Array) -> jax.Array:
    """``(B,)`` -> ``(B, 1, 1, 1)`` so it broadcasts over an image batch."""
    return jnp.asarray(params, jnp.float32)[:, None, None, None]


def gaussian_weights(sigma: jax.Array, radius: int, truncate: float = 4.0) -> jax.Array:
    """``(B, 2 * radius + 1)`` normalised 1-D Gaussian taps for per-sample ``sigma`` ``(B,)``
    (pixels), cut at ``truncate`` sigmas as ``scipy.ndimage.gaussian_filter``; a sigma under
    0.001 is the identity tap."""
    offsets = jnp.arange(-radius, radius + 1, dtype=jnp.float32)
    sigma = jnp.asarray(sigma, jnp.float32)[:, None]
    safe = jnp.maximum(sigma, 1e-6)
    weights = jnp.exp(-0.5 * (offsets / safe) ** 2) * (jnp.abs(offsets) <= truncate * safe + 0.5)
    weights = weights / jnp.sum(weights, axis=1, keepdims=True)
    return jnp.where(sigma < 1e-3, (offsets == 0).astype(jnp.float32), weights)


def separable_filter(images: jax.Array, rows: jax.Array, cols: jax.Array, mode: str = "reflect") -> jax.Array:
    """Filter ``(B, H, W, C)`` images with per-sample 1-D taps along H (``rows``, ``(B, K)``)
    then W (``cols``, ``(B, K)``; K odd, centred), edges padded as ``scipy.ndimage``'s
    ``mode`` (reflect, nearest, mirror or constant 0). Not clipped."""
    radius = rows.shape[1] // 2
    _, height, width, _ = images.shape
    padded = jnp.pad(images, ((0, 0), (radius, radius), (radius, radius), (0, 0)), mode=_PAD_MODES[mode])
    # the tap loop is unrolled and fused by XLA
    out = sum(rows[:, k, None, None, None] * padded[:, k : k + height, :, :] for k in range(2 * radius + 1))
    return sum(cols[:, k, None, None, None] * out[:, :, k : k + width, :] for k in range(2 * radius + 1))


def make_gaussian_blur(max_sigma: float, truncate: float = 4.0, mode: str = "reflect") -> ApplyFn:
    """A Gaussian blur whose per-sample ``sigma`` (pixels) may go up to ``max_sigma``.

    The kernel radius is fixed at trace time to ``ceil(truncate * max_sigma)`` so the
    function jits with per-sample sigmas; edges as ``scipy.ndimage``'s ``mode`` (the
    ``blur`` family reflects; scikit-image's ``gaussian`` repeats the edge, ``nearest``).
    """
    radius = max(1, int(math.ceil(truncate * max(max_sigma, 0.0))))

    def blur(images: jax.Array, sigma: jax.Array, key: jax.Array | None = None) -> jax.Array:
        weights = gaussian_weights(sigma, radius, truncate)
        return jnp.clip(separable_filter(images, weights, weights, mode), 0.0, 1.0)

    return blur
