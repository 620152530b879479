"""ImageNet-C's noise corruptions (Hendrycks & Dietterich; the ``imagecorruptions`` package)
as batched JAX functions: Gaussian, shot (Poisson), impulse (salt and pepper) and speckle noise.

Each draws fresh noise for the whole batch from its key; every element's draw depends only
on the key, its position and its own severity, so a batch with mixed per-sample severities
gives each image what a batch at its severity alone would. Grey images are noised element
by element, as the reference does with a 2-D array.
"""

from __future__ import annotations

import math
from typing import Sequence

import jax
import jax.numpy as jnp
from jax import lax

from fadejax.core.corruptions.common import Corruption, levels, table, unless_clean
from fadejax.core.image_ops import ApplyFn, per_sample

GAUSSIAN_SIGMA = (0.08, 0.12, 0.18, 0.26, 0.38)
SHOT_PHOTONS = (60, 25, 12, 5, 3)
IMPULSE_AMOUNT = (0.03, 0.06, 0.09, 0.17, 0.27)
SPECKLE_SIGMA = (0.15, 0.2, 0.35, 0.45, 0.6)


def build_gaussian_noise(severities: Sequence[float]) -> ApplyFn:
    """``clip(x + N(0, c^2))`` per element, c = the severity's sigma (in [0, 1] units)."""

    def apply(images: jax.Array, severity: jax.Array, key: jax.Array) -> jax.Array:
        level = levels(severity)
        sigma = per_sample(table(GAUSSIAN_SIGMA, level))
        return unless_clean(images, level, images + sigma * jax.random.normal(key, images.shape, jnp.float32))

    return apply


def _poisson(key: jax.Array, rate: jax.Array, max_rate: float) -> jax.Array:
    """Poisson counts for per-element ``rate`` (at most ``max_rate``) by inverting the CDF with
    one uniform per element, so an element's count does not depend on the others' rates
    (``jax.random.poisson``'s rejection loop may overwrite an accepted count while other
    elements are still drawing). Float32; the search stops where the tail past the mode is
    below 1e-12 (rounding can leave the summed CDF just under a uniform close to 1)."""
    u = jax.random.uniform(key, rate.shape, jnp.float32)
    limit = math.ceil(max_rate + 12.0 * math.sqrt(max_rate) + 10.0)

    def searching(k, count, pmf, cdf):
        return (cdf < u) & ((k <= rate) | (pmf > 1e-12))

    def cond(carry):
        k, count, pmf, cdf = carry
        return (k <= limit) & jnp.any(searching(k, count, pmf, cdf))

    def body(carry):
        k, count, pmf, cdf = carry
        count = count + searching(k, count, pmf, cdf)  # count = #{k : P(X <= k - 1) < u}
        pmf = pmf * rate / k
        return k + 1.0, count, pmf, cdf + pmf

    start = jnp.exp(-rate)
    return lax.while_loop(cond, body, (jnp.float32(1.0), jnp.zeros_like(rate), start, start))[1]


def build_shot_noise(severities: Sequence[float]) -> ApplyFn:
    """``clip(Poisson(x * c) / c)`` per element, c = the severity's photon count (60 ... 3)."""

    def apply(images: jax.Array, severity: jax.Array, key: jax.Array) -> jax.Array:
        level = levels(severity)
        photons = per_sample(table(SHOT_PHOTONS, level, clean=1.0))
        counts = _poisson(key, images * photons, float(max(SHOT_PHOTONS)))
        return unless_clean(images, level, counts / photons)

    return apply


def build_impulse_noise(severities: Sequence[float]) -> ApplyFn:
    """scikit-image's ``random_noise(x, mode='s&p', amount=c)``: each element independently
    replaced with probability c, by 1 or 0 with equal probability (per channel on RGB)."""

    def apply(images: jax.Array, severity: jax.Array, key: jax.Array) -> jax.Array:
        level = levels(severity)
        amount = per_sample(table(IMPULSE_AMOUNT, level))
        flip_key, salt_key = jax.random.split(key)
        flipped = jax.random.uniform(flip_key, images.shape) <= amount  # <= as scikit-image
        salted = jax.random.uniform(salt_key, images.shape) <= 0.5
        return unless_clean(images, level, jnp.where(flipped, salted.astype(jnp.float32), images))

    return apply


def build_speckle_noise(severities: Sequence[float]) -> ApplyFn:
    """``clip(x + x * N(0, c^2))`` per element: multiplicative noise, c = the severity's sigma."""

    def apply(images: jax.Array, severity: jax.Array, key: jax.Array) -> jax.Array:
        level = levels(severity)
        sigma = per_sample(table(SPECKLE_SIGMA, level))
        return unless_clean(images, level, images + images * sigma * jax.random.normal(key, images.shape, jnp.float32))

    return apply


CORRUPTIONS = (
    Corruption("gaussian_noise", "noise", build_gaussian_noise, random=True, pointwise=True),
    Corruption("shot_noise", "noise", build_shot_noise, random=True, pointwise=True),
    Corruption("impulse_noise", "noise", build_impulse_noise, random=True, pointwise=True),
    Corruption("speckle_noise", "noise", build_speckle_noise, random=True, held_out=True, pointwise=True),
)
