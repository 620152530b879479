"""The weather corruptions (fog, frost, snow, spatter) against the reference, ``imagecorruptions`` 1.1.2.

* Same draws: ``apply``'s own draws (the module's ``_<name>_draws`` of the key ``apply`` is
  given) are handed to the reference in place of ``numpy.random``; fog and snow then agree
  within 2/255 per pixel, spatter too but for the rare pixels near a liquid pixel that float32
  puts on the other side of the threshold (99% of pixels, PSNR >= 40 dB), frost to
  PSNR >= 40 dB (its frost image is resized with PIL's bicubic filter, the reference's with
  OpenCV's INTER_CUBIC); on RGB photos and on grey ones.
* In distribution: the reference with its own numpy draws and ``apply`` with its own keys give
  the same mean and std of (corrupted - clean) within 5% at every severity, with two
  allowances for means near 0, whose 5% is finer than the draws here resolve: fog's mean
  shift is a tenth of its spread and set mostly by the fractal's random overall level (an
  estimate from 100 draws moves by ~15%), so it is held to 5% of the spread; spatter's means
  under 10/255 (severities 1-4: its liquid's amount varies from draw to draw) are held to
  half a grey level.
"""

from __future__ import annotations

import functools
import importlib.util
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from PIL import Image

import reference_corruptions
from fadejax.core.corruptions import weather

SEVERITIES = [1, 2, 3, 4, 5]
NAMES = ["fog", "frost", "snow", "spatter"]
#: draws per photo and severity in one call (times the 3 photos: the batch every test uses)
REPS = {"fog": (2, 2, 2, 2, 2), "frost": (2, 2, 2, 2, 2), "snow": (2, 2, 2, 2, 2), "spatter": (2, 2, 1, 1, 1)}
#: calls in the distribution test: enough draws that the two sides' estimates, each as
#: noisy as the reference's draws make them (measured over 400 draws per photo), meet the
#: tolerance by a margin of ~2.5 standard errors or more (frost's mean varies with which of
#: its five images is drawn; spatter's at severities 1-2 with the amount of liquid)
CALLS = {"fog": 60, "frost": 100, "snow": 22, "spatter": 48}
_APPLY: dict[str, object] = {}


def _apply(name: str):
    """One jitted apply per corruption, shared by the tests (each compiles once per batch shape)."""
    if name not in _APPLY:
        _APPLY[name] = jax.jit(getattr(weather, f"build_{name}")(SEVERITIES))
    return _APPLY[name]


@pytest.fixture(scope="module")
def ref():
    return reference_corruptions.load()


@pytest.fixture
def fast_ref(ref, monkeypatch):
    """The reference, its frost image read and resized once instead of on every call (13 ms)."""
    monkeypatch.setattr(ref, "cv2", _CachedCv2(ref.cv2))
    return ref


class _CachedCv2:
    def __init__(self, cv2):
        self._cv2, self._read, self._resized = cv2, {}, {}

    def __getattr__(self, name):
        return getattr(self._cv2, name)

    def imread(self, path):
        if path not in self._read:
            self._read[path] = self._cv2.imread(path)
        return self._read[path]

    def resize(self, image, dsize, interpolation):
        key = (id(image), tuple(dsize), interpolation)
        if key not in self._resized:
            self._resized[key] = self._cv2.resize(image, dsize=dsize, interpolation=interpolation)
        return self._resized[key]


class _Replay:
    """Stands in for ``numpy.random`` inside the reference: hands out the given draws in order
    (uniforms in [0, 1) and standard normals, scaled as numpy scales them; integers as they are)."""

    def __init__(self, draws):
        self.draws, self.bounds = list(draws), []

    def _next(self, size):
        value = np.asarray(self.draws.pop(0), np.float64)
        assert value.shape == (() if size is None else tuple(size))
        return value

    def uniform(self, low=0.0, high=1.0, size=None):
        return low + (high - low) * self._next(size)

    def normal(self, loc=0.0, scale=1.0, size=None):
        return loc + scale * self._next(size)

    def randint(self, low, high=None, size=None):
        value = int(self._next(size))
        self.bounds.append((0, low) if high is None else (low, high))
        assert self.bounds[-1][0] <= value < self.bounds[-1][1]
        return value


class _NumpyReplaying:
    """The reference's numpy (``base``, with its ``float_``) with ``random`` replaced."""

    def __init__(self, replay: _Replay, base):
        self.random, self.base = replay, base

    def __getattr__(self, name):
        return getattr(self.base, name)


def _batch(images: np.ndarray, reps) -> tuple[np.ndarray, np.ndarray]:
    """Every photo at every severity, ``reps[s - 1]`` times: images and severities."""
    severity = np.repeat(SEVERITIES, [3 * r for r in reps]).astype(np.float32)
    return np.tile(images, (len(severity) // len(images), 1, 1, 1)), severity


@functools.lru_cache
def _frost_shapes(height: int, width: int) -> np.ndarray:
    """Each rescaled frost image's (h, w) for an image of ``height x width``."""
    return weather._rescaled_frost(weather._load_frost_images(), height, width)[1]


def _draws(name: str, key, batch: int, height: int, width: int) -> list[list]:
    """Each row's draws as ``apply`` makes them from ``key``, in the order the reference asks for them."""
    if name == "fog":
        draw = jax.jit(weather._fog_draws, static_argnums=(1, 2))
        steps = draw(key, batch, weather._next_power_of_2(max(height, width, 3)))
        return [[np.asarray(step[b, j]) for step in steps for j in range(3)] for b in range(batch)]
    if name == "snow":
        normal, uniform = map(np.asarray, jax.jit(weather._snow_draws, static_argnums=(1, 2, 3))(key, batch, height, width))
        return [[normal[b], uniform[b]] for b in range(batch)]
    if name == "spatter":
        return [[row] for row in np.asarray(jax.jit(weather._spatter_draws, static_argnums=(1, 2, 3))(key, batch, height, width))]
    draw = jax.jit(weather._frost_draws, static_argnums=(1, 3, 4))
    index, row, col = map(np.asarray, draw(key, batch, jnp.asarray(_frost_shapes(height, width)), height, width))
    return [[index[b], row[b], col[b]] for b in range(batch)]


def _reference(ref, name: str, image: np.ndarray, severity: int) -> np.ndarray:
    """The reference on a uint8 (H, W, 3) or (H, W) image, 0-255 float64."""
    arg = Image.fromarray(image) if name == "spatter" else image
    return np.asarray(getattr(ref, name)(arg, severity), np.float64)


@pytest.mark.parametrize("name", NAMES)
def test_matches_the_reference_given_the_same_draws(name, fast_ref, photo_images, monkeypatch):
    photos = np.round(photo_images * 255).astype(np.uint8)
    # grey: the photos' luma, cut to 48 x 64 so that the rules that scale with the image are
    # checked on unequal sides as well
    grey = np.round(photos[:, 8:56] @ np.array([0.299, 0.587, 0.114]))[..., None].astype(np.uint8)
    key = jax.random.key(7)
    for uint8 in (photos, grey):
        images, severity = _batch(uint8, REPS[name])
        ours = np.asarray(_apply(name)(jnp.asarray(images / 255.0, jnp.float32), jnp.asarray(severity), key)) * 255
        for b, draws in enumerate(_draws(name, key, *images.shape[:3])):
            replay = _Replay(draws)
            monkeypatch.setattr(fast_ref, "np", _NumpyReplaying(replay, fast_ref.np))
            image = images[b] if images.shape[-1] == 3 else images[b, ..., 0]
            expected = _reference(fast_ref, name, image, int(severity[b]))
            assert not replay.draws, "the reference drew less than apply did"
            got = ours[b].reshape(expected.shape)
            error = np.abs(got - expected)
            psnr = 10 * np.log10(255**2 / max(np.mean(error**2), 1e-12))
            if name == "frost":
                # the crop bounds it drew from are those of its OpenCV-resized frost image
                fh, fw = _frost_shapes(*images.shape[1:3])[draws[0]]
                assert replay.bounds == [(0, 5), (0, fh - images.shape[1]), (0, fw - images.shape[2])]
                assert psnr >= 40, (b, psnr)
            elif name == "spatter":
                # now and then (2 draws in 150 at severity 1) a liquid pixel within float32 rounding
                # of the threshold comes out on its other side (the reference blurs in float64),
                # which moves the water's edges around it
                assert np.mean(error <= 2.0) >= 0.99 and psnr >= 40, (b, int(severity[b]), error.max(), psnr)
            else:
                assert error.max() <= 2.0, (b, int(severity[b]), error.max())


@pytest.mark.parametrize("name", NAMES)
def test_in_distribution(name, fast_ref, photo_images):
    photos = np.round(photo_images * 255).astype(np.uint8)
    clean = photos / 255.0
    images, severity = _batch(clean, REPS[name])
    apply = _apply(name)
    stats = {side: {s: np.zeros(3) for s in SEVERITIES} for side in ("ref", "ours")}
    for call in range(CALLS[name]):
        out = np.asarray(apply(jnp.asarray(images, jnp.float32), jnp.asarray(severity), jax.random.key(1000 + call)))
        diff = (out.astype(np.float64) - images) * 255
        for s in SEVERITIES:
            d = diff[severity == s]
            stats["ours"][s] += (d.size, d.sum(), (d**2).sum())
    state = np.random.get_state()
    for s, reps in zip(SEVERITIES, REPS[name]):
        for seed in range(CALLS[name] * reps):
            np.random.seed(seed)
            for photo in photos:
                d = _reference(fast_ref, name, photo, s) - photo
                stats["ref"][s] += (d.size, d.sum(), (d**2).sum())
    np.random.set_state(state)
    for s in SEVERITIES:
        (n, total, squares), (m, ours_total, ours_squares) = stats["ref"][s], stats["ours"][s]
        assert n == m
        mean, ours_mean = total / n, ours_total / n
        std, ours_std = np.sqrt(squares / n - mean**2), np.sqrt(ours_squares / n - ours_mean**2)
        tolerance = 0.05 * std if name == "fog" else max(0.05 * abs(mean), 0.5 if name == "spatter" else 0.0)
        assert abs(ours_mean - mean) <= tolerance, (s, ours_mean, mean)
        assert abs(ours_std - std) <= 0.05 * std, (s, ours_std, std)


@pytest.mark.parametrize("name", NAMES)
def test_severity_zero_mixed_batches_and_range(name, photo_images):
    images, _ = _batch(photo_images, REPS[name])
    x = jnp.asarray(images)
    mixed = np.resize(np.arange(6), len(images)).astype(np.float32)
    apply = _apply(name)
    key = jax.random.key(3)
    out = np.asarray(apply(x, jnp.asarray(mixed), key))
    assert out.shape == images.shape and out.dtype == np.float32
    assert np.all(np.isfinite(out)) and out.min() >= 0.0 and out.max() <= 1.0
    np.testing.assert_array_equal(out[mixed == 0], images[mixed == 0])
    assert np.all(np.abs(out[mixed > 0] - images[mixed > 0]).max(axis=(1, 2, 3)) > 0.01)
    for s in range(6):
        alone = np.asarray(apply(x, jnp.full(len(images), s, jnp.float32), key))
        np.testing.assert_allclose(out[mixed == s], alone[mixed == s], atol=1e-6)


def test_registry():
    table = {c.name: c for c in weather.CORRUPTIONS}
    assert sorted(table) == sorted(NAMES)
    assert all(c.group == "weather" and c.random for c in table.values())
    assert [n for n, c in table.items() if c.held_out] == ["spatter"]
    assert table["fog"].build is weather.build_fog


def test_frost_without_its_images_says_how_to_get_them(monkeypatch, tmp_path):
    installed = Path(importlib.util.find_spec("imagecorruptions").submodule_search_locations[0]) / "frost"
    monkeypatch.delenv(weather.FROST_DIR_ENV, raising=False)
    monkeypatch.setattr(weather, "find_spec", lambda name: None)
    with pytest.raises(FileNotFoundError, match=r"pip install --no-deps imagecorruptions==1\.1\.2") as missing:
        weather.build_frost(SEVERITIES)
    assert isinstance(missing.value, weather.FrostImagesMissing) and weather.FROST_DIR_ENV in str(missing.value)

    monkeypatch.setenv(weather.FROST_DIR_ENV, str(tmp_path))
    with pytest.raises(weather.FrostImagesMissing, match="frost1.png"):
        weather.build_frost(SEVERITIES)
    for name in weather.FROST_FILES:
        (tmp_path / name).symlink_to(installed / name)
    assert callable(weather.build_frost(SEVERITIES))
    assert all(np.array_equal(a, np.asarray(Image.open(installed / n).convert("RGB")))
               for a, n in zip(weather._load_frost_images(), weather.FROST_FILES))
