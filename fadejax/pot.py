"""POT (``ot``), imported without its torch, TensorFlow and CuPy backends.

fadejax hands POT NumPy arrays only; importing POT's other backends costs seconds of every
summary (torch alone 1.5 s). A process that wants them sets ``POT_BACKEND_DISABLE_PYTORCH``
(etc.) itself before importing fadejax; ``setdefault`` leaves its choice alone.
"""

import os

for _backend in ("PYTORCH", "TENSORFLOW", "CUPY"):
    os.environ.setdefault(f"POT_BACKEND_DISABLE_{_backend}", "1")

import ot  # noqa: E402

__all__ = ["ot"]
