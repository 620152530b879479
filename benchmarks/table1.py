"""Table 1 on the embedded default: every searcher x several seeds at an equal query budget,
scored against the exhaustive ground truth.

    .venv/bin/python benchmarks/table1.py [--config configs/digits.yaml] [--iterations 50] [--num-envs 256] [--seeds 5] [--out benchmarks/results]

One query = one audited-model evaluation of one perturbed sample; every searcher gets
``iterations x num_envs`` of them through the same loop, oracle and reward. Columns:

* count      failures found (higher is better)
* entropy    of the failures' distribution over cells, nats (lower = more concentrated)
* recall@10  share of the searcher's 10 highest-rated cells that are truly top-10 (ties count)
* spearman   rank correlation of its per-cell estimate with the true failure rates
* W1         Wasserstein distance (POT) of its failure distribution to the true one, grid units
* gain       (its failure rate - random's) / (ceiling's - random's), paired by seed
* seconds    wall time of the run (jit compilation excluded by a warm-up step)

The estimate behind recall and Spearman is ``action_scores`` averaged over the held-out
observations: the observed per-cell failure rate for the baselines, the mean Q-value for
the DQN. The ceiling row always queries the truly worst cell on uniformly drawn samples.
The DQN appears twice: "dqn (training)" counts the queries it learns from (epsilon goes
1.0 -> 0.6, the paper's schedule); "dqn (greedy eval)" runs its trained greedy policy on
a fresh budget of the same size.

Writes ``table1.md``, ``table1.csv`` (aggregates), ``table1_runs.csv`` (every run) and
``table1.png`` (failures found vs queries, mean with 95% band) to ``--out``; another
config (e.g. ``configs/summarize.yaml``, the text audit) writes ``table1_<name>.*``.
"""

from __future__ import annotations

import argparse
import csv
import os
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import jax  # noqa: E402
import jax.numpy as jnp  # noqa: E402
import numpy as np  # noqa: E402
from scipy import stats  # noqa: E402

from fadejax import metrics  # noqa: E402
from fadejax.config import load_config, parse_config  # noqa: E402
from fadejax.discovery import Discovery  # noqa: E402
from fadejax.ground_truth import load_or_compute, per_sample_failures  # noqa: E402
from fadejax.records import RecordWriter  # noqa: E402
from fadejax.run import build_discovery, iterate  # noqa: E402
from fadejax.searchers.frozen import FrozenGreedy  # noqa: E402
from fadejax.task import build_task  # noqa: E402

SEARCHERS: list[tuple[str, dict]] = [
    ("random", {"kind": "random"}),
    ("greedy eps=0.01", {"kind": "greedy", "epsilon": 0.01}),
    ("greedy eps=0.1", {"kind": "greedy", "epsilon": 0.1}),
    ("greedy eps=0.5", {"kind": "greedy", "epsilon": 0.5}),
    ("threshold", {"kind": "threshold"}),
    ("bayes (gp_hedge)", {"kind": "bayes"}),
    ("dqn (training)", {"kind": "dqn"}),
]
COLUMNS = ["count", "entropy", "recall@10", "spearman", "W1", "gain", "seconds"]


@dataclass
class Run:
    name: str
    seed: int
    failed_cells: np.ndarray
    curve: np.ndarray  # cumulative failures after each iteration
    estimate: np.ndarray | None
    seconds: float
    values: dict = field(default_factory=dict)


def warm_up(discovery: Discovery) -> None:
    """Compile the jitted steps on a throwaway state, so run times exclude compilation."""
    state, _, _ = discovery.step(discovery.init(2**30))
    jax.block_until_ready(state)


def run_searcher(discovery: Discovery, seed: int, iterations: int, scratch: Path) -> tuple[Run, object]:
    state = discovery.init(seed)
    writer = RecordWriter(scratch / "records.jsonl", discovery.task.space, discovery.mode)
    failed_cells, curve, total = [], [], 0
    began = time.perf_counter()
    for _, state, host in iterate(discovery, state, writer, iterations):
        failed_cells.append(host["cell"][host["failed"]])
        total += int(host["failed"].sum())
        curve.append(total)
    jax.block_until_ready(state)
    seconds = time.perf_counter() - began
    writer.close()
    estimate = np.asarray(discovery.searcher.action_scores(state.searcher, discovery.task.observations).mean(0))
    return Run("", seed, np.concatenate(failed_cells), np.asarray(curve), estimate, seconds), state


def ceiling_run(task, truth: np.ndarray, seed: int, iterations: int, batch: int) -> Run:
    """Always the truly worst cell, on uniformly drawn samples: the most any searcher can find."""
    worst = int(np.argmax(truth))
    fails = per_sample_failures(task, worst)
    rows = np.random.default_rng(seed).integers(0, task.num_samples, size=(iterations, batch))
    per_iteration = fails[rows].sum(axis=1)
    cells = np.full(int(per_iteration.sum()), worst)
    return Run("ceiling (worst cell)", seed, cells, np.cumsum(per_iteration), None, float("nan"))


def score(run: Run, truth: np.ndarray, sizes: tuple[int, ...]) -> None:
    v = run.values
    v["count"] = float(run.failed_cells.size)
    v["entropy"] = metrics.failure_entropy(run.failed_cells, truth.size)
    v["W1"] = metrics.wasserstein_to_truth(run.failed_cells, truth, sizes)
    v["seconds"] = run.seconds
    if run.estimate is not None:
        v["recall@10"] = metrics.recall_at_k(run.estimate, truth, 10)
        v["spearman"] = metrics.spearman(run.estimate, truth)


def mean_ci(values: list[float]) -> tuple[float, float]:
    """Mean and the half-width of its 95% t-interval."""
    x = np.asarray([v for v in values if np.isfinite(v)], np.float64)
    if x.size == 0:
        return float("nan"), float("nan")
    if x.size == 1:
        return float(x[0]), float("nan")
    return float(x.mean()), float(stats.t.ppf(0.975, x.size - 1) * x.std(ddof=1) / np.sqrt(x.size))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--config", default="configs/digits.yaml")
    parser.add_argument("--iterations", type=int, default=50, help="iterations per run (budget = iterations x num-envs)")
    parser.add_argument("--num-envs", type=int, default=256)
    parser.add_argument("--seeds", type=int, default=5)
    parser.add_argument("--truth-dir", help="where ground_truth.json is kept (computed once; default runs/<config name>)")
    parser.add_argument("--out", default="benchmarks/results")
    args = parser.parse_args()

    config = load_config(args.config, [f"run.num_envs={args.num_envs}", f"run.iterations={args.iterations}"])
    task = build_task(config, progress=True)
    truth, stats_, reused = load_or_compute(config, Path(args.truth_dir or f"runs/{config.name}"), lambda: task, progress=True)
    print(f"ground truth {'reused' if reused else 'computed'}: mean {stats_['mean_failure_rate']:.3f}, worst {stats_['worst_failure_rate']:.3f}")
    sizes = task.space.sizes
    budget = args.iterations * args.num_envs
    print(f"budget: {budget} queries per run, {args.seeds} seeds")

    runs: dict[str, list[Run]] = {}
    with tempfile.TemporaryDirectory() as tmp:
        for name, searcher in SEARCHERS:
            searcher_config = parse_config({**config.model_dump(mode="json"), "searcher": searcher})
            discovery = build_discovery(searcher_config, task)
            warm_up(discovery)
            for seed in range(args.seeds):
                run, state = run_searcher(discovery, seed, args.iterations, Path(tmp))
                run.name = name
                runs.setdefault(name, []).append(run)
                print(f"  {name:<18} seed {seed}: {run.failed_cells.size:6d} failures in {run.seconds:5.1f} s", flush=True)
                if searcher["kind"] == "dqn":
                    frozen = Discovery(task, FrozenGreedy(discovery.searcher, state.searcher), mode="macro",
                                       num_envs=args.num_envs)
                    warm_up(frozen)
                    evaluation, _ = run_searcher(frozen, 10_000 + seed, args.iterations, Path(tmp))
                    evaluation.name, evaluation.seed = "dqn (greedy eval)", seed
                    runs.setdefault(evaluation.name, []).append(evaluation)
                    print(f"  {evaluation.name:<18} seed {seed}: {evaluation.failed_cells.size:6d} failures in {evaluation.seconds:5.1f} s", flush=True)
    runs["ceiling (worst cell)"] = [ceiling_run(task, truth, seed, args.iterations, args.num_envs) for seed in range(args.seeds)]

    for group in runs.values():
        for run in group:
            score(run, truth, sizes)
    random_rate = {r.seed: r.values["count"] / budget for r in runs["random"]}
    ceiling_rate = {r.seed: r.values["count"] / budget for r in runs["ceiling (worst cell)"]}
    for group in runs.values():
        for run in group:
            run.values["gain"] = (run.values["count"] / budget - random_rate[run.seed]) / (ceiling_rate[run.seed] - random_rate[run.seed])

    what = ("Embedded default (digits CNN, 125 actions)" if config.name == "digits"
            else f"{config.name} ({config.task} audit, {task.space.num_actions} actions, {task.num_samples} held-out samples)")
    prefix = "table1" if config.name == "digits" else f"table1_{config.name}"
    write_outputs(runs, Path(args.out), budget, args.seeds, stats_, what, prefix)


def write_outputs(runs: dict[str, list[Run]], out: Path, budget: int, seeds: int, truth_stats: dict, what: str, prefix: str) -> None:
    out.mkdir(parents=True, exist_ok=True)
    aggregate = {name: {c: mean_ci([r.values.get(c, float("nan")) for r in group]) for c in COLUMNS} for name, group in runs.items()}

    def cell(mean: float, half: float, digits: int) -> str:
        if not np.isfinite(mean):
            return "—"
        return f"{mean:.{digits}f} ± {half:.{digits}f}" if np.isfinite(half) else f"{mean:.{digits}f}"

    digits = {"count": 0, "entropy": 2, "recall@10": 2, "spearman": 2, "W1": 2, "gain": 2, "seconds": 1}
    lines = [
        f"{what}, {budget} queries per run, mean ± 95% CI over {seeds} seeds.",
        f"Ground truth: mean failure rate {truth_stats['mean_failure_rate']:.3f}, worst cell {truth_stats['worst_failure_rate']:.3f}.",
        "",
        "| searcher | " + " | ".join(COLUMNS) + " |",
        "|---|" + "---|" * len(COLUMNS),
    ]
    for name, row in aggregate.items():
        lines.append(f"| {name} | " + " | ".join(cell(*row[c], digits[c]) for c in COLUMNS) + " |")
    table = "\n".join(lines)
    (out / f"{prefix}.md").write_text(table + "\n")
    print("\n" + table)

    with open(out / f"{prefix}.csv", "w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(["searcher"] + [f"{c}_{part}" for c in COLUMNS for part in ("mean", "ci95")])
        for name, row in aggregate.items():
            writer.writerow([name] + [x for c in COLUMNS for x in row[c]])
    with open(out / f"{prefix}_runs.csv", "w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(["searcher", "seed"] + COLUMNS)
        for name, group in runs.items():
            for run in group:
                writer.writerow([name, run.seed] + [run.values.get(c, "") for c in COLUMNS])

    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(8, 5))
    for name, group in runs.items():
        curves = np.stack([r.curve for r in group]).astype(np.float64)
        queries = np.arange(1, curves.shape[1] + 1) * (budget // curves.shape[1])
        mean = curves.mean(0)
        half = stats.t.ppf(0.975, max(len(group) - 1, 1)) * curves.std(0, ddof=1) / np.sqrt(len(group)) if len(group) > 1 else 0
        style = "--" if name.startswith("ceiling") else "-"
        ax.plot(queries, mean, style, label=name)
        ax.fill_between(queries, mean - half, mean + half, alpha=0.2)
    ax.set_xlabel("audited-model queries")
    ax.set_ylabel("failures found")
    ax.set_title("Failures found vs queries (mean, 95% band)")
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(out / f"{prefix}.png", dpi=120)
    print(f"\nwrote {out / (prefix + '.md')}, {prefix}.csv, {prefix}_runs.csv, {prefix}.png")


if __name__ == "__main__":
    main()
