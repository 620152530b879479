"""Microscopic walks planned on the posterior model: where a Q-learner has to stumble on a
distant failing region by epsilon-exploration, this searcher plans towards it.

It keeps exactly :mod:`fadejax.searchers.posterior`'s Bayesian logistic model of every
query (``logit P(fail | i, c) = b + u_i + sum_j (w_j[c_j] + z_i[j, c_j]) + v_c``, with
the sample x axis-value interactions ``z`` where the model fits them); in
microscopic mode every cell an episode passes through is an ordinary query, so each step
teaches the model about its cell. To choose a move, an environment plans on its own
posterior draw ``p(c) = P(fail | its sample, c)`` for every cell of the grid, by value
iteration over the moves it has left::

    V_0(c) = 0
    V_k(c) = max_m [ p(c') + (1 - p(c')) * discount * V_{k-1}(c') ],   c' = move(c, m)

``V_k(c)`` is the discounted probability that a walk from ``c`` with ``k`` moves left ends
in a failure (an episode ends at its first failure); ``discount < 1`` prefers failures
reached in fewer moves, i.e. fewer queries. The environment takes the move maximising the
bracket at its current cell with ``max_steps - steps`` moves left, so every walk is
aimed at where this draw puts the failures, and reaches it if it is within reach.

Exploration is posterior sampling per episode (as PSRL, Osband et al. 2013): an
environment draws its model once when its episode starts (``Transition.done`` marks the
ends) and keeps that draw for the whole walk, so the walk does not dither between
targets. The draw includes the sample's own interactions, so a walk heads for where *its*
sample breaks (this digit under rotation, that one under darkness) rather than where the
average sample does. With ``fresh_pairs`` (default) a (sample, cell) pair already asked
counts as its known answer: no new failure there, and the walk ends there if it failed
before (on a deterministic audit asking again only repeats it), so walks aim at failures
not yet found.

On a deterministic audit a move onto a pair already answered is then made without a query
(``skip_known_moves``, :meth:`fadejax.engine.loop.Discovery._walk`): the walk crosses a
known pair that did not fail, and an episode that would end on a known answer (a known
failure, or its last move) ends without a query and the environment starts the next one at
once, on a sample no other environment walks. The plan then discounts queries, not moves (a
crossed cell costs none). Every query asks a pair not answered before, except where
environments outnumber the samples, or where a walk finds nothing new within
``4 * max_steps`` crossed moves of an iteration (most of what it can reach asked), which
then re-asks (served from the answers).

``identify_fraction`` of the environments (by index) instead walk to the reachable cell
whose membership of the ``top_k`` worst is least settled (as the macroscopic searcher's
identify environments, restricted to cells within ``max_steps`` moves of the start), so the
report's ranking of the reachable cells settles too. Their plan values reaching that cell at
1 and a new failure on the way at ``identify_side_weight`` (0.5), so they route around
likely failures: a walk ends at its first failure, and one that rushes through the cell's
hard neighbours brings only the easy samples there (the report's estimate of the cell then
misses low). Plans cost ``O(B * cells * moves * max_steps)`` per step; above
``max_cell_effects`` cells the searcher refuses to build. Microscopic only.
"""

from __future__ import annotations

import dataclasses
from typing import Literal

import flax.struct
import jax
import jax.numpy as jnp
import numpy as np
import pydantic

from fadejax.searchers.base import Transition
from fadejax.searchers.posterior import PosteriorConfig, PosteriorSampling, PosteriorState, _nth_true
from fadejax.core.walks import neighbour_table


class PosteriorWalkConfig(PosteriorConfig):
    """Settings of :class:`PosteriorWalk` (the model's settings are the macroscopic searcher's)."""

    kind: Literal["posterior_walk"] = "posterior_walk"  # type: ignore[assignment]
    discount: float = pydantic.Field(0.9, gt=0.0, le=1.0)
    identify_fraction: float = pydantic.Field(0.2, ge=0.0, le=1.0)
    #: what an identify walk's plan values a new failure on the way at, against 1 for asking its
    #: cell: 1 plans it as a find walk that also counts the cell; below 1 it routes around
    #: likely failures to reach the cell, so hard samples get there too (0.5: interval coverage
    #: 0.91 -> 0.99 on the embedded default's micro runs, benchmarks/RESULTS.md)
    identify_side_weight: float = pydantic.Field(0.5, ge=0.0, le=1.0)
    fresh_pairs: bool | Literal["auto"] = "auto"
    #: with fresh pairs, a move onto a pair already answered costs no query: the engine makes
    #: it and the walk goes on (or, on a known failure or as the last move, the next episode
    #: starts) in the same iteration; false: every move is a query, as in the paper's micro mode
    skip_known_moves: bool = True
    #: two Newton sweeps per batch: one sweep (the macroscopic default) found no more failures
    #: here (1,796 +/- 49 distinct failing pairs against 1,828 +/- 26, benchmarks/RESULTS.md)
    sweeps: pydantic.PositiveInt = 2


@flax.struct.dataclass
class PosteriorWalkState(PosteriorState):
    walk_key: jax.Array  # (2,) uint32, root of the per-episode draws
    episode: jax.Array  # (B,) int32, episodes each environment has finished
    failed_pairs: jax.Array  # (N, cells) bool, asked pairs that failed ((1, 1) when pairs are not tracked)


class PosteriorWalk(PosteriorSampling):
    """Plans each microscopic move on a per-episode posterior draw (see module docstring)."""

    supports_micro = True
    supports_macro = False
    acts_on_samples = True
    config: PosteriorWalkConfig

    def __init__(self, config: PosteriorWalkConfig, **kwargs):
        super().__init__(config, **kwargs)
        if self.walk is None:
            raise ValueError("posterior_walk plans microscopic walks; it needs the walk's grid (mode 'micro')")
        if not self.dense:
            raise ValueError(
                f"posterior_walk plans over every cell; the grid has {self.num_cells} cells, more than "
                f"max_cell_effects={config.max_cell_effects} (raise it, or use searcher kind 'dqn')"
            )
        self.max_steps = int(self.walk.max_steps)
        self._neighbours = jnp.asarray(neighbour_table(self.grid))
        start = np.asarray(self.walk.start)
        cells = np.stack(np.unravel_index(np.arange(self.num_cells), self.grid), axis=-1)
        self._reachable = jnp.asarray(np.abs(cells - start).sum(axis=-1) <= self.max_steps)  # (C,) bool

    def init(self, key: jax.Array) -> PosteriorWalkState:
        k_model, k_walk = jax.random.split(key)
        base = super().init(k_model)
        fields = {f.name: getattr(base, f.name) for f in dataclasses.fields(base)}
        return PosteriorWalkState(**fields, walk_key=k_walk, episode=jnp.zeros(self.num_envs, jnp.int32),
                                  failed_pairs=jnp.zeros_like(base.asked))

    def update(self, state: PosteriorWalkState, transition: Transition, key: jax.Array) -> tuple[PosteriorWalkState, dict[str, jax.Array]]:
        state, metrics = super().update(state, transition, key)
        if self.track_pairs:
            cell = transition.action if transition.cell is None else transition.cell
            state = state.replace(failed_pairs=state.failed_pairs.at[transition.sample, cell].max(transition.failed))
        done = transition.terminal if transition.done is None else transition.done
        if done.shape != state.episode.shape:
            raise ValueError(f"posterior_walk updates on one query per environment: got {done.shape[0]} queries for {state.episode.shape[0]} environments")
        return state.replace(episode=state.episode + done.astype(jnp.int32)), metrics

    @property
    def skips_known_moves(self) -> bool:
        # a pair asked before is no news to the walk: crossing it should cost no query (the
        # engine says whether it does: ``crossing``)
        return bool(self.config.skip_known_moves and self.fresh_pairs and self.track_pairs)

    def restart_samples(self, state: PosteriorWalkState, key: jax.Array, sample: jax.Array, restart: jax.Array,
                        leave_current: bool = False) -> jax.Array:
        """New samples where ``restart`` ``(B,)``, ``sample`` elsewhere; ``(B,)`` int32.

        As :meth:`select_samples` (the likeliest to fail of ``sample_candidates`` uniform
        draws under a posterior draw of ``u``), but where the engine crosses known pairs each
        new sample is one no other environment walks now (nor, with ``leave_current``, the one
        it leaves): walks of one sample aim at the same new failures, so two at once would land
        on the same pair in one batch. An environment whose candidates are all taken, or whose
        pick another restarting environment took first, gets a uniformly drawn free sample;
        with none free (more environments than samples), one of its candidates."""
        if not self.crossing:
            return super().restart_samples(state, key, sample, restart)
        batch, n = sample.shape[0], self.num_samples
        k_cand, k_noise, k_free = jax.random.split(key, 3)
        cand, draw = self._candidate_draws(state, k_cand, k_noise, batch)
        # the samples walked on now; with ``leave_current`` the ending episodes' too: ended without
        # a query, a restart on the same sample would plan the same walk again (the draw and the
        # known answers unchanged). After an episode that asked (and found a failure), its sample
        # may be walked again: it is often the likeliest to fail still (measured: 7-9% more
        # distinct failures than leaving it every time, benchmarks/RESULTS.md).
        kept = jnp.zeros(n, bool).at[sample if leave_current else jnp.where(restart, n, sample)].set(True, mode="drop")
        draw = jnp.where(kept[cand], -jnp.inf, draw)
        pick = jnp.take_along_axis(cand, jnp.argmax(draw, axis=-1)[:, None], axis=-1)[:, 0]
        valid = restart & jnp.isfinite(jnp.max(draw, axis=-1))
        same = (pick[:, None] == pick[None, :]) & valid[:, None] & valid[None, :]
        first = valid & (jnp.argmax(same, axis=1) == jnp.arange(batch))  # the first environment with its pick keeps it
        taken = kept.at[jnp.where(first, pick, n)].set(True, mode="drop")
        rest = restart & ~first
        order = jax.random.permutation(k_free, n)  # the others take the free samples in a random order
        nth = _nth_true(jnp.broadcast_to(~taken[order], (batch, n)), jnp.cumsum(rest) - 1)
        other = jnp.where(nth >= 0, order[jnp.maximum(nth, 0)], pick)
        return jnp.where(first, pick, jnp.where(rest, other, sample)).astype(jnp.int32)

    # -- planning -------------------------------------------------------------------------
    def _episode_draws(self, state: PosteriorWalkState, sample: jax.Array) -> jax.Array:
        """Each environment's posterior draw of ``logit P(fail | its sample, c)``, ``(B, cells)``,
        fixed for the episode (keyed by environment and episode number, and by sample where
        the engine crosses known pairs)."""
        batch = sample.shape[0]
        keys = jax.vmap(lambda e, n: jax.random.fold_in(jax.random.fold_in(state.walk_key, e), n))(jnp.arange(batch), state.episode[:batch])
        if self.crossing:  # an episode the engine ends and restarts without a query is not counted
            # in ``episode``: its next walk, on another sample, needs a draw of its own
            keys = jax.vmap(jax.random.fold_in)(keys, sample)
        scale = self.config.posterior_scale

        def one(key, s):
            k_u, k_w, k_v = jax.random.split(key, 3)
            u = state.u[s] + scale * jax.random.normal(k_u) / jnp.sqrt(state.prec_u[s])
            w = state.w + scale * jax.random.normal(k_w, state.w.shape) / jnp.sqrt(state.prec_w)
            v = state.v + scale * jax.random.normal(k_v, state.v.shape) / jnp.sqrt(state.prec_v)
            logits = state.bias + u + self._cell_scores(w, v)
            if self.interactions:  # this sample's own breaks (sum_j z_s[j, c_j]), drawn as the rest
                z = state.z[s] + scale * jax.random.normal(jax.random.fold_in(key, 3), state.z.shape[1:]) / jnp.sqrt(state.prec_z[s])
                logits = logits + self._sample_cell_terms(z[None, :])[0]
            return logits

        return jax.vmap(one)(keys, sample)

    def _mean_logits(self, state: PosteriorState, sample: jax.Array) -> jax.Array:
        """Posterior-mean ``logit P(fail | sample, c)``, ``(B, cells)``."""
        logits = state.bias + state.u[sample][:, None] + self._cell_scores(state.w, state.v)[None, :]
        if self.interactions:
            logits = logits + self._sample_cell_terms(state.z[sample])
        return logits

    def _value_tables(self, new: jax.Array, end: jax.Array, free: jax.Array | None = None) -> tuple[jax.Array, jax.Array]:
        """The discount of a step onto each cell ``(B, cells)`` and the values ``V_k`` of every
        cell for ``k = 0 .. max_steps - 1`` moves left, ``(max_steps, B, cells)`` (see :meth:`_plan`)."""
        nbr = self._neighbours  # (C, M)
        gamma = jnp.full_like(new, self.config.discount) if free is None else jnp.where(free, 1.0, self.config.discount)

        def backup(value, _):  # V_k -> V_{k+1}: the best bracket over the moves from every cell
            return jnp.max(new[:, nbr] + (1.0 - end[:, nbr]) * gamma[:, nbr] * value[:, nbr], axis=-1), value

        _, values = jax.lax.scan(backup, jnp.zeros_like(new), None, length=self.max_steps)
        return gamma, values

    def _move_values(self, new: jax.Array, end: jax.Array, gamma: jax.Array, values: jax.Array, cell: jax.Array, left: jax.Array) -> jax.Array:
        """Value of each move from ``cell`` ``(B,)`` with ``left`` ``(B,)`` moves left, ``(B, moves)``,
        from :meth:`_value_tables`."""
        step = self._neighbours[cell]  # (B, M)
        at = lambda x: jnp.take_along_axis(x, step, axis=-1)  # noqa: E731
        v_left = values[left - 1, jnp.arange(cell.shape[0])]  # (B, C): V_{left-1} per environment
        return at(new) + (1.0 - at(end)) * at(gamma) * at(v_left)

    def _plan(self, new: jax.Array, end: jax.Array, cell: jax.Array, left: jax.Array, free: jax.Array | None = None) -> jax.Array:
        """Value of each move, ``(B, moves)``: ``new(c') + (1 - end(c')) * discount * V_{left-1}(c')``
        for ``c'`` each move's neighbour of ``cell`` ``(B,)``, ``left`` ``(B,)`` moves left.

        ``new`` ``(B, cells)``: probability that asking the cell finds a failure not yet
        known; ``end``: probability that it ends the episode (any failure, known or not).
        Unasked pairs have ``new = end = p``; asked ones ``new = 0`` and ``end`` their answer.
        ``free`` ``(B, cells)`` bool: cells a walk crosses without a query, not discounted
        (the discount prices queries, and crossing one costs none)."""
        gamma, values = self._value_tables(new, end, free)
        return self._move_values(new, end, gamma, values, cell, left)

    def plan_walks(self, state: PosteriorWalkState, sample: jax.Array) -> dict[str, jax.Array]:
        """Everything :meth:`act` computes for walks of ``sample`` ``(B,)`` that does not depend
        on where they are: each environment's ``new``, ``end`` and step discount ``(B, cells)``
        and its values for every number of moves left ``(max_steps, B, cells)``."""
        batch = sample.shape[0]
        p = jax.nn.sigmoid(self._episode_draws(state, sample))
        n_id = self._num_identify(batch)
        if n_id:
            target = jnp.zeros(batch, jnp.int32).at[:n_id].set(self._identify_cells(state, n_id))
            at_target = jnp.arange(self.num_cells)[None, :] == target[:, None]
            mean = jax.nn.sigmoid(self._mean_logits(state, sample))
            identify = (jnp.arange(batch) < n_id)[:, None]
            # an identify walk's failure on the way is worth identify_side_weight (news, but it
            # ends the walk short of the cell); asking the cell is worth 1 whatever it answers
            p = jnp.where(identify, jnp.where(at_target, 1.0, mean), p)
            new = jnp.where(identify & ~at_target, self.config.identify_side_weight * p, p)
        else:
            new = p
        end = p
        if self.track_pairs and self.fresh_pairs:  # a known answer is no news, and a known failure ends the walk
            asked = state.asked[sample]
            new = jnp.where(asked, 0.0, new)
            end = jnp.where(asked, state.failed_pairs[sample].astype(p.dtype), p)
        # where the engine crosses known pairs, a walk's cost is its queries, not its moves
        free = state.asked[sample] & ~state.failed_pairs[sample] if self.crossing else None
        gamma, values = self._value_tables(new, end, free)
        return {"new": new, "end": end, "gamma": gamma, "values": values}

    def planned_move(self, state: PosteriorWalkState, plan: dict[str, jax.Array], obs: jax.Array, key: jax.Array,
                     sample: jax.Array, cell: jax.Array, steps: jax.Array) -> jax.Array:
        """:meth:`act`'s move from the walks' ``plan`` (:meth:`plan_walks` of these samples)."""
        index, left = self._position(obs, cell, steps)
        values = self._move_values(plan["new"], plan["end"], plan["gamma"], plan["values"], index, left)
        ties = 1e-6 * jax.random.uniform(key, values.shape)  # no bias towards move 0 when nothing is expected
        return jnp.argmax(values + ties, axis=-1).astype(jnp.int32)

    def act(self, state: PosteriorWalkState, obs: jax.Array, key: jax.Array, sample: jax.Array | None = None,
            cell: jax.Array | None = None, steps: jax.Array | None = None) -> jax.Array:
        sample = jnp.zeros(obs.shape[0], jnp.int32) if sample is None else sample
        return self.planned_move(state, self.plan_walks(state, sample), obs, key, sample, cell, steps)

    def _position(self, obs: jax.Array, cell: jax.Array | None, steps: jax.Array | None) -> tuple[jax.Array, jax.Array]:
        """Current cell index ``(B,)`` and moves left ``(B,)``; from the observation's tail
        (normalised cell, elapsed share of ``max_steps``) when not given."""
        axes = len(self.grid)
        if cell is None:
            cell = jnp.round(obs[:, -axes - 1 : -1] * (self._sizes - 1)).astype(jnp.int32)
        if steps is None:
            steps = jnp.round(obs[:, -1] * self.max_steps).astype(jnp.int32)
        index = jnp.sum(cell * self._strides, axis=-1).astype(jnp.int32)
        return index, jnp.clip(self.max_steps - steps, 1, self.max_steps)

    def _identify_cells(self, state: PosteriorState, count: int) -> jax.Array:
        """As the macroscopic searcher's, among the cells a walk can reach."""
        return super()._identify_cells(state, count, eligible=self._reachable)

    # -- what the searcher believes ----------------------------------------------------------
    def action_scores(self, state: PosteriorWalkState, obs: jax.Array) -> jax.Array:
        """Planned value of each move on the posterior mean for a typical sample (``u = 0``, no
        interactions), ``(B, moves)`` (position read from the observation)."""
        index, left = self._position(obs, None, None)
        p = jnp.broadcast_to(jax.nn.sigmoid(self._base(state) + self._cell_scores(state.w, state.v)), (obs.shape[0], self.num_cells))
        return self._plan(p, p, index, left)
