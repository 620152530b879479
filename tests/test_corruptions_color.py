"""The colour corruptions (fadejax.core.corruptions.color: brightness, contrast, saturate)
against the reference ``imagecorruptions`` package, at every severity, on RGB photographs
(with black, white, grey and tied-maximum pixels added) and on grey images."""

from __future__ import annotations

import functools

import jax
import jax.numpy as jnp
import numpy as np
import pytest
import skimage.color

import reference_corruptions
from fadejax.core.corruptions import color

SEVERITIES = (0, 1, 2, 3, 4, 5)
NAMES = [c.name for c in color.CORRUPTIONS]
# pixels where HSV is degenerate or ambiguous: black, white, grey, two channels sharing the maximum
EDGE_PIXELS = [[0, 0, 0], [255, 255, 255], [128, 128, 128], [200, 200, 10], [10, 200, 200], [200, 10, 200], [0, 0, 1]]


@functools.cache
def jitted(name: str):
    corruption = next(c for c in color.CORRUPTIONS if c.name == name)
    return jax.jit(corruption.build(SEVERITIES))


def photos8(photo_images) -> np.ndarray:
    images = np.round(photo_images * 255).astype(np.uint8)
    images[:, 0, : len(EDGE_PIXELS)] = EDGE_PIXELS
    return images


def grey8(photo_images) -> np.ndarray:
    """The photos' luma, (3, 64, 64) uint8, as the reference takes a grey image."""
    return np.round(np.round(photo_images * 255) @ np.array([0.299, 0.587, 0.114])).astype(np.uint8)


def ours_at_every_severity(name: str, images8: np.ndarray) -> np.ndarray:
    """(5, N, H, W, C) on the 0-255 scale, severities 1-5, from one jitted batch."""
    x = images8.astype(np.float32) / 255.0
    x = x if x.ndim == 4 else x[..., None]
    severity = np.repeat(np.arange(1, 6, dtype=np.float32), len(x))
    out = np.asarray(jitted(name)(jnp.asarray(np.tile(x, (5, 1, 1, 1))), jnp.asarray(severity), jax.random.key(0)))
    assert out.dtype == np.float32 and out.min() >= 0.0 and out.max() <= 1.0
    return out.reshape((5,) + x.shape) * 255.0


@pytest.mark.parametrize("kind", ["rgb", "grey"])
@pytest.mark.parametrize("name", NAMES)
def test_matches_the_reference_at_every_severity(name, kind, photo_images):
    images8 = photos8(photo_images) if kind == "rgb" else grey8(photo_images)
    ours = ours_at_every_severity(name, images8)
    for s in range(1, 6):
        theirs = np.stack([getattr(reference_corruptions.load(), name)(image, s) for image in images8])
        theirs = theirs if kind == "rgb" else theirs[..., None]
        # the target is 2 (of 255); float32 against the reference's float64 measured 2e-4
        assert np.abs(ours[s - 1] - theirs).max() <= 0.01, (s, np.abs(ours[s - 1] - theirs).max())


def test_saturate_leaves_grey_images_unchanged(digit_images):
    out = np.asarray(jitted("saturate")(jnp.asarray(digit_images), jnp.full(len(digit_images), 5.0), jax.random.key(0)))
    np.testing.assert_array_equal(out, digit_images)


@pytest.mark.parametrize("name", NAMES)
def test_severity_zero_is_exact_and_mixed_severities_match_separate_calls(name, photo_images):
    apply = jitted(name)
    x = jnp.asarray(photo_images)
    np.testing.assert_array_equal(np.asarray(apply(x, jnp.zeros(3), jax.random.key(0))), photo_images)
    mixed = np.asarray(apply(x, jnp.array([0.0, 2.0, 5.0]), jax.random.key(0)))
    for i, s in enumerate([0.0, 2.0, 5.0]):
        np.testing.assert_array_equal(mixed[i], np.asarray(apply(x, jnp.full(3, s), jax.random.key(1)))[i])
    assert mixed.shape == photo_images.shape and mixed.dtype == np.float32
    assert not np.array_equal(mixed[1:], photo_images[1:])


def test_hsv_conversions_are_scikit_images(photo_images):
    rgb = np.concatenate([photo_images.reshape(-1, 3), np.asarray(EDGE_PIXELS, np.float32) / 255.0])
    hsv = np.asarray(color.rgb_to_hsv(jnp.asarray(rgb)))
    np.testing.assert_allclose(hsv, skimage.color.rgb2hsv(rgb.astype(np.float64)), atol=1e-6)
    wild = np.random.default_rng(0).random((2000, 3)).astype(np.float32)  # any hue, saturation, value
    np.testing.assert_allclose(np.asarray(color.hsv_to_rgb(jnp.asarray(wild))), skimage.color.hsv2rgb(wild.astype(np.float64)), atol=1e-6)


def test_declared_as_the_reference_groups_them():
    assert NAMES == ["brightness", "contrast", "saturate"]
    for c in color.CORRUPTIONS:
        assert callable(getattr(reference_corruptions.load(), c.name)) and c.group == "digital" and not c.random
        assert c.held_out == (c.name == "saturate")
