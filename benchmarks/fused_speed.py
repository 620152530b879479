"""The fused recorded loop vs the plain per-iteration loop, side by side on one recording.

    .venv/bin/python benchmarks/fused_speed.py --recorded REC.npz [--config configs/digits.yaml]
        [--searchers posterior,random,greedy] [--seeds 5] [--iterations 50] [--num-envs 256] [--memory 1,5,25,100]

For each searcher: ``--seeds`` runs of ``iterations x num_envs`` queries with
:func:`fadejax.engine.fused.run_fused` (one program: vmap over seeds, scan over iterations, the
queries kept) and with ``Discovery.step`` one iteration at a time, one seed after another,
each iteration's sample, cell and failed flag copied to the host (what Table 1 keeps). Both
are compiled first; compilation is printed apart. Checks that both made the same queries.

``--memory S1,S2,...``: how the fused program's memory grows with the number of vmapped seeds
— the loop state's bytes per seed (its leaves' ``nbytes``) and XLA's own account of the
compiled program (arguments, outputs, temporaries) for each seed count.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import jax  # noqa: E402
import numpy as np  # noqa: E402

from fadejax.engine.config import load_config, parse_config  # noqa: E402
from fadejax.engine.fused import compile_fused, run_fused  # noqa: E402
from fadejax.engine.recording import replay  # noqa: E402
from fadejax.engine.checkpoints import build_discovery  # noqa: E402

SEARCHERS = {"posterior": {"kind": "posterior"}, "random": {"kind": "random"}, "greedy": {"kind": "greedy", "epsilon": 0.5}}


def stepped(discovery, seeds, iterations):
    """The plain loop; ``(seconds, samples (S, T, B), cells, failed)``."""
    began = time.perf_counter()
    out = []
    for seed in seeds:
        state, rows = discovery.init(seed), []
        for _ in range(iterations):
            state, outcome, _ = discovery.step(state)
            rows.append(jax.device_get((outcome["sample"], outcome["cell"], outcome["failed"])))
        jax.block_until_ready(state)
        out.append([np.stack(c) for c in zip(*rows)])
    seconds = time.perf_counter() - began
    return (seconds, *[np.stack(c) for c in zip(*out)])


def mib(n: float) -> str:
    return f"{n / 2**20:8.2f} MiB"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--recorded", required=True)
    parser.add_argument("--config", default="configs/digits.yaml")
    parser.add_argument("--searchers", default="posterior,random,greedy", help=f"comma-separated from {list(SEARCHERS)}")
    parser.add_argument("--seeds", type=int, default=5)
    parser.add_argument("--iterations", type=int, default=50)
    parser.add_argument("--num-envs", type=int, default=256)
    parser.add_argument("--memory", help="comma-separated seed counts to account memory for (posterior, or the first searcher)")
    args = parser.parse_args()

    config = load_config(args.config, [f"run.num_envs={args.num_envs}", f"run.iterations={args.iterations}"])
    task = replay(config, args.recorded)
    seeds = list(range(args.seeds))
    names = [n.strip() for n in args.searchers.split(",")]
    print(f"{jax.devices()[0].platform}: {args.seeds} seeds x {args.iterations * args.num_envs} queries "
          f"({args.iterations} iterations x {args.num_envs}), {task.num_samples} samples x {task.space.num_actions} cells")
    print(f"{'searcher':<10} {'fused s':>9} {'stepped s':>10} {'speed-up':>9} {'fused compile':>14} {'step compile':>13}  same queries")
    discoveries = {}
    for name in names:
        discovery = build_discovery(parse_config({**config.model_dump(mode="json"), "searcher": SEARCHERS[name]}), task)
        discoveries[name] = discovery
        began = time.perf_counter()
        jax.block_until_ready(discovery.step(discovery.init(2**30))[0])  # compile the three steps
        step_compile = time.perf_counter() - began
        _, compile_s = compile_fused(discovery, len(seeds), args.iterations, keep_queries=True)
        fused = run_fused(discovery, seeds, args.iterations, keep_queries=True)  # the compiled program, reused
        seconds, sample, cell, failed = stepped(discovery, seeds, args.iterations)
        same = bool(np.array_equal(sample, fused.sample) and np.array_equal(cell, fused.cell) and np.array_equal(failed, fused.failed))
        print(f"{name:<10} {fused.seconds:9.3f} {seconds:10.3f} {seconds / fused.seconds:8.1f}x {compile_s:13.1f}s {step_compile:12.1f}s  {same}",
              flush=True)

    if args.memory:
        name = "posterior" if "posterior" in discoveries else names[0]
        discovery = discoveries[name]
        per_seed = sum(leaf.nbytes for leaf in jax.tree.leaves(discovery.init(0)))
        print(f"\nmemory, {name}: loop state {mib(per_seed)} per seed "
              f"(searcher {mib(sum(leaf.nbytes for leaf in jax.tree.leaves(discovery.init(0).searcher)))}); "
              f"kept queries {mib(args.iterations * args.num_envs * 9)} per seed")
        print(f"{'seeds':>6} {'states':>12} {'arguments':>12} {'outputs':>12} {'temporaries':>12}  {'temp/seed':>12}")
        for count in [int(c) for c in args.memory.split(",")]:
            program, _ = compile_fused(discovery, count, args.iterations, True)
            m = program.memory_analysis()
            print(f"{count:6d} {mib(per_seed * count)} {mib(m.argument_size_in_bytes)} {mib(m.output_size_in_bytes)} "
                  f"{mib(m.temp_size_in_bytes)}  {mib(m.temp_size_in_bytes / count)}", flush=True)


if __name__ == "__main__":
    main()
