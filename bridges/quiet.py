"""Silence the Hugging Face libraries' own progress bars (model loading, generation) for
commands run with ``--quiet``; their warnings still show.

Nothing is imported to do it: huggingface_hub and transformers read
``HF_HUB_DISABLE_PROGRESS_BARS`` when they are first imported, a library already imported
is told directly, and the diffusion bridge calls :func:`apply_to_diffusers` after
importing diffusers (which has no such variable). An image audit never imports either.
"""

from __future__ import annotations

import os
import sys

_requested = False


def silence_progress_bars() -> None:
    """Turn off transformers' and diffusers' tqdm bars, now and whenever they are imported later."""
    global _requested
    _requested = True
    os.environ["HF_HUB_DISABLE_PROGRESS_BARS"] = "1"
    for name in ("transformers.utils.logging", "diffusers.utils.logging", "huggingface_hub.utils"):
        module = sys.modules.get(name)
        if module is None:
            continue
        if name.startswith("huggingface_hub"):
            module.disable_progress_bars()
        else:
            module.disable_progress_bar()


def apply_to_diffusers() -> None:
    """Called after importing diffusers: silence its bars if ``--quiet`` asked for it."""
    if _requested:
        import diffusers.utils.logging

        diffusers.utils.logging.disable_progress_bar()
