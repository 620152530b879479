"""ImageNet-C's colour corruptions (Hendrycks & Dietterich; the ``imagecorruptions`` package)
as batched JAX functions: brightness, contrast and saturate (all deterministic), with
scikit-image's HSV conversions (``rgb2hsv``/``hsv2rgb``) in JAX.
"""

from __future__ import annotations

from typing import Sequence

import jax
import jax.numpy as jnp

from fadejax.core.corruptions.common import Corruption, levels, table, unless_clean
from fadejax.core.image_ops import ApplyFn, per_sample

BRIGHTNESS_SHIFT = (0.1, 0.2, 0.3, 0.4, 0.5)
CONTRAST_FACTOR = (0.4, 0.3, 0.2, 0.1, 0.05)
SATURATE_SCALE_SHIFT = ((0.3, 0.0), (0.1, 0.0), (2.0, 0.0), (5.0, 0.1), (20.0, 0.2))


def rgb_to_hsv(rgb: jax.Array) -> jax.Array:
    """``(..., 3)`` RGB in [0, 1] -> HSV in [0, 1] as scikit-image's ``rgb2hsv``: a grey pixel
    (no spread) has hue and saturation 0; where two channels share the maximum, blue's hue
    formula wins over green's over red's (they agree there)."""
    r, g, b = rgb[..., 0], rgb[..., 1], rgb[..., 2]
    v = jnp.max(rgb, axis=-1)
    delta = v - jnp.min(rgb, axis=-1)
    grey = delta == 0
    safe = jnp.where(grey, 1.0, delta)
    s = jnp.where(grey, 0.0, delta / jnp.where(v == 0, 1.0, v))
    h = jnp.where(b == v, 4.0 + (r - g) / safe, jnp.where(g == v, 2.0 + (b - r) / safe, (g - b) / safe))
    h = jnp.where(grey, 0.0, jnp.mod(h / 6.0, 1.0))
    return jnp.stack([h, s, v], axis=-1)


def hsv_to_rgb(hsv: jax.Array) -> jax.Array:
    """``(..., 3)`` HSV in [0, 1] -> RGB as scikit-image's ``hsv2rgb`` (hue sector ``floor(6 h) mod 6``)."""
    h, s, v = hsv[..., 0], hsv[..., 1], hsv[..., 2]
    sector = jnp.floor(h * 6.0)
    f = h * 6.0 - sector
    p = v * (1.0 - s)
    q = v * (1.0 - f * s)
    t = v * (1.0 - (1.0 - f) * s)
    sextants = jnp.stack([jnp.stack(rgb, axis=-1) for rgb in
                          ((v, t, p), (q, v, p), (p, v, t), (p, q, v), (t, p, v), (v, p, q))], axis=-2)  # (..., 6, 3)
    index = jnp.mod(sector.astype(jnp.int32), 6)[..., None, None]
    return jnp.take_along_axis(sextants, index, axis=-2)[..., 0, :]


def build_brightness(severities: Sequence[float]) -> ApplyFn:
    """RGB: the reference adds c to HSV's value V (clipped to 1) and converts back; every
    channel is V times a function of hue and saturation, so that is the pixel scaled by
    ``min(V + c, 1) / V`` (a black pixel becomes grey ``c``). Grey: ``clip(x + c)``, as the
    reference does for a 2-D image. c = 0.1 ... 0.5 in [0, 1] units."""

    def apply(images: jax.Array, severity: jax.Array, key: jax.Array | None = None) -> jax.Array:
        level = levels(severity)
        shift = per_sample(table(BRIGHTNESS_SHIFT, level))
        if images.shape[-1] == 1:
            return unless_clean(images, level, images + shift)
        value = jnp.max(images, axis=-1, keepdims=True)
        target = jnp.minimum(value + shift, 1.0)
        scaled = images * (target / jnp.where(value > 0, value, 1.0))
        return unless_clean(images, level, jnp.where(value > 0, scaled, target))

    return apply


def build_contrast(severities: Sequence[float]) -> ApplyFn:
    """``clip((x - m) * c + m)``, m the image's mean per channel over H and W, c = 0.4 ... 0.05."""

    def apply(images: jax.Array, severity: jax.Array, key: jax.Array | None = None) -> jax.Array:
        level = levels(severity)
        factor = per_sample(table(CONTRAST_FACTOR, level))
        means = jnp.mean(images, axis=(1, 2), keepdims=True)
        return unless_clean(images, level, (images - means) * factor + means)

    return apply


def build_saturate(severities: Sequence[float]) -> ApplyFn:
    """RGB -> HSV, ``S = clip(S * c0 + c1, 0, 1)``, back to RGB (the reference, with
    scikit-image's conversions; c1 > 0 tints grey pixels red, whose hue is 0). Grey images
    are returned unchanged: the reference stacks them to RGB and keeps channel 0, which for
    hue 0 is the value, the input."""

    def apply(images: jax.Array, severity: jax.Array, key: jax.Array | None = None) -> jax.Array:
        if images.shape[-1] == 1:
            return images
        level = levels(severity)
        params = table(SATURATE_SCALE_SHIFT, level)  # (B, 2)
        hsv = rgb_to_hsv(images)
        s = jnp.clip(hsv[..., 1] * params[:, 0, None, None] + params[:, 1, None, None], 0.0, 1.0)
        return unless_clean(images, level, hsv_to_rgb(hsv.at[..., 1].set(s)))

    return apply


CORRUPTIONS = (
    Corruption("brightness", "digital", build_brightness, random=False, pointwise=True),
    Corruption("contrast", "digital", build_contrast, random=False),
    Corruption("saturate", "digital", build_saturate, random=False, held_out=True, pointwise=True),
)
