"""The environment tests give the ``fadejax`` processes they start."""

import os


def jax_subprocess_env(**extra: str) -> dict[str, str]:
    """The environment for a ``fadejax`` subprocess: this one's, plus the session's JAX
    compilation cache (JAX reads its settings from these variables), plus ``extra``."""
    import jax

    cache = {}
    if jax.config.jax_compilation_cache_dir:
        cache = {"JAX_COMPILATION_CACHE_DIR": jax.config.jax_compilation_cache_dir,
                 "JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS": "0", "JAX_PERSISTENT_CACHE_MIN_ENTRY_SIZE_BYTES": "0"}
    return {**os.environ, **cache, **extra}
