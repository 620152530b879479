"""The second image audit's perturbation families against established implementations.

Real images: the eight 32x32 digits and three 64x64 photographs of tests/conftest.py.
Tolerances (absolute, intensities in [0, 1]; every reference works in float, so only
float32 rounding separates the two):
* shift_x / shift_y vs scipy.ndimage.shift(order=1, mode='grid-constant', cval=0): 1e-5;
* pixelate vs scipy.ndimage.mean over tile labels (any block, edge tiles cut short)
  and vs PIL resize(BOX) then resize(NEAREST) in float mode 'F' (blocks that divide): 1e-5;
* occlusion vs PIL ImageDraw.rectangle(fill=0) in mode 'F': exact;
* gamma vs skimage.exposure.adjust_gamma: 1e-6.
"""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
import scipy.ndimage as ndi
from PIL import Image, ImageDraw
from skimage.exposure import adjust_gamma

from fadejax.core import perturbations as P
from fadejax.engine.config import ConfigError, parse_config

NEW = ["shift_x", "shift_y", "pixelate", "occlusion", "gamma"]


def _per_channel(image: np.ndarray, fn) -> np.ndarray:
    """Apply ``fn(2-D float32 plane) -> plane`` to each channel of an (H, W, C) image."""
    return np.stack([fn(image[..., c].astype(np.float32)) for c in range(image.shape[-1])], axis=-1)


@pytest.mark.parametrize("pixels", [-5.0, -2.5, 0.3, 4.0])
def test_shifts_match_scipy_shift(digit_images, photo_images, pixels):
    for images in (digit_images, photo_images):
        x = jnp.asarray(images)
        strengths = jnp.full(len(images), pixels)
        right = np.stack([ndi.shift(im, (0, pixels, 0), order=1, mode="grid-constant", cval=0.0) for im in images])
        down = np.stack([ndi.shift(im, (pixels, 0, 0), order=1, mode="grid-constant", cval=0.0) for im in images])
        np.testing.assert_allclose(np.asarray(P.shift_x(x, strengths)), np.clip(right, 0, 1), atol=1e-5)
        np.testing.assert_allclose(np.asarray(P.shift_y(x, strengths)), np.clip(down, 0, 1), atol=1e-5)


def test_a_whole_pixel_shift_moves_the_content_and_fills_black(digit_images):
    out = np.asarray(P.shift_x(jnp.asarray(digit_images), jnp.full(len(digit_images), 3.0)))
    np.testing.assert_array_equal(out[:, :, 3:], digit_images[:, :, :-3])
    assert np.all(out[:, :, :3] == 0)


def _tile_means(plane: np.ndarray, block: int) -> np.ndarray:
    """scipy.ndimage.mean over labelled tiles: the block average, edge tiles cut short."""
    height, width = plane.shape
    rows, cols = np.meshgrid(np.arange(height) // block, np.arange(width) // block, indexing="ij")
    labels = rows * (width // block + 1) + cols
    index = np.unique(labels)
    means = np.zeros(labels.max() + 1, np.float64)
    means[index] = ndi.mean(plane, labels=labels, index=index)
    return means[labels]


@pytest.mark.parametrize("block", [1, 2, 3, 5, 8])
def test_pixelate_matches_scipy_tile_means(digit_images, photo_images, block):
    for images in (digit_images, photo_images):
        ours = np.asarray(P.pixelate(jnp.asarray(images), jnp.full(len(images), float(block))))
        ref = np.stack([_per_channel(im, lambda p: _tile_means(p, block)) for im in images])
        np.testing.assert_allclose(ours, ref, atol=1e-5)


@pytest.mark.parametrize("block", [2, 4, 8])
def test_pixelate_matches_pil_box_then_nearest_when_the_block_divides(digit_images, photo_images, block):
    def pil(plane: np.ndarray) -> np.ndarray:
        height, width = plane.shape
        small = Image.fromarray(plane, mode="F").resize((width // block, height // block), Image.BOX)
        return np.asarray(small.resize((width, height), Image.NEAREST))

    for images in (digit_images, photo_images):
        ours = np.asarray(P.pixelate(jnp.asarray(images), jnp.full(len(images), float(block))))
        ref = np.stack([_per_channel(im, pil) for im in images])
        np.testing.assert_allclose(ours, ref, atol=1e-5)


@pytest.mark.parametrize("side", [0, 1, 6, 9, 32, 40])
def test_occlusion_matches_pil_rectangle(digit_images, photo_images, side):
    for images in (digit_images, photo_images):
        height, width = images.shape[1:3]
        top, left = (height - side) // 2, (width - side) // 2

        def pil(plane: np.ndarray) -> np.ndarray:
            canvas = Image.fromarray(plane, mode="F")
            if side > 0:  # PIL's rectangle includes both corners
                ImageDraw.Draw(canvas).rectangle([left, top, left + side - 1, top + side - 1], fill=0.0)
            return np.asarray(canvas)

        ours = np.asarray(P.occlusion(jnp.asarray(images), jnp.full(len(images), float(side))))
        np.testing.assert_array_equal(ours, np.stack([_per_channel(im, pil) for im in images]))


def test_an_even_square_on_an_even_image_is_exactly_centred(digit_images):
    out = np.asarray(P.occlusion(jnp.ones((1, 28, 28, 1)), jnp.array([8.0])))[0, ..., 0]
    np.testing.assert_array_equal(out, out[::-1, ::-1])
    assert (out == 0).sum() == 64 and np.all(out[10:18, 10:18] == 0)


@pytest.mark.parametrize("exponent", [0.4, 1.0, 2.5])
def test_gamma_matches_skimage_adjust_gamma(digit_images, photo_images, exponent):
    for images in (digit_images, photo_images):
        ours = np.asarray(P.gamma(jnp.asarray(images), jnp.full(len(images), exponent)))
        ref = np.stack([adjust_gamma(im, exponent) for im in images])
        np.testing.assert_allclose(ours, ref, atol=1e-6)


def test_new_families_are_registered_deterministic_and_identity_at_their_identity(photo_images):
    x = jnp.asarray(photo_images)
    for name in NEW:
        family = P.get(name)
        assert family.identity is not None and family.low <= family.identity <= family.high
        apply = family.build((family.identity,))
        same = np.asarray(apply(x, jnp.full(len(x), family.identity), jax.random.PRNGKey(0)))
        np.testing.assert_allclose(same, photo_images, atol=1e-6, err_msg=name)
        strong = jnp.full(len(x), 3.0)
        a = apply(x, strong, jax.random.PRNGKey(1))
        b = apply(x, strong, jax.random.PRNGKey(2))  # un-keyed: the key changes nothing
        np.testing.assert_array_equal(np.asarray(a), np.asarray(b), err_msg=name)
        assert not np.allclose(np.asarray(a), photo_images), name


def test_per_sample_strengths_in_one_jitted_batch_equal_separate_calls(digit_images):
    values = [[-4.0, 0.0, 3.0], [-2.0, 0.0, 5.0], [1.0, 3.0, 4.0], [0.0, 6.0, 10.0], [0.5, 1.0, 2.0]]
    perturb = jax.jit(P.compose(NEW, values))
    rng = np.random.default_rng(0)
    params = np.stack([rng.choice(v, size=len(digit_images)) for v in values], axis=1).astype(np.float32)
    key = jax.random.PRNGKey(0)
    batched = np.asarray(perturb(jnp.asarray(digit_images), jnp.asarray(params), key))
    for i in range(len(digit_images)):
        single = np.asarray(perturb(jnp.asarray(digit_images[i : i + 1]), jnp.asarray(params[i : i + 1]), key))
        np.testing.assert_allclose(batched[i], single[0], atol=1e-5)
    assert batched.shape == digit_images.shape and batched.min() >= 0 and batched.max() <= 1


def test_pixel_counts_must_be_whole_and_in_range():
    with pytest.raises(P.PerturbationError, match=r"pixelate values \[2.5\] are not whole numbers"):
        P.compose(["pixelate"], [[1.0, 2.5]])
    with pytest.raises(P.PerturbationError, match=r"occlusion values \[-2.0\] are outside the allowed range"):
        P.compose(["occlusion"], [[0.0, -2.0]])
    with pytest.raises(P.PerturbationError, match=r"gamma values \[0.0\] are outside the allowed range"):
        P.compose(["gamma"], [[0.0, 1.0]])
    with pytest.raises(ConfigError, match=r"occlusion values \[4.5\] are not whole numbers"):
        parse_config({"space": {"axes": [{"name": "occlusion", "values": [0, 4.5]}]}})
