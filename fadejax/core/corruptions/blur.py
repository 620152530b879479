"""ImageNet-C's blur corruptions (Hendrycks & Dietterich; the ``imagecorruptions`` package)
as batched JAX functions: Gaussian, defocus, zoom, motion and glass blur.

Kernels, zoom layers and loop ranges depend only on a severity (and the static image size),
so they are built on the host for every level up to the highest the space uses and each
sample picks its own. Motion blur (the angle) and glass blur (the pixel moves) draw from the
key; an image's draws depend only on the key, the batch's size, its place in it and its own
severity.
"""

from __future__ import annotations

from typing import Callable, Sequence

import jax
import jax.numpy as jnp
import numpy as np
from jax import lax

from fadejax.core.corruptions.common import Corruption, highest, levels, table, unless_clean
from fadejax.core.image_ops import ApplyFn, make_gaussian_blur

GAUSSIAN_SIGMA = (1, 2, 3, 4, 6)
#: (sigma, max_delta, iterations)
GLASS = ((0.7, 1, 2), (0.9, 2, 1), (1, 2, 3), (1.1, 3, 2), (1.5, 4, 2))
#: (radius, alias_blur)
DEFOCUS = ((3, 0.1), (4, 0.5), (6, 0.5), (8, 0.5), (10, 0.5))
#: (radius, sigma)
MOTION = ((10, 3), (15, 5), (15, 8), (15, 12), (20, 15))
#: the zoom factors: ``np.arange(start, stop, step)`` as the reference lists them
ZOOM = ((1, 1.11, 0.01), (1, 1.16, 0.01), (1, 1.21, 0.02), (1, 1.26, 0.02), (1, 1.31, 0.03))


def _used(per_level: Sequence, severities: Sequence[float]) -> list:
    """The parameters of levels 1 .. the highest the space uses."""
    return list(per_level[: highest(severities)])


def build_gaussian_blur(severities: Sequence[float]) -> ApplyFn:
    """scikit-image's ``gaussian(x, sigma=c, channel_axis=-1)``: ``scipy.ndimage.gaussian_filter``
    per channel, edges repeated (``nearest``), cut at 4 sigma; c = 1 ... 6 pixels.

    Differs from the reference on 2-D grey arrays, which it blurs along H only (it takes W for
    the channel axis): grey images are blurred along both axes, as the reference does HxWx1.
    """
    blur = make_gaussian_blur(max(_used(GAUSSIAN_SIGMA, severities)), truncate=4.0, mode="nearest")

    def apply(images: jax.Array, severity: jax.Array, key: jax.Array) -> jax.Array:
        level = levels(severity)
        return unless_clean(images, level, blur(images, table(GAUSSIAN_SIGMA, level)))

    return apply


def _defocus_kernel(radius: int, alias_blur: float) -> np.ndarray:
    """The reference's ``disk(radius, alias_blur)``: a normalised aliased disk on a 17x17 grid
    (21x21 for radius 10) smoothed as ``cv2.GaussianBlur`` (3x3, or 5x5 past radius 8; sigma
    ``alias_blur``; border REFLECT_101), float32."""
    half, ksize = (8, 3) if radius <= 8 else (radius, 5)
    grid = np.arange(-half, half + 1)
    x, y = np.meshgrid(grid, grid)
    disk = (x**2 + y**2 <= radius**2).astype(np.float32)
    disk /= np.sum(disk)
    taps = np.arange(ksize) - (ksize - 1) / 2
    gauss = np.exp(-(taps**2) / (2.0 * alias_blur**2))
    gauss /= gauss.sum()
    r = ksize // 2
    padded = np.pad(disk.astype(np.float64), r, mode="reflect")  # numpy's reflect is REFLECT_101
    n = disk.shape[0]
    rows = sum(gauss[k] * padded[k : k + n, :] for k in range(ksize))
    return sum(gauss[k] * rows[:, k : k + n] for k in range(ksize)).astype(np.float32)


def build_defocus_blur(severities: Sequence[float]) -> ApplyFn:
    """``cv2.filter2D(x, -1, disk(radius, alias_blur))`` per channel: correlation with an
    anti-aliased disk of radius 3 ... 10 pixels (17x17 or 21x21 kernel), border REFLECT_101;
    done by FFT (float32 rounding only). Grey as the reference."""
    kernels = [_defocus_kernel(r, a) for r, a in _used(DEFOCUS, severities)]
    size = max(k.shape[0] for k in kernels)
    identity = np.zeros((size, size), np.float32)
    identity[size // 2, size // 2] = 1.0
    bank = jnp.asarray(np.stack([identity] + [np.pad(k, (size - k.shape[0]) // 2) for k in kernels]))
    reach = size // 2

    def apply(images: jax.Array, severity: jax.Array, key: jax.Array) -> jax.Array:
        level = levels(severity)
        _, height, width, _ = images.shape
        padded = jnp.pad(images, ((0, 0), (reach, reach), (reach, reach), (0, 0)), mode="reflect")
        # correlation by FFT: with the kernel (flipped) in the corner of a padded-image-sized
        # plane, the circular product's outputs from size - 1 on never wrap around
        plane = jnp.zeros((len(kernels) + 1, height + 2 * reach, width + 2 * reach), jnp.float32)
        plane = plane.at[:, :size, :size].set(bank[:, ::-1, ::-1])
        spectrum = jnp.fft.rfft2(plane)[jnp.minimum(level, len(kernels))][..., None]
        full = jnp.fft.irfft2(jnp.fft.rfft2(padded, axes=(1, 2)) * spectrum, s=padded.shape[1:3], axes=(1, 2))
        out = full[:, size - 1 : size - 1 + height, size - 1 : size - 1 + width]
        return unless_clean(images, level, out)

    return apply


def _zoom_axis(size: int, factor: float) -> tuple[np.ndarray, ...]:
    """The reference's ``clipped_zoom`` along one axis of ``size`` pixels: the central
    ``ceil(size / factor)`` crop zoomed by ``scipy.ndimage.zoom(order=1)`` (output index o at
    input ``o * (crop - 1) / (out - 1)``, out = ``round(crop * factor)``; mode ``constant``
    gives 0 where rounding puts o past the crop's last pixel), then its first ``size`` pixels.
    ``(low, high, low_weight, high_weight)``, each ``(size,)``."""
    crop = int(np.ceil(size / float(factor)))
    start = (size - crop) // 2
    out = int(round(crop * factor))
    coord = np.arange(out, dtype=np.float64) * ((crop - 1) / (out - 1))
    low = np.floor(coord).astype(np.int64)
    frac = coord - low
    inside = (coord <= crop - 1).astype(np.float64)
    low, frac, inside = low[:size], frac[:size], inside[:size]
    high = np.minimum(low + 1, crop - 1)
    return low + start, high + start, (1 - frac) * inside, frac * inside


def build_zoom_blur(severities: Sequence[float]) -> ApplyFn:
    """``(x + sum_z clipped_zoom(x, z)) / (n + 1)`` over the severity's n zoom factors
    (``np.arange(1, 1.11, 0.01)`` ... ``np.arange(1, 1.31, 0.03)``); each zoom is bilinear
    (``scipy.ndimage.zoom`` order 1) on the central crop, kept at the top-left. Grey as the
    reference (it zooms a 3-channel copy and keeps one)."""
    factors = [np.arange(*steps) for steps in _used(ZOOM, severities)]

    def apply(images: jax.Array, severity: jax.Array, key: jax.Array) -> jax.Array:
        level = levels(severity)
        _, height, width, _ = images.shape
        # layers depend on (factor, image size) only: one per distinct pair of axis tables
        layers: dict[bytes, tuple] = {}
        uses: dict[bytes, np.ndarray] = {}
        for lvl, zs in enumerate(factors, start=1):
            for z in zs:
                rows, cols = _zoom_axis(height, z), _zoom_axis(width, z)
                tag = b"".join(a.tobytes() for a in rows + cols)
                layers[tag] = (rows, cols)
                uses.setdefault(tag, np.zeros(len(factors) + 1, np.float32))[lvl] += 1.0
        count = jnp.asarray([1.0] + [len(zs) + 1.0 for zs in factors])
        total = images
        for tag, ((r0, r1, rw0, rw1), (c0, c1, cw0, cw1)) in layers.items():
            along_h = images[:, r0] * rw0[:, None, None] + images[:, r1] * rw1[:, None, None]
            layer = along_h[:, :, c0] * cw0[:, None] + along_h[:, :, c1] * cw1[:, None]
            total = total + jnp.asarray(uses[tag])[level][:, None, None, None] * layer
        return unless_clean(images, level, total / count[jnp.minimum(level, len(factors))][:, None, None, None])

    return apply


def motion_blur_at(images: jax.Array, level: jax.Array, angle: jax.Array, max_level: int = 5) -> jax.Array:
    """The reference's ``_motion_blur(x, radius, sigma, angle)`` for per-sample ``level``
    ``(B,)`` int (1 .. ``max_level``) and ``angle`` ``(B,)`` degrees: ``sum_i k_i x`` shifted by
    whole pixels ``(-ceil(i sin a - 1/2), -ceil(i cos a - 1/2))`` (rows, columns), edges
    repeated, i < 2 radius + 1, k a one-sided Gaussian of the severity's sigma; it stops at the
    first shift that leaves the image. Not clipped."""
    width = [2 * r + 1 for r, _ in MOTION[:max_level]]
    taps = np.zeros((max_level + 1, max(width)), np.float32)
    taps[0, 0] = 1.0
    for lvl, ((_, sigma), n) in enumerate(zip(MOTION, width), start=1):
        k = np.exp(-(np.arange(n) ** 2) / (2 * sigma**2)) / (np.sqrt(2 * np.pi) * sigma)
        taps[lvl, :n] = k / k.sum()
    _, height, wide, _ = images.shape
    span = jnp.asarray([1.0] + width, jnp.float32)[level]
    rad = jnp.deg2rad(angle.astype(jnp.float32))
    point_y, point_x = span * jnp.sin(rad), span * jnp.cos(rad)
    hypot = jnp.sqrt(point_y**2 + point_x**2)
    i = jnp.arange(taps.shape[1], dtype=jnp.float32)
    dy = -jnp.ceil(i * point_y[:, None] / hypot[:, None] - 0.5).astype(jnp.int32)  # (B, taps)
    dx = -jnp.ceil(i * point_x[:, None] / hypot[:, None] - 0.5).astype(jnp.int32)
    inside = jnp.cumprod((jnp.abs(dy) < height) & (jnp.abs(dx) < wide), axis=1)
    weight = jnp.asarray(taps)[level] * inside

    def shifted(image: jax.Array, sy: jax.Array, sx: jax.Array) -> jax.Array:
        return image[jnp.clip(jnp.arange(height) - sy, 0, height - 1)][:, jnp.clip(jnp.arange(wide) - sx, 0, wide - 1)]

    out = jnp.zeros_like(images)
    for t in range(taps.shape[1]):
        out = out + weight[:, t, None, None, None] * jax.vmap(shifted)(images, dy[:, t], dx[:, t])
    return out


def build_motion_blur(severities: Sequence[float]) -> ApplyFn:
    """``_motion_blur(x, radius, sigma, angle)`` with angle ~ uniform(-45, 45) degrees per image
    (radius 10 ... 20 and sigma 3 ... 15 pixels; see :func:`motion_blur_at`).

    Differs from the reference on grey images, where it fails: each channel is blurred alike."""
    top = highest(severities)

    def apply(images: jax.Array, severity: jax.Array, key: jax.Array) -> jax.Array:
        level = levels(severity)
        angle = jax.random.uniform(key, level.shape, jnp.float32, -45.0, 45.0)
        return unless_clean(images, level, motion_blur_at(images, level, angle, top))

    return apply


#: ``offsets(row) -> (B, n_w, 2)`` int32 (dx, dy) for row ``row`` of :func:`glass_blur_with`
OffsetsFn = Callable[[jax.Array], jax.Array]


def glass_grid(height: int, width: int, max_level: int = 5) -> tuple[int, int, int]:
    """The positions :func:`glass_blur_with` visits for levels 1 .. ``max_level``:
    ``(iterations, n_h, n_w)``; row ``r`` is iteration ``r // n_h`` at h = ``H - d - r % n_h``,
    its j-th position w = ``W - d - j`` (d the smallest max_delta)."""
    delta = min(d for _, d, _ in GLASS[:max_level])
    return max(n for _, _, n in GLASS[:max_level]), height - 2 * delta, width - 2 * delta


def glass_blur_with(images: jax.Array, level: jax.Array, offsets: OffsetsFn, max_level: int = 5) -> jax.Array:
    """The reference's glass blur given its pixel moves: ``uint8(gaussian(x, s) * 255)`` (truncated),
    then ``iterations`` sweeps over h = H - d ... d + 1 and w = W - d ... d + 1 (descending)
    of ``x[h, w] = x[h + dy, w + dx]`` in sequence, then ``gaussian(x / 255, s)``.

    The reference writes a swap, ``x[h, w], x[h', w'] = x[h', w'], x[h, w]``, but on an HxWx3
    array the right side holds views, so its pixel ``(h', w')`` keeps its value: a copy, done
    here as it does. ``level`` ``(B,)`` int; ``offsets`` as :data:`OffsetsFn` (only the moves
    of positions within a sample's own range and iterations count). Not clipped."""
    batch, height, width, _ = images.shape
    used = GLASS[:max_level]
    sigma = table([s for s, _, _ in GLASS], level)
    blur = make_gaussian_blur(max(s for s, _, _ in used), truncate=4.0, mode="nearest")
    pixels = jnp.floor(blur(images, sigma) * 255.0)
    delta = table([d for _, d, _ in GLASS], level).astype(jnp.int32)
    rounds = table([n for _, _, n in GLASS], level).astype(jnp.int32)
    rounds_max, n_h, n_w = glass_grid(height, width, max_level)
    first = min(d for _, d, _ in used)
    sample = jnp.arange(batch)

    def row(r: jax.Array, x: jax.Array) -> jax.Array:
        h = height - first - r % n_h
        moves = offsets(r)
        live_row = (r // n_h < rounds) & (h > delta) & (h <= height - delta)

        def step(j: jax.Array, x: jax.Array) -> jax.Array:
            w = width - first - j
            live = live_row & (w > delta) & (w <= width - delta)
            source = x[sample, h + moves[:, j, 1], w + moves[:, j, 0]]  # (B, C)
            new = jnp.where(live[:, None], source, x[:, h, w])
            return lax.dynamic_update_slice(x, new[:, None, None, :], (0, h, w, 0))

        return lax.fori_loop(0, n_w, step, x)

    pixels = lax.fori_loop(0, rounds_max * n_h, row, pixels)
    return blur(pixels / 255.0, sigma)


def build_glass_blur(severities: Sequence[float]) -> ApplyFn:
    """Glass blur (:func:`glass_blur_with`): sigma 0.7 ... 1.5 pixels, moves dx, dy uniform in
    ``[-d, d)`` (numpy's ``randint(-d, d)``; d = 1 ... 4 pixels), 1 ... 3 sweeps.

    Differs from the reference on 2-D grey arrays (it blurs them along H only and truly swaps
    scalars): grey images are done as the reference does HxWx1."""
    top = highest(severities)

    def apply(images: jax.Array, severity: jax.Array, key: jax.Array) -> jax.Array:
        level = levels(severity)
        _, n_h, n_w = glass_grid(images.shape[1], images.shape[2], top)
        reach = jnp.maximum(table([d for _, d, _ in GLASS], level).astype(jnp.int32), 1)[:, None, None]

        def offsets(r: jax.Array) -> jax.Array:
            return jax.random.randint(jax.random.fold_in(key, r), (level.shape[0], n_w, 2), -reach, reach)

        return unless_clean(images, level, glass_blur_with(images, level, offsets, top))

    return apply


CORRUPTIONS = (
    Corruption("gaussian_blur", "blur", build_gaussian_blur, random=False, held_out=True),
    Corruption("glass_blur", "blur", build_glass_blur, random=True),
    Corruption("defocus_blur", "blur", build_defocus_blur, random=False),
    Corruption("motion_blur", "blur", build_motion_blur, random=True),
    Corruption("zoom_blur", "blur", build_zoom_blur, random=False),
)
