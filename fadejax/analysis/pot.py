"""POT (``ot``), imported when first used and without its torch, TensorFlow and CuPy backends.

fadejax hands POT NumPy arrays only; importing POT's other backends costs seconds of every
summary (torch alone 1.5 s). A process that wants them sets ``POT_BACKEND_DISABLE_PYTORCH``
(etc.) itself before importing fadejax; ``setdefault`` leaves its choice alone. POT itself
(which imports scikit-learn and networkx, about 2 s) is imported by :func:`pot` on first
use, not with the modules that use it: ``fadejax discover`` draws its landscapes with
:mod:`fadejax.stages.figures`, which reaches this module, and never computes a distance.
"""

import functools
import importlib
import os
from types import ModuleType

for _backend in ("PYTORCH", "TENSORFLOW", "CUPY"):
    os.environ.setdefault(f"POT_BACKEND_DISABLE_{_backend}", "1")


@functools.cache
def pot() -> ModuleType:
    """The ``ot`` module."""
    return importlib.import_module("ot")
