"""Sweep a searcher's settings on a recording: every grid point x every seed, many settings and
all seeds in one compiled program (:func:`fadejax.engine.fused.run_fused_settings`).

    .venv/bin/python benchmarks/sweep.py --recorded REC.npz --config configs/digits.yaml \\
        --searcher '{"kind": "posterior"}' \\
        --grid 'searcher.identify_fraction=0.2,0.35,0.5' --grid 'searcher.sample_candidates=4,8,16' \\
        [--seeds 5] [--iterations 50] [--num-envs 256] [--set FIELD=VALUE] [--plugin FILE.py]
        [--max-runs-per-program 250] [--out benchmarks/results] [--name sweep]

``--grid FIELD=V1,V2,...`` (repeatable; values parsed as YAML) spans the cartesian product;
``searcher.*`` fields apply on top of ``--searcher`` (default: the config's searcher),
other fields are config overrides (e.g. ``run.num_envs=128,256``). Every run spends
``iterations x num_envs`` queries. Numeric searcher fields that can enter the program as
traced values (tried by tracing: e.g. ``epsilon``, ``posterior_scale``, learning rates) are
swept inside one program, up to ``--max-runs-per-program`` runs at once; fields that set a
shape or a Python branch (``identify_fraction``, ``sample_candidates``, hidden sizes) and
non-searcher fields get one program per value. Writes ``<name>.csv``, one row per run — the grid
values, seed, failures, failure rate, gain vs random = (rate - landscape mean) /
(worst cell - landscape mean), and recall@10 of the report's ranking
(:func:`fadejax.analysis.estimates.cell_estimates` on the run's queries, scored with
:func:`fadejax.analysis.metrics.recall_at_k`) — and ``<name>.png`` (failures per grid point, mean and
95% t-interval over seeds). Prints runs per second excluding compilation, and the
compilation time, separately from the (host-side) recall scoring.
"""

from __future__ import annotations

import argparse
import csv
import itertools
import json
import os
import sys
import time
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import numpy as np  # noqa: E402
import yaml  # noqa: E402

from fadejax.analysis import metrics  # noqa: E402
from fadejax.engine.config import load_config, parse_config  # noqa: E402
from fadejax.analysis.estimates import cell_estimates  # noqa: E402
from fadejax.engine import fused  # noqa: E402
from fadejax.engine.recording import replay  # noqa: E402
from fadejax.engine.checkpoints import build_discovery  # noqa: E402
from fadejax.searchers.plugins import PluginError, import_plugins  # noqa: E402


def parse_grid(items: list[str]) -> list[tuple[str, list]]:
    grid = []
    for item in items:
        if "=" not in item:
            raise SystemExit(f"--grid '{item}' must look like field.path=V1,V2,...")
        field, raw = item.split("=", 1)
        values = [yaml.safe_load(v) for v in raw.split(",") if v.strip()]
        if not values:
            raise SystemExit(f"--grid '{item}' has no values")
        grid.append((field.strip(), values))
    if len({f for f, _ in grid}) != len(grid):
        raise SystemExit("a --grid field is given twice")
    return grid


def mean_ci(x: np.ndarray) -> tuple[float, float]:
    """:func:`fadejax.analysis.metrics.mean_ci`, with a half-width of 0 where one value gives none."""
    mean, half = metrics.mean_ci(np.asarray(x, np.float64))
    return mean, half if np.isfinite(half) else 0.0


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--recorded", required=True, help="the recording (.npz) to replay")
    parser.add_argument("--config", required=True, help="the config it was recorded from")
    parser.add_argument("--searcher", help="the base searcher as JSON (default: the config's)")
    parser.add_argument("--grid", action="append", default=[], metavar="FIELD=V1,V2", help="a swept field (repeatable)")
    parser.add_argument("--seeds", type=int, default=5)
    parser.add_argument("--iterations", type=int, default=50)
    parser.add_argument("--num-envs", type=int, default=256)
    parser.add_argument("--set", dest="overrides", action="append", default=[], metavar="FIELD=VALUE", help="a fixed config override")
    parser.add_argument("--plugin", action="append", default=[], metavar="FILE.py",
                        help="import this module of yours first (it registers the searcher you sweep; repeatable)")
    parser.add_argument("--max-runs-per-program", type=int, default=250,
                        help="settings x seeds vmapped in one program at most (bounds memory: states and queries grow with it)")
    parser.add_argument("--out", default="benchmarks/results")
    parser.add_argument("--name", default="sweep", help="output file stem")
    args = parser.parse_args()

    try:
        import_plugins(args.plugin)
    except PluginError as error:
        parser.error(str(error))
    grid = parse_grid(args.grid)
    fixed = [*args.overrides, f"run.num_envs={args.num_envs}", f"run.iterations={args.iterations}"]
    base = load_config(args.config, fixed)
    task = replay(base, args.recorded)
    truth = task.recording.failure_rates()
    mean_rate, worst = float(truth.mean()), float(truth.max())
    k = min(10, truth.size)
    budget = args.iterations * args.num_envs
    base_searcher = json.loads(args.searcher) if args.searcher else dict(base.searcher)
    seeds = list(range(args.seeds))
    points = list(itertools.product(*[values for _, values in grid])) or [()]
    print(f"recording {args.recorded}: {task.num_samples} samples x {truth.size} cells (mean {mean_rate:.3f}, worst {worst:.3f})")
    print(f"{len(points)} settings x {len(seeds)} seeds = {len(points) * len(seeds)} runs of {budget} queries")

    def config_of(point: tuple) -> object:
        setting = dict(zip([f for f, _ in grid], point))
        searcher = dict(base_searcher)
        others = []
        for field, value in setting.items():
            if field.startswith("searcher."):
                searcher[field.removeprefix("searcher.")] = value
            else:
                others.append(f"{field}={json.dumps(value)}")
        config = load_config(args.config, fixed + others) if others else base
        return parse_config({**config.model_dump(mode="json"), "searcher": searcher}, source="sweep setting")

    # Searcher fields that enter the program as traced values share one program; the others
    # (shapes, Python branches, config fields outside the searcher) get one program per value.
    first = build_discovery(config_of(points[0]), task)
    batched = []
    for field, _ in grid:
        why = fused.batchable(first, field.removeprefix("searcher.")) if field.startswith("searcher.") else "not a searcher field"
        if why is None:
            batched.append(field)
        print(f"  {field}: " + ("swept inside one program" if why is None else f"one program per value ({why})"))
    static = [i for i, (field, _) in enumerate(grid) if field not in batched]
    groups: dict[tuple, list[tuple]] = {}
    for point in points:
        groups.setdefault(tuple(point[i] for i in static), []).append(point)
    per_program = max(1, args.max_runs_per_program // len(seeds)) if batched else 1

    rows, compile_s, run_s, score_s, programs = [], 0.0, 0.0, 0.0, 0
    for group in groups.values():
        owner = None
        for start in range(0, len(group), per_program):
            chunk = group[start : start + per_program]
            configs = [config_of(point) for point in chunk]
            discoveries = [build_discovery(config, task) for config in configs]
            iterations = configs[0].run.iterations  # run.* fields are never batched: one value per group
            if batched:
                padded = discoveries + [discoveries[-1]] * (per_program - len(chunk) if len(group) > per_program else 0)
                owner = owner or padded[0]  # one compiled program per group and chunk size
                results = fused.run_fused_settings(padded, [f.removeprefix("searcher.") for f in batched], seeds,
                                                   iterations, keep_queries=True, program_of=owner)[: len(chunk)]
                compile_s += results[0].compile_seconds
                run_s += results[0].seconds
                programs += results[0].compile_seconds > 0
            else:
                results = [fused.run_fused(discoveries[0], seeds, iterations, keep_queries=True)]
                compile_s += results[0].compile_seconds
                run_s += results[0].seconds
                programs += 1
            began = time.perf_counter()
            for point, result in zip(chunk, results):
                setting = dict(zip([f for f, _ in grid], point))
                for i, seed in enumerate(seeds):
                    sample, cell, failed = result.queries(i)
                    estimate = cell_estimates(sample, cell, failed, task.num_samples, task.space.sizes, drawn=result.drawn_queries(i))
                    queries = result.iterations * result.num_envs
                    rate = float(failed.sum()) / queries
                    rows.append({**setting, "seed": seed, "queries": queries, "failures": int(failed.sum()), "failure_rate": rate,
                                 "gain": (rate - mean_rate) / (worst - mean_rate),
                                 "recall@10": metrics.recall_at_k(estimate.dense(truth.size), truth, k)})
                if len(points) <= 60:
                    shown = ", ".join(f"{f}={v}" for f, v in setting.items()) or "(base)"
                    failures = [r["failures"] for r in rows[-len(seeds):]]
                    recall = [r["recall@10"] for r in rows[-len(seeds):]]
                    print(f"  {shown:<50} failures {np.mean(failures):8.1f}  recall@10 {np.mean(recall):.2f}", flush=True)
            score_s += time.perf_counter() - began
            print(f"  {len(rows)}/{len(points) * len(seeds)} runs ({run_s:.1f} s running, {compile_s:.1f} s compiling)", flush=True)

    runs = len(rows)
    print(f"\n{runs} runs: {run_s:.2f} s on the device excluding compilation = {runs / run_s:.1f} runs/s "
          f"({sum(r['queries'] for r in rows) / run_s:,.0f} queries/s); compilation {compile_s:.1f} s ({programs} programs); "
          f"recall@10 scoring on the host {score_s:.1f} s")

    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    columns = [f for f, _ in grid] + ["seed", "queries", "failures", "failure_rate", "gain", "recall@10"]
    with open(out / f"{args.name}.csv", "w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=columns)
        writer.writeheader()
        writer.writerows(rows)
    plot(rows, grid, seeds, out / f"{args.name}.png", f"{base_searcher.get('kind')} on {Path(args.recorded).name}, {budget} queries per run")
    print(f"wrote {out / (args.name + '.csv')} and {out / (args.name + '.png')}")


def plot(rows: list[dict], grid: list[tuple[str, list]], seeds: list[int], path: Path, title: str) -> None:
    """Failures per grid point: the first grid field on the x axis, one line per combination of the others."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(8, 5))
    if not grid:
        m, h = mean_ci(np.asarray([r["failures"] for r in rows]))
        ax.errorbar([0], [m], yerr=[h], fmt="o", capsize=4)
        ax.set_xticks([0], ["base"])
    else:
        (x_field, x_values), rest = grid[0], grid[1:]
        positions = np.arange(len(x_values))
        combos = list(itertools.product(*[v for _, v in rest])) or [()]
        for j, combo in enumerate(combos):
            fixed = dict(zip([f for f, _ in rest], combo))
            stats_ = [mean_ci(np.asarray([r["failures"] for r in rows if r[x_field] == x and all(r[f] == v for f, v in fixed.items())]))
                      for x in x_values]
            offset = (j - (len(combos) - 1) / 2) * 0.06  # keep the intervals apart
            label = ", ".join(f"{f.removeprefix('searcher.')}={v}" for f, v in fixed.items()) or None
            ax.errorbar(positions + offset, [s[0] for s in stats_], yerr=[s[1] for s in stats_], fmt="o-", capsize=4, label=label)
        ax.set_xticks(positions, [str(v) for v in x_values])
        ax.set_xlabel(x_field)
        if len(combos) > 1:
            ax.legend(fontsize=8)
    ax.set_ylabel(f"failures found (mean, 95% CI over {len(seeds)} seeds)")
    ax.set_title(title, fontsize=10)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


if __name__ == "__main__":
    main()
