"""A searcher's own work per iteration: its choice of the batch and its update, timed alone.

    .venv/bin/python benchmarks/searcher_step.py [--config configs/digits_lenet.yaml] [--num-envs 256 2048]
        [--warm-up 20] [--repeat 50] [--set FIELD=VALUE ...]

For each batch size, runs ``--warm-up`` discovery iterations of the config (so the state
holds what a run's state holds a little way in: answered pairs, a fitted posterior), then
times, each on its own and jitted, median milliseconds over ``--repeat`` calls:

* ``choose``: the searcher's choice of the batch's (sample, cell) pairs (macroscopic mode),
  the searcher's part of ``propose`` in ``benchmarks/throughput.py``'s stage split;
* ``update``: its update on one batch of answers (for the default searcher: keeping the
  queries and the Newton sweeps of the refit), the searcher's part of ``settle``;
* the discovery loop's ``propose`` and ``settle`` themselves, for scale.

``--set`` changes config fields (e.g. ``searcher.sweeps=2``, ``searcher.kind=random``).
The machine's load moves every figure; compare settings within one run of the script, or
run them one after another on a quiet machine.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import jax  # noqa: E402
import jax.numpy as jnp  # noqa: E402

from fadejax.engine.build import build_task  # noqa: E402
from fadejax.engine.checkpoints import build_discovery  # noqa: E402
from fadejax.engine.config import load_config  # noqa: E402
from fadejax.searchers.base import Transition  # noqa: E402


def median_ms(call, repeat: int) -> float:
    """Median wall-clock milliseconds of ``call()`` (waited for) over ``repeat`` calls, after one untimed call."""
    jax.block_until_ready(call())
    times = []
    for _ in range(repeat):
        began = time.perf_counter()
        jax.block_until_ready(call())
        times.append(1e3 * (time.perf_counter() - began))
    return statistics.median(times)


def measure(config_path: str, num_envs: int, warm_up: int, repeat: int, overrides: list[str]) -> dict[str, float]:
    config = load_config(config_path, [*overrides, f"run.num_envs={num_envs}"])
    if config.run.iterations <= warm_up:  # the run's length sizes the searcher's state (e.g. the posterior's history)
        config = load_config(config_path, [*overrides, f"run.num_envs={num_envs}", f"run.iterations={warm_up + 1}"])
    if config.mode != "macro":
        raise SystemExit("error: this benchmark times macroscopic searchers (the config's mode is micro)")
    task = build_task(config, progress=False)
    discovery = build_discovery(config, task)
    state = discovery.init(config.run.seed)
    for _ in range(warm_up):
        state, _, _ = discovery.step(state)
    searcher = discovery.searcher
    inputs, pending = discovery.propose(state)
    core, _ = discovery.evaluate(inputs, pending)
    key = jax.random.PRNGKey(1)

    observe = lambda rows: discovery.observe(rows, state.cell)  # noqa: E731
    choose = jax.jit(lambda s, k1, k2: searcher.choose(s, k1, k2, num_envs, observe))
    failed = jnp.asarray(core["failed"], bool)
    transition = Transition(obs=pending["obs"], action=pending["action"], reward=jnp.asarray(core["reward"], jnp.float32),
                            next_obs=pending["obs"], terminal=jnp.ones_like(failed), sample=pending["sample"], failed=failed,
                            cell=task.space.action_of(pending["cell"]), done=jnp.ones_like(failed))
    update = jax.jit(searcher.update)
    # settle donates the state it is given: each call gets a copy made beforehand
    copies = iter([jax.tree.map(jnp.copy, state) for _ in range(repeat + 1)])
    return {
        "choose": median_ms(lambda: choose(state.searcher, key, key), repeat),
        "update": median_ms(lambda: update(state.searcher, transition, key), repeat),
        "propose": median_ms(lambda: discovery.propose(state), repeat),
        "settle": median_ms(lambda: discovery.settle(next(copies), pending, core), repeat),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--config", default="configs/digits_lenet.yaml")
    parser.add_argument("--num-envs", type=int, nargs="+", default=[256, 2048])
    parser.add_argument("--warm-up", type=int, default=20, help="discovery iterations before timing")
    parser.add_argument("--repeat", type=int, default=50, help="timed calls of each step")
    parser.add_argument("--set", dest="overrides", action="append", default=[], metavar="FIELD=VALUE")
    args = parser.parse_args()
    print(f"{args.config} {' '.join(args.overrides)}; median ms per call over {args.repeat} calls, after {args.warm_up} iterations")
    print(f"{'envs':>6} {'choose':>8} {'update':>8} {'propose':>8} {'settle':>8}")
    for num_envs in args.num_envs:
        times = measure(args.config, num_envs, args.warm_up, args.repeat, args.overrides)
        print(f"{num_envs:>6} " + " ".join(f"{times[k]:>8.2f}" for k in ("choose", "update", "propose", "settle")))


if __name__ == "__main__":
    main()
