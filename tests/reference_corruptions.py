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

import functools
import importlib
import importlib.resources
import importlib.util
import sys
import types
import warnings

import numpy as np


def _resource_filename(package: str, name: str) -> str:
    return str(importlib.resources.files(package.split(".")[0]).joinpath(name.lstrip("./")))


@functools.cache
def load():
    """The patched ``imagecorruptions.corruptions`` module (once per process). Nothing outside it changes: the
    stand-in ``pkg_resources`` leaves ``sys.modules`` once the import is done (pytest itself
    looks ``pkg_resources`` up there), and ``np.float_`` exists only in the numpy it sees."""
    stand_in = "pkg_resources" not in sys.modules and importlib.util.find_spec("pkg_resources") is None
    if stand_in:
        sys.modules["pkg_resources"] = types.SimpleNamespace(resource_filename=_resource_filename)
    try:
        with warnings.catch_warnings():  # its scipy.ndimage.interpolation import is deprecated, not gone
            warnings.simplefilter("ignore", DeprecationWarning)
            module = importlib.import_module("imagecorruptions.corruptions")
    finally:
        if stand_in:
            del sys.modules["pkg_resources"]
    if not hasattr(module.np, "float_"):
        numpy = types.ModuleType("numpy")
        numpy.__dict__.update(np.__dict__)
        numpy.float_ = np.float64
        module.np = numpy
    from skimage.filters import gaussian

    def gaussian_multichannel(image, sigma=1, multichannel=None, **kwargs):
        if multichannel:
            kwargs.setdefault("channel_axis", -1)
        return gaussian(image, sigma=sigma, **kwargs)

    module.gaussian = gaussian_multichannel
    return module
