"""Hendrycks & Dietterich's common corruptions (ImageNet-C, CIFAR-10-C) as batched JAX
perturbation families: the 15 of the benchmark and the 4 it holds out, each at severities
1-5 with the parameters of the reference package ``imagecorruptions`` (0 = unchanged).

:data:`CORRUPTIONS` maps each reference name to its :class:`~fadejax.core.corruptions.common.Corruption`,
in the reference's order (``imagecorruptions.get_corruption_names('all')``).
:mod:`fadejax.core.perturbations` registers each as a family of its own (``fog``, ...;
``brightness_severity``, ``contrast_severity`` and ``pixelate_severity`` where fadejax's own
``brightness``, ``contrast`` and ``pixelate`` take factors and pixels) and builds the
``corruption`` x ``severity`` axes of a concept space from them. How each agrees with the
reference is measured in ``tests/test_corruptions_*.py`` and described in ``docs/corruptions.md``.
"""

from __future__ import annotations

from fadejax.core.corruptions import blur, color, digital, noise, weather
from fadejax.core.corruptions.common import MAX_SEVERITY, Corruption

#: the reference's order: the 15 of the benchmark, then the 4 held out
ORDER = ("gaussian_noise", "shot_noise", "impulse_noise", "defocus_blur", "glass_blur", "motion_blur", "zoom_blur", "snow", "frost",
         "fog", "brightness", "contrast", "elastic_transform", "pixelate", "jpeg_compression",
         "speckle_noise", "gaussian_blur", "spatter", "saturate")

_ALL = {c.name: c for module in (noise, blur, weather, color, digital) for c in module.CORRUPTIONS}
CORRUPTIONS: dict[str, Corruption] = {name: _ALL[name] for name in ORDER}

__all__ = ["CORRUPTIONS", "Corruption", "MAX_SEVERITY", "ORDER"]
