"""What every common corruption shares: severity levels, the parameter tables the
reference defines per level, and leaving severity 0 untouched.

A corruption's ``apply(images, severity, key)`` takes ``images`` ``(B, H, W, C)`` float32 in
``[0, 1]`` (C = 1 or 3), ``severity`` ``(B,)`` whole numbers 0-5 (0: unchanged) and one
``jax.random`` key for the batch, and returns images of the same shape in ``[0, 1]``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Sequence

import jax
import jax.numpy as jnp

from fadejax.core.image_ops import ApplyFn

#: the highest severity; 0 leaves an image unchanged
MAX_SEVERITY = 5


@dataclass(frozen=True)
class Corruption:
    """One of Hendrycks & Dietterich's common corruptions as a batched JAX function.

    Attributes:
      name: the reference's name (``imagecorruptions.get_corruption_names('all')``).
      group: noise, blur, weather or digital (the reference's grouping).
      build: given the severities a space uses (whole numbers 0-5), the jittable ``apply``
        (kernels sized for the largest of them).
      random: it draws from its key per query (noise, a motion's angle, a frost crop ...);
        the others are deterministic.
      held_out: one of the four corruptions ImageNet-C keeps apart for validation.
      pointwise: each output pixel reads only the same input pixel (and the key), so the
        stage before it may be fused into it (see :func:`fadejax.core.perturbations.compose`).
      requires: checks that what it reads at build time is there (see the field).
    """

    name: str
    group: str
    build: Callable[[Sequence[float]], ApplyFn]
    random: bool
    held_out: bool = False
    pointwise: bool = False
    #: raises (``OSError`` or ``ValueError``, a one-line reason) where something it reads at
    #: build time is missing, e.g. frost's photographs; ``None``: it needs nothing
    requires: Callable[[], object] | None = None


def levels(severity: jax.Array) -> jax.Array:
    """``(B,)`` severities as int32 levels in ``[0, MAX_SEVERITY]``."""
    return jnp.clip(jnp.round(jnp.asarray(severity, jnp.float32)), 0, MAX_SEVERITY).astype(jnp.int32)


def table(per_level: Sequence, level: jax.Array, clean=0.0) -> jax.Array:
    """The reference's parameter for each sample's level: ``per_level`` holds severities
    1-5 (scalars or equal-length tuples), ``clean`` stands for level 0. ``(B,)`` or ``(B, P)``."""
    rows = jnp.asarray([clean if jnp.ndim(jnp.asarray(per_level[0])) == 0 else [clean] * len(per_level[0])] + list(per_level),
                       jnp.float32)
    return rows[level]


def unless_clean(images: jax.Array, level: jax.Array, corrupted: jax.Array) -> jax.Array:
    """``corrupted`` clipped to ``[0, 1]``, except the images at level 0, which are returned as they were."""
    return jnp.where((level == 0)[:, None, None, None], images, jnp.clip(corrupted, 0.0, 1.0))


def highest(severities: Sequence[float]) -> int:
    """The largest level a space asks for (for sizing kernels at trace time), at least 1."""
    return max([1] + [int(round(float(s))) for s in severities])
