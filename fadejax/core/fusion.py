"""Control over XLA's fusion where it costs: keep an expensive producer out of its consumers.

XLA fuses elementwise producers into their consumers and recomputes them there. That is
usually free, but a producer that is costly per element (a random draw, an interpolation's
gathers) fused into a consumer that reads each of its elements several times, or into a
reduction whose loop vectorises badly, is paid again at every read. On a CPU that made
posterior sampling's Thompson draws cost 2-3x (``benchmarks/RESULTS.md``, "Engine overhead")
and a rotation feeding a blur 4x.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp


def materialize(x: jax.Array, unknown: jax.Array | None = None) -> jax.Array:
    """``x`` (a numeric array) unchanged, written to its own buffer first.

    ``jax.lax.optimization_barrier`` would say this, but XLA's CPU pipeline drops it before
    fusion; a conditional is not dropped. Both branches return ``x`` (the second times one,
    exact, so that the branches differ and the conditional is not simplified away), and the
    predicate reads the first element of ``unknown`` (default ``x`` itself), which the
    compiler cannot know. Which array the predicate reads changes how XLA splits the
    producers of ``x`` into kernels, and so, in the last place, what they compute: pass the
    same ``unknown`` wherever results must stay bit for bit as they were.
    """
    source = x if unknown is None else unknown
    if source.size == 0:  # nothing to compute, nothing to keep apart
        return x
    first = source.reshape(-1)[0].astype(jnp.float32)
    return jax.lax.cond(jnp.isfinite(first), lambda y: y, lambda y: y * jnp.ones((), y.dtype), x)
