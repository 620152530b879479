"""How fast the recorded environments run, alone and under a rejax agent's training.

    .venv/bin/python benchmarks/rl_envs.py [--envs 4096] [--steps 200] [--train-steps 1000000] [--seeds 8]

1. Environment throughput: ``--envs`` vmapped environments of each named recording's macro
   and micro form, random actions, ``--steps`` steps in one ``lax.scan`` (best of 3 calls
   after compiling), in environment steps per second.
2. Training throughput: rejax's PPO and DQN on ``fadejax/digits-macro-v0`` for
   ``--train-steps`` environment steps, ``--seeds`` seeds vmapped in one program, each with
   the settings of :data:`TRAINING` (a network update costs far more than a step of the
   environment, so the time is mostly the settings' updates); wall time of the compiled
   program (and of compiling it), in seconds.
"""

from __future__ import annotations

import argparse
import time

import jax
import jax.numpy as jnp

from fadejax.envs import NAMED, make


def env_steps_per_second(name: str, envs: int, steps: int) -> float:
    env, params = make(name)

    def rollout(key: jax.Array) -> jax.Array:
        obs, state = jax.vmap(env.reset, in_axes=(0, None))(jax.random.split(key, envs), params)

        def one(carry, k):
            state, total = carry
            k_act, k_step = jax.random.split(k)
            action = jax.random.randint(k_act, (envs,), 0, env.num_actions)
            _, state, reward, _, _ = jax.vmap(env.step, in_axes=(0, 0, 0, None))(jax.random.split(k_step, envs), state, action, params)
            return (state, total + reward.sum()), None

        (_, total), _ = jax.lax.scan(one, (state, jnp.float32(0)), jax.random.split(key, steps))
        return total

    run = jax.jit(rollout)
    run(jax.random.PRNGKey(0)).block_until_ready()
    best = float("inf")
    for i in range(3):
        began = time.perf_counter()
        run(jax.random.PRNGKey(i + 1)).block_until_ready()
        best = min(best, time.perf_counter() - began)
    return envs * steps / best


#: the training settings timed: (algorithm, its rejax fields)
TRAINING = (
    ("PPO", {"num_envs": 64, "num_steps": 64, "num_epochs": 4, "num_minibatches": 8}),
    ("PPO", {"num_envs": 64, "num_steps": 64, "num_epochs": 1, "num_minibatches": 4}),
    ("DQN", {"num_envs": 256, "batch_size": 256}),
    ("DQN", {"num_envs": 1024, "batch_size": 256}),
)


def training_seconds(agent: str, settings: dict, total: int, seeds: int) -> tuple[float, float]:
    """(compile seconds, run seconds) of ``seeds`` vmapped trainings of ``total`` steps."""
    import rejax

    env, params = make("fadejax/digits-macro-v0")
    algo = getattr(rejax, agent).create(env=env, env_params=params, total_timesteps=total, eval_freq=total,
                                        skip_initial_evaluation=True, **settings)
    algo = algo.replace(eval_callback=lambda algo, ts, rng: jnp.float32(0))
    keys = jax.random.split(jax.random.PRNGKey(0), seeds)
    began = time.perf_counter()
    train = jax.jit(jax.vmap(algo.train)).lower(keys).compile()
    compiled = time.perf_counter() - began
    began = time.perf_counter()
    jax.block_until_ready(train(keys))
    return compiled, time.perf_counter() - began


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--envs", type=int, default=4096)
    parser.add_argument("--steps", type=int, default=200)
    parser.add_argument("--train-steps", type=int, default=1_000_000)
    parser.add_argument("--seeds", type=int, default=8)
    parser.add_argument("--skip-training", action="store_true")
    args = parser.parse_args()
    print(f"environment throughput: {args.envs} environments, {args.steps} steps, random actions (best of 3)")
    for name in NAMED:
        print(f"  {name:28s} {env_steps_per_second(name, args.envs, args.steps) / 1e6:6.1f} M steps/s", flush=True)
    if args.skip_training:
        return
    print(f"training: rejax on fadejax/digits-macro-v0, {args.train_steps:,} steps, {args.seeds} seeds vmapped")
    for agent, settings in TRAINING:
        compiled, ran = training_seconds(agent, settings, args.train_steps, args.seeds)
        print(f"  {agent} {settings}: {ran:.1f} s ({args.seeds * args.train_steps / ran / 1e6:.2f} M steps/s over the seeds), compiling {compiled:.1f} s", flush=True)


if __name__ == "__main__":
    main()
