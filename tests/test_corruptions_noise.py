"""The noise corruptions (fadejax.core.corruptions.noise) against the reference
``imagecorruptions`` package, in distribution: over many draws, the mean and the standard
deviation of (corrupted - clean) at each severity 1-5, on RGB photographs and grey digits."""

from __future__ import annotations

import functools

import jax
import jax.numpy as jnp
import numpy as np
import pytest
import skimage.util

import reference_corruptions
from fadejax.core.corruptions import noise

SEVERITIES = (0, 1, 2, 3, 4, 5)
NAMES = [c.name for c in noise.CORRUPTIONS]
# draws per (image, severity): 5 x 3 photos x 64 x 64 x 3 = 184k elements per severity; the
# grey digits are smaller (8 x 32 x 32), so more draws there (82k elements)
DRAWS = {"rgb": 5, "grey": 10}


@functools.cache
def jitted(name: str):
    corruption = next(c for c in noise.CORRUPTIONS if c.name == name)
    return jax.jit(corruption.build(SEVERITIES))


def images_of(kind: str, photo_images, digit_images) -> np.ndarray:
    """uint8 images for the reference: (N, H, W, 3) photos or (N, H, W) grey digits."""
    return np.round((photo_images if kind == "rgb" else digit_images[..., 0]) * 255).astype(np.uint8)


def ours_stats(name: str, images8: np.ndarray, draws: int) -> dict[int, tuple[float, float]]:
    """Mean and std of (ours - clean), 0-1 scale, per severity 1-5, from one jitted batch."""
    x = images8.astype(np.float32) / 255.0
    x = x if x.ndim == 4 else x[..., None]
    n = len(x)
    batch = np.tile(x, (5 * draws, 1, 1, 1))  # (draw, severity, image)
    severity = np.tile(np.repeat(np.arange(1, 6, dtype=np.float32), n), draws)
    out = np.asarray(jitted(name)(jnp.asarray(batch), jnp.asarray(severity), jax.random.key(7)))
    assert out.dtype == np.float32 and out.shape == batch.shape
    assert out.min() >= 0.0 and out.max() <= 1.0
    diff = out - batch
    return {s: (float(diff[severity == s].mean()), float(diff[severity == s].std())) for s in range(1, 6)}


def reference_stats(name: str, images8: np.ndarray, draws: int, monkeypatch) -> dict[int, tuple[float, float]]:
    ref = reference_corruptions.load()
    np.random.seed(0)
    # impulse_noise calls skimage's random_noise with its own unseeded generator: seed it
    original = skimage.util.random_noise
    generator = np.random.default_rng(0)
    monkeypatch.setattr(skimage.util, "random_noise", lambda *a, **k: original(*a, rng=generator, **k))
    clean = images8.astype(np.float64) / 255.0
    stats = {}
    for s in range(1, 6):
        diff = np.stack([getattr(ref, name)(image, s) / 255.0 - image_clean
                         for _ in range(draws) for image, image_clean in zip(images8, clean)])
        stats[s] = (float(diff.mean()), float(diff.std()))
    return stats


@pytest.mark.parametrize("kind", ["rgb", "grey"])
@pytest.mark.parametrize("name", NAMES)
def test_agrees_with_the_reference_in_distribution(name, kind, photo_images, digit_images, monkeypatch):
    images8 = images_of(kind, photo_images, digit_images)
    ours = ours_stats(name, images8, DRAWS[kind])
    theirs = reference_stats(name, images8, DRAWS[kind], monkeypatch)
    n = DRAWS[kind] * images8.size  # noised elements per severity, on either side
    for s in range(1, 6):
        (mean, std), (ref_mean, ref_std) = ours[s], theirs[s]
        assert abs(std - ref_std) <= 0.05 * ref_std, (s, std, ref_std)
        # These means are near 0 (zero-mean noise, biased only by clipping; salt and pepper on
        # mid-grey photos: 0.001-0.06), where 5% of them is below the sampling error of the
        # difference of two means over these draws (the same clean images on both sides, so
        # only the noise varies: standard error sqrt((std^2 + ref_std^2) / n), 2e-4 - 9e-4):
        # the tolerance is 4 standard errors where that is larger than 5%.
        error = np.sqrt((std**2 + ref_std**2) / n)
        assert abs(mean - ref_mean) <= max(0.05 * abs(ref_mean), 4 * error), (s, mean, ref_mean, error)


@pytest.mark.parametrize("name", NAMES)
def test_severity_zero_is_exact_and_mixed_severities_match_separate_calls(name, photo_images):
    apply = jitted(name)
    x = jnp.asarray(photo_images)
    key = jax.random.key(3)
    np.testing.assert_array_equal(np.asarray(apply(x, jnp.zeros(3), key)), photo_images)
    mixed = np.asarray(apply(x, jnp.array([0.0, 2.0, 5.0]), key))
    for i, s in enumerate([0.0, 2.0, 5.0]):
        np.testing.assert_array_equal(mixed[i], np.asarray(apply(x, jnp.full(3, s), key))[i])
    assert not np.array_equal(mixed[1:], photo_images[1:])


@pytest.mark.parametrize("name", NAMES)
def test_draws_come_from_the_key(name, digit_images):
    apply = jitted(name)
    x = jnp.asarray(digit_images)
    severity = jnp.full(len(digit_images), 3.0)
    first = np.asarray(apply(x, severity, jax.random.key(0)))
    np.testing.assert_array_equal(first, np.asarray(apply(x, severity, jax.random.key(0))))
    assert not np.array_equal(first, np.asarray(apply(x, severity, jax.random.key(1))))
    assert first.shape == digit_images.shape and first.dtype == np.float32


def test_declared_as_the_reference_groups_them():
    ref = reference_corruptions.load()
    assert NAMES == ["gaussian_noise", "shot_noise", "impulse_noise", "speckle_noise"]
    for c in noise.CORRUPTIONS:
        assert callable(getattr(ref, c.name)) and c.group == "noise" and c.random
        assert c.held_out == (c.name == "speckle_noise")
