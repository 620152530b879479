"""Scale: agent time, end-to-end time, memory and failures found as the concept space grows.

    .venv/bin/python benchmarks/scale.py [--iterations 30] [--num-envs 256] [--memory-budget-gb 6] [--out benchmarks/results]

Action spaces of 125 (the embedded default, 5^3), 15,625 (5^6), 10^6 (configs/digits_million.yaml,
10^6) and 10^7 (the same plus a seventh axis, saturation, which is the identity on grey
digits: a nuisance axis the agent must learn to ignore), each with the flat Q-head and the
factored (action-branching) head. Every point runs in its own process so that its peak
memory (``ru_maxrss``) is its own. Per point:

* agent ms/it   the searcher alone: ``act`` + ``update`` (replay add, one batch-256 gradient
                step) on synthetic observations, jitted, warm, mean over 50 iterations
* e2e ms/it     a whole discovery iteration on the embedded digits CNN (sample, act,
                perturb, audited model, reward, learn), warm
* agent MB      bytes of the searcher's state (parameters, target, optimiser, replay)
* peak MB       the process's peak resident memory
* failures      failures found by the DQN in ``iterations x num_envs`` queries, beside
                a random searcher's in the same budget (the failure rate of a random cell)
* modes         the 5 top cells by mean Q, re-evaluated on all 540 held-out digits: their
                mean true failure rate (this is how failures at 10^6 actions are checked
                to be real without an exhaustive landscape)

The flat head is skipped where its estimated memory (output layer, its Adam moments and
target copy, and the (batch, A) Q-values of a double-Q update) exceeds the budget.
Writes ``scale.md`` / ``scale.csv`` to ``--out`` and the plot (time vs action-space size,
log axes, as the paper's Figure 7) to ``docs/scale.png``.
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

SATURATION = {"name": "saturation", "values": [0.2, 0.4, 0.6, 0.8, 1.0, 1.2, 1.4, 1.6, 1.8, 2.0]}


def space_axes(size: int) -> list[dict] | None:
    """The concept axes of each benchmarked size (None: the embedded default's)."""
    import yaml

    million = yaml.safe_load((ROOT / "configs" / "digits_million.yaml").read_text())["space"]["axes"]
    if size == 125:
        return None
    if size == 5**6:
        return [{"name": a["name"], "values": a["values"][::2]} for a in million]
    if size == 10**6:
        return million
    if size == 10**7:
        return million + [SATURATION]
    raise ValueError(f"no benchmark space of {size} actions")


def flat_memory_gb(actions: int, hidden: int = 256, batch: int = 256) -> float:
    """Rough float32 footprint of the flat head: output layer x (params, target, 2 Adam
    moments, gradient) plus three (batch, A) Q-value arrays of a double-Q update."""
    return 4 * (5 * hidden * actions + 3 * batch * actions) / 1e9


def run_point(size: int, head: str, iterations: int, num_envs: int) -> dict:
    """Measure one (size, head) point in this process; returns the row."""
    import jax
    import jax.numpy as jnp
    import numpy as np

    from fadejax.config import parse_config
    from fadejax.ground_truth import failure_rates
    from fadejax.records import RecordWriter
    from fadejax.run import build_discovery, iterate
    from fadejax.searchers.base import Transition
    from fadejax.task import build_task

    def config_for(kind: str) -> dict:
        data = {"run": {"iterations": iterations, "num_envs": num_envs, "seed": 0}, "searcher": {"kind": kind}}
        if kind == "dqn":
            data["searcher"]["head"] = head
        axes = space_axes(size)
        if axes is not None:
            data["space"] = {"axes": axes}
        return data

    config = parse_config(config_for("dqn"))
    task = build_task(config, progress=False)
    assert task.space.num_actions == size
    discovery = build_discovery(config, task)
    searcher = discovery.searcher

    # -- the agent alone -------------------------------------------------------------
    state = searcher.init(jax.random.PRNGKey(0))
    act, update = jax.jit(searcher.act), jax.jit(searcher.update, donate_argnums=0)
    obs = jax.random.normal(jax.random.PRNGKey(1), (num_envs, searcher.obs_dim))

    def agent_step(state, i):
        k = jax.random.PRNGKey(i)
        action = act(state, obs, k)
        reward = jax.random.normal(k, (num_envs,))
        t = Transition(obs, action, reward, obs, jnp.ones(num_envs, bool), jnp.zeros(num_envs, jnp.int32), reward > 0)
        state, metrics = update(state, t, k)
        return state, metrics

    for i in range(5):  # compile and fill the replay past min_replay
        state, metrics = agent_step(state, i)
    jax.block_until_ready(metrics)
    began = time.perf_counter()
    for i in range(50):
        state, metrics = agent_step(state, 100 + i)
    jax.block_until_ready(metrics)
    agent_ms = 1e3 * (time.perf_counter() - began) / 50
    agent_mb = sum(x.nbytes for x in jax.tree.leaves(state)) / 1e6
    del state

    # -- end to end on the digits CNN, and failures at a fixed budget -------------------
    def discover_budget(discovery):
        loop = discovery.init(0)
        with tempfile.TemporaryDirectory() as tmp:
            writer = RecordWriter(Path(tmp) / "records.jsonl", task.space, "macro")
            times, failures = [], 0
            for iteration, loop, host in iterate(discovery, loop, writer, iterations):
                jax.block_until_ready(loop.iteration)
                times.append(time.perf_counter())
                failures += int(np.sum(host["failed"]))
            writer.close()
        return loop, failures, 1e3 * float(np.median(np.diff(times[2:])))

    loop, failures, e2e_ms = discover_budget(discovery)
    best, _ = searcher.top_actions(loop.searcher, task.observations, 5)
    mode_rates = failure_rates(task, np.asarray(best, np.int32))
    random_discovery = build_discovery(parse_config(config_for("random")), task)
    _, random_failures, _ = discover_budget(random_discovery)
    return {
        "actions": size, "head": head, "agent_ms": agent_ms, "e2e_ms": e2e_ms, "agent_mb": agent_mb,
        "peak_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
        "queries": iterations * num_envs, "failures": failures, "random_failures": random_failures,
        "top_modes_true_rate": float(np.mean(mode_rates)), "top_modes": [int(c) for c in best],
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--iterations", type=int, default=30, help="discovery iterations per point (budget = iterations x num_envs)")
    parser.add_argument("--num-envs", type=int, default=256)
    parser.add_argument("--sizes", default="125,15625,1000000,10000000")
    parser.add_argument("--memory-budget-gb", type=float, default=6.0, help="skip the flat head where its estimate exceeds this")
    parser.add_argument("--out", default=str(ROOT / "benchmarks" / "results"))
    parser.add_argument("--point", help=argparse.SUPPRESS)  # "SIZE,HEAD": measure one point (child process)
    args = parser.parse_args()

    if args.point:
        size, head = args.point.split(",")
        print(json.dumps(run_point(int(size), head, args.iterations, args.num_envs)))
        return

    rows = []
    for size in [int(s) for s in args.sizes.split(",")]:
        for head in ("flat", "factored"):
            if head == "flat" and flat_memory_gb(size) > args.memory_budget_gb:
                print(f"{size:>10} {head:<8} skipped: estimated {flat_memory_gb(size):.1f} GB > budget {args.memory_budget_gb:g} GB", flush=True)
                rows.append({"actions": size, "head": head, "skipped": f"estimated {flat_memory_gb(size):.1f} GB > {args.memory_budget_gb:g} GB"})
                continue
            cmd = [sys.executable, __file__, "--point", f"{size},{head}", "--iterations", str(args.iterations), "--num-envs", str(args.num_envs)]
            result = subprocess.run(cmd, capture_output=True, text=True)
            if result.returncode != 0:
                reason = result.stderr.strip().splitlines()[-1] if result.stderr.strip() else f"exit {result.returncode}"
                print(f"{size:>10} {head:<8} failed: {reason}", flush=True)
                rows.append({"actions": size, "head": head, "skipped": f"failed: {reason}"})
                continue
            row = json.loads(result.stdout.strip().splitlines()[-1])
            rows.append(row)
            print(f"{size:>10} {head:<8} agent {row['agent_ms']:7.2f} ms/it  e2e {row['e2e_ms']:7.1f} ms/it  agent {row['agent_mb']:8.1f} MB  "
                  f"peak {row['peak_mb']:7.0f} MB  failures {row['failures']} (random {row['random_failures']})  "
                  f"top-5 modes true rate {row['top_modes_true_rate']:.1%}", flush=True)
    write(rows, Path(args.out), args)


def write(rows: list[dict], out: Path, args) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    out.mkdir(parents=True, exist_ok=True)
    fields = ["actions", "head", "agent_ms", "e2e_ms", "agent_mb", "peak_mb", "queries", "failures", "random_failures", "top_modes_true_rate", "skipped"]
    with open(out / "scale.csv", "w", newline="") as f:
        writer = csv.DictWriter(f, fields, extrasaction="ignore")
        writer.writeheader()
        writer.writerows(rows)
    measured = [r for r in rows if "skipped" not in r]
    base = {r["head"]: r["agent_ms"] for r in measured if r["actions"] == min(x["actions"] for x in measured)}
    lines = [f"Embedded digits CNN, {args.iterations} iterations x {args.num_envs} queries per point.", "",
             "| actions | head | agent ms/it | agent vs 125 | end-to-end ms/it | agent state MB | peak MB | failures (DQN) | failures (random) | top-5 modes, true rate |",
             "|---|---|---|---|---|---|---|---|---|---|"]
    for r in rows:
        if "skipped" in r:
            lines.append(f"| {r['actions']:,} | {r['head']} | — | — | — | — | — | — | — | {r['skipped']} |")
            continue
        ratio = r["agent_ms"] / base[r["head"]] if r["head"] in base else float("nan")
        lines.append(f"| {r['actions']:,} | {r['head']} | {r['agent_ms']:.2f} | {ratio:.2f}x | {r['e2e_ms']:.1f} | {r['agent_mb']:.1f} | "
                     f"{r['peak_mb']:.0f} | {r['failures']} | {r['random_failures']} | {r['top_modes_true_rate']:.1%} |")
    (out / "scale.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))

    fig, ax = plt.subplots(figsize=(6.4, 4.2))
    for head, marker in (("flat", "o"), ("factored", "s")):
        pts = sorted((r["actions"], r["agent_ms"], r["e2e_ms"]) for r in measured if r["head"] == head)
        if pts:
            xs, agent, e2e = zip(*pts)
            ax.plot(xs, agent, marker=marker, label=f"{head} head: agent")
            ax.plot(xs, e2e, marker=marker, linestyle="--", label=f"{head} head: end to end")
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.set_xlabel("actions (size of the concept space)")
    ax.set_ylabel("ms per iteration (256 queries)")
    ax.set_title("Time per discovery iteration vs action-space size")
    ax.legend(fontsize=8)
    ax.grid(True, which="both", alpha=0.3)
    fig.tight_layout()
    docs = ROOT / "docs"
    docs.mkdir(exist_ok=True)
    fig.savefig(docs / "scale.png", dpi=130)
    print(f"wrote {out / 'scale.md'}, {out / 'scale.csv'}, {docs / 'scale.png'}")


if __name__ == "__main__":
    main()
