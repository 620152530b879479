"""Silence the Hugging Face libraries' own progress bars (model loading, generation) for
commands run with ``--quiet``; their warnings still show."""

from __future__ import annotations

import importlib


def silence_progress_bars() -> None:
    """Turn off transformers' and diffusers' tqdm bars, where those libraries are installed."""
    for name in ("transformers.utils.logging", "diffusers.utils.logging"):
        try:
            importlib.import_module(name).disable_progress_bar()
        except ImportError:  # an optional extra that is not installed has no bars to silence
            pass
