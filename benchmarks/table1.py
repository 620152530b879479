"""Table 1: every searcher x several seeds at an equal query budget, scored against the
exhaustive ground truth, live or on a recording.

    .venv/bin/python benchmarks/table1.py [--config configs/digits.yaml] [--recorded REC.npz] [--iterations 50]
        [--num-envs 256] [--seeds 5] [--searchers NAME,NAME] [--micro] [--set FIELD=VALUE]
        [--searcher-set FIELD=VALUE] [--estimator-set FIELD=VALUE] [--plugin FILE.py] [--out benchmarks/results]
        [--sweep-dir DIR] [--address HOST:PORT | --cpus N | --inline]

A thin wrapper over the sweep specs ``configs/sweeps/table1.yaml`` (and
``table1_micro.yaml``): its options make the spec (base config, budget, seeds, rows), then
``fadejax sweep`` runs every (searcher, seed) point as an ordinary run directory, as Ray
tasks (a local Ray on every core, or a cluster with ``--address``; ``--inline``: one
after another in this process), and this script scores the run directories against the
exhaustive ground truth. The sweep lives in ``--sweep-dir`` (default
``runs/sweeps/<table>-<hash of the spec>``), so running the same command again finishes
an interrupted table without repeating its finished points.

One query = one audited-model evaluation of one perturbed sample; every searcher gets
``iterations x num_envs`` of them through the same loop, oracle and reward. With
``--recorded`` the audited model is replaced by a lookup into a recording
(:mod:`fadejax.engine.recording`; ``fadejax landscape --record`` writes one): the same loop,
searchers and rewards, seconds instead of minutes per point. Columns:

* distinct   distinct failing (sample, cell) pairs found (a re-asked failing pair counts once;
             on a deterministic audit a re-ask teaches nothing): the headline column
* re-asked   share of the queries that asked a pair already asked
* coverage   share of the true top-10 cells whose true rate lies inside the report's 95% interval
* q@0.9      queries until the report's recall@10 first reaches 0.9 and stays there (at the
             resolution of ``--curve-points``): the median over seeds, a seed that never
             gets there counted as more than the budget, and how many seeds got there
* count      failing queries, re-asks included (the paper's count)
* entropy    of the failures' distribution over cells, nats (lower = more concentrated)
* recall@10  share of the report's 10 top-ranked modes that are truly top-10 (ties count):
             the report ranks every searcher's records the same way, by the shrinkage
             estimate of :mod:`fadejax.analysis.estimates`
* own@10     the same for the searcher's own ranking (``action_scores`` averaged over the
             held-out observations: posterior means, Q-values or observed rates)
* spearman   rank correlation of the report's per-cell estimate with the true rates (visited cells)
* W1         Wasserstein distance (POT) of its failure distribution to the true one, grid units
* gain       (its failure rate - random's) / (ceiling's - random's), paired by seed
* seconds    the run's iterations' wall time (``metrics.jsonl``), its first iteration,
             which compiles, counted at the median of the others

With ``--recorded`` two rows come from the truth table: the *additive-known bound* asks the
pairs in the order of the best additive logistic model of the table (a sample effect plus a
cell effect, fitted on every answer), each once; the *oracle* asks the failing pairs first.
A searcher that learns sample x concept interactions can pass the first; none passes the second.

Where the default row ran, the table ends with its targets, each said met or not: distinct
failing pairs against the additive-known bound and every other row, no re-asked pair on a
deterministic audit, recall@10 ≥ 0.95 (with how far the truly 10th worst cell lies from the
next, in samples, and the true top cells the report left out most often), interval coverage
≥ 0.9, and queries to recall@10 ≥ 0.9 fewer than every baseline's (with a Mann-Whitney test
against each one at or ahead of it: over five seeds that column is mostly noise; ``--seeds
20`` with a few rows settles it).

The ceiling row always queries the truly worst cell on uniformly drawn samples; a
searcher that also chooses *which samples* to query can pass it. "dqn (paper, greedy
eval)" runs the paper-preset DQN's trained greedy policy on a fresh budget of the same
size. ``--micro`` adds microscopic-mode rows (episodes walking the grid from the config's
``micro.start``, run with the config's other settings, so a micro config also gives the
macroscopic rows beside them); with ``--recorded`` it also states how many distinct
failures any walk could find in the budget (:mod:`fadejax.core.walks`), the bound of a
microscopic searcher's ``distinct`` column. ``--searcher-set FIELD=VALUE`` sets a field of
every chosen row's searcher, for sweeps; ``--estimator-set FIELD=VALUE`` scores every row
with the report's model set so (on an existing ``--sweep-dir``, a rescoring of its runs: the
report's settings are no part of the sweep's spec), into files named after the settings. ``--plugin FILE.py`` imports a module of your
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
import hashlib
import json
import os
import re
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import jax  # noqa: E402
import numpy as np  # noqa: E402
import pydantic  # noqa: E402
import yaml  # noqa: E402
from scipy import stats  # noqa: E402

from fadejax.analysis import metrics  # noqa: E402
from fadejax.engine.config import load_config  # noqa: E402
from fadejax.engine.loop import Discovery  # noqa: E402
from fadejax.analysis import estimates  # noqa: E402
from fadejax.engine.ground_truth import load_or_compute, per_sample_failures  # noqa: E402
from fadejax.engine.recording import replay  # noqa: E402
from fadejax.engine.store.learning_log import METRICS_FILE, read_metrics  # noqa: E402
from fadejax.engine.store.records import ArrowRecordWriter, query_drawn, read_records, records_path  # noqa: E402
from fadejax.engine.store.record_columns import read_columns  # noqa: E402
from fadejax.stages.discover import iterate
from fadejax.engine.checkpoints import build_discovery, load_latest_state  # noqa: E402
from fadejax.sweeps.runner import MANIFEST, log_path  # noqa: E402
from fadejax.core.walks import crossing_failure_bound, distinct_failure_bound, first_failure_moves  # noqa: E402
from fadejax.searchers.plugins import PluginError, import_plugins  # noqa: E402
from fadejax.searchers.frozen import FrozenGreedy  # noqa: E402
from fadejax.searchers.posterior import PosteriorConfig  # noqa: E402
from fadejax.engine.build import build_task  # noqa: E402

SPECS = {"macro": ROOT / "configs" / "sweeps" / "table1.yaml", "micro": ROOT / "configs" / "sweeps" / "table1_micro.yaml"}
GREEDY_EVAL = "dqn (paper, greedy eval)"  # the paper-preset DQN's trained greedy policy on a fresh budget
COLUMNS = ["distinct", "re-asked", "recall@10", "coverage", "q@0.9", "count", "entropy", "own@10", "spearman", "W1", "gain", "seconds"]
BOUNDS = ("additive-known bound", "oracle (knows every answer)")  # rows from the truth table, with --recorded


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
    drawn: np.ndarray | None = None  # (Q,) bool: the query's sample was a uniform draw, where the searcher marks it
    recall_curve: list[tuple[int, float]] = field(default_factory=list)  # (queries, recall@10 of the report)
    report_top: np.ndarray | None = None  # the report's 10 top-ranked cells after every query
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
    writer = ArrowRecordWriter(scratch / "records.arrow", discovery.task.space, discovery.mode)
    samples, cells, failed, drawn = [], [], [], []
    began = time.perf_counter()
    for _, state, host in iterate(discovery, state, writer, iterations):
        if "drawn" in host:
            drawn.append(np.asarray(host["drawn"], bool))
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
    run = Run("", seed, np.concatenate(samples), np.concatenate(cells), np.concatenate(failed), curve, estimate, seconds,
              np.concatenate(drawn) if drawn else None)
    return run, state


def ceiling_run(task, truth: np.ndarray, seed: int, iterations: int, batch: int) -> Run:
    """Always the truly worst cell, on uniformly drawn samples: the most a cell-only searcher can find."""
    worst = int(np.argmax(truth))
    fails = per_sample_failures(task, worst)
    rows = np.random.default_rng(seed).integers(0, task.num_samples, size=(iterations, batch)).ravel()
    per_iteration = fails[rows].reshape(iterations, batch).sum(axis=1)
    return Run("ceiling (worst cell)", seed, rows, np.full(rows.size, worst), fails[rows], np.cumsum(per_iteration), None, float("nan"))


def bound_run(name: str, order: np.ndarray, table: np.ndarray, seed: int, iterations: int, batch: int) -> Run:
    """A row that asks the truth table's pairs in ``order`` (flat ``sample * A + cell``), each once."""
    picks = order[: iterations * batch]
    rows, cells = picks // table.shape[1], picks % table.shape[1]
    fails = table[rows, cells]
    return Run(name, seed, rows, cells, fails, np.cumsum(fails.reshape(iterations, batch).sum(axis=1)), None, float("nan"))


def report_recall(run: Run, truth: np.ndarray, sizes: tuple[int, ...], num_samples: int, upto: int | None = None,
                  estimator: PosteriorConfig | None = None) -> tuple[float, float]:
    """Recall@10 and Spearman (over visited cells) of the report's ranking of the first ``upto``
    queries (``estimator``: the report's model settings; default the report's own)."""
    q = slice(0, upto)
    drawn = None if run.drawn is None else run.drawn[q]
    return estimates.report_recall(run.samples[q], run.cells[q], run.failed[q], truth, sizes, num_samples, drawn=drawn, config=estimator)


def score(run: Run, truth: np.ndarray, sizes: tuple[int, ...], num_samples: int, budget: int, curve_points: int,
          estimator: PosteriorConfig | None = None) -> None:
    v = run.values
    v["count"] = float(run.failed.sum())
    v["distinct"] = float(metrics.distinct_failing_pairs(run.samples, run.cells, run.failed, truth.size))
    v["re-asked"] = metrics.reasked_share(run.samples, run.cells, truth.size)
    v["entropy"] = metrics.failure_entropy(run.failed_cells, truth.size)
    v["W1"] = metrics.wasserstein_to_truth(run.failed_cells, truth, sizes)
    v["seconds"] = run.seconds
    if run.estimate is not None:
        v["own@10"] = metrics.recall_at_k(run.estimate, truth, min(10, truth.size))
    if run.name.startswith("ceiling") or run.name in BOUNDS:
        return
    # the full run's estimate, fitted once: its recall, coverage, top 10 and the curve's last point
    est = estimates.cell_estimates(run.samples, run.cells, run.failed, num_samples, sizes, drawn=run.drawn, config=estimator)
    v["recall@10"], v["spearman"] = estimates.ranking_quality(est, truth, 10)
    lower, upper = np.full(truth.size, np.nan), np.full(truth.size, np.nan)
    lower[est.cells], upper[est.cells] = est.lower, est.upper
    run.report_top = est.cells[est.ranked(min(10, truth.size))]
    v["coverage"] = metrics.interval_coverage(lower, upper, truth, min(10, truth.size))
    marks = np.unique(np.linspace(budget / curve_points, budget, curve_points).astype(int))
    run.recall_curve = [(int(m), v["recall@10"] if m >= run.samples.size else report_recall(run, truth, sizes, num_samples, int(m), estimator)[0])
                        for m in marks]
    v["q@0.9"] = metrics.queries_to_level(run.recall_curve, 0.9)


def build(args, base: Path) -> tuple[object, object, np.ndarray, dict, str]:
    """``(config, task, truth, truth statistics, output prefix)``, live or recorded."""
    config = load_config(base, [*args.overrides, f"run.num_envs={args.num_envs}", f"run.iterations={args.iterations}"])
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


def make_spec(mode: str, args, base: Path, plugin_kinds: list[str]) -> dict:
    """The sweep spec of ``mode``'s rows: the shipped one, with this command's base config,
    budget, seeds, rows and settings."""
    spec = yaml.safe_load(SPECS[mode].read_text())
    spec["base"] = str(base)
    fixed = spec.setdefault("set", {})
    fixed.update({"run.iterations": args.iterations, "run.num_envs": args.num_envs})
    for item in args.overrides:
        field_path, _, value = item.partition("=")
        fixed[field_path.strip()] = yaml.safe_load(value)
    if args.recorded:
        fixed["recording"] = str(Path(args.recorded).resolve())
    rows = dict(spec["vary"]["searcher"])
    if mode == "macro":
        rows.update({kind: {"kind": kind} for kind in plugin_kinds})
    if args.searchers:
        wanted = {name.strip() for name in args.searchers.split(",")}
        rows = {name: searcher for name, searcher in rows.items() if name in wanted}
    extra = {key.strip(): yaml.safe_load(value) for key, _, value in (item.partition("=") for item in args.searcher_overrides)}
    spec["vary"]["searcher"] = {name: {**searcher, **extra} for name, searcher in rows.items()}
    spec["vary"]["run.seed"] = list(range(args.seeds))
    return spec


def run_sweeps(specs: dict[str, dict], args) -> dict[str, Path]:
    """Run each spec's sweep (resuming one already started) and return each sweep's directory."""
    from fadejax.sweeps.runner import run_sweep
    from fadejax.sweeps.spec import SweepError

    fingerprint = hashlib.sha256(json.dumps([specs, args.plugin], sort_keys=True).encode()).hexdigest()[:10]
    root = Path(args.sweep_dir) if args.sweep_dir else Path("runs") / "sweeps" / f"{args.prefix}-{fingerprint}"
    root.mkdir(parents=True, exist_ok=True)
    print(f"sweep: {root} ({'in this process' if args.inline else 'Ray ' + (args.address or 'on this machine')}); "
          "the same command resumes it")
    directories = {}
    for mode, spec in specs.items():
        spec_path = root / f"{mode}.yaml"
        spec_path.write_text(yaml.safe_dump(spec, sort_keys=False))
        try:
            run_sweep(spec_path, root / mode, address=args.address, resume=True, cpus=args.cpus, plugins=args.plugin, inline=args.inline)
        except SweepError as error:
            raise SystemExit(f"error: {error}")
        directories[mode] = root / mode
    return directories


def load_run(run_dir: Path, name: str, seed: int) -> Run:
    """A finished point's queries and curve, from its records and ``metrics.jsonl``."""
    fast = read_columns(records_path(run_dir), {"iteration": "int64", "sample": "int64", "cell": "int64", "failed": "bool"})
    if fast is not None:
        iteration, samples, cells, failed = (fast[0][k] for k in ("iteration", "sample", "cell", "failed"))
    else:  # line by line: a point's records Arrow cannot vouch for
        rows = [(r["iteration"], r["sample"], r["cell"], r["failed"]) for r in read_records(records_path(run_dir))]
        iteration, samples, cells, failed = (np.asarray(column) for column in zip(*rows))
        failed = failed.astype(bool)
    curve = np.cumsum(np.bincount(iteration, weights=failed.astype(np.float64), minlength=int(iteration.max()) + 1))
    times = [row["seconds"] for row in read_metrics(run_dir / METRICS_FILE) if row.get("seconds") is not None]
    seconds = float(np.sum(times[1:]) + np.median(times[1:])) if len(times) > 1 else float(np.sum(times))
    return Run(name, seed, samples, cells, failed, curve, None, seconds, query_drawn(records_path(run_dir)))


def collect(directories: dict[str, Path], specs: dict[str, dict], task, args) -> tuple[dict[str, list[Run]], list[str]]:
    """Every complete point as a :class:`Run` (the searcher's own ranking from its final
    checkpoint), the greedy evaluation of each paper-preset DQN, and the failed points."""
    runs: dict[str, list[Run]] = {}
    failed = []
    with tempfile.TemporaryDirectory() as tmp:
        for sweep_dir in directories.values():
            manifest = json.loads((sweep_dir / MANIFEST).read_bytes())
            built: dict[str, Discovery] = {}
            for entry in manifest["points"]:
                name, seed, run_dir = entry["values"]["searcher"], entry["values"]["run.seed"], sweep_dir / entry["dir"]
                if entry["status"] != "complete":
                    failed.append(f"{name} seed {seed}: {entry.get('error') or entry['status']} (log: {log_path(run_dir)})")
                    continue
                run = load_run(run_dir, name, seed)
                runs.setdefault(name, []).append(run)
                if name not in built:
                    built[name] = build_discovery(load_config(run_dir / "config.yaml"), task)
                discovery = built[name]
                state = load_latest_state(run_dir, discovery) if discovery.mode == "macro" else None
                if state is not None:
                    run.estimate = np.asarray(discovery.searcher.action_scores(state.searcher, task.observations).mean(0))
                print(f"  {name:<24} seed {seed}: {int(run.failed.sum()):6d} failures in {run.seconds:5.1f} s", flush=True)
                if name == "dqn (paper)":
                    frozen = Discovery(task, FrozenGreedy(discovery.searcher, state.searcher), mode="macro", num_envs=args.num_envs)
                    warm_up(frozen)
                    evaluation, _ = run_searcher(frozen, 10_000 + seed, args.iterations, Path(tmp))
                    evaluation.name, evaluation.seed = GREEDY_EVAL, seed
                    runs.setdefault(GREEDY_EVAL, []).append(evaluation)
                    print(f"  {GREEDY_EVAL:<24} seed {seed}: {int(evaluation.failed.sum()):6d} failures in {evaluation.seconds:5.1f} s", flush=True)
    order = [name for spec in specs.values() for name in spec["vary"]["searcher"]]
    if GREEDY_EVAL in runs:
        order.insert(order.index("dqn (paper)") + 1, GREEDY_EVAL)
    return {name: sorted(runs[name], key=lambda r: r.seed) for name in order if name in runs}, failed


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--config", help="base config (default: the spec's, configs/digits.yaml)")
    parser.add_argument("--recorded", help="replay this recording (.npz) instead of calling the audited model")
    parser.add_argument("--iterations", type=int, default=50, help="iterations per run (budget = iterations x num-envs)")
    parser.add_argument("--num-envs", type=int, default=256)
    parser.add_argument("--seeds", type=int, default=5)
    parser.add_argument("--searchers", help="comma-separated row names from the spec (default: all)")
    parser.add_argument("--micro", action="store_true", help="add microscopic-mode rows (configs/sweeps/table1_micro.yaml)")
    parser.add_argument("--set", dest="overrides", action="append", default=[], metavar="FIELD=VALUE",
                        help="override a config field, as for fadejax discover (e.g. micro.max_steps=12)")
    parser.add_argument("--searcher-set", dest="searcher_overrides", action="append", default=[], metavar="FIELD=VALUE",
                        help="set a field of every chosen row's searcher (e.g. discount=0.7), for sweeps")
    parser.add_argument("--estimator-set", dest="estimator_overrides", action="append", default=[], metavar="FIELD=VALUE",
                        help="score with the report's model set so (a field of the posterior searcher's config, e.g. "
                             "interaction_prior_std=0.5); the runs are not re-run, so on an existing --sweep-dir this rescores them")
    parser.add_argument("--plugin", action="append", default=[], metavar="FILE.py",
                        help="import this module of yours first; each searcher it registers gets a row (repeatable)")
    parser.add_argument("--curve-points", type=int, default=40, help="points on the recall@10-vs-queries curve (q@0.9 is read off them)")
    parser.add_argument("--truth-dir", help="where ground_truth.json is kept (computed once; default runs/<config name>)")
    parser.add_argument("--out", default="benchmarks/results")
    parser.add_argument("--sweep-dir", help="where the sweep's run directories go (default runs/sweeps/<table>-<hash of the spec>)")
    runner = parser.add_mutually_exclusive_group()
    runner.add_argument("--address", help="run the points on this Ray cluster (HOST:PORT; every node must see the sweep directory)")
    runner.add_argument("--cpus", type=int, help="CPUs of the local Ray (default: all of this machine's)")
    runner.add_argument("--inline", action="store_true", help="no Ray: run the points one after another in this process")
    args = parser.parse_args()

    try:
        plugin_kinds = import_plugins(args.plugin)
    except PluginError as error:
        parser.error(str(error))
    base = Path(args.config).resolve() if args.config else (SPECS["macro"].parent / yaml.safe_load(SPECS["macro"].read_text())["base"]).resolve()
    modes = ["macro", "micro"] if args.micro else ["macro"]
    specs = {mode: make_spec(mode, args, base, plugin_kinds) for mode in modes}
    if args.searchers:
        known = [name for mode in modes for name in yaml.safe_load(SPECS[mode].read_text())["vary"]["searcher"]] + plugin_kinds
        unknown = {name.strip() for name in args.searchers.split(",")} - set(known) - {GREEDY_EVAL}
        if unknown:
            parser.error(f"unknown searchers {sorted(unknown)}; choose from {known}")
    specs = {mode: spec for mode, spec in specs.items() if spec["vary"]["searcher"]}
    estimator = estimator_config(args.estimator_overrides, parser)
    config, task, truth, stats_, args.prefix = build(args, base)
    if estimator is not None:  # its own files: a rescoring never overwrites the table of the report's own model
        args.prefix += "_estimator_" + "_".join(re.sub(r"[^A-Za-z0-9._]+", "-", item) for item in args.estimator_overrides)
    sizes = task.space.sizes
    budget = args.iterations * args.num_envs
    print(f"budget: {budget} queries per run, {args.seeds} seeds")
    runs, failed = collect(run_sweeps(specs, args), specs, task, args)
    runs["ceiling (worst cell)"] = [ceiling_run(task, truth, seed, args.iterations, args.num_envs) for seed in range(args.seeds)]
    if args.recorded and budget <= task.recording.failed.size:  # the truth table: what a searcher knowing it would find
        table = task.recording.failed
        additive = metrics.additive_known_order(table)
        runs[BOUNDS[0]] = [bound_run(BOUNDS[0], additive, table, seed, args.iterations, args.num_envs) for seed in range(args.seeds)]
        runs[BOUNDS[1]] = [bound_run(BOUNDS[1], metrics.oracle_order(table, seed), table, seed, args.iterations, args.num_envs)
                           for seed in range(args.seeds)]

    for group in runs.values():
        for run in group:
            score(run, truth, sizes, task.num_samples, budget, args.curve_points, estimator)
    stats_["margin"] = metrics.top_k_margin(truth, task.num_samples, min(10, truth.size))
    stats_["num_samples"] = task.num_samples
    stats_["deterministic"] = bool(task.deterministic)
    stats_["truth"] = truth
    stats_["describe"] = task.space.describe
    if "random" in runs:
        random_rate = {r.seed: r.values["count"] / budget for r in runs["random"]}
    else:  # random's expected rate: the landscape mean
        random_rate = {seed: float(truth.mean()) for seed in range(args.seeds)}
    ceiling_rate = {r.seed: r.values["count"] / budget for r in runs["ceiling (worst cell)"]}
    for group in runs.values():
        for run in group:
            baseline = random_rate.get(run.seed, float(truth.mean()))  # a seed whose random point failed: the landscape mean
            run.values["gain"] = (run.values["count"] / budget - baseline) / (ceiling_rate[run.seed] - baseline)

    if args.micro and args.recorded:  # what any walker could find: the cheapest failing pairs, one episode each
        moves = first_failure_moves(task.recording.failed, sizes, config.micro_space().start, config.micro.max_steps)
        stats_["walk_bound"] = distinct_failure_bound(moves, budget)
        stats_["crossing_bound"] = crossing_failure_bound(moves, budget)
    what = ("Embedded default (digits CNN, 125 actions)" if config.name == "digits"
            else f"{config.name} ({config.task} audit, {task.space.num_actions} actions, {task.num_samples} held-out samples)")
    if args.recorded:
        what += f", replayed from the recording {Path(args.recorded).name}"
    if estimator is not None:
        what += ", scored with the report's model set to " + ", ".join(args.estimator_overrides)
    write_outputs(runs, Path(args.out), budget, args.seeds, stats_, what, args.prefix)
    if failed:
        print(f"\n{len(failed)} point(s) failed and are missing from the table:\n  " + "\n  ".join(failed), file=sys.stderr)
        raise SystemExit(1)


#: the settings of the report's model (the posterior searcher's priors; its other fields choose queries)
REPORT_MODEL_FIELDS = ("sample_prior_std", "axis_prior_std", "cell_prior_std", "bias_prior_std", "interaction_prior_std")


def estimator_config(overrides: list[str], parser: argparse.ArgumentParser) -> PosteriorConfig | None:
    """The report's model settings from ``--estimator-set FIELD=VALUE`` items (``None``: the report's own);
    a malformed item, unknown field or invalid value ends the command with one line naming it."""
    if not overrides:
        return None
    fields = {}
    for item in overrides:
        name, sep, value = item.partition("=")
        if not sep or not name:
            parser.error(f"--estimator-set {item!r}: expected FIELD=VALUE")
        fields[name.strip()] = yaml.safe_load(value)
    unknown = sorted(set(fields) - set(REPORT_MODEL_FIELDS))
    if unknown:
        parser.error(f"--estimator-set: unknown field(s) {unknown}; the report's model has {list(REPORT_MODEL_FIELDS)}")
    try:
        return PosteriorConfig(**fields)
    except pydantic.ValidationError as error:
        problem = error.errors()[0]
        parser.error(f"--estimator-set {'.'.join(str(x) for x in problem['loc'])}: {problem['msg']}")


def write_outputs(runs: dict[str, list[Run]], out: Path, budget: int, seeds: int, truth_stats: dict, what: str, prefix: str) -> None:
    out.mkdir(parents=True, exist_ok=True)
    aggregate = {name: {c: metrics.mean_ci([r.values.get(c, float("nan")) for r in group]) for c in COLUMNS} for name, group in runs.items()}
    # Queries to recall@10 >= 0.9: a seed that never gets there is not a missing value but
    # "more than the budget", so the column is the median over seeds (inf counted) and how many got there.
    reach = {}
    for name, group in runs.items():
        q = np.asarray([r.values.get("q@0.9", np.nan) for r in group], float)
        q = q[~np.isnan(q)]
        reach[name] = (float(np.median(q)) if q.size else float("nan"), int(np.isfinite(q).sum()), int(q.size))
        aggregate[name]["q@0.9"] = reach[name][:2]

    def cell(mean: float, half: float, digits: int) -> str:
        if not np.isfinite(mean):
            return "—"
        return f"{mean:.{digits}f} ± {half:.{digits}f}" if np.isfinite(half) else f"{mean:.{digits}f}"

    def reach_cell(name: str) -> str:
        median, reached, total = reach[name]
        if not total:
            return "—"
        return (f"{median:.0f}" if np.isfinite(median) else f"> {budget}") + f" ({reached}/{total})"

    digits = {"count": 0, "distinct": 0, "re-asked": 3, "recall@10": 2, "coverage": 2, "q@0.9": 0, "entropy": 2, "own@10": 2,
              "spearman": 2, "W1": 2, "gain": 2, "seconds": 1}
    lines = [
        f"{what}, {budget} queries per run, mean ± 95% CI over {seeds} seeds.",
        f"Ground truth: mean failure rate {truth_stats['mean_failure_rate']:.3f}, worst cell {truth_stats['worst_failure_rate']:.3f}.",
        "",
        "| searcher | " + " | ".join(COLUMNS) + " |",
        "|---|" + "---|" * len(COLUMNS),
    ]
    for name, row in aggregate.items():
        lines.append(f"| {name} | " + " | ".join(reach_cell(name) if c == "q@0.9" else cell(*row[c], digits[c]) for c in COLUMNS) + " |")
    lines += target_lines(runs, aggregate, reach, reach_cell, truth_stats)
    lines += target_lines(runs, aggregate, reach, reach_cell, truth_stats, default=MICRO_DEFAULT_ROW)
    if "walk_bound" in truth_stats:
        lines += ["", f"Microscopic walks (≤ max_steps moves from the start cell, one failure per episode) can find at most "
                      f"{truth_stats['walk_bound']} distinct failures in {budget} queries where every move is a query, even knowing "
                      f"the table, and at most {truth_stats['crossing_bound']} where moves onto pairs the run already answered cost "
                      "no query (posterior_walk's skip_known_moves, the default) (fadejax.core.walks)."]
    table = "\n".join(lines)
    (out / f"{prefix}.md").write_text(table + "\n")
    print("\n" + table)

    with open(out / f"{prefix}.csv", "w", newline="") as f:
        writer = csv.writer(f)
        # (q@0.9's pair is the median over seeds and the number of seeds that reached 0.9)
        writer.writerow(["searcher"] + [f"{c}_{part}" for c in COLUMNS for part in (("median", "seeds_reached") if c == "q@0.9" else ("mean", "ci95"))])
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


DEFAULT_ROW = "posterior (default)"
#: the microscopic default's row (``--micro``): judged against the other microscopic rows only
MICRO_DEFAULT_ROW = "micro: posterior walk"


def missed_cells(group: list[Run], truth_stats: dict, most: int = 3) -> str:
    """The true top-k cells (k of ``truth_stats["margin"]``) the report's final top k left out
    most often over ``group``'s seeds, with their true rank and rate: a swap at the boundary
    or a cell misjudged."""
    truth = truth_stats.get("truth")
    tops = [r.report_top for r in group if r.report_top is not None]
    if truth is None or not tops:
        return ""
    true_top = metrics.true_top_cells(truth, truth_stats["margin"]["k"])
    missed = np.zeros(truth.size, np.int64)
    for top in tops:
        if np.setdiff1d(top, true_top).size:  # (a top 10 of truly top cells leaves out only ties)
            missed[np.setdiff1d(true_top, top)] += 1
    if not missed.any():
        return ""
    rank = np.empty(truth.size, np.int64)
    rank[np.argsort(-truth, kind="stable")] = np.arange(1, truth.size + 1)
    describe = truth_stats.get("describe")

    def name(cell: int) -> str:
        if describe is None:
            return f"cell {cell}"
        return "(" + ", ".join(f"{axis} {value:g}" if isinstance(value, float) else f"{axis} {value}" for axis, value in describe(cell).items()) + ")"

    worst = [int(c) for c in np.argsort(-missed, kind="stable")[:most] if missed[c]]
    return "; left out of the report's top 10: " + ", ".join(
        f"{name(c)}, true rank {rank[c]} at {truth[c]:.3f}, on {missed[c]}/{len(tops)} seeds" for c in worst)


def target_lines(runs: dict[str, list[Run]], aggregate: dict, reach: dict, reach_cell, truth_stats: dict,
                 default: str = DEFAULT_ROW) -> list[str]:
    """The ``default`` row (the macroscopic default, or :data:`MICRO_DEFAULT_ROW`) against the
    targets of "every query counts" (docs: benchmarks/RESULTS.md), each said met or not, with
    what limits the ranking targets on this landscape; ``reach_cell`` formats a row's queries to
    recall@10 ≥ 0.9 ("median (reached/seeds)"). A row is compared with the searchers of its own
    mode only (walks and free choices of cells answer different questions); a microscopic row
    has no distinct-pairs target against the additive-known bound (a walk cannot reach most of
    those pairs) and is shown against what crossing walks could find instead."""
    if default not in aggregate or "margin" not in truth_stats:
        return []
    micro = default.startswith("micro: ")
    row = aggregate[default]
    others = [n for n in aggregate if n != default and n not in BOUNDS and not n.startswith("ceiling")
              and n.startswith("micro: ") == micro]
    verdict = lambda ok: "met" if ok else "**not met**"  # noqa: E731
    kind = "microscopic default" if micro else "default"
    lines = ["", f"Targets of the {kind} row ({default}):", ""]
    distinct, half = row["distinct"]
    if micro and truth_stats.get("crossing_bound"):  # (0 where no sample fails within reach)
        lines.append(f"* distinct failing pairs: {distinct:.0f}, {distinct / truth_stats['crossing_bound']:.2f} of the "
                     f"{truth_stats['crossing_bound']} crossing walks could find knowing the table (no target)")
    if BOUNDS[0] in aggregate and not micro:
        bound = aggregate[BOUNDS[0]]["distinct"][0]
        lines.append(f"* distinct failing pairs ≥ 0.9 × the additive-known bound: {distinct:.0f} / {bound:.0f} = {distinct / bound:.3f}: "
                     + verdict(distinct >= 0.9 * bound))
    if others:
        best = max(others, key=lambda n: aggregate[n]["distinct"][0])
        b_mean, b_half = aggregate[best]["distinct"]
        apart = distinct - (half if np.isfinite(half) else 0) > b_mean + (b_half if np.isfinite(b_half) else 0)
        lines.append(f"* above every other searcher's distinct failing pairs, 95% CIs apart: the next, {best}, "
                     f"{b_mean:.0f} ± {b_half:.0f}: " + verdict(apart))
    if truth_stats.get("deterministic"):
        lines.append(f"* re-asked pairs 0% on this deterministic audit: {100 * row['re-asked'][0]:.1f}%: " + verdict(row["re-asked"][0] == 0))
    m, n = truth_stats["margin"], truth_stats["num_samples"]
    k = m["k"]
    kth = f"{k}{'th' if 10 <= k % 100 <= 20 else {1: 'st', 2: 'nd', 3: 'rd'}.get(k % 10, 'th')}"
    limit = (f"the {kth} worst cell truly fails on {m['kth']:.3f} of the {n} samples and the next lower on {m['next']:.3f}, "
             f"{m['gap_samples']} sample(s) apart; {m['near']} cells lie within 2 points of the {kth}")
    recall = row["recall@10"][0]
    # a mean of per-seed recalls (multiples of 1/k) sums in floating point: 0.95 can come out a hair below
    lines.append(f"* recall@10 ≥ 0.95: {recall:.2f}: {verdict(round(recall, 9) >= 0.95)} ({limit}){missed_cells(runs[default], truth_stats)}")
    coverage = row["coverage"][0]
    lines.append(f"* interval coverage ≥ 0.9: {coverage:.2f}: " + verdict(coverage >= 0.9))
    if others:
        mine = [r.values.get("q@0.9", np.nan) for r in runs[default]]

        def versus(o: str) -> str:
            p = metrics.reach_difference(mine, [r.values.get("q@0.9", np.nan) for r in runs[o]])
            return f"{o} {reach_cell(o)} seeds, Mann-Whitney " + (f"p = {p:.2f}" if not p < 0.01 else "p < 0.01")

        # a row is ahead if it got there on some seed and its (median, seeds short) is no worse
        ahead = [o for o in others if reach[o][1] and (reach[o][0], -reach[o][1]) <= (reach[default][0], -reach[default][1])]
        head = f"* queries to recall@10 ≥ 0.9 fewer than every baseline's: {reach_cell(default)} seeds: "
        if not reach[default][1]:  # no seed got there: nothing to compare by Mann-Whitney
            reached = [o for o in others if reach[o][1]]
            lines.append(head + "**not met**: no seed got there" + (f"; {', '.join(f'{o} {reach_cell(o)}' for o in reached)} did"
                                                                    if reached else ", nor any other row's"))
        elif not ahead:
            closest = min((o for o in others if reach[o][2]), key=lambda o: (reach[o][0], -reach[o][1]), default=None)
            lines.append(head + "met" + (f"; the closest, {versus(closest)}" if closest else ""))
        else:
            lines.append(head + "**not met**; at or below it: " + "; ".join(versus(o) for o in ahead)
                         + " (a p above 0.05: the seeds do not tell the two apart)")
    return lines


if __name__ == "__main__":
    main()
