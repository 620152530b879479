"""The reference corruptions (the ``imagecorruptions`` package, Hendrycks & Dietterich's
definitions) made importable on today's numpy, scikit-image and setuptools.

``imagecorruptions`` 1.1.2 (its last release) was written for numpy 1.x and scikit-image
< 0.19. Three of its imports and calls no longer exist, so this loader supplies them
without changing a line of its code:

* ``pkg_resources.resource_filename`` (gone from setuptools): a stand-in that resolves the
  package's own files (the frost images) with ``importlib.resources``;
* ``np.float_`` (gone in numpy 2; ``plasma_fractal``, used by fog): ``np.float64``;
* ``skimage.filters.gaussian(..., multichannel=True)`` (gone in scikit-image 0.19):
  ``channel_axis=-1``, which is what ``multichannel=True`` meant.

It is installed without its dependencies (scripts/setup.sh): it asks for the GUI build of
OpenCV, and ``opencv-python-headless`` (the test extra) provides the same ``cv2``.
"""

from __future__ import annotations

import importlib
import importlib.resources
import sys
import types
import warnings

import numpy as np


def _resource_filename(package: str, name: str) -> str:
    return str(importlib.resources.files(package.split(".")[0]).joinpath(name.lstrip("./")))


def load():
    """The patched ``imagecorruptions.corruptions`` module."""
    if "pkg_resources" not in sys.modules:
        try:
            importlib.import_module("pkg_resources")
        except ImportError:
            sys.modules["pkg_resources"] = types.SimpleNamespace(resource_filename=_resource_filename)
    if not hasattr(np, "float_"):
        np.float_ = np.float64
    with warnings.catch_warnings():  # its scipy.ndimage.interpolation import is deprecated, not gone
        warnings.simplefilter("ignore", DeprecationWarning)
        module = importlib.import_module("imagecorruptions.corruptions")
    from skimage.filters import gaussian

    def gaussian_multichannel(image, sigma=1, multichannel=None, **kwargs):
        if multichannel:
            kwargs.setdefault("channel_axis", -1)
        return gaussian(image, sigma=sigma, **kwargs)

    module.gaussian = gaussian_multichannel
    return module
