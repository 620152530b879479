"""Per-cell visit and failure counts: the memory every baseline shares, and its estimate."""

from __future__ import annotations

import flax.struct
import jax
import jax.numpy as jnp

#: The figure every counting baseline reports (see ``Searcher.reports``).
COVERAGE = {"coverage": "share of the concept space's cells queried at least once"}


@flax.struct.dataclass
class CellCounts:
    visits: jax.Array  # (num_actions,) float32
    failures: jax.Array  # (num_actions,) float32

    @classmethod
    def zeros(cls, num_actions: int) -> "CellCounts":
        return cls(jnp.zeros(num_actions, jnp.float32), jnp.zeros(num_actions, jnp.float32))

    def add(self, actions: jax.Array, failed: jax.Array) -> "CellCounts":
        """Count a batch of queries: ``actions`` ``(B,)`` cells, ``failed`` ``(B,)`` bool."""
        return CellCounts(self.visits.at[actions].add(1.0), self.failures.at[actions].add(failed.astype(jnp.float32)))

    def rates(self) -> jax.Array:
        """Observed failure rate per cell, ``(num_actions,)``; 0 where never visited."""
        return self.failures / jnp.maximum(self.visits, 1.0)

    def coverage(self) -> jax.Array:
        """Share of the cells visited at least once, () float32."""
        return jnp.mean((self.visits > 0).astype(jnp.float32))

    def scores(self, batch: int) -> jax.Array:
        """The rates as action scores for ``batch`` observations, ``(batch, num_actions)``."""
        return jnp.broadcast_to(self.rates(), (batch, self.visits.shape[0]))
