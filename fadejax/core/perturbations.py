"""Batched image perturbations in JAX, and a registry so a config can name them.

Every perturbation is a pure function ``apply(images, params, key) -> images``:

* ``images``: ``(B, H, W, C)`` float32 in ``[0, 1]`` (C = 1 grey or 3 RGB);
* ``params``: ``(B,)`` float32, one strength per sample, in the unit the family states;
* ``key``: a ``jax.random`` key (only ``noise`` uses it; the others are deterministic);
* result: same shape, clipped to ``[0, 1]``.

They jit, vmap and run on any JAX device. Each is tested in ``tests/test_perturbations.py``
(``shift_x``, ``shift_y``, ``pixelate``, ``occlusion`` and ``gamma`` in
``tests/test_perturbations_more.py``) against an established implementation (PIL,
scipy.ndimage, scikit-image) with the tolerance stated there. ImageNet-C's 19 common
corruptions (:mod:`fadejax.core.corruptions`) are registered here too, as severity families
and as the ``corruption`` x ``severity`` axes (:func:`plan`).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Sequence

import jax
import jax.numpy as jnp

from fadejax.core.fusion import materialize
from fadejax.core.image_ops import ApplyFn, grey as _grey, make_gaussian_blur, per_sample as _per_sample


class PerturbationError(ValueError):
    """An unknown perturbation name or a strength outside its allowed range."""


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
    #: raises (``OSError`` / ``ValueError``, one line) where a file it reads is missing
    requires: Callable[[], object] | None = None

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


#: The common corruptions (:mod:`fadejax.core.corruptions`) whose reference names are taken
#: here by families of other units: registered with this suffix (their values are severities)
SEVERITY_SUFFIX = "_severity"

#: The concept-space shorthand: an axis of corruption names (``perturbation: corruption``,
#: values ``[fog, motion_blur, ...]``) followed by the axis of its severities
#: (``perturbation: severity``, whole values 0-5): one stage that applies each query's
#: corruption at its severity. Several such pairs chain corruptions in combination.
CORRUPTION_AXIS, SEVERITY_AXIS = "corruption", "severity"


#: family name -> the common corruption it applies (its reference name), filled at registration
_CORRUPTION_FAMILIES: dict[str, str] = {}


def _register_corruptions() -> None:
    from fadejax.core.corruptions import CORRUPTIONS

    for c in CORRUPTIONS.values():
        name = c.name + SEVERITY_SUFFIX if c.name in REGISTRY else c.name
        _CORRUPTION_FAMILIES[name] = c.name
        register(Perturbation(name, 0.0, 5.0, f"severity of ImageNet-C's {c.name} (1-5; 0 = unchanged)", c.build, identity=0.0,
                              whole=True, pointwise=c.pointwise, random=c.random, requires=c.requires))


def get(name: str) -> Perturbation:
    """Look a perturbation up by name; an unknown name lists the registered ones."""
    try:
        return REGISTRY[name]
    except KeyError:
        raise PerturbationError(f"unknown perturbation '{name}'; registered: {sorted(REGISTRY)}"
                                f" (or the axes '{CORRUPTION_AXIS}' and '{SEVERITY_AXIS}')") from None


def corruption_of(name: str) -> str | None:
    """The reference name of the common corruption that family ``name`` applies (``fog`` ->
    ``fog``, ``brightness_severity`` -> ``brightness``); None for any other name (fadejax's
    own ``brightness``, a text edit, an unknown name)."""
    return _CORRUPTION_FAMILIES.get(name)


def identity(name: str) -> float | None:
    """The strength of family ``name`` that leaves an image unchanged (a severity axis: 0; a
    corruption axis has none)."""
    if name in (CORRUPTION_AXIS, SEVERITY_AXIS):
        return 0.0 if name == SEVERITY_AXIS else None
    return get(name).identity


@dataclass(frozen=True)
class Stage:
    """One step of a composed perturbation: ``apply(images, columns (B, len(columns)), key)``
    on the value columns ``columns`` of the space's axes."""

    columns: tuple[int, ...]
    apply: Callable[[jax.Array, jax.Array, jax.Array], jax.Array]
    pointwise: bool
    random: bool


class AxisError(PerturbationError):
    """A perturbation error that belongs to one axis (``axis``: its index in the space)."""

    def __init__(self, message: str, axis: int):
        super().__init__(message)
        self.axis = axis


def _needs(requires: Callable[[], object] | None, axis: int) -> None:
    """Run a family's ``requires`` check; what is missing becomes an :class:`AxisError`."""
    if requires is not None:
        try:
            requires()
        except (OSError, ValueError) as exc:
            raise AxisError(str(exc), axis) from None


def _corruption_stage(names: Sequence[str], severities: Sequence[float], columns: tuple[int, int], build: bool) -> Stage:
    """The shorthand's stage: each query's corruption (the value's index into ``names``) at its
    severity. Each corruption is computed only on its own queries' rows
    (:func:`fadejax.core.grouped.apply_grouped`); severity 0 leaves a row unchanged."""
    from fadejax.core.corruptions import CORRUPTIONS
    from fadejax.core.grouped import apply_grouped

    chosen = [CORRUPTIONS[n] for n in names]
    for c in chosen:
        _needs(c.requires, columns[0])
    applies = [c.build(tuple(severities)) for c in chosen] if build else []

    def apply(images: jax.Array, values: jax.Array, key: jax.Array) -> jax.Array:
        if len(applies) == 1:
            return applies[0](images, values[:, 1], key)
        which = jnp.round(values[:, 0]).astype(jnp.int32)
        clean = jnp.round(values[:, 1]) <= 0
        return apply_grouped(applies, jnp.where(clean, len(applies), which), images, values[:, 1], key)

    return Stage(columns, apply, pointwise=all(c.pointwise for c in chosen), random=any(c.random for c in chosen))


def plan(names: Sequence[str], axis_values: Sequence[Sequence[float | str]], build: bool = True) -> list[Stage]:
    """The stages of the axes ``names`` (perturbation name per axis) with their ``axis_values``,
    in axis order, every value checked; :class:`AxisError` names the first wrong axis.
    ``build=False`` only checks: nothing is built, and the stages must not be applied."""
    stages: list[Stage] = []
    i = 0
    while i < len(names):
        name, values = names[i], list(axis_values[i])
        if name == SEVERITY_AXIS:
            raise AxisError(f"a '{SEVERITY_AXIS}' axis gives the severities of the '{CORRUPTION_AXIS}' axis just before it, "
                            "and none precedes this one", i)
        if name == CORRUPTION_AXIS:
            from fadejax.core.corruptions import CORRUPTIONS

            unknown = [v for v in values if v not in CORRUPTIONS]
            if unknown:
                raise AxisError(f"unknown corruption {unknown}; the common corruptions are {', '.join(CORRUPTIONS)}", i)
            if i + 1 == len(names) or names[i + 1] != SEVERITY_AXIS:
                follows = f"axis {i + 1} is '{names[i + 1]}'" if i + 1 < len(names) else "it is the last axis"
                raise AxisError(f"a '{CORRUPTION_AXIS}' axis must be followed by its '{SEVERITY_AXIS}' axis "
                                f"(e.g. {{name: {SEVERITY_AXIS}, values: [1, 2, 3, 4, 5]}}); {follows}", i)
            severities = list(axis_values[i + 1])
            bad = [v for v in severities if isinstance(v, str) or float(v) not in (0, 1, 2, 3, 4, 5)]
            if bad:
                raise AxisError(f"severity values {bad} are not whole numbers 0-5 (1-5: the reference's severities; 0 = unchanged)", i + 1)
            stages.append(_corruption_stage(values, severities, (i, i + 1), build))
            i += 2
            continue
        try:
            family = get(name)
            if any(isinstance(v, str) for v in values):
                raise PerturbationError(f"{name} needs numeric strengths ({family.unit}), got {values}")
            family.check(values, where=f"axis '{name}'")
        except PerturbationError as exc:
            raise AxisError(str(exc), i) from None
        _needs(family.requires, i)
        one = family.build(tuple(values)) if build else None
        stages.append(Stage((i,), lambda images, v, key, one=one: one(images, v[:, 0], key), family.pointwise, family.random))
        i += 1
    return stages


def draws_per_query(names: Sequence[str], axis_values: Sequence[Sequence[float | str]]) -> bool:
    """Whether a chain of these axes draws randomness per query (any of its stages is
    ``random``): then a (sample, cell) pair asked twice may be answered differently."""
    return any(stage.random for stage in plan(names, axis_values, build=False))


def compose(names: Sequence[str], axis_values: Sequence[Sequence[float | str]]) -> Callable[[jax.Array, jax.Array, jax.Array], jax.Array]:
    """Chain perturbations in axis order into one jittable function.

    Args:
      names: perturbation name per axis (a ``corruption`` axis with its ``severity`` axis
        after it forms one stage).
      axis_values: the values each axis can take (checked against the allowed range).

    Returns:
      ``perturb(images (B,H,W,C), values (B, num_axes), key) -> images (B,H,W,C)``; a
      corruption axis's value is the index of its corruption name.
    """
    stages = plan(names, axis_values)
    # Before a stage that reads neighbouring pixels, the images so far are materialised:
    # XLA would otherwise fuse e.g. a rotation's gathers into a blur's taps and recompute
    # them per tap (4x slower for rotation -> blur on a CPU; same values either way).
    barrier_before = [i > 0 and not stage.pointwise for i, stage in enumerate(stages)]

    def perturb(images: jax.Array, values: jax.Array, key: jax.Array) -> jax.Array:
        keys = jax.random.split(key, len(stages))
        for i, stage in enumerate(stages):
            if barrier_before[i]:
                images = materialize(images, unknown=values)  # the predicate the measured runs had
            images = stage.apply(images, values[:, list(stage.columns)], keys[i])
        return images

    return perturb


_register_corruptions()
