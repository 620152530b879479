"""Table 1: every searcher x several seeds at an equal query budget, scored against the
exhaustive ground truth, live or on a recording.

    .venv/bin/python benchmarks/table1.py [--config configs/digits.yaml] [--recorded REC.npz] [--iterations 50]
        [--num-envs 256] [--seeds 5] [--searchers NAME,NAME] [--micro] [--set FIELD=VALUE]
        [--searcher-set FIELD=VALUE] [--plugin FILE.py] [--out benchmarks/results]

One query = one audited-model evaluation of one perturbed sample; every searcher gets
``iterations x num_envs`` of them through the same loop, oracle and reward. With
``--recorded`` the audited model is replaced by a lookup into a recording
(:mod:`fadejax.recording`; ``fadejax landscape --record`` writes one): the same loop,
searchers and rewards, seconds instead of minutes. Columns:

* count      failures found while searching (higher is better)
* distinct   distinct (sample, cell) pairs among them (a re-asked failing pair counts once)
* entropy    of the failures' distribution over cells, nats (lower = more concentrated)
* recall@10  share of the report's 10 top-ranked modes that are truly top-10 (ties count):
             the report ranks every searcher's records the same way, by the shrinkage
             estimate of :mod:`fadejax.estimates`
* own@10     the same for the searcher's own ranking (``action_scores`` averaged over the
             held-out observations: posterior means, Q-values or observed rates)
* spearman   rank correlation of the report's per-cell estimate with the true rates (visited cells)
* W1         Wasserstein distance (POT) of its failure distribution to the true one, grid units
* gain       (its failure rate - random's) / (ceiling's - random's), paired by seed
* seconds    wall time of the run (jit compilation excluded by a warm-up step)

The ceiling row always queries the truly worst cell on uniformly drawn samples; a
searcher that also chooses *which samples* to query can pass it. "dqn (paper, greedy
eval)" runs the paper-preset DQN's trained greedy policy on a fresh budget of the same
size. ``--micro`` adds microscopic-mode rows (episodes walking the grid from the config's
``micro.start``, run with the config's other settings, so a micro config also gives the
macroscopic rows beside them); with ``--recorded`` it also states how many distinct
failures any walk could find in the budget (:mod:`fadejax.walks`), the bound of a
microscopic searcher's ``distinct`` column. ``--searcher-set FIELD=VALUE`` sets a field of
every chosen row's searcher, for sweeps. ``--plugin FILE.py`` imports a module of your
own that registers searchers (:func:`fadejax.searchers.register`); each one it registers
gets a row named by its kind (``docs/benchmark-your-searcher.md``).

Writes ``table1.md``, ``table1.csv`` (aggregates), ``table1_runs.csv`` (every run),
``table1.png`` (failures found vs queries) and ``table1_recall.png`` (recall@10 of the
report's top 10 vs queries), each mean with a 95% band over seeds, to ``--out``; another
config writes ``table1_<name>.*``, a recording ``..._recorded.*``.
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
import numpy as np  # noqa: E402
import yaml  # noqa: E402
from scipy import stats  # noqa: E402

from fadejax import metrics  # noqa: E402
from fadejax.config import load_config, parse_config  # noqa: E402
from fadejax.discovery import Discovery  # noqa: E402
from fadejax import estimates  # noqa: E402
from fadejax.ground_truth import load_or_compute, per_sample_failures  # noqa: E402
from fadejax.recording import replay  # noqa: E402
from fadejax.records import RecordWriter  # noqa: E402
from fadejax.run import build_discovery, iterate  # noqa: E402
from fadejax.walks import distinct_failure_bound, first_failure_moves  # noqa: E402
from fadejax.searchers.plugins import PluginError, import_plugins  # noqa: E402
from fadejax.searchers.frozen import FrozenGreedy  # noqa: E402
from fadejax.task import build_task  # noqa: E402

SEARCHERS: list[tuple[str, dict]] = [
    ("random", {"kind": "random"}),
    ("greedy eps=0.01", {"kind": "greedy", "epsilon": 0.01}),
    ("greedy eps=0.1", {"kind": "greedy", "epsilon": 0.1}),
    ("greedy eps=0.5", {"kind": "greedy", "epsilon": 0.5}),
    ("threshold", {"kind": "threshold"}),
    ("bayes (gp_hedge)", {"kind": "bayes"}),
    ("thompson (cells)", {"kind": "thompson"}),
    ("bayes-ucb (cells)", {"kind": "ucb"}),
    ("cem", {"kind": "cem"}),
    ("reinforce", {"kind": "reinforce"}),
    ("dqn (paper)", {"kind": "dqn", "preset": "paper"}),
    ("dqn (engine)", {"kind": "dqn", "preset": "engine"}),
    ("bootstrapped dqn", {"kind": "bootstrapped"}),
    ("posterior (default)", {"kind": "posterior"}),
]
MICRO_SEARCHERS: list[tuple[str, dict]] = [
    ("micro: dqn (paper)", {"kind": "dqn", "preset": "paper"}),
    ("micro: dqn (engine)", {"kind": "dqn", "preset": "engine"}),
    ("micro: bootstrapped dqn", {"kind": "bootstrapped"}),
    ("micro: posterior walk", {"kind": "posterior_walk"}),
]
COLUMNS = ["count", "distinct", "entropy", "recall@10", "own@10", "spearman", "W1", "gain", "seconds"]


@dataclass
class Run:
    name: str
    seed: int
    samples: np.ndarray  # (Q,) every query's sample
    cells: np.ndarray  # (Q,) every query's cell
    failed: np.ndarray  # (Q,) bool
    curve: np.ndarray  # cumulative failures after each iteration
    estimate: np.ndarray | None  # the searcher's own per-cell ranking
    seconds: float
    recall_curve: list[tuple[int, float]] = field(default_factory=list)  # (queries, recall@10 of the report)
    values: dict = field(default_factory=dict)

    @property
    def failed_cells(self) -> np.ndarray:
        return self.cells[self.failed]


def warm_up(discovery: Discovery) -> None:
    """Compile the jitted steps on a throwaway state, so run times exclude compilation."""
    state, _, _ = discovery.step(discovery.init(2**30))
    jax.block_until_ready(state)


def run_searcher(discovery: Discovery, seed: int, iterations: int, scratch: Path) -> tuple[Run, object]:
    state = discovery.init(seed)
    writer = RecordWriter(scratch / "records.jsonl", discovery.task.space, discovery.mode)
    samples, cells, failed = [], [], []
    began = time.perf_counter()
    for _, state, host in iterate(discovery, state, writer, iterations):
        samples.append(host["sample"])
        cells.append(host["cell"])
        failed.append(np.asarray(host["failed"], bool))
    jax.block_until_ready(state)
    seconds = time.perf_counter() - began
    writer.close()
    estimate = None
    if discovery.mode == "macro":
        estimate = np.asarray(discovery.searcher.action_scores(state.searcher, discovery.task.observations).mean(0))
    curve = np.cumsum([f.sum() for f in failed])
    run = Run("", seed, np.concatenate(samples), np.concatenate(cells), np.concatenate(failed), curve, estimate, seconds)
    return run, state


def ceiling_run(task, truth: np.ndarray, seed: int, iterations: int, batch: int) -> Run:
    """Always the truly worst cell, on uniformly drawn samples: the most a cell-only searcher can find."""
    worst = int(np.argmax(truth))
    fails = per_sample_failures(task, worst)
    rows = np.random.default_rng(seed).integers(0, task.num_samples, size=(iterations, batch)).ravel()
    per_iteration = fails[rows].reshape(iterations, batch).sum(axis=1)
    return Run("ceiling (worst cell)", seed, rows, np.full(rows.size, worst), fails[rows], np.cumsum(per_iteration), None, float("nan"))


def report_recall(run: Run, truth: np.ndarray, sizes: tuple[int, ...], num_samples: int, upto: int | None = None) -> tuple[float, float]:
    """Recall@10 and Spearman (over visited cells) of the report's ranking of the first ``upto`` queries."""
    q = slice(0, upto)
    return estimates.report_recall(run.samples[q], run.cells[q], run.failed[q], truth, sizes, num_samples)


def score(run: Run, truth: np.ndarray, sizes: tuple[int, ...], num_samples: int, budget: int, curve_points: int) -> None:
    v = run.values
    v["count"] = float(run.failed.sum())
    pairs = run.samples[run.failed].astype(np.int64) * truth.size + run.cells[run.failed]
    v["distinct"] = float(np.unique(pairs).size)
    v["entropy"] = metrics.failure_entropy(run.failed_cells, truth.size)
    v["W1"] = metrics.wasserstein_to_truth(run.failed_cells, truth, sizes)
    v["seconds"] = run.seconds
    if run.estimate is not None:
        v["own@10"] = metrics.recall_at_k(run.estimate, truth, min(10, truth.size))
    if run.name.startswith("ceiling"):
        return
    v["recall@10"], v["spearman"] = report_recall(run, truth, sizes, num_samples)
    marks = np.unique(np.linspace(budget / curve_points, budget, curve_points).astype(int))
    run.recall_curve = [(int(m), report_recall(run, truth, sizes, num_samples, int(m))[0]) for m in marks]


def build(args) -> tuple[object, object, np.ndarray, dict, str]:
    """``(config, task, truth, truth statistics, output prefix)``, live or recorded."""
    config = load_config(args.config, [*args.overrides, f"run.num_envs={args.num_envs}", f"run.iterations={args.iterations}"])
    prefix = "table1" if config.name == "digits" else f"table1_{config.name}"
    if args.recorded:
        task = replay(config, args.recorded)
        truth = task.recording.failure_rates()
        stats_ = {"mean_failure_rate": float(truth.mean()), "worst_failure_rate": float(truth.max())}
        print(f"recording {args.recorded}: {task.num_samples} samples x {truth.size} cells")
        return config, task, truth, stats_, prefix + "_recorded"
    task = build_task(config, progress=True)
    truth, stats_, reused = load_or_compute(config, Path(args.truth_dir or f"runs/{config.name}"), lambda: task, progress=True)
    print(f"ground truth {'reused' if reused else 'computed'}: mean {stats_['mean_failure_rate']:.3f}, worst {stats_['worst_failure_rate']:.3f}")
    return config, task, truth, stats_, prefix


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--config", default="configs/digits.yaml")
    parser.add_argument("--recorded", help="replay this recording (.npz) instead of calling the audited model")
    parser.add_argument("--iterations", type=int, default=50, help="iterations per run (budget = iterations x num-envs)")
    parser.add_argument("--num-envs", type=int, default=256)
    parser.add_argument("--seeds", type=int, default=5)
    parser.add_argument("--searchers", help="comma-separated names from the table (default: all)")
    parser.add_argument("--micro", action="store_true", help="add microscopic-mode rows")
    parser.add_argument("--set", dest="overrides", action="append", default=[], metavar="FIELD=VALUE",
                        help="override a config field, as for fadejax discover (e.g. micro.max_steps=12)")
    parser.add_argument("--searcher-set", dest="searcher_overrides", action="append", default=[], metavar="FIELD=VALUE",
                        help="set a field of every chosen row's searcher (e.g. discount=0.7), for sweeps")
    parser.add_argument("--plugin", action="append", default=[], metavar="FILE.py",
                        help="import this module of yours first; each searcher it registers gets a row (repeatable)")
    parser.add_argument("--curve-points", type=int, default=10, help="points on the recall@10-vs-queries curve")
    parser.add_argument("--truth-dir", help="where ground_truth.json is kept (computed once; default runs/<config name>)")
    parser.add_argument("--out", default="benchmarks/results")
    args = parser.parse_args()

    try:
        plugin_rows = [(kind, {"kind": kind}) for kind in import_plugins(args.plugin)]
    except PluginError as error:
        parser.error(str(error))
    config, task, truth, stats_, prefix = build(args)
    sizes = task.space.sizes
    budget = args.iterations * args.num_envs
    print(f"budget: {budget} queries per run, {args.seeds} seeds")
    chosen = SEARCHERS + plugin_rows + (MICRO_SEARCHERS if args.micro else [])
    if args.searchers:
        wanted = {name.strip() for name in args.searchers.split(",")}
        unknown = wanted - {name for name, _ in chosen} - {"dqn (paper, greedy eval)"}
        if unknown:
            parser.error(f"unknown searchers {sorted(unknown)}; choose from {[name for name, _ in chosen]}")
        chosen = [(name, searcher) for name, searcher in chosen if name in wanted]
    if args.searcher_overrides:
        extra = {key: yaml.safe_load(value) for key, _, value in (item.partition("=") for item in args.searcher_overrides)}
        chosen = [(name, {**searcher, **extra}) for name, searcher in chosen]

    runs: dict[str, list[Run]] = {}
    with tempfile.TemporaryDirectory() as tmp:
        for name, searcher in chosen:
            mode = "micro" if name.startswith("micro:") else "macro"
            searcher_config = parse_config({**config.model_dump(mode="json"), "mode": mode, "searcher": searcher})
            discovery = build_discovery(searcher_config, task)
            warm_up(discovery)
            for seed in range(args.seeds):
                run, state = run_searcher(discovery, seed, args.iterations, Path(tmp))
                run.name = name
                runs.setdefault(name, []).append(run)
                print(f"  {name:<24} seed {seed}: {int(run.failed.sum()):6d} failures in {run.seconds:5.1f} s", flush=True)
                if name == "dqn (paper)":
                    frozen = Discovery(task, FrozenGreedy(discovery.searcher, state.searcher), mode="macro", num_envs=args.num_envs)
                    warm_up(frozen)
                    evaluation, _ = run_searcher(frozen, 10_000 + seed, args.iterations, Path(tmp))
                    evaluation.name, evaluation.seed = "dqn (paper, greedy eval)", seed
                    runs.setdefault(evaluation.name, []).append(evaluation)
                    print(f"  {evaluation.name:<24} seed {seed}: {int(evaluation.failed.sum()):6d} failures in {evaluation.seconds:5.1f} s", flush=True)
    runs["ceiling (worst cell)"] = [ceiling_run(task, truth, seed, args.iterations, args.num_envs) for seed in range(args.seeds)]

    for group in runs.values():
        for run in group:
            score(run, truth, sizes, task.num_samples, budget, args.curve_points)
    if "random" in runs:
        random_rate = {r.seed: r.values["count"] / budget for r in runs["random"]}
    else:  # random's expected rate: the landscape mean
        random_rate = {seed: float(truth.mean()) for seed in range(args.seeds)}
    ceiling_rate = {r.seed: r.values["count"] / budget for r in runs["ceiling (worst cell)"]}
    for group in runs.values():
        for run in group:
            run.values["gain"] = (run.values["count"] / budget - random_rate[run.seed]) / (ceiling_rate[run.seed] - random_rate[run.seed])

    if args.micro and args.recorded:  # what any walker could find: the cheapest failing pairs, one episode each
        moves = first_failure_moves(task.recording.failed, sizes, config.micro_space().start, config.micro.max_steps)
        stats_["walk_bound"] = distinct_failure_bound(moves, budget)
    what = ("Embedded default (digits CNN, 125 actions)" if config.name == "digits"
            else f"{config.name} ({config.task} audit, {task.space.num_actions} actions, {task.num_samples} held-out samples)")
    if args.recorded:
        what += f", replayed from the recording {Path(args.recorded).name}"
    write_outputs(runs, Path(args.out), budget, args.seeds, stats_, what, prefix)


def write_outputs(runs: dict[str, list[Run]], out: Path, budget: int, seeds: int, truth_stats: dict, what: str, prefix: str) -> None:
    out.mkdir(parents=True, exist_ok=True)
    aggregate = {name: {c: metrics.mean_ci([r.values.get(c, float("nan")) for r in group]) for c in COLUMNS} for name, group in runs.items()}

    def cell(mean: float, half: float, digits: int) -> str:
        if not np.isfinite(mean):
            return "—"
        return f"{mean:.{digits}f} ± {half:.{digits}f}" if np.isfinite(half) else f"{mean:.{digits}f}"

    digits = {"count": 0, "distinct": 0, "entropy": 2, "recall@10": 2, "own@10": 2, "spearman": 2, "W1": 2, "gain": 2, "seconds": 1}
    lines = [
        f"{what}, {budget} queries per run, mean ± 95% CI over {seeds} seeds.",
        f"Ground truth: mean failure rate {truth_stats['mean_failure_rate']:.3f}, worst cell {truth_stats['worst_failure_rate']:.3f}.",
        "",
        "| searcher | " + " | ".join(COLUMNS) + " |",
        "|---|" + "---|" * len(COLUMNS),
    ]
    for name, row in aggregate.items():
        lines.append(f"| {name} | " + " | ".join(cell(*row[c], digits[c]) for c in COLUMNS) + " |")
    if "walk_bound" in truth_stats:
        lines += ["", f"Microscopic walks (≤ max_steps moves from the start cell, one failure per episode) can find at most "
                      f"{truth_stats['walk_bound']} distinct failures in {budget} queries, even knowing the table (fadejax.walks)."]
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

    colours = dict(zip(runs, plt.get_cmap("tab20").colors))  # 16+ searchers: more colours than the default cycle

    def band(ax, x, ys: np.ndarray, label: str, style: str) -> None:
        mean = ys.mean(0)
        half = stats.t.ppf(0.975, ys.shape[0] - 1) * ys.std(0, ddof=1) / np.sqrt(ys.shape[0]) if ys.shape[0] > 1 else 0
        width = 2.8 if "default" in label else 1.2
        ax.plot(x, mean, style, label=label, color=colours[label], linewidth=width)
        ax.fill_between(x, mean - half, mean + half, alpha=0.15, color=colours[label])

    fig, ax = plt.subplots(figsize=(9, 5.5))
    for name, group in runs.items():
        curves = np.stack([r.curve for r in group]).astype(np.float64)
        band(ax, np.arange(1, curves.shape[1] + 1) * (budget // curves.shape[1]), curves, name, "--" if name.startswith("ceiling") else "-")
    ax.set_xlabel("audited-model queries")
    ax.set_ylabel("failures found")
    ax.set_title("Failures found vs queries (mean, 95% band)")
    ax.legend(fontsize=7, ncol=2)
    fig.tight_layout()
    fig.savefig(out / f"{prefix}.png", dpi=120)
    plt.close(fig)

    fig, ax = plt.subplots(figsize=(9, 5.5))
    for name, group in runs.items():
        if not group[0].recall_curve:
            continue
        x = np.asarray([q for q, _ in group[0].recall_curve])
        band(ax, x, np.asarray([[r for _, r in run.recall_curve] for run in group]), name, "-")
    ax.set_xlabel("audited-model queries")
    ax.set_ylabel("recall@10 of the report's top 10")
    ax.set_ylim(0, 1.02)
    ax.set_title("Recall@10 of the report's modes vs queries (mean, 95% band)")
    ax.legend(fontsize=7, ncol=2)
    fig.tight_layout()
    fig.savefig(out / f"{prefix}_recall.png", dpi=120)
    plt.close(fig)
    print(f"\nwrote {out / (prefix + '.md')}, {prefix}.csv, {prefix}_runs.csv, {prefix}.png, {prefix}_recall.png")


if __name__ == "__main__":
    main()
