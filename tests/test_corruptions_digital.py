"""ImageNet-C's digital corruptions against the reference (``imagecorruptions`` on Pillow and
scipy): pixelate and JPEG compression pixel for pixel, the elastic transform's warp and
displacement field exactly and its random draws in distribution."""

from __future__ import annotations

import functools

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from PIL import Image
from scipy.ndimage import map_coordinates
from skimage.filters import gaussian

import reference_corruptions
from fadejax.core.corruptions import digital
from fadejax.core.corruptions.digital import CORRUPTIONS

SEVERITIES = [1, 2, 3, 4, 5]
NAMES = [c.name for c in CORRUPTIONS]
PILLOW = ["pixelate", "jpeg_compression"]


@functools.lru_cache(maxsize=None)
def jitted(name: str):
    return jax.jit({c.name: c.build for c in CORRUPTIONS}[name](SEVERITIES))


def run(name: str, images: np.ndarray, severity, key: int = 0) -> np.ndarray:
    """Our corruption of float images in [0, 1], per-sample severities."""
    return np.asarray(jitted(name)(jnp.asarray(images, jnp.float32), jnp.asarray(severity, jnp.float32), jax.random.PRNGKey(key)))


@pytest.fixture(scope="module")
def ref():
    return reference_corruptions.load()


@pytest.fixture(scope="module")
def odd_photos(photo_images) -> dict:
    """The photos cropped to 45 x 61 (neither a multiple of 8 nor 16: JPEG's edge padding),
    as uint8 RGB and their Pillow luma ("L")."""
    rgb = np.round(photo_images[:, 5:50, :61] * 255).astype(np.uint8)
    return {"rgb": rgb, "grey": np.stack([np.asarray(Image.fromarray(p).convert("L")) for p in rgb])[..., None]}


def test_the_digital_group_and_which_draw_at_random():
    assert [(c.name, c.group, c.random, c.held_out) for c in CORRUPTIONS] == [
        ("pixelate", "digital", False, False), ("jpeg_compression", "digital", False, False),
        ("elastic_transform", "digital", True, False)]


@pytest.mark.parametrize("name", PILLOW)
def test_pixelate_and_jpeg_give_pillows_pixels_at_every_severity(ref, photo_images, odd_photos, name):
    # The issue asks for 2/255; Pillow's fixed-point resampling and libjpeg-turbo's integer
    # pipeline, reproduced step by step, give its pixels exactly (Pillow pinned in constraints.txt).
    cases = {"photos": np.round(photo_images * 255).astype(np.uint8), "odd rgb": odd_photos["rgb"], "odd grey": odd_photos["grey"]}
    for case, images in cases.items():
        for s in SEVERITIES:
            ours = np.round(run(name, images / 255.0, [s] * len(images)) * 255)
            pil = [Image.fromarray(p[..., 0], "L") if p.shape[-1] == 1 else Image.fromarray(p) for p in images]
            theirs = np.stack([np.asarray(getattr(ref, name)(p, s), np.float64) for p in pil]).reshape(images.shape)
            assert np.array_equal(ours, theirs), (case, s, np.abs(ours - theirs).max())


@pytest.mark.parametrize("name", NAMES)
def test_mixed_severities_in_one_batch_equal_separate_calls_and_severity_0_is_the_image(photo_images, odd_photos, name):
    mixed = run(name, photo_images, [0, 2, 5])
    assert mixed.shape == photo_images.shape and mixed.dtype == np.float32 and mixed.min() >= 0 and mixed.max() <= 1
    assert np.array_equal(mixed[0], photo_images[0])
    for i, s in [(1, 2), (2, 5)]:
        np.testing.assert_allclose(mixed[i], run(name, photo_images, [s] * 3)[i], atol=1e-6)
        assert np.abs(mixed[i] - photo_images[i]).mean() > 1 / 255
    grey = odd_photos["grey"] / 255.0
    out = run(name, grey, [0, 3, 5])
    assert out.shape == grey.shape and out.min() >= 0 and out.max() <= 1 and np.array_equal(out[0], grey[0].astype(np.float32))
    assert np.abs(out[2] - grey[2]).mean() > 1 / 255


def test_elastic_warp_samples_as_scipy_map_coordinates_with_reflected_edges():
    rng = np.random.default_rng(0)
    images = rng.random((2, 23, 37, 3), np.float32)
    dx, dy = (rng.normal(0.0, 6.0, (2, 23, 37)).astype(np.float32) for _ in range(2))
    dx[0, 0, :5] = [-40.3, -26.7, 75.2, -0.2, -1.5]  # far outside, reflected more than once
    ours = np.asarray(jax.jit(digital._elastic_warp)(jnp.asarray(images), jnp.asarray(dx), jnp.asarray(dy)))
    rows, cols = np.meshgrid(np.arange(23), np.arange(37), indexing="ij")
    theirs = np.stack([np.stack([map_coordinates(images[b, ..., c], [rows + dy[b], cols + dx[b]], order=1, mode="reflect")
                                 for c in range(3)], axis=-1) for b in range(2)])
    np.testing.assert_allclose(ours, theirs, atol=1e-5)  # float32 rounding; the bound is 2/255


def test_elastic_displacement_is_the_references_smoothed_noise_per_axis():
    rng = np.random.default_rng(1)
    noise = rng.uniform(-0.75, 0.75, (2, 150, 90))  # sigma 1.5 rows, 0.9 columns
    alpha = np.array([12.5, 30.0])
    ours = np.asarray(jax.jit(digital._displacement)(jnp.asarray(noise, jnp.float32), jnp.asarray(alpha, jnp.float32)))
    theirs = np.stack([gaussian(n, sigma=np.array(n.shape) * 0.01, mode="reflect", truncate=3) * a for n, a in zip(noise, alpha)])
    np.testing.assert_allclose(ours, theirs, atol=1e-4)


def test_elastic_draws_match_the_reference_in_distribution(ref, photo_images):
    draws = 20
    photos = np.round(photo_images * 255).astype(np.uint8)
    batch = np.tile(photos, (len(SEVERITIES) * draws, 1, 1, 1))
    severity = np.repeat(SEVERITIES, draws * len(photos))
    ours = (run("elastic_transform", batch / 255.0, severity) * 255 - batch).reshape(len(SEVERITIES), -1)
    for row, s in enumerate(SEVERITIES):
        theirs = []
        for k in range(draws):
            np.random.seed(k)
            theirs += [ref.elastic_transform(p, s) - p for p in photos]
        theirs = np.stack(theirs)
        # The issue asks for 5%; the spread grows more slowly than the displacement (a 6%
        # smaller alpha moves it by 2.5-4%), so 2% is asserted (measured: within 0.75%).
        assert abs(ours[row].std() / theirs.std() - 1) < 0.02, (s, ours[row].std(), theirs.std())
        # A warp moves content without brightening it: both means are ~0 (|mean| < 0.2 of 255
        # against a std of 28-45), so they are compared within 0.5 grey level, not relatively.
        assert abs(ours[row].mean() - theirs.mean()) < 0.5, (s, ours[row].mean(), theirs.mean())
