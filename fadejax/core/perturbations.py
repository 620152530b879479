"""Batched image perturbations in JAX, and a registry so a config can name them.

Every perturbation is a pure function ``apply(images, params, key) -> images``:

* ``images``: ``(B, H, W, C)`` float32 in ``[0, 1]`` (C = 1 grey or 3 RGB);
* ``params``: ``(B,)`` float32, one strength per sample, in the unit the family states;
* ``key``: a ``jax.random`` key (only ``noise`` uses it; the others are deterministic);
* result: same shape, clipped to ``[0, 1]``.

They jit, vmap and run on any JAX device. Each is tested in ``tests/test_perturbations.py``
(``shift_x``, ``shift_y``, ``pixelate``, ``occlusion`` and ``gamma`` in
``tests/test_perturbations_more.py``) against an established implementation (PIL,
scipy.ndimage, scikit-image) with the tolerance stated there.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Callable, Sequence

import jax
import jax.numpy as jnp

from fadejax.core.fusion import materialize

ApplyFn = Callable[[jax.Array, jax.Array, jax.Array], jax.Array]

# ITU-R 601-2 luma, the weights PIL uses for its "L" (grey) conversion.
_LUMA = jnp.array([0.299, 0.587, 0.114], dtype=jnp.float32)


class PerturbationError(ValueError):
    """An unknown perturbation name or a strength outside its allowed range."""


def _grey(images: jax.Array) -> jax.Array:
    """Luma of ``(B, H, W, C)`` images, shape ``(B, H, W, 1)``; C = 1 passes through."""
    if images.shape[-1] == 1:
        return images
    return jnp.sum(images * _LUMA, axis=-1, keepdims=True)


def _per_sample(params: jax.Array) -> jax.Array:
    """``(B,)`` -> ``(B, 1, 1, 1)`` so it broadcasts over an image batch."""
    return jnp.asarray(params, jnp.float32)[:, None, None, None]


def rotate(images: jax.Array, degrees: jax.Array, key: jax.Array | None = None) -> jax.Array:
    """Rotate each image about its centre by ``degrees`` (counter-clockwise as displayed).

    Bilinear interpolation; pixels that come from outside the image are 0 (black), as
    ``scipy.ndimage.rotate(..., reshape=False, order=1, mode='grid-constant')``.
    """
    _, height, width, _ = images.shape
    cy, cx = (height - 1) / 2.0, (width - 1) / 2.0
    ys, xs = jnp.meshgrid(jnp.arange(height, dtype=jnp.float32), jnp.arange(width, dtype=jnp.float32), indexing="ij")

    def one(image: jax.Array, angle: jax.Array) -> jax.Array:
        theta = jnp.deg2rad(angle)
        cos, sin = jnp.cos(theta), jnp.sin(theta)
        dy, dx = ys - cy, xs - cx
        # Inverse map: where in the source does each output pixel come from.
        src_y = cy + cos * dy + sin * dx
        src_x = cx - sin * dy + cos * dx

        def channel(plane: jax.Array) -> jax.Array:
            return jax.scipy.ndimage.map_coordinates(plane, [src_y, src_x], order=1, mode="constant", cval=0.0)

        return jax.vmap(channel, in_axes=-1, out_axes=-1)(image)

    return jnp.clip(jax.vmap(one)(images, jnp.asarray(degrees, jnp.float32)), 0.0, 1.0)


def darkness(images: jax.Array, amount: jax.Array, key: jax.Array | None = None) -> jax.Array:
    """Darken by ``amount`` in ``[0, 1]``: ``x * (1 - amount)`` (PIL Brightness with factor 1 - amount)."""
    return jnp.clip(images * (1.0 - _per_sample(amount)), 0.0, 1.0)


def brightness(images: jax.Array, factor: jax.Array, key: jax.Array | None = None) -> jax.Array:
    """Scale brightness by ``factor`` >= 0 (1 = unchanged), as PIL's ImageEnhance.Brightness."""
    return jnp.clip(images * _per_sample(factor), 0.0, 1.0)


def saturation(images: jax.Array, factor: jax.Array, key: jax.Array | None = None) -> jax.Array:
    """Blend with the image's grey version by ``factor`` (0 = grey, 1 = unchanged), as PIL's ImageEnhance.Color.

    Grey (C = 1) images have no colour and pass through unchanged.
    """
    grey = _grey(images)
    return jnp.clip(grey + _per_sample(factor) * (images - grey), 0.0, 1.0)


def contrast(images: jax.Array, factor: jax.Array, key: jax.Array | None = None) -> jax.Array:
    """Blend with the image's mean grey level by ``factor`` (0 = flat, 1 = unchanged), as PIL's ImageEnhance.Contrast."""
    mean = jnp.mean(_grey(images), axis=(1, 2, 3), keepdims=True)
    return jnp.clip(mean + _per_sample(factor) * (images - mean), 0.0, 1.0)


def make_gaussian_blur(max_sigma: float, truncate: float = 4.0) -> ApplyFn:
    """A Gaussian blur whose per-sample ``sigma`` (pixels) may go up to ``max_sigma``.

    The kernel radius is fixed at trace time to ``ceil(truncate * max_sigma)`` so the
    function jits with per-sample sigmas; edges reflect (``scipy.ndimage``'s ``'reflect'``).
    """
    radius = max(1, int(math.ceil(truncate * max(max_sigma, 0.0))))
    offsets = jnp.arange(-radius, radius + 1, dtype=jnp.float32)

    def blur(images: jax.Array, sigma: jax.Array, key: jax.Array | None = None) -> jax.Array:
        sigma = jnp.asarray(sigma, jnp.float32)[:, None]  # (B, 1)
        safe = jnp.maximum(sigma, 1e-6)
        weights = jnp.exp(-0.5 * (offsets / safe) ** 2) * (jnp.abs(offsets) <= truncate * safe + 0.5)
        weights = weights / jnp.sum(weights, axis=1, keepdims=True)
        delta = (offsets == 0).astype(jnp.float32)
        weights = jnp.where(sigma < 1e-3, delta, weights)  # (B, 2R+1)
        _, height, width, _ = images.shape
        pad = ((0, 0), (radius, radius), (radius, radius), (0, 0))
        padded = jnp.pad(images, pad, mode="symmetric")
        # Separable: rows, then columns; the tap loop is unrolled and fused by XLA.
        rows = sum(
            weights[:, k, None, None, None] * padded[:, k : k + height, :, :] for k in range(2 * radius + 1)
        )
        out = sum(weights[:, k, None, None, None] * rows[:, :, k : k + width, :] for k in range(2 * radius + 1))
        return jnp.clip(out, 0.0, 1.0)

    return blur


def noise(images: jax.Array, sigma: jax.Array, key: jax.Array) -> jax.Array:
    """Add Gaussian noise of standard deviation ``sigma`` (in intensity units), then clip to ``[0, 1]``."""
    return jnp.clip(images + _per_sample(sigma) * jax.random.normal(key, images.shape, images.dtype), 0.0, 1.0)


def _shift_along(images: jax.Array, pixels: jax.Array, axis: int) -> jax.Array:
    """Move each image's content ``pixels`` (per sample, fractional ok) towards higher
    indices of ``axis`` (1: down, 2: right).

    Bilinear along that one axis: output index ``x`` reads ``(1 - t) * in[x - k] + t * in[x - k - 1]``
    with ``k = floor(pixels)``, ``t = pixels - k``, and source pixels outside the image are 0,
    as ``scipy.ndimage.shift(..., order=1, mode='grid-constant')``. Two gathers along the
    axis instead of a 2-D interpolation's four (3x faster on a CPU, the same values).
    """
    n = images.shape[axis]
    pixels = jnp.asarray(pixels, jnp.float32)
    whole = jnp.floor(pixels)
    frac = (pixels - whole)[:, None, None, None]
    source = jnp.arange(n, dtype=jnp.int32)[None, :] - whole.astype(jnp.int32)[:, None]  # (B, n): the (1 - t) tap's index
    shape = [images.shape[0], 1, 1, 1]
    shape[axis] = n

    def tap(index: jax.Array) -> jax.Array:
        inside = ((index >= 0) & (index < n)).reshape(shape)
        got = jnp.take_along_axis(images, jnp.clip(index, 0, n - 1).reshape(shape), axis=axis)
        return jnp.where(inside, got, 0.0)

    return jnp.clip((1.0 - frac) * tap(source) + frac * tap(source - 1), 0.0, 1.0)


def shift_x(images: jax.Array, pixels: jax.Array, key: jax.Array | None = None) -> jax.Array:
    """Translate each image ``pixels`` to the right (negative: left); bilinear, zero fill."""
    return _shift_along(images, pixels, axis=2)


def shift_y(images: jax.Array, pixels: jax.Array, key: jax.Array | None = None) -> jax.Array:
    """Translate each image ``pixels`` down (negative: up); bilinear, zero fill."""
    return _shift_along(images, pixels, axis=1)


def _whole(values: jax.Array) -> jax.Array:
    """Per-sample strengths rounded to whole pixels, ``(B,)`` int32."""
    return jnp.round(jnp.asarray(values, jnp.float32)).astype(jnp.int32)


def pixelate(images: jax.Array, block: jax.Array, key: jax.Array | None = None) -> jax.Array:
    """Replace each ``block`` x ``block`` tile (whole pixels, tiles from the top-left corner)
    by its mean; edge tiles that the image cuts short average the pixels they have.

    Block 1 is the identity. For a block that divides the size this is PIL's
    ``resize(size / block, BOX)`` followed by ``resize(size, NEAREST)``. Implemented as
    per-sample averaging matrices (separable: rows, then columns) so it jits with
    per-sample block sizes.
    """
    _, height, width, _ = images.shape
    side = jnp.maximum(_whole(block), 1)[:, None]  # (B, 1)

    def averaging(n: int) -> jax.Array:
        tile = jnp.arange(n, dtype=jnp.int32)[None, :] // side  # (B, n): tile index of each row / column
        same = (tile[:, :, None] == tile[:, None, :]).astype(jnp.float32)  # (B, n, n)
        return same / jnp.sum(same, axis=-1, keepdims=True)

    out = jnp.einsum(
        "bij,bjkc,blk->bilc", averaging(height), images, averaging(width), precision=jax.lax.Precision.HIGHEST
    )
    return jnp.clip(out, 0.0, 1.0)


def occlusion(images: jax.Array, side: jax.Array, key: jax.Array | None = None) -> jax.Array:
    """Black out a centred ``side`` x ``side`` square (whole pixels; 0 = unchanged).

    The square covers rows ``(H - side) // 2`` to ``(H - side) // 2 + side - 1`` (columns
    likewise), so on an even-sized image an odd side sits half a pixel up-left of centre.
    """
    _, height, width, _ = images.shape
    side = _whole(side)[:, None, None, None]
    ys = jnp.arange(height, dtype=jnp.int32)[None, :, None, None]
    xs = jnp.arange(width, dtype=jnp.int32)[None, None, :, None]
    top, left = (height - side) // 2, (width - side) // 2
    inside = (ys >= top) & (ys < top + side) & (xs >= left) & (xs < left + side)
    return jnp.where(inside, 0.0, images).astype(images.dtype)


def gamma(images: jax.Array, exponent: jax.Array, key: jax.Array | None = None) -> jax.Array:
    """Gamma curve ``x ** exponent`` (1 = unchanged; > 1 darkens mid-tones and thins strokes,
    < 1 brightens and thickens), as ``skimage.exposure.adjust_gamma``.

    Computed as ``exp(exponent * log x)`` (``log 0 = -inf`` gives 0): within a unit in the
    last place of ``jnp.power``, which handles signs and special cases these inputs never
    have and costs 2.4x as much on a CPU. The input is materialised first: with an earlier
    stage fused into the logarithm, XLA's contraction of multiply-adds would round it in the
    last place differently from the same gamma applied alone."""
    return jnp.clip(jnp.exp(_per_sample(exponent) * jnp.log(materialize(images))), 0.0, 1.0)


@dataclass(frozen=True)
class Perturbation:
    """A registered perturbation family.

    Attributes:
      name: the name configs use.
      low, high: the allowed range of strengths (inclusive).
      unit: what a strength means, for error messages and reports.
      build: given the axis values a space will use, returns the jittable ``apply``.
      random: the family draws from its key per query (``noise``), so the same image under
        the same strength can be answered differently twice; the others are deterministic.
    """

    name: str
    low: float
    high: float
    unit: str
    build: Callable[[Sequence[float]], ApplyFn]
    identity: float | None = None  # the strength that leaves an image unchanged, if any
    whole: bool = False  # strengths must be whole numbers (pixel counts)
    pointwise: bool = False  # each output pixel reads only the same input pixel (see compose)
    random: bool = False  # draws from the per-query key (see the attribute's docstring)

    def check(self, values: Sequence[float], where: str) -> None:
        bad = [v for v in values if not (self.low <= float(v) <= self.high)]
        if bad:
            raise PerturbationError(
                f"{where}: {self.name} values {bad} are outside the allowed range "
                f"[{self.low}, {self.high}] ({self.unit})"
            )
        fractional = [v for v in values if self.whole and float(v) != round(float(v))]
        if fractional:
            raise PerturbationError(f"{where}: {self.name} values {fractional} are not whole numbers ({self.unit})")


REGISTRY: dict[str, Perturbation] = {}


def register(perturbation: Perturbation) -> Perturbation:
    """Add a perturbation family to the registry (a researcher's own ones too)."""
    REGISTRY[perturbation.name] = perturbation
    return perturbation


def _fixed(fn: ApplyFn) -> Callable[[Sequence[float]], ApplyFn]:
    return lambda values: fn


register(Perturbation("rotation", -180.0, 180.0, "degrees, counter-clockwise", _fixed(rotate), identity=0.0))
register(Perturbation("darkness", 0.0, 1.0, "fraction of brightness removed", _fixed(darkness), identity=0.0, pointwise=True))
register(Perturbation("brightness", 0.0, 10.0, "brightness factor, 1 = unchanged", _fixed(brightness), identity=1.0, pointwise=True))
register(Perturbation("saturation", 0.0, 10.0, "colour factor, 1 = unchanged", _fixed(saturation), identity=1.0, pointwise=True))
register(Perturbation("contrast", 0.0, 10.0, "contrast factor, 1 = unchanged", _fixed(contrast), identity=1.0))
register(Perturbation("blur", 0.0, 16.0, "Gaussian sigma in pixels", lambda values: make_gaussian_blur(max(values)), identity=0.0))
register(Perturbation("noise", 0.0, 1.0, "Gaussian noise std in intensity units", _fixed(noise), identity=0.0, pointwise=True, random=True))
register(Perturbation("shift_x", -1024.0, 1024.0, "pixels to the right (negative: left), zero fill", _fixed(shift_x), identity=0.0))
register(Perturbation("shift_y", -1024.0, 1024.0, "pixels down (negative: up), zero fill", _fixed(shift_y), identity=0.0))
register(Perturbation("pixelate", 1.0, 1024.0, "tile side in whole pixels, 1 = unchanged", _fixed(pixelate), identity=1.0, whole=True))
register(Perturbation("occlusion", 0.0, 1024.0, "side of a centred black square in whole pixels", _fixed(occlusion), identity=0.0, whole=True, pointwise=True))
register(Perturbation("gamma", 0.01, 100.0, "gamma exponent, 1 = unchanged", _fixed(gamma), identity=1.0, pointwise=True))


def get(name: str) -> Perturbation:
    """Look a perturbation up by name; an unknown name lists the registered ones."""
    try:
        return REGISTRY[name]
    except KeyError:
        raise PerturbationError(f"unknown perturbation '{name}'; registered: {sorted(REGISTRY)}") from None


def draws_per_query(names: Sequence[str]) -> bool:
    """Whether a chain of these families draws randomness per query (any of them is ``random``):
    then a (sample, cell) pair asked twice may be answered differently."""
    return any(get(n).random for n in names)


def compose(names: Sequence[str], axis_values: Sequence[Sequence[float]]) -> Callable[[jax.Array, jax.Array, jax.Array], jax.Array]:
    """Chain perturbations in axis order into one jittable function.

    Args:
      names: perturbation name per axis.
      axis_values: the values each axis can take (checked against the allowed range).

    Returns:
      ``perturb(images (B,H,W,C), values (B, num_axes), key) -> images (B,H,W,C)``.
    """
    families = [get(n) for n in names]
    for family, values, n in zip(families, axis_values, names):
        family.check(values, where=f"axis '{n}'")
    applies = [family.build(tuple(values)) for family, values in zip(families, axis_values)]
    # Before a stage that reads neighbouring pixels, the images so far are materialised:
    # XLA would otherwise fuse e.g. a rotation's gathers into a blur's taps and recompute
    # them per tap (4x slower for rotation -> blur on a CPU; same values either way).
    barrier_before = [i > 0 and not family.pointwise for i, family in enumerate(families)]

    def perturb(images: jax.Array, values: jax.Array, key: jax.Array) -> jax.Array:
        keys = jax.random.split(key, len(applies))
        for i, apply in enumerate(applies):
            if barrier_before[i]:
                images = materialize(images, unknown=values)  # the predicate the measured runs had
            images = apply(images, values[:, i], keys[i])
        return images

    return perturb
