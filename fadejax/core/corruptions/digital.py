"""ImageNet-C's digital corruptions (Hendrycks & Dietterich; the ``imagecorruptions`` package)
as batched JAX functions: pixelation, JPEG compression and the elastic transform.

The reference runs the first two through Pillow on uint8 images: pixelate is Pillow's BOX
downscale then NEAREST upscale, JPEG a save and reload through libjpeg-turbo. Both are
reproduced here in integer arithmetic on the image's uint8 levels (Pillow's fixed-point
resampling weights; libjpeg-turbo's colour conversion, 4:2:0 downsampling, integer DCTs,
quantiser and "fancy" upsampling), so they give Pillow's pixels. Inputs are rounded to the
nearest of the 256 levels first, as the reference's uint8 input is. The resampling operators
depend only on the image size, so they are built on the host at trace time.
"""

from __future__ import annotations

from typing import Sequence

import jax
import jax.numpy as jnp
import numpy as np
from jax.scipy.ndimage import map_coordinates

from fadejax.core.corruptions.common import Corruption, levels, table, unless_clean
from fadejax.core.image_ops import ApplyFn, gaussian_weights, separable_filter

PIXELATE_SCALE = (0.6, 0.5, 0.4, 0.3, 0.25)
JPEG_QUALITY = (25, 18, 15, 10, 7)
ELASTIC_ALPHA = (250 * 0.05, 250 * 0.065, 250 * 0.085, 250 * 0.1, 250 * 0.12)


def _levels8(images: jax.Array) -> jax.Array:
    """``[0, 1]`` floats -> int32 uint8 levels 0-255."""
    return jnp.clip(jnp.round(images * 255.0), 0, 255).astype(jnp.int32)


# ---------------------------------------------------------------- pixelate

_PIL_BITS = 22  # Pillow's PRECISION_BITS for 8-bit resampling


def _box_operator(size_in: int, size_out: int) -> tuple[np.ndarray, np.ndarray]:
    """Pillow's BOX downscale along one axis (Resample.c, precompute_coeffs): a 0/1 matrix
    ``(size_out, size_in)`` of the pixels each output averages and each output's fixed-point
    weight (every included pixel weighs the same)."""
    scale = size_in / size_out
    support, inverse = 0.5 * scale, 1.0 / scale
    members = np.zeros((size_out, size_in), np.float32)
    weight = np.zeros(size_out, np.int64)
    for out in range(size_out):
        center = (out + 0.5) * scale
        lo, hi = max(int(center - support + 0.5), 0), min(int(center + support + 0.5), size_in)
        inside = [x for x in range(lo, hi) if -0.5 < (x - center + 0.5) * inverse <= 0.5]
        members[out, inside] = 1.0
        weight[out] = int(0.5 + (1.0 / len(inside)) * (1 << _PIL_BITS))
    return members, weight


def _nearest_index(size_in: int, size_out: int) -> np.ndarray:
    """Pillow's NEAREST resize source index per output pixel (Geometry.c, ImagingScaleAffine,
    accumulating the step in doubles as it does)."""
    step, at, index = size_in / size_out, size_in / size_out * 0.5, []
    for _ in range(size_out):
        index.append(int(at))
        at += step
    return np.asarray(index, np.int32)


def _pixelate_operators(size: int) -> tuple[jax.Array, jax.Array, jax.Array]:
    """Per level 0-5 along an axis of ``size`` pixels: the BOX members ``(6, D, size)`` (D the
    largest downscaled size, zero rows past a level's), weights ``(6, D)`` and NEAREST indices
    ``(6, size)``; level 0 (never used) repeats level 1."""
    small = [int(size * c) for c in PIXELATE_SCALE]
    most = max(small)
    members = np.zeros((6, most, size), np.float32)
    weights = np.zeros((6, most), np.int32)
    index = np.zeros((6, size), np.int32)
    for level in range(1, 6):
        d = small[level - 1]
        members[level, :d], weights[level, :d] = _box_operator(size, d)
        index[level] = _nearest_index(d, size)
    members[0], weights[0], index[0] = members[1], weights[1], index[1]
    return jnp.asarray(members), jnp.asarray(weights), jnp.asarray(index)


def _box_pass(q: jax.Array, members: jax.Array, weights: jax.Array, axis: str) -> jax.Array:
    """One of Pillow's 8-bit BOX passes on int32 levels: per output, the integer sum of its
    pixels (exact in float32) times the fixed-point weight, rounded and clipped to 0-255."""
    spec = {"w": "bdw,bhwc->bhdc", "h": "bdh,bhwc->bdwc"}[axis]
    sums = jnp.einsum(spec, members, q.astype(jnp.float32), precision=jax.lax.Precision.HIGHEST).astype(jnp.int32)
    w = weights[:, None, :, None] if axis == "w" else weights[:, :, None, None]
    return jnp.clip((sums * w + (1 << (_PIL_BITS - 1))) >> _PIL_BITS, 0, 255)


def build_pixelate(severities: Sequence[float]) -> ApplyFn:
    """Pillow's ``resize((int(W c), int(H c)), BOX)`` then ``resize((W, H), NEAREST)``, c the
    severity's scale (0.6 ... 0.25), on the uint8 levels: Pillow's two fixed-point passes
    (horizontal, then vertical, each rounded to 8 bits) and its nearest source pixels,
    exactly. Grey images are resized as Pillow resizes an "L" image (the same per channel)."""

    def apply(images: jax.Array, severity: jax.Array, key: jax.Array) -> jax.Array:
        level = levels(severity)
        _, height, width, _ = images.shape
        rows, row_weights, row_index = _pixelate_operators(height)
        cols, col_weights, col_index = _pixelate_operators(width)
        small = _box_pass(_levels8(images), cols[level], col_weights[level], "w")
        small = _box_pass(small, rows[level], row_weights[level], "h")
        big = jnp.take_along_axis(small, row_index[level][:, :, None, None], axis=1)
        big = jnp.take_along_axis(big, col_index[level][:, None, :, None], axis=2)
        return unless_clean(images, level, big.astype(jnp.float32) / 255.0)

    return apply


# ---------------------------------------------------------------- JPEG (libjpeg-turbo, 8-bit, ISLOW)

# IJG's (Annex K) luminance and chrominance tables, natural order (libjpeg's jcparam.c)
_LUMA_TABLE = np.array([
    16, 11, 10, 16, 24, 40, 51, 61, 12, 12, 14, 19, 26, 58, 60, 55,
    14, 13, 16, 24, 40, 57, 69, 56, 14, 17, 22, 29, 51, 87, 80, 62,
    18, 22, 37, 56, 68, 109, 103, 77, 24, 35, 55, 64, 81, 104, 113, 92,
    49, 64, 78, 87, 103, 121, 120, 101, 72, 92, 95, 98, 112, 100, 103, 99])
_CHROMA_TABLE = np.full(64, 99)
_CHROMA_TABLE[[0, 1, 2, 3, 8, 9, 10, 11, 16, 17, 18, 24, 25]] = [17, 18, 24, 47, 18, 21, 26, 66, 24, 26, 56, 47, 66]

_FIX = {name: int(value * 65536 + 0.5) for name, value in dict(
    y_r=0.299, y_g=0.587, y_b=0.114, cb_r=0.16874, cb_g=0.33126, half=0.5, cr_g=0.41869, cr_b=0.08131,
    r_cr=1.402, b_cb=1.772, g_cr=0.71414, g_cb=0.34414).items()}
# jfdctint.c / jidctint.c's 13-bit constants
_C = dict(c0298=2446, c0390=3196, c0541=4433, c0765=6270, c0899=7373, c1175=9633, c1501=12299,
          c1847=15137, c1961=16069, c2053=16819, c2562=20995, c3072=25172)


def _quant_table(basic: np.ndarray, quality: int) -> np.ndarray:
    """libjpeg's jpeg_set_quality(quality, force_baseline=TRUE) table."""
    scale = 5000 // quality if quality < 50 else 200 - 2 * quality
    return np.clip((basic * scale + 50) // 100, 1, 255)


def _reciprocal(divisor: int) -> tuple[int, int, int]:
    """libjpeg-turbo's compute_reciprocal (jcdctmgr.c) for a divisor >= 3: its quantiser is
    ``((|x| + correction) * reciprocal) >> (16 + shift)``, not exactly a rounded division."""
    b = divisor.bit_length() - 1
    r = 16 + b
    fq, fr = divmod(1 << r, divisor)
    c = divisor // 2
    if fr == 0:
        fq, r = fq >> 1, r - 1
    elif fr <= divisor // 2:
        c += 1
    else:
        fq += 1
    return fq, c, r - 16


def _jpeg_tables(basic: np.ndarray) -> jax.Array:
    """``(6, 4, 8, 8)`` int32 per level (0 repeats 1): quantisation table, then the encoder's
    reciprocal, correction and shift for its divisor (8 x the table: ISLOW's DCT is scaled by 8)."""
    out = np.zeros((6, 4, 64), np.int64)
    for level, quality in enumerate((JPEG_QUALITY[0],) + JPEG_QUALITY):
        q = _quant_table(basic, quality)
        out[level, 0] = q
        out[level, 1:] = np.array([_reciprocal(int(v) << 3) for v in q]).T
    return jnp.asarray(out.reshape(6, 4, 8, 8), jnp.int32)


def _descale(x: jax.Array, n: int) -> jax.Array:
    return (x + (1 << (n - 1))) >> n


def _odd_part(t4, t5, t6, t7):
    """The LL&M odd-part rotation jfdctint.c and jidctint.c share: returns the four sums."""
    z1, z2, z3, z4 = t4 + t7, t5 + t6, t4 + t6, t5 + t7
    z5 = (z3 + z4) * _C["c1175"]
    z1, z2 = z1 * -_C["c0899"], z2 * -_C["c2562"]
    z3, z4 = z3 * -_C["c1961"] + z5, z4 * -_C["c0390"] + z5
    return (t4 * _C["c0298"] + z1 + z3, t5 * _C["c2053"] + z2 + z4,
            t6 * _C["c3072"] + z2 + z3, t7 * _C["c1501"] + z1 + z4)


def _fdct_1d(d: list, first: bool) -> list:
    """jpeg_fdct_islow's row pass (``first``) or column pass on eight int32 arrays."""
    t0, t7, t1, t6 = d[0] + d[7], d[0] - d[7], d[1] + d[6], d[1] - d[6]
    t2, t5, t3, t4 = d[2] + d[5], d[2] - d[5], d[3] + d[4], d[3] - d[4]
    t10, t13, t11, t12 = t0 + t3, t0 - t3, t1 + t2, t1 - t2
    shift = 11 if first else 15
    out = [None] * 8
    out[0], out[4] = ((t10 + t11) << 2, (t10 - t11) << 2) if first else (_descale(t10 + t11, 2), _descale(t10 - t11, 2))
    z1 = (t12 + t13) * _C["c0541"]
    out[2] = _descale(z1 + t13 * _C["c0765"], shift)
    out[6] = _descale(z1 - t12 * _C["c1847"], shift)
    o7, o5, o3, o1 = _odd_part(t4, t5, t6, t7)
    out[7], out[5], out[3], out[1] = (_descale(v, shift) for v in (o7, o5, o3, o1))
    return out


def _idct_1d(d: list, shift: int) -> list:
    """jpeg_idct_islow's column pass (shift 11) or row pass (shift 18) on eight int32 arrays
    (its all-AC-zero shortcuts give the same values)."""
    z1 = (d[2] + d[6]) * _C["c0541"]
    t2, t3 = z1 - d[6] * _C["c1847"], z1 + d[2] * _C["c0765"]
    t0, t1 = (d[0] + d[4]) << 13, (d[0] - d[4]) << 13
    t10, t13, t11, t12 = t0 + t3, t0 - t3, t1 + t2, t1 - t2
    o0, o1, o2, o3 = _odd_part(d[7], d[5], d[3], d[1])
    return [_descale(v, shift) for v in (t10 + o3, t11 + o2, t12 + o1, t13 + o0, t13 - o0, t12 - o1, t11 - o2, t10 - o3)]


def _along(blocks: jax.Array, axis: int, fn, *args) -> jax.Array:
    return jnp.stack(fn([jnp.take(blocks, k, axis=axis) for k in range(8)], *args), axis=axis)


def _jpeg_plane(plane: jax.Array, tables: jax.Array) -> jax.Array:
    """Encode and decode one component: ``plane`` ``(B, 8 m, 8 n)`` int32 samples, ``tables``
    ``(B, 4, 8, 8)`` -> the decoded samples: level shift, ISLOW forward DCT, libjpeg-turbo's
    reciprocal quantiser, dequantisation, ISLOW inverse DCT, clamp."""
    b, h, w = plane.shape
    blocks = plane.reshape(b, h // 8, 8, w // 8, 8) - 128  # (B, block row, v, block col, u)
    coef = _along(_along(blocks, 4, _fdct_1d, True), 2, _fdct_1d, False)
    quant, recip, corr, shift = (tables[:, i, None, :, None, :] for i in range(4))
    level = ((jnp.abs(coef) + corr) * recip) >> (shift + 16)
    coef = jnp.where(coef < 0, -level, level) * quant
    out = _along(_along(coef, 2, _idct_1d, 11), 4, _idct_1d, 18)
    return jnp.clip(out + 128, 0, 255).reshape(b, h, w)


def _pad_edge(x: jax.Array, height: int, width: int) -> jax.Array:
    return jnp.pad(x, ((0, 0), (0, height - x.shape[1]), (0, width - x.shape[2])), mode="edge")


def _upsample_fancy(c: jax.Array) -> jax.Array:
    """libjpeg-turbo's h2v2_fancy_upsample: triangle filter, 3/4 nearer and 1/4 further sample
    along each axis, edge samples repeated, rounding biases 8 and 7."""
    def interleave(a, b, axis):
        return jnp.stack([a, b], axis=axis + 1).reshape(*a.shape[:axis], 2 * a.shape[axis], *a.shape[axis + 1:])

    above = jnp.concatenate([c[:, :1], c[:, :-1]], axis=1)
    below = jnp.concatenate([c[:, 1:], c[:, -1:]], axis=1)
    s = interleave(3 * c + above, 3 * c + below, 1)
    left = jnp.concatenate([s[:, :, :1], s[:, :, :-1]], axis=2)
    right = jnp.concatenate([s[:, :, 1:], s[:, :, -1:]], axis=2)
    return interleave((3 * s + left + 8) >> 4, (3 * s + right + 7) >> 4, 2)


def _jpeg_roundtrip(q: jax.Array, luma: jax.Array, chroma: jax.Array) -> jax.Array:
    """Pillow's ``save(JPEG, quality)`` and reload on int32 levels ``(B, H, W, C)`` with
    per-sample tables ``(B, 4, 8, 8)``: baseline, 4:2:0, libjpeg-turbo's defaults."""
    _, height, width, channels = q.shape
    by, bx = -(-height // 8) * 8, -(-width // 8) * 8
    if channels == 1:  # L -> RGB gives Y = L and Cb = Cr = 128, which code and decode exactly
        return _jpeg_plane(_pad_edge(q[..., 0], by, bx), luma)[:, :height, :width, None]
    r, g, b = q[..., 0], q[..., 1], q[..., 2]
    f = _FIX
    y = (f["y_r"] * r + f["y_g"] * g + f["y_b"] * b + 32768) >> 16
    offset = (128 << 16) + 32767
    cb = (-f["cb_r"] * r - f["cb_g"] * g + f["half"] * b + offset) >> 16
    cr = (f["half"] * r - f["cr_g"] * g - f["cr_b"] * b + offset) >> 16
    y = _jpeg_plane(_pad_edge(y, by, bx), luma)[:, :height, :width]
    # chroma: full-size rows padded to even and columns to 16 n (jcprepct, jcsample), averaged
    # 2x2 with biases 1, 2, 1, 2 ..., the averaged rows padded to a whole iMCU row of blocks
    ch, cw = -(-height // 16) * 8, -(-width // 16) * 8
    half_h, half_w = -(-height // 2), -(-width // 2)
    bias = jnp.tile(jnp.array([1, 2], jnp.int32), cw // 2)
    planes = []
    for plane in (cb, cr):
        full = _pad_edge(plane, 2 * half_h, 2 * cw)
        small = (full.reshape(-1, half_h, 2, cw, 2).sum(axis=(2, 4)) + bias) >> 2
        small = _jpeg_plane(_pad_edge(small, ch, cw), chroma)[:, :half_h, :half_w]
        planes.append(_upsample_fancy(small)[:, :height, :width] - 128)
    cb, cr = planes
    red = y + ((f["r_cr"] * cr + 32768) >> 16)
    green = y + ((-f["g_cb"] * cb + 32768 - f["g_cr"] * cr) >> 16)
    blue = y + ((f["b_cb"] * cb + 32768) >> 16)
    return jnp.clip(jnp.stack([red, green, blue], axis=-1), 0, 255)


def build_jpeg_compression(severities: Sequence[float]) -> ApplyFn:
    """Pillow's ``save(JPEG, quality=c)`` and reload, c the severity's quality (25 ... 7): the
    whole libjpeg-turbo round trip in integer arithmetic (Pillow's defaults: 4:2:0 chroma,
    baseline tables scaled by quality and capped at 255, ISLOW DCTs, fancy upsampling), so the
    pixels are Pillow's. Grey images: the reference converts to RGB and back to L, which is
    the luminance channel coded alone (done so here)."""
    luma_tables, chroma_tables = _jpeg_tables(_LUMA_TABLE), _jpeg_tables(_CHROMA_TABLE)

    def apply(images: jax.Array, severity: jax.Array, key: jax.Array) -> jax.Array:
        level = levels(severity)
        out = _jpeg_roundtrip(_levels8(images), luma_tables[level], chroma_tables[level])
        return unless_clean(images, level, out.astype(jnp.float32) / 255.0)

    return apply


# ---------------------------------------------------------------- elastic transform


def _elastic_warp(images: jax.Array, dx: jax.Array, dy: jax.Array) -> jax.Array:
    """Sample ``(B, H, W, C)`` images at ``(row + dy, col + dx)`` (``dx``, ``dy`` ``(B, H, W)``
    pixels), bilinear with edges reflected (``scipy.ndimage.map_coordinates(order=1,
    mode='reflect')``), every channel at the same points."""
    _, height, width, _ = images.shape
    rows = jnp.arange(height, dtype=jnp.float32)[:, None] + dy
    cols = jnp.arange(width, dtype=jnp.float32)[None, :] + dx

    def one(image, r, c):
        return jax.vmap(lambda channel: map_coordinates(channel, [r, c], order=1, mode="reflect"), in_axes=2, out_axes=2)(image)

    return jax.vmap(one)(images, rows, cols)


def _displacement(noise: jax.Array, alpha: jax.Array) -> jax.Array:
    """The reference's ``gaussian(noise, sigma=(0.01 H, 0.01 W), mode='reflect', truncate=3)
    * alpha`` for ``noise`` ``(B, H, W)`` and per-sample ``alpha`` ``(B,)``: ``(B, H, W)``."""
    batch, height, width = noise.shape
    sigma = (0.01 * height, 0.01 * width)
    radius = max(int(3.0 * s + 0.5) for s in sigma)
    rows, cols = (gaussian_weights(jnp.full((batch,), s, jnp.float32), radius, truncate=3.0) for s in sigma)
    return separable_filter(noise[..., None], rows, cols, "reflect")[..., 0] * alpha[:, None, None]


def build_elastic_transform(severities: Sequence[float]) -> ApplyFn:
    """The reference's elastic transform: ``dx, dy = gaussian(U(-d, d)^(H x W), sigma=(0.01 H,
    0.01 W), mode='reflect', truncate=3) * alpha`` with d = 0.005 H (pixels) and alpha the
    severity's (12.5 ... 30), then the image sampled at ``(row + dy, col + dx)``, bilinear with
    reflected edges. Fresh displacements per image from the key; grey images as the
    reference's 2-D path."""

    def apply(images: jax.Array, severity: jax.Array, key: jax.Array) -> jax.Array:
        level = levels(severity)
        batch, height, width, _ = images.shape
        most = 0.005 * height
        alpha = table(ELASTIC_ALPHA, level)
        dx, dy = (_displacement(jax.random.uniform(k, (batch, height, width), jnp.float32, -most, most), alpha)
                  for k in jax.random.split(key))
        return unless_clean(images, level, _elastic_warp(images, dx, dy))

    return apply


CORRUPTIONS = (
    Corruption("pixelate", "digital", build_pixelate, random=False),
    Corruption("jpeg_compression", "digital", build_jpeg_compression, random=False),
    Corruption("elastic_transform", "digital", build_elastic_transform, random=True),
)
