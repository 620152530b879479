"""The blur corruptions (fadejax.core.corruptions.blur) against the reference ``imagecorruptions``.

Deterministic ones (gaussian, defocus, zoom) and the deterministic cores of the random ones
(motion blur at a fixed angle, glass blur given the reference's own pixel moves) agree with
the reference per pixel; the random ones agree in distribution over many draws.
"""

from __future__ import annotations

import jax
import numpy as np
import pytest

import reference_corruptions
from fadejax.core.corruptions import blur

ref = reference_corruptions.load()

ALL = ("gaussian_blur", "defocus_blur", "zoom_blur", "motion_blur", "glass_blur")
DETERMINISTIC = ("gaussian_blur", "defocus_blur", "zoom_blur")
LEVELS = np.arange(6, dtype=np.float32)  # 0 (clean) .. 5
TOL = 2.0 / 255.0

_APPLY: dict[str, object] = {}
_EVERY_LEVEL: dict[str, np.ndarray] = {}


def apply_of(name: str):
    """One jitted apply per corruption, built for severities 0-5 (per-sample severities)."""
    if name not in _APPLY:
        _APPLY[name] = jax.jit(getattr(blur, "build_" + name)(tuple(LEVELS)))
    return _APPLY[name]


def uint8(x: np.ndarray) -> np.ndarray:
    return np.round(x * 255).astype(np.uint8)


@pytest.fixture(scope="module")
def photos(photo_images):
    """The photos as the reference's uint8 and as ours (the same values / 255)."""
    u = uint8(photo_images)
    return u, u.astype(np.float32) / 255.0


@pytest.fixture(scope="module")
def every_level(photos):
    """Each photo at every severity 0-5 in one batch: ``(images, severities)``, 18 images."""
    _, x = photos
    return np.repeat(x, len(LEVELS), axis=0), np.tile(LEVELS, len(x))


def test_registry():
    assert [c.name for c in blur.CORRUPTIONS] == ["gaussian_blur", "glass_blur", "defocus_blur", "motion_blur", "zoom_blur"]
    assert {c.group for c in blur.CORRUPTIONS} == {"blur"}
    assert {c.name for c in blur.CORRUPTIONS if c.random} == {"motion_blur", "glass_blur"}
    assert {c.name for c in blur.CORRUPTIONS if c.held_out} == {"gaussian_blur"}


def at_every_level(name: str, every_level) -> np.ndarray:
    """``name``'s output on ``every_level`` (key 3), computed once."""
    if name not in _EVERY_LEVEL:
        images, severity = every_level
        _EVERY_LEVEL[name] = np.asarray(apply_of(name)(images, severity, jax.random.key(3)))
    return _EVERY_LEVEL[name]


@pytest.mark.parametrize("name", ALL)
def test_clean_shape_and_range(name, every_level):
    images, severity = every_level
    out = at_every_level(name, every_level)
    assert out.shape == images.shape and out.dtype == np.float32
    assert out.min() >= 0.0 and out.max() <= 1.0
    clean = severity == 0
    np.testing.assert_array_equal(out[clean], images[clean])
    assert np.all(np.abs(out[~clean] - images[~clean]).mean(axis=(1, 2, 3)) > 1e-3)


@pytest.mark.parametrize("name", ALL)
def test_mixed_severities_equal_uniform_batches(name, every_level):
    """A batch whose samples differ in severity gives each what a batch at its severity
    gives it (random ones: the same key, so the same draws)."""
    images, severity = every_level
    fn, key = apply_of(name), jax.random.key(3)
    mixed = at_every_level(name, every_level)
    for s in LEVELS[1:]:
        alone = np.asarray(fn(images, np.full_like(severity, s), key))
        np.testing.assert_allclose(mixed[severity == s], alone[severity == s], atol=1e-6)


@pytest.mark.parametrize("name", DETERMINISTIC)
def test_deterministic_match_reference(name, photos, every_level):
    u, _ = photos
    _, severity = every_level
    out = at_every_level(name, every_level)
    for i, s in enumerate(severity.astype(int)):
        if s:
            expected = getattr(ref, name)(u[i // len(LEVELS)], s) / 255.0
            assert np.abs(out[i] - expected).max() <= TOL, (name, s)


@pytest.mark.parametrize("name", DETERMINISTIC)
def test_deterministic_grey_and_small(name, digit_images):
    """Grey digits (32x32) and an 8x11 crop (kernels wider than the image) against the
    reference on HxWx1 (gaussian: on a 2-D array it would blur H only) or 2-D arrays."""
    for x in (digit_images[:5], digit_images[:5, 10:18, 9:20]):
        u = uint8(x)
        x = u.astype(np.float32) / 255.0
        out = np.asarray(apply_of(name)(x, LEVELS[1:], jax.random.key(0)))
        for i in range(5):
            expected = getattr(ref, name)(u[i] if name == "gaussian_blur" else u[i, ..., 0], i + 1) / 255.0
            assert np.abs(out[i] - expected.reshape(x.shape[1:])).max() <= TOL, (name, x.shape, i + 1)


def test_motion_blur_fixed_angle(photos, digit_images):
    """The deterministic core at fixed angles, RGB and grey (HxWx1; the reference's
    ``motion_blur`` fails on grey, its ``_motion_blur`` does not)."""
    u, _ = photos
    angles = np.array([-44.3, -30.1, -12.7, 0.0, 7.9, 22.2, 38.8, 44.9, 17.3, -3.3, 29.4, -21.0, 11.1, 33.3, -40.0], np.float32)
    level = np.tile(np.arange(1, 6, dtype=np.int32), 3)
    core = jax.jit(blur.motion_blur_at)
    for plain in (np.repeat(u, 5, axis=0), uint8(digit_images[np.arange(15) % len(digit_images)])):
        images = plain.astype(np.float32) / 255.0
        out = np.clip(np.asarray(core(images, level, angles)), 0, 1)
        for i in range(len(level)):
            radius, sigma = blur.MOTION[level[i] - 1]
            expected = np.clip(ref._motion_blur(plain[i], radius, sigma, float(angles[i])), 0, 255) / 255.0
            assert np.abs(out[i] - expected).max() <= TOL, (images.shape, level[i], angles[i])


def _reference_moves(height: int, width: int, level: np.ndarray, seeds: list[int]) -> np.ndarray:
    """The (dx, dy) moves the reference's glass_blur draws after ``np.random.seed(seed)``,
    placed on :func:`blur.glass_grid`'s rows: ``(B, rows, n_w, 2)``."""
    rounds, n_h, n_w = blur.glass_grid(height, width)
    first = min(d for _, d, _ in blur.GLASS)
    moves = np.zeros((len(level), rounds * n_h, n_w, 2), np.int32)
    for b, (lvl, seed) in enumerate(zip(level, seeds)):
        _, d, n = blur.GLASS[lvl - 1]
        np.random.seed(seed)
        for k in range(n):
            for h in range(height - d, d, -1):
                for w in range(width - d, d, -1):
                    moves[b, k * n_h + height - first - h, width - first - w] = np.random.randint(-d, d, size=(2,))
    return moves


def test_glass_blur_given_the_reference_moves(photos, digit_images):
    """With the reference's own draws, every step (blur, uint8 truncation, the sequential
    moves, blur) matches it, RGB and grey (HxWx1)."""
    u, _ = photos
    level = np.arange(1, 6, dtype=np.int32)
    for plain in (u[np.arange(5) % 3], uint8(digit_images[:5])):
        seeds = [100 + i for i in range(5)]
        table = jax.numpy.asarray(_reference_moves(plain.shape[1], plain.shape[2], level, seeds))
        out = jax.jit(lambda im, lv: blur.glass_blur_with(im, lv, lambda r: table[:, r]))(plain.astype(np.float32) / 255.0, level)
        out = np.clip(np.asarray(out), 0, 1)
        for i, seed in enumerate(seeds):
            np.random.seed(seed)
            expected = ref.glass_blur(plain[i], int(level[i])) / 255.0
            assert np.abs(out[i] - expected).max() <= TOL, (plain.shape, level[i])


@pytest.mark.parametrize("name,draws", [("motion_blur", 12), ("glass_blur", 3)])
def test_random_in_distribution(name, draws, photos):
    """Over ``draws`` draws of each photo, the mean and the spread of (corrupted - clean)
    agree with the reference's at each severity: the spreads within 5% (two sets of the
    reference's own draws differ by up to 2.7%). The means are near 0 (a blur moves light, it
    adds none; |mean| < 2/255 against spreads of 25-46/255), and vary with the draws by about
    1/255 (the motion's angle moves light across the borders), so they are compared within
    4/255."""
    u, x = photos
    images = np.tile(x, (5 * draws, 1, 1, 1))
    severity = np.repeat(np.arange(1, 6, dtype=np.float32), 3 * draws)
    ours = np.asarray(apply_of(name)(images, severity, jax.random.key(7))) - images
    for s in range(1, 6):
        theirs = []
        for seed in range(draws):
            np.random.seed(seed)
            theirs += [getattr(ref, name)(u[i], s) / 255.0 - x[i] for i in range(3)]
        theirs = np.stack(theirs)
        mine = ours[severity == s]
        assert abs(mine.std() / theirs.std() - 1) <= 0.05, (name, s, mine.std(), theirs.std())
        assert abs(mine.mean() - theirs.mean()) <= 4.0 / 255.0, (name, s, mine.mean(), theirs.mean())
