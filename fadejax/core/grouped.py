"""Apply one of several batched functions to each row of a batch, computing each function
only on its own rows, with the fixed shapes a jitted loop needs.

A stage such as the corruption shorthand's (:mod:`fadejax.core.perturbations`) gives every
query one of K functions. Applying all K to the whole batch and selecting costs K passes;
the rows of each function form a batch of data-dependent size, which ``jit`` cannot have.
:func:`apply_grouped` sorts the rows by function into chunks of a fixed size, each chunk
holding one function's rows (its last chunk padded), and runs the chunks in a ``lax.scan``
whose body calls only that chunk's function (``lax.switch``). The work is at most
``B + K * (chunk - 1)`` rows instead of ``K * B``; rows whose group is ``K`` (e.g. severity 0)
are copied through untouched.
"""

from __future__ import annotations

from typing import Callable, Sequence

import jax
import jax.numpy as jnp

#: ``(rows (C, ...), strengths (C,), key) -> rows (C, ...)``
RowFn = Callable[[jax.Array, jax.Array, jax.Array], jax.Array]


def chunk_size(batch: int, groups: int) -> int:
    """Rows per chunk for a batch of ``batch`` rows split over ``groups`` functions: small
    enough that padding (under one chunk per group) stays near a quarter of the batch, large
    enough (>= 16 rows) that each scan step's fixed cost is shared by several rows."""
    return max(1, min(batch, max(16, -(-batch // (4 * groups)))))


def apply_grouped(fns: Sequence[RowFn], group: jax.Array, rows: jax.Array, strengths: jax.Array, key: jax.Array,
                  chunk: int | None = None) -> jax.Array:
    """``fns[group[b]]`` applied to row ``b`` of ``rows`` with ``strengths[b]``.

    Args:
      fns: K functions, each mapping ``(C, ...)`` rows, their ``(C,)`` strengths and a key to
        rows of the same shape; each must be row-wise (a row's output reads only that row).
      group: ``(B,)`` int, the function of each row; ``K`` (or anything outside ``[0, K)``)
        leaves the row unchanged.
      rows: ``(B, ...)``.
      strengths: ``(B,)`` float, passed to the row's function.
      key: one ``jax.random`` key; each chunk's function gets ``fold_in(key, chunk index)``,
        so a random function's draws for a row depend on the key and the row's place among
        the batch's rows sorted by group.
      chunk: rows per chunk (default :func:`chunk_size`).

    Returns:
      ``(B, ...)``, same dtype as ``rows``.
    """
    batch, num = rows.shape[0], len(fns)
    chunk = chunk or chunk_size(batch, num)
    num_chunks = -(-batch // chunk) + num  # each group's padding wastes under one chunk
    group = jnp.where((group >= 0) & (group < num), group, num).astype(jnp.int32)
    counts = jnp.bincount(group, length=num + 1)
    padded = (counts + chunk - 1) // chunk * chunk
    padded = padded.at[num].set(0)  # unchanged rows take no slots
    padded_start = jnp.cumsum(padded) - padded
    order = jnp.argsort(group, stable=True)
    sorted_group = group[order]
    rank = jnp.arange(batch) - (jnp.cumsum(counts) - counts)[sorted_group]
    slot = jnp.where(sorted_group < num, padded_start[sorted_group] + rank, num_chunks * chunk)
    # slot -> source row; the value ``batch`` marks padding (its output is dropped below)
    source = jnp.full((num_chunks * chunk,), batch, jnp.int32).at[slot].set(order.astype(jnp.int32), mode="drop")
    chunk_group = jnp.searchsorted(jnp.cumsum(padded[:num]), jnp.arange(num_chunks) * chunk, side="right")
    branches = [lambda r, s, k, fn=fn: fn(r, s, k).astype(rows.dtype) for fn in fns] + [lambda r, s, k: r]

    def one_chunk(_, inputs):
        index, which, sources = inputs
        present = sources < batch
        safe = jnp.where(present, sources, 0)
        out = jax.lax.switch(which, branches, rows[safe], jnp.where(present, strengths[safe], 0.0),
                             jax.random.fold_in(key, index))
        return None, out

    _, outs = jax.lax.scan(one_chunk, None, (jnp.arange(num_chunks), chunk_group, source.reshape(num_chunks, chunk)))
    return rows.at[source].set(outs.reshape((num_chunks * chunk,) + rows.shape[1:]), mode="drop")
