"""JAX's persistent compilation cache for fadejax's commands.

Compiling the discovery loop's programs is most of a short run's time on a CPU (about 6 of
the 26 s of ``fadejax discover --config configs/digits_lenet.yaml`` here, against 4 s of
iterations). The commands that compile (``discover``, ``landscape``, ``summarize`` and
``restructure``; a sweep's points share a cache in the sweep's directory) keep what they
compile in ``$FADEJAX_CACHE/jax-compilations`` (default ``~/.cache/fadejax/jax-compilations``), so
running a config again, another seed of it or a resume skips most of that; the numbers
are the same either way (JAX keys each entry by the program, its compile options, the XLA
flags and the versions of jax and jaxlib, and loads the executable it would have built).

A cache the user chose wins: ``JAX_COMPILATION_CACHE_DIR`` in the environment (or
``jax.config`` set by a caller) is left alone. ``FADEJAX_COMPILATION_CACHE=0`` turns
the cache off. It grows by what each new program compiles to (a run of the LeNet audit keeps
60 programs, 1.5 MB; another seed adds none, another number of iterations, batch size or
searcher its own) and is not pruned: JAX's size bound (``jax_compilation_cache_max_size``)
rescans the directory at every write and warns about entries that another process wrote
without it. Deleting the directory is always safe.
"""

from __future__ import annotations

import os
from pathlib import Path

#: Every program is kept (JAX's own default keeps only those compiling for 1 s or more;
#: here most of a run's 60 programs compile in 0.01-0.3 s each, 6 s together).
MIN_COMPILE_SECONDS = 0.0
DIRECTORY = "jax-compilations"
OFF = ("0", "off", "false", "no")


def fadejax_cache() -> Path:
    """fadejax's cache directory: ``$FADEJAX_CACHE``, default ``~/.cache/fadejax``."""
    return Path(os.environ.get("FADEJAX_CACHE", Path.home() / ".cache" / "fadejax"))


def enable() -> Path | None:
    """Point this process's JAX at fadejax's compilation cache, unless the user chose one or
    turned it off; returns the directory in use (``None``: no persistent cache)."""
    import jax

    if jax.config.jax_compilation_cache_dir:
        return Path(jax.config.jax_compilation_cache_dir)
    if os.environ.get("FADEJAX_COMPILATION_CACHE", "1").strip().lower() in OFF:
        return None
    path = fadejax_cache() / DIRECTORY
    try:
        path.mkdir(parents=True, exist_ok=True)
    except OSError:  # a read-only home: compile as before
        return None
    jax.config.update("jax_compilation_cache_dir", str(path))
    jax.config.update("jax_persistent_cache_min_compile_time_secs", MIN_COMPILE_SECONDS)
    return path
