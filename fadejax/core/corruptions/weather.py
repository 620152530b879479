"""The weather corruptions of ImageNet-C (Hendrycks & Dietterich): snow, frost, fog and spatter
as batched, jittable JAX functions. The reference is the ``imagecorruptions`` package (1.1.2):
its parameter table per severity, its formulas and its image-size rules.

All four are random. The key is split once per image and every draw is made before the
severity is applied, so an image's draw depends only on the key, the batch size and its
position in the batch, not on the severities. Images are ``(B, H, W, C)`` float32 in
``[0, 1]`` (C = 1 grey or 3 RGB); the reference's 0-255 parameters are divided by 255.
"""

from __future__ import annotations

import os
from importlib.util import find_spec
from pathlib import Path
from typing import Callable, Sequence

import jax
import jax.numpy as jnp
import numpy as np

from fadejax.core.corruptions.common import Corruption, highest, levels, table, unless_clean
from fadejax.core.image_ops import ApplyFn, per_sample

# OpenCV's COLOR_RGB2GRAY (snow) and the reference's own rgb2gray (frost and spatter on grey)
_CV_LUMA = jnp.array([0.299, 0.587, 0.114], jnp.float32)
_RGB2GRAY = jnp.array([0.2989, 0.5870, 0.1140], jnp.float32)


def _per_image_keys(key: jax.Array, batch: int) -> jax.Array:
    return jax.random.split(key, batch)


# ----------------------------------------------------------------------------------- fog

_FOG = ((1.5, 2), (2.0, 2), (2.5, 1.7), (2.5, 1.5), (3.0, 1.4))


def _next_power_of_2(n: int) -> int:
    return 1 if n == 0 else 2 ** (n - 1).bit_length()


def _plasma_sizes(mapsize: int) -> list[int]:
    """The side of the grid each diamond-square step starts from: 1, 2, 4, ..., mapsize / 2."""
    return [2**k for k in range(mapsize.bit_length() - 1)]


def _plasma(uniforms: Sequence[jax.Array], decay: jax.Array) -> jax.Array:
    """The reference's ``plasma_fractal``: a diamond-square height map per sample,
    ``(B, S, S)`` normalised to ``[0, 1]``, ``S = 2 ** len(uniforms)``.

    ``uniforms[k]`` ``(B, 3, n, n)`` in ``[0, 1)`` are step k's draws (the square fill, then
    the two diamond fills; ``n = 2 ** k``); each filled point is the mean of its 4 neighbours
    (wrapping) plus ``wibble**2 * (2u - 1)``, wibble starting at 100 and divided by ``decay``
    ``(B,)`` after each step. The step loop is unrolled at trace time.
    """
    batch = decay.shape[0]
    # the points filled so far, every step-th of the map: (B, n, n), n doubling each step
    grid = jnp.zeros((batch, 1, 1), jnp.float32)
    wibble = jnp.full((batch,), 100.0, jnp.float32)
    for draws in uniforms:
        amplitude = (wibble**2)[:, None, None]
        n = grid.shape[1]

        def wibbled(total: jax.Array, u: jax.Array) -> jax.Array:
            return total / 4 + amplitude * (2.0 * u - 1.0)

        square = grid + jnp.roll(grid, -1, axis=1)
        centre = wibbled(square + jnp.roll(square, -1, axis=2), draws[:, 0])
        left = wibbled(centre + jnp.roll(centre, 1, axis=1) + grid + jnp.roll(grid, -1, axis=2), draws[:, 1])
        top = wibbled(centre + jnp.roll(centre, 1, axis=2) + grid + jnp.roll(grid, -1, axis=1), draws[:, 2])
        # interleave: corners at (even, even), left fills (even, odd), top (odd, even), centres (odd, odd)
        rows = jnp.stack([jnp.stack([grid, left], axis=-1), jnp.stack([top, centre], axis=-1)], axis=2)
        grid = rows.reshape(batch, 2 * n, 2 * n)
        wibble = wibble / decay
    grid = grid - jnp.min(grid, axis=(1, 2), keepdims=True)
    return grid / jnp.maximum(jnp.max(grid, axis=(1, 2), keepdims=True), 1e-30)


def _fog_draws(key: jax.Array, batch: int, mapsize: int) -> list[jax.Array]:
    """Each image's uniform draws for :func:`_plasma`, one RNG call per image (one per step
    compiles several times slower), cut into the steps' ``(B, 3, n, n)``."""
    sizes = _plasma_sizes(mapsize)
    flat = jax.vmap(lambda k: jax.random.uniform(k, (sum(3 * n * n for n in sizes),)))(_per_image_keys(key, batch))
    ends = np.cumsum([0] + [3 * n * n for n in sizes])
    return [flat[:, a:b].reshape(batch, 3, n, n) for a, b, n in zip(ends[:-1], ends[1:], sizes)]


def _fog(images: jax.Array, level: jax.Array, maps: jax.Array) -> jax.Array:
    """Fog from the height maps ``(B, S, S)`` (S >= H, W): the reference's formula."""
    _, height, width, _ = images.shape
    strength = per_sample(table([c[0] for c in _FOG], level))
    peak = jnp.max(images, axis=(1, 2, 3), keepdims=True)
    fogged = images + strength * maps[:, :height, :width, None]
    return unless_clean(images, level, fogged * peak / jnp.maximum(peak + strength, 1e-12))


def build_fog(severities: Sequence[float]) -> ApplyFn:
    """Fog: ``x += c0 * plasma[:H, :W]`` then ``x * max(x) / (max(x) + c0)``, clipped.

    The plasma fractal is the reference's diamond-square map (wibble decay c1) of side the
    next power of two >= max(H, W, C), one per image from its key. Same on grey images.
    """

    def apply(images: jax.Array, severity: jax.Array, key: jax.Array) -> jax.Array:
        batch, height, width, channels = images.shape
        level = levels(severity)
        uniforms = _fog_draws(key, batch, _next_power_of_2(max(height, width, channels)))
        return _fog(images, level, _plasma(uniforms, table([c[1] for c in _FOG], level, clean=2.0)))

    return apply


# ---------------------------------------------------------------------------------- frost

_FROST = ((1, 0.4), (0.8, 0.6), (0.7, 0.7), (0.65, 0.7), (0.6, 0.75))
#: the frost images the reference draws from (its sixth, frost6.jpg, is never drawn)
FROST_FILES = ("frost1.png", "frost2.png", "frost3.png", "frost4.jpg", "frost5.jpg")
#: a directory holding FROST_FILES, used instead of the installed ``imagecorruptions`` package
FROST_DIR_ENV = "FADEJAX_FROST_DIR"


class FrostImagesMissing(FileNotFoundError):
    """The frost images (shipped by the ``imagecorruptions`` package) cannot be found."""


def _frost_dir() -> Path:
    """Where the frost images are: ``$FADEJAX_FROST_DIR`` or the ``frost/`` folder of the
    installed ``imagecorruptions`` package, located without importing it (its import fails
    on today's numpy)."""
    how = (
        f"install the package that ships them, `pip install --no-deps imagecorruptions==1.1.2` "
        f"(fadejax reads only its images), or set {FROST_DIR_ENV} to a directory holding "
        f"{', '.join(FROST_FILES)}"
    )
    if os.environ.get(FROST_DIR_ENV):
        folder = Path(os.environ[FROST_DIR_ENV])
        where = f"{FROST_DIR_ENV}={folder}"
    else:
        try:
            spec = find_spec("imagecorruptions")
        except (ImportError, ValueError):
            spec = None
        locations = list(spec.submodule_search_locations or []) if spec is not None else []
        if not locations:
            raise FrostImagesMissing(f"frost needs the frost images of the imagecorruptions package, which is not installed: {how}")
        folder = Path(locations[0]) / "frost"
        where = f"the imagecorruptions package ({folder})"
    missing = [name for name in FROST_FILES if not (folder / name).is_file()]
    if missing:
        raise FrostImagesMissing(f"frost images {', '.join(missing)} not found in {where}: {how}")
    return folder


def _load_frost_images() -> list[np.ndarray]:
    """The five frost images, ``(h, w, 3)`` uint8 RGB (alpha dropped, as ``cv2.imread``)."""
    from PIL import Image

    folder = _frost_dir()
    return [np.asarray(Image.open(folder / name).convert("RGB")) for name in FROST_FILES]


def _rescaled_frost(frosts: Sequence[np.ndarray], height: int, width: int) -> tuple[np.ndarray, np.ndarray]:
    """The frost images rescaled as the reference does for an ``height x width`` image (just
    larger than it, times 1.1), with PIL's bicubic filter (OpenCV's INTER_CUBIC in the
    reference: another cubic kernel), zero-padded to a common size: ``(5, h, w, 3)`` uint8,
    and each one's ``(h, w)``, ``(5, 2)`` int32."""
    from PIL import Image

    resized = []
    for frost in frosts:
        fh, fw = frost.shape[:2]
        if fh >= height and fw >= width:
            scale = 1.0
        elif fh < height and fw >= width:
            scale = height / fh
        elif fh >= height and fw < width:
            scale = width / fw
        else:
            scale = max(height / fh, width / fw)
        scale *= 1.1
        size = (int(np.ceil(fw * scale)), int(np.ceil(fh * scale)))
        resized.append(np.asarray(Image.fromarray(frost).resize(size, Image.BICUBIC)))
    shapes = np.array([r.shape[:2] for r in resized], np.int32)
    stack = np.zeros((len(resized), *shapes.max(axis=0), 3), np.uint8)
    for i, r in enumerate(resized):
        stack[i, : r.shape[0], : r.shape[1]] = r
    return stack, shapes


def _frost_draws(key: jax.Array, batch: int, shapes: jax.Array, height: int, width: int) -> tuple[jax.Array, ...]:
    """Each image's frost image (0-4) and crop corner, drawn as the reference does (the
    corner uniform over ``[0, frost size - image size)``): three ``(B,)`` int32."""

    def draw(k: jax.Array) -> tuple[jax.Array, ...]:
        k_index, k_row, k_col = jax.random.split(k, 3)
        index = jax.random.randint(k_index, (), 0, len(FROST_FILES))
        row = jax.random.randint(k_row, (), 0, shapes[index, 0] - height)
        return index, row, jax.random.randint(k_col, (), 0, shapes[index, 1] - width)

    return jax.vmap(draw)(_per_image_keys(key, batch))


def _frost(images: jax.Array, level: jax.Array, crops: jax.Array) -> jax.Array:
    """``c0 * x + c1 * crop`` with ``crops`` ``(B, H, W, 3)`` RGB on the 0-255 scale."""
    coeffs = table(_FROST, level)
    if images.shape[-1] == 1:
        # the reference's rgb2gray of the crop still in OpenCV's BGR order
        crops = jnp.sum(crops[..., ::-1] * _RGB2GRAY, axis=-1, keepdims=True)
    frosted = per_sample(coeffs[:, 0]) * images + per_sample(coeffs[:, 1]) * crops / 255.0
    return unless_clean(images, level, frosted)


def build_frost(severities: Sequence[float]) -> ApplyFn:
    """Frost: ``c0 * x + c1 * frost``, ``frost`` a random crop of one of the reference's first
    five frost images (as it draws: image index in 0..4, then the crop's corner), rescaled by
    its rules to just over the image's size.

    The images are read here (``$FADEJAX_FROST_DIR`` or the installed ``imagecorruptions``
    package; :class:`FrostImagesMissing` otherwise) and rescaled once per image size at trace
    time with PIL's bicubic filter where the reference uses OpenCV's INTER_CUBIC (a slightly
    different cubic kernel; the crop is random anyway). On grey images the frost is the
    reference's ``rgb2gray`` of the crop in OpenCV's BGR channel order, as the reference does.
    """
    frosts = _load_frost_images()
    cache: dict[tuple[int, int], tuple[np.ndarray, np.ndarray]] = {}

    def frost_for(height: int, width: int) -> tuple[jax.Array, jax.Array]:
        if (height, width) not in cache:
            cache[(height, width)] = _rescaled_frost(frosts, height, width)
        stack, shapes = cache[(height, width)]
        return jnp.asarray(stack), jnp.asarray(shapes)

    def apply(images: jax.Array, severity: jax.Array, key: jax.Array) -> jax.Array:
        batch, height, width, _ = images.shape
        stack, shapes = frost_for(height, width)
        index, row, col = _frost_draws(key, batch, shapes, height, width)

        def crop(i: jax.Array, r: jax.Array, c: jax.Array) -> jax.Array:
            return jax.lax.dynamic_slice(stack, (i, r, c, 0), (1, height, width, 3))[0]

        crops = jax.vmap(crop)(index, row, col).astype(jnp.float32)
        return _frost(images, levels(severity), crops)

    return apply


# ----------------------------------------------------------------------------------- snow

# loc, scale, zoom, threshold, blur radius, blur sigma, blend
_SNOW = (
    (0.1, 0.3, 3, 0.5, 10, 4, 0.8),
    (0.2, 0.3, 2, 0.5, 12, 4, 0.7),
    (0.55, 0.3, 4, 0.9, 12, 8, 0.7),
    (0.55, 0.3, 4.5, 0.85, 12, 8, 0.65),
    (0.55, 0.3, 2.5, 0.85, 12, 12, 0.55),
)


def _zoom_plan(size: int, factor: float) -> tuple[int, int, int]:
    """The reference's ``clipped_zoom`` along one axis: the central crop's length and start,
    and scipy's zoomed length ``round(crop * factor)``."""
    crop = int(np.ceil(size / float(factor)))
    return crop, (size - crop) // 2, int(round(crop * factor))


def _zoom_matrix(size: int, crop: jax.Array, start: jax.Array, out: jax.Array, length: int) -> jax.Array:
    """Linear zoom (``scipy.ndimage.zoom(order=1)``, end points aligned) of each sample's
    ``[start, start + crop)`` of an axis of ``size`` to ``out`` points, as a ``(B, length, size)``
    interpolation matrix (rows past ``out`` are junk). ``crop``, ``start``, ``out``: ``(B,)`` int32."""
    step = jnp.where(out > 1, (crop - 1) / jnp.maximum(out - 1, 1), 1.0).astype(jnp.float32)
    position = jnp.arange(length, dtype=jnp.float32)[None] * step[:, None]
    position = jnp.minimum(position, (crop - 1)[:, None].astype(jnp.float32)) + start[:, None]
    source = jnp.arange(size, dtype=jnp.float32)
    return jnp.maximum(0.0, 1.0 - jnp.abs(position[:, :, None] - source[None, None, :]))


def _motion_blur(
    layers: jax.Array, rows: jax.Array, cols: jax.Array, radius: jax.Array, sigma: jax.Array,
    angle: jax.Array, height: int, width: int, taps: int,
) -> jax.Array:
    """The reference's ``_motion_blur`` of ``layers`` ``(B, N, M)`` whose valid part is
    ``rows x cols`` ``(B,)``, returning its top-left ``height x width``.

    Tap i (of ``2 * radius + 1``, Gaussian weights ``exp(-i^2 / 2 sigma^2)`` normalised) reads
    the layer at ``(r - dy, c - dx)``, ``dy = -round(i sin a)``, ``dx = -round(i cos a)`` for
    ``angle`` a in degrees (halves rounded up), edges repeated; the taps stop at the first
    shift as large as the layer (the reference breaks out there, without renormalising).
    ``taps`` (static) is the largest ``2 * radius + 1``."""
    i = jnp.arange(taps, dtype=jnp.float32)[None]
    in_kernel = i < (2 * radius + 1)[:, None]
    weights = jnp.where(in_kernel, jnp.exp(-(i**2) / (2 * sigma[:, None] ** 2)), 0.0)
    weights = weights / jnp.sum(weights, axis=1, keepdims=True)
    theta = jnp.deg2rad(angle)[:, None]
    dy = -jnp.ceil(i * jnp.sin(theta) - 0.5).astype(jnp.int32)
    dx = -jnp.ceil(i * jnp.cos(theta) - 0.5).astype(jnp.int32)
    inside = (jnp.abs(dy) < rows[:, None]) & (jnp.abs(dx) < cols[:, None])
    weights = weights * jnp.cumprod(inside, axis=1)
    # each sample's layer with its own edges repeated `taps` pixels out on every side, so that
    # every tap is a plain (H, W) window of it
    pad = taps

    def extend(size: int, valid: jax.Array) -> jax.Array:
        return jnp.clip(jnp.arange(size + 2 * pad)[None] - pad, 0, valid[:, None] - 1)

    take = jax.vmap(lambda layer, r, c: layer[r][:, c])
    padded = take(layers, extend(layers.shape[1], rows), extend(layers.shape[2], cols))
    window = jax.vmap(lambda plane, top, left: jax.lax.dynamic_slice(plane, (top, left), (height, width)))
    blurred = jnp.zeros((layers.shape[0], height, width), jnp.float32)
    for k in range(taps):
        blurred = blurred + weights[:, k, None, None] * window(padded, pad - dy[:, k], pad - dx[:, k])
    return blurred


def _snow_draws(key: jax.Array, batch: int, height: int, width: int) -> tuple[jax.Array, jax.Array]:
    """Each image's standard normal ``(B, H, W)`` and uniform ``(B,)`` in ``[0, 1)`` (its angle)."""

    def draw(k: jax.Array) -> tuple[jax.Array, jax.Array]:
        k_layer, k_angle = jax.random.split(k)
        return jax.random.normal(k_layer, (height, width)), jax.random.uniform(k_angle, ())

    return jax.vmap(draw)(_per_image_keys(key, batch))


def _snow(images: jax.Array, level: jax.Array, normal: jax.Array, uniform: jax.Array, taps: int = 25) -> jax.Array:
    """Snow from the draws of :func:`_snow_draws`; the blur's angle is ``-135 + 90 * uniform`` degrees."""
    _, height, width, _ = images.shape
    p = table(_SNOW, level)
    layer = p[:, 0, None, None] + p[:, 1, None, None] * normal
    plans = np.array([_zoom_plan(height, c[2]) + _zoom_plan(width, c[2]) for c in _SNOW], np.int32)
    plan = jnp.asarray(plans)[jnp.maximum(level, 1) - 1]
    zoom_rows = _zoom_matrix(height, plan[:, 0], plan[:, 1], plan[:, 2], int(plans[:, 2].max()))
    zoom_cols = _zoom_matrix(width, plan[:, 3], plan[:, 4], plan[:, 5], int(plans[:, 5].max()))
    layer = jnp.einsum("bnh,bhw,bmw->bnm", zoom_rows, layer, zoom_cols, precision=jax.lax.Precision.HIGHEST)
    layer = jnp.clip(jnp.where(layer < p[:, 3, None, None], 0.0, layer), 0.0, 1.0)
    layer = _motion_blur(layer, plan[:, 2], plan[:, 5], p[:, 4].astype(jnp.int32), jnp.maximum(p[:, 5], 1e-3),
                         -135.0 + 90.0 * uniform, height, width, taps)
    layer = (jnp.round(layer * 255) / 255)[..., None]
    grey = images if images.shape[-1] == 1 else jnp.sum(images * _CV_LUMA, axis=-1, keepdims=True)
    blend = per_sample(p[:, 6])
    snowy = blend * images + (1 - blend) * jnp.maximum(images, grey * 1.5 + 0.5)
    return unless_clean(images, level, snowy + layer + layer[:, ::-1, ::-1])


def build_snow(severities: Sequence[float]) -> ApplyFn:
    """Snow: a normal layer (loc c0, scale c1), zoomed by c2 about its centre (linear), zeroed
    under c3, motion-blurred (radius c4, sigma c5, angle uniform in [-135, -45] degrees) and
    rounded to 1/255; ``x = c6 x + (1 - c6) max(x, 1.5 grey(x) + 0.5)`` (grey: OpenCV's luma)
    plus the layer and the layer turned 180 degrees, clipped. Same on grey images.
    """
    top = highest(severities)
    taps = max(2 * c[4] + 1 for c in _SNOW[:top])

    def apply(images: jax.Array, severity: jax.Array, key: jax.Array) -> jax.Array:
        batch, height, width, _ = images.shape
        normal, uniform = _snow_draws(key, batch, height, width)
        return _snow(images, levels(severity), normal, uniform, taps)

    return apply


# -------------------------------------------------------------------------------- spatter

# loc, scale, sigma, threshold, strength (water) or mud blur sigma, mud (1) or water (0)
_SPATTER = (
    (0.65, 0.3, 4, 0.69, 0.6, 0),
    (0.65, 0.3, 3, 0.68, 0.6, 0),
    (0.65, 0.3, 2, 0.68, 0.5, 0),
    (0.65, 0.3, 1, 0.65, 1.5, 1),
    (0.67, 0.4, 1, 0.65, 1.5, 1),
)
_WATER = jnp.array([175.0, 238.0, 238.0], jnp.float32) / 255.0
_MUD = jnp.array([63.0, 42.0, 20.0], jnp.float32) / 255.0
# OpenCV Canny's fixed-point tan(22.5 degrees)
_TG22 = int(0.4142135623730950488016887242097 * (1 << 15) + 0.5)
# OpenCV's 5x5 chamfer mask for DIST_L2: a step, a diagonal step, a knight's move (1, 1.4,
# 2.1969) in its 16-bit fixed point
_HV, _DIAG, _KNIGHT = (round(w * 65536) for w in (1.0, 1.4, 2.1969))
_DIST_CAP = 20


def _shifts(padded: jax.Array, pad: int, height: int, width: int) -> Callable[[int, int], jax.Array]:
    """``view(dy, dx)[b, i, j] = padded[b, pad + i + dy, pad + j + dx]``."""
    return lambda dy, dx: padded[:, pad + dy : pad + dy + height, pad + dx : pad + dx + width]


def _box3(planes: jax.Array) -> jax.Array:
    """``cv2.blur(x, (3, 3))`` (mean of 3x3, edges BORDER_REFLECT_101), unrounded."""
    _, height, width = planes.shape
    at = _shifts(jnp.pad(planes, ((0, 0), (1, 1), (1, 1)), mode="reflect"), 1, height, width)
    return sum(at(dy, dx) for dy in (-1, 0, 1) for dx in (-1, 0, 1)) / 9.0


def _canny(planes: jax.Array, low: int = 50, high: int = 150) -> jax.Array:
    """``cv2.Canny(x, low, high)`` (3x3 Sobel, L1 magnitude) of uint8-valued int32 planes
    ``(B, H, W)``, as a boolean edge map: OpenCV's non-maximum suppression in its fixed
    point, then hysteresis (edges grow through 8-connected candidates) to convergence."""
    _, height, width = planes.shape
    at = _shifts(jnp.pad(planes, ((0, 0), (1, 1), (1, 1)), mode="edge"), 1, height, width)
    gx = at(-1, 1) + 2 * at(0, 1) + at(1, 1) - at(-1, -1) - 2 * at(0, -1) - at(1, -1)
    gy = at(1, -1) + 2 * at(1, 0) + at(1, 1) - at(-1, -1) - 2 * at(-1, 0) - at(-1, 1)
    mag = jnp.abs(gx) + jnp.abs(gy)
    near = _shifts(jnp.pad(mag, ((0, 0), (1, 1), (1, 1))), 1, height, width)
    x, y = jnp.abs(gx), jnp.abs(gy) << 15
    tg22x = x * _TG22
    tg67x = tg22x + (x << 16)
    opposite = (gx ^ gy) < 0
    diagonal = jnp.where(opposite, (mag > near(-1, 1)) & (mag > near(1, -1)), (mag > near(-1, -1)) & (mag > near(1, 1)))
    maximum = jnp.where(
        y < tg22x,
        (mag > near(0, -1)) & (mag >= near(0, 1)),
        jnp.where(y > tg67x, (mag > near(-1, 0)) & (mag >= near(1, 0)), diagonal),
    )
    candidate = maximum & (mag > low)

    def grow(state: tuple[jax.Array, jax.Array]) -> tuple[jax.Array, jax.Array]:
        edges, _ = state
        around = _shifts(jnp.pad(edges, ((0, 0), (1, 1), (1, 1))), 1, height, width)
        grown = edges | (candidate & jnp.any(jnp.stack([around(dy, dx) for dy in (-1, 0, 1) for dx in (-1, 0, 1)]), axis=0))
        return grown, jnp.any(grown != edges)

    edges, _ = jax.lax.while_loop(lambda s: s[1], grow, (candidate & (mag > high), jnp.array(True)))
    return edges


def _raster_pass(edges: jax.Array, start: jax.Array, cap: int) -> jax.Array:
    """OpenCV's forward chamfer pass (5x5 mask, top to bottom, each row left to right) over
    rows ``(H, B, W)``: every pixel the least of its ``start`` and its already-visited
    neighbours' values plus the move's weight; edge pixels 0. A scan over rows, each row's
    left-to-right chain by doubling."""
    _, batch, width = edges.shape
    beyond = jnp.full((batch, 2), 2 * cap, jnp.int32)

    def row_pass(carry: tuple[jax.Array, jax.Array], inputs: tuple[jax.Array, jax.Array]):
        above, above2 = carry  # the two rows before, padded by 2 columns
        edge, row = inputs
        best = jnp.minimum(jnp.minimum(above2[:, 1:-3], above2[:, 3:-1]), jnp.minimum(above[:, :-4], above[:, 4:])) + _KNIGHT
        best = jnp.minimum(best, jnp.minimum(above[:, 1:-3], above[:, 3:-1]) + _DIAG)
        row = jnp.where(edge, 0, jnp.minimum(row, jnp.minimum(best, above[:, 2:-2] + _HV)))
        shift = 1
        while shift < width:
            row = jnp.minimum(row, jnp.pad(row[:, :-shift], ((0, 0), (shift, 0)), constant_values=2 * cap) + shift * _HV)
            shift *= 2
        return (jnp.concatenate([beyond, row, beyond], axis=1), above), row

    outside = jnp.full((batch, width + 4), 2 * cap, jnp.int32)
    return jax.lax.scan(row_pass, (outside, outside), (edges, start))[1]


def _distance(edges: jax.Array) -> jax.Array:
    """``min(cv2.distanceTransform(255 - edges, DIST_L2, 5), 20)`` of boolean ``(B, H, W)``:
    OpenCV's two raster passes with its 5x5 chamfer mask in its fixed point (the backward
    pass is the forward one on the image turned 180 degrees), values capped at 20."""
    cap = _DIST_CAP * 65536
    rows = jnp.transpose(edges, (1, 0, 2))
    forward = _raster_pass(rows, jnp.full(rows.shape, cap, jnp.int32), cap)
    both = _raster_pass(rows[::-1, :, ::-1], forward[::-1, :, ::-1], cap)[::-1, :, ::-1]
    return jnp.transpose(both, (1, 0, 2)).astype(jnp.float32) / 65536.0


def _equalize(planes: jax.Array, bins: int) -> jax.Array:
    """``cv2.equalizeHist`` of int32 planes ``(B, H, W)`` with values in ``[0, bins)``."""
    counts = jax.vmap(lambda plane: jnp.bincount(plane.ravel(), length=bins))(planes)
    first = jnp.argmax(counts > 0, axis=1)
    total = planes.shape[1] * planes.shape[2]
    cumulative = jnp.cumsum(counts, axis=1)
    at_first = jnp.take_along_axis(cumulative, first[:, None], axis=1)
    scale = 255.0 / (total - at_first + (at_first == total)).astype(jnp.float32)
    lut = jnp.clip(jnp.round((cumulative - at_first).astype(jnp.float32) * scale), 0, 255).astype(jnp.int32)
    # a constant image stays as it is
    lut = jnp.where(at_first == total, jnp.arange(bins)[None], lut)
    return jnp.take_along_axis(lut, planes.reshape(len(planes), -1), axis=1).reshape(planes.shape)


def _water(liquid: jax.Array) -> jax.Array:
    """The reference's water mask before its strength, ``(B, H, W)``: OpenCV's Canny edges of
    the liquid layer, distance to them capped at 20, 3x3 mean, histogram equalisation, an
    emboss filter, 3x3 mean, times the liquid layer, over its maximum (0 where there is none)."""
    _, height, width = liquid.shape
    # numpy's uint8 cast in the reference: truncated, and wrapped past 255 (a liquid value over 1
    # happens near the borders, whose repeated edge pixels weigh more in the blur)
    layer = jnp.floor(jnp.maximum(liquid, 0.0) * 255).astype(jnp.int32) % 256
    dist = jnp.floor(_box3(_distance(_canny(layer)))).astype(jnp.int32)
    dist = _equalize(dist, _DIST_CAP + 1)
    at = _shifts(jnp.pad(dist, ((0, 0), (1, 1), (1, 1)), mode="reflect"), 1, height, width)
    emboss = -2 * at(-1, -1) - at(-1, 0) - at(0, -1) + at(0, 0) + at(0, 1) + at(1, 0) + 2 * at(1, 1)
    dist = jnp.round(_box3(jnp.clip(emboss, 0, 255).astype(jnp.float32)))
    mask = layer.astype(jnp.float32) * dist
    peak = jnp.max(mask, axis=(1, 2), keepdims=True)
    return jnp.where(peak > 0, mask / jnp.where(peak > 0, peak, 1.0), 0.0)


def _gaussian_matrix(size: int, sigma: float) -> np.ndarray:
    """``scipy.ndimage.gaussian_filter1d(mode='nearest', truncate=4)`` along an axis of
    ``size`` as a ``(size, size)`` matrix (identity for sigma 0): scikit-image's ``gaussian``."""
    matrix = np.zeros((size, size), np.float64)
    radius = int(4.0 * sigma + 0.5)
    taps = np.exp(-0.5 * (np.arange(-radius, radius + 1) / max(sigma, 1e-12)) ** 2)
    for offset, weight in zip(range(-radius, radius + 1), taps / taps.sum()):
        np.add.at(matrix, (np.arange(size), np.clip(np.arange(size) + offset, 0, size - 1)), weight)
    return matrix.astype(np.float32)


def _filter_rows_cols(planes: jax.Array, rows: jax.Array, cols: jax.Array) -> jax.Array:
    """``rows @ plane @ cols.T`` for ``(B, H, W)`` planes (matrices ``(H, H)``, ``(W, W)`` or batched)."""
    spec = "hk,bkl,wl->bhw" if rows.ndim == 2 else "bhk,bkl,bwl->bhw"
    return jnp.einsum(spec, rows, planes, cols, precision=jax.lax.Precision.HIGHEST)


def _spatter_draws(key: jax.Array, batch: int, height: int, width: int) -> jax.Array:
    """Each image's standard normal liquid layer, ``(B, H, W)``."""
    return jax.vmap(lambda k: jax.random.normal(k, (height, width)))(_per_image_keys(key, batch))


def _spatter(images: jax.Array, level: jax.Array, normal: jax.Array) -> jax.Array:
    """Spatter from the draw ``normal`` ``(B, H, W)`` standard normal."""
    _, height, width, _ = images.shape
    p = table(_SPATTER, level)
    liquid = p[:, 0, None, None] + p[:, 1, None, None] * normal
    sigmas = [0.0] + [c[2] for c in _SPATTER]
    rows = jnp.asarray(np.stack([_gaussian_matrix(height, s) for s in sigmas]))[level]
    cols = jnp.asarray(np.stack([_gaussian_matrix(width, s) for s in sigmas]))[level]
    liquid = _filter_rows_cols(liquid, rows, cols)
    threshold = p[:, 3, None, None]
    liquid = jnp.where(liquid < threshold, 0.0, liquid)

    water = per_sample(p[:, 4]) * _water(liquid)[..., None] * _WATER
    water = jnp.clip(water, 0.0, 1.0)
    # mud's blur sigma is 1.5 in both mud rows (the water rows' c4 is a strength, not a sigma)
    mud = (liquid > threshold).astype(jnp.float32)
    mud = _filter_rows_cols(mud, jnp.asarray(_gaussian_matrix(height, 1.5)), jnp.asarray(_gaussian_matrix(width, 1.5)))
    mud = jnp.where(mud < 0.8, 0.0, mud)[..., None]
    if images.shape[-1] == 1:
        water = jnp.sum(water * _RGB2GRAY, axis=-1, keepdims=True)
        muddy = images * (1 - mud) + mud * jnp.sum(_MUD * _RGB2GRAY)
    else:
        muddy = images * (1 - mud) + mud * _MUD
    spattered = jnp.where(per_sample(p[:, 5]) > 0, muddy, images + water)
    return unless_clean(images, level, spattered)


def build_spatter(severities: Sequence[float]) -> ApplyFn:
    """Spatter: a normal layer (loc c0, scale c1) Gaussian-blurred (sigma c2, edges repeated)
    and zeroed under c3. Severities 1-3, water: ``x + c4 * mask * turquoise``, the mask
    from OpenCV's Canny, distance transform and histogram equalisation of the layer, each
    done here in JAX as OpenCV defines it (see :func:`_water`). Severities 4-5, mud:
    ``m = blur(layer > c3, 1.5)`` zeroed under 0.8, ``x (1 - m) + m * brown``.

    Grey images get the reference's ``rgb2gray`` of the colour it adds. Where the water
    layer has no liquid at all the reference divides 0 by 0 (a NaN image); here it adds nothing.
    """

    def apply(images: jax.Array, severity: jax.Array, key: jax.Array) -> jax.Array:
        batch, height, width, _ = images.shape
        return _spatter(images, levels(severity), _spatter_draws(key, batch, height, width))

    return apply


CORRUPTIONS = (
    Corruption("snow", "weather", build_snow, random=True, pointwise=True),
    Corruption("frost", "weather", build_frost, random=True, pointwise=True, requires=_frost_dir),
    Corruption("fog", "weather", build_fog, random=True),
    Corruption("spatter", "weather", build_spatter, random=True, held_out=True, pointwise=True),
)
