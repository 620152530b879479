"""Agents of other RL libraries as benchmark-suite agents (``benchmarks/rl_suite.py``).

A suite agent is a function ``agent(env, params, budget, keys) -> states``: it trains on
``env`` (made with ``ledger=True``) for exactly ``budget`` environment steps per seed
(``keys`` ``(S,)``, one per seed) and returns the environment's state with leading axes
``(S, snapshots, E)`` for ``E`` vectorised environments. The last snapshot is scored; the
others give the queries-to-recall curve.
"""

from __future__ import annotations

from typing import Any, Callable

import jax

#: ledger snapshots per run: the suite reads recall@10 at each eighth of the budget
SNAPSHOTS = 8

Agent = Callable[[Any, Any, int, jax.Array], Any]


def rejax_agent(algorithm: str, **settings) -> Agent:
    """One of rejax's algorithms (``"PPO"``, ``"DQN"``, ``"PQN"``, ...) as a suite agent.

    ``settings``: the algorithm's fields (``num_envs``, ``learning_rate``, ...). The ledger
    is read at each eighth of the budget through rejax's evaluation callback, so an on-policy
    algorithm's ``num_envs x num_steps`` must divide ``budget / 8``.
    """

    def agent(env, params, budget: int, keys: jax.Array):
        import rejax

        steps = settings.get("num_envs", 1) * settings.get("num_steps", 1)
        if (budget // SNAPSHOTS) % steps:
            raise ValueError(f"{algorithm}: num_envs x num_steps = {steps} must divide an eighth of the budget ({budget // SNAPSHOTS})")
        algo = getattr(rejax, algorithm).create(env=env, env_params=params, total_timesteps=budget, eval_freq=budget // SNAPSHOTS,
                                                skip_initial_evaluation=True, **settings)
        algo = algo.replace(eval_callback=lambda algo, ts, rng: ts.env_state)
        _, states = jax.jit(jax.vmap(algo.train))(keys)
        return states

    return agent
