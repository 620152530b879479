"""Scale: agent time, end-to-end time, memory and failures found as the concept space grows.

    .venv/bin/python benchmarks/scale.py [--iterations 30] [--num-envs 256] [--sizes 125,15625,1000000,10000000]
        [--memory-budget-gb 6] [--out benchmarks/results] [--sweep-dir DIR] [--address HOST:PORT | --cpus N | --inline]

A thin wrapper over the sweep spec ``configs/sweeps/scale.yaml``: action spaces of 125 (the
embedded default, 5^3), 15,625 (5^6), 10^6 (configs/digits_million.yaml) and 10^7 (the same
plus a seventh axis, saturation, which is the identity on grey digits: a nuisance axis
the agent must learn to ignore), each with the DQN's flat Q-head, its factored
(action-branching) head, and random search. ``fadejax sweep`` runs every point as an
ordinary run directory in its own Ray worker process (``resources.fresh_worker``), so its
peak memory is its own, reserving 2 CPUs (Ray gives it 2 OpenMP threads; a local Ray gets
at least 2 CPUs, so a 2-core machine runs one point at a time, as the timings need);
``--inline`` runs them one after another in this process instead (peak memory is then
this process's). The sweep lives in ``--sweep-dir`` (default
``runs/sweeps/scale-<hash of the spec>``): the same command again finishes an interrupted
one without repeating finished points. Per (size, head):

* agent ms/it   the searcher alone: ``act`` + ``update`` (replay add, one batch-256 gradient
                step) on synthetic observations, jitted, warm, mean over 50 iterations
                (measured here, after the sweep, in this process)
* e2e ms/it     a whole discovery iteration on the embedded digits CNN (sample, act,
                perturb, audited model, reward, learn): the median of the point's
                iterations after its first two (``metrics.jsonl``)
* agent MB      bytes of the searcher's state (parameters, target, optimiser, replay)
* peak MB       the point's process's peak resident memory
* failures      failures found by the DQN in ``iterations x num_envs`` queries, beside
                the random point's in the same budget (the failure rate of a random cell)
* modes         the 5 top cells by mean Q of the point's final state, re-evaluated on
                all 540 held-out digits: their mean true failure rate (this is how failures
                at 10^6 actions are checked to be real without an exhaustive landscape)

The flat head is left out of the sweep where its estimated memory (output layer, its Adam
moments and target copy, and the (batch, A) Q-values of a double-Q update) exceeds the
budget. Writes ``scale.md`` / ``scale.csv`` to ``--out`` and the plot (time vs
action-space size, log axes, as the paper's Figure 7) to ``docs/scale.png``.
"""

from __future__ import annotations

import argparse
import csv
import hashlib
import json
import os
import sys
import time
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

SPEC = ROOT / "configs" / "sweeps" / "scale.yaml"
HEADS = ("flat", "factored")


def flat_memory_gb(actions: int, hidden: int = 256, batch: int = 256) -> float:
    """Rough float32 footprint of the flat head: output layer x (params, target, 2 Adam
    moments, gradient) plus three (batch, A) Q-value arrays of a double-Q update."""
    return 4 * (5 * hidden * actions + 3 * batch * actions) / 1e9


def make_spec(args) -> dict:
    """The shipped spec with this command's sizes, budget and memory budget."""
    import yaml

    spec = yaml.safe_load(SPEC.read_text())
    spec["base"] = str((SPEC.parent / spec["base"]).resolve())
    spaces = spec["vary"]["space.axes"]
    sizes = [s.strip() for s in args.sizes.split(",")]
    unknown = [s for s in sizes if s not in spaces]
    if unknown:
        raise SystemExit(f"error: no benchmark space of {unknown} actions; the spec has {list(spaces)}")
    spec["vary"]["space.axes"] = {size: spaces[size] for size in sizes}
    spec["set"].update({"run.iterations": args.iterations, "run.num_envs": args.num_envs})
    spec["exclude"] = [{"space.axes": size, "searcher": "flat"} for size in sizes if flat_memory_gb(int(size)) > args.memory_budget_gb]
    return spec


def run(spec: dict, args) -> Path:
    """Run (or resume) the sweep; its directory."""
    import yaml

    from fadejax.sweeps.runner import run_sweep
    from fadejax.sweeps.spec import SweepError

    fingerprint = hashlib.sha256(json.dumps(spec, sort_keys=True).encode()).hexdigest()[:10]
    out = Path(args.sweep_dir) if args.sweep_dir else Path("runs") / "sweeps" / f"scale-{fingerprint}"
    out.parent.mkdir(parents=True, exist_ok=True)
    spec_path = out.parent / f"{out.name}.yaml"
    spec_path.write_text(yaml.safe_dump(spec, sort_keys=False))
    print(f"sweep: {out} ({'in this process' if args.inline else 'Ray ' + (args.address or 'on this machine')}); "
          "the same command resumes it", flush=True)
    try:
        # A local Ray gets at least the spec's CPUs per point: one point at a time on a small machine.
        cpus = args.cpus or (None if args.address or args.inline else max(os.cpu_count() or 1, int(spec["resources"]["cpus"])))
        run_sweep(spec_path, out, address=args.address, resume=True, cpus=cpus, inline=args.inline)
    except SweepError as error:
        raise SystemExit(f"error: {error}")
    return out


def agent_alone(config, task, num_envs: int) -> tuple[float, float]:
    """The searcher alone on synthetic observations: ``(ms per act + update, state MB)``."""
    import jax
    import jax.numpy as jnp

    from fadejax.engine.checkpoints import build_discovery
    from fadejax.searchers.base import Transition

    searcher = build_discovery(config, task).searcher
    state = searcher.init(jax.random.PRNGKey(0))
    act, update = jax.jit(searcher.act), jax.jit(searcher.update, donate_argnums=0)
    obs = jax.random.normal(jax.random.PRNGKey(1), (num_envs, searcher.obs_dim))

    def agent_step(state, i):
        k = jax.random.PRNGKey(i)
        action = act(state, obs, k)
        reward = jax.random.normal(k, (num_envs,))
        t = Transition(obs, action, reward, obs, jnp.ones(num_envs, bool), jnp.zeros(num_envs, jnp.int32), reward > 0)
        return update(state, t, k)

    for i in range(5):  # compile and fill the replay past min_replay
        state, metrics = agent_step(state, i)
    jax.block_until_ready(metrics)
    began = time.perf_counter()
    for i in range(50):
        state, metrics = agent_step(state, 100 + i)
    jax.block_until_ready(metrics)
    agent_ms = 1e3 * (time.perf_counter() - began) / 50
    return agent_ms, sum(x.nbytes for x in jax.tree.leaves(state)) / 1e6


def rows_of(sweep_dir: Path, args) -> list[dict]:
    """One row per (size, head) from the sweep's run directories."""
    import numpy as np

    from fadejax.engine.config import load_config
    from fadejax.engine.ground_truth import failure_rates
    from fadejax.engine.store.learning_log import METRICS_FILE, read_metrics
    from fadejax.engine.store.rundir import read_status
    from fadejax.engine.checkpoints import build_discovery, load_latest_state
    from fadejax.sweeps.runner import MANIFEST
    from fadejax.engine.build import build_task

    manifest = json.loads((sweep_dir / MANIFEST).read_bytes())
    points = {(e["values"]["space.axes"], e["values"]["searcher"]): e for e in manifest["points"]}
    rows = []
    for size in [s.strip() for s in args.sizes.split(",")]:
        random_point = points[(size, "random")]
        random_failures = read_status(sweep_dir / random_point["dir"]).get("failures") if random_point["status"] == "complete" else None
        task = None
        for head in HEADS:
            entry = points.get((size, head))
            if entry is None:
                reason = f"estimated {flat_memory_gb(int(size)):.1f} GB > {args.memory_budget_gb:g} GB"
                print(f"{int(size):>10} {head:<8} skipped: {reason}", flush=True)
                rows.append({"actions": int(size), "head": head, "skipped": reason})
                continue
            run_dir = sweep_dir / entry["dir"]
            if entry["status"] != "complete":
                reason = f"failed: {entry.get('error') or entry['status']}"
                print(f"{int(size):>10} {head:<8} {reason}", flush=True)
                rows.append({"actions": int(size), "head": head, "skipped": reason})
                continue
            config = load_config(run_dir / "config.yaml")
            task = task or build_task(config, progress=False)
            assert task.space.num_actions == int(size)
            agent_ms, agent_mb = agent_alone(config, task, args.num_envs)
            discovery = build_discovery(config, task)
            state = load_latest_state(run_dir, discovery)
            best, _ = discovery.searcher.top_actions(state.searcher, task.observations, 5)
            mode_rates = failure_rates(task, np.asarray(best, np.int32))
            seconds = [m["seconds"] for m in read_metrics(run_dir / METRICS_FILE) if m.get("seconds") is not None]
            status = read_status(run_dir)
            row = {
                "actions": int(size), "head": head, "agent_ms": agent_ms, "e2e_ms": 1e3 * float(np.median(seconds[2:] or seconds)),
                "agent_mb": agent_mb, "peak_mb": entry["result"]["peak_rss_mb"],
                "queries": status["queries"], "failures": status["failures"], "random_failures": random_failures,
                "top_modes_true_rate": float(np.mean(mode_rates)), "top_modes": [int(c) for c in best],
            }
            rows.append(row)
            print(f"{int(size):>10} {head:<8} agent {row['agent_ms']:7.2f} ms/it  e2e {row['e2e_ms']:7.1f} ms/it  agent {row['agent_mb']:8.1f} MB  "
                  f"peak {row['peak_mb']:7.0f} MB  failures {row['failures']} (random {row['random_failures']})  "
                  f"top-5 modes true rate {row['top_modes_true_rate']:.1%}", flush=True)
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--iterations", type=int, default=30, help="discovery iterations per point (budget = iterations x num_envs)")
    parser.add_argument("--num-envs", type=int, default=256)
    parser.add_argument("--sizes", default="125,15625,1000000,10000000")
    parser.add_argument("--memory-budget-gb", type=float, default=6.0, help="skip the flat head where its estimate exceeds this")
    parser.add_argument("--out", default=str(ROOT / "benchmarks" / "results"))
    parser.add_argument("--sweep-dir", help="where the sweep's run directories go (default runs/sweeps/scale-<hash of the spec>)")
    runner = parser.add_mutually_exclusive_group()
    runner.add_argument("--address", help="run the points on this Ray cluster (HOST:PORT; every node must see the sweep directory)")
    runner.add_argument("--cpus", type=int, help="CPUs of the local Ray (default: all of this machine's)")
    runner.add_argument("--inline", action="store_true", help="no Ray: run the points one after another in this process")
    args = parser.parse_args()

    sweep_dir = run(make_spec(args), args)
    write(rows_of(sweep_dir, args), Path(args.out), args)


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
