"""A sweep's results as tables and a figure: ``fadejax sweep --report DIR``.

Writes into the sweep directory:

* ``sweep.csv``: one row per point (tidy): its index, the varied fields as columns, the
  status (and error of a failed point), iterations, queries, distinct failing (sample,
  cell) pairs, the share of queries that re-asked a pair, failures, failure rate, and,
  against a ground truth (the spec's ``ground_truth``, else the point's own
  ``ground_truth.json``; empty without one), recall@10 of the report's ranking, the
  coverage of its 95% intervals over the true top 10 and the captured gain, then the
  median queries per second of its iterations. The captured
  gain is Table 1's: ``(failure rate - random's) / (ceiling's - random's)``, with their
  expected rates from the truth (random search: the mean cell's rate; the ceiling,
  always the worst cell on uniformly drawn samples: the worst cell's rate); 0 is no
  better than random search, 1 as good as knowing the worst cell;
* ``summary.csv`` and ``summary.md``: per group of points that differ only in fields
  named like a seed (``run.seed``, ``...seed``), each figure's mean with the half-width
  of its 95% t-interval over the group's complete points (Table 1's form);
* ``summary.png``: failures found and recall@10 per group, with the 95% intervals.
"""

from __future__ import annotations

import csv
import json
from pathlib import Path
from typing import Any

import numpy as np

from fadejax.analysis.metrics import mean_ci
from fadejax.engine.store.rundir import read_status
from fadejax.sweeps.runner import MANIFEST
from fadejax.sweeps.spec import SweepError

#: Information first: distinct failing (sample, cell) pairs and the share of queries that re-asked one
#: (from the records), then, against a ground truth, recall@10 and the coverage of the report's
#: 95% intervals over the true top 10; then the paper's failing queries.
FIGURES = ("distinct", "reasked", "recall@10", "coverage", "failures", "failure_rate", "gain", "queries_per_s")


def point_row(sweep_dir: Path, entry: dict[str, Any], ground_truth: Path | None, trust_code: bool) -> dict[str, Any]:
    """One point's row of ``sweep.csv``."""
    from fadejax.stages.compare import CompareError, load_curves

    row: dict[str, Any] = {"index": entry["index"], **entry["values"], "status": entry["status"], "error": entry.get("error") or ""}
    row.update({name: None for name in ("iterations", "queries", *FIGURES)})
    if entry["status"] != "complete":
        return row
    run_dir = sweep_dir / entry["dir"]
    status = read_status(run_dir)
    row.update(iterations=status.get("iterations"), queries=status.get("queries"), failures=status.get("failures"))
    if row["queries"]:
        row["failure_rate"] = row["failures"] / row["queries"]
    try:
        curves = load_curves(run_dir, trust_code=trust_code, ground_truth=ground_truth, points=1)
    except CompareError as exc:
        raise SweepError(f"point {entry['index']}: {exc}") from None
    speeds = curves.columns.get("queries_per_s")
    if speeds is not None and np.isfinite(speeds).any():
        row["queries_per_s"] = float(np.nanmedian(speeds))
    for name in ("distinct", "reasked", "coverage"):
        if name in curves.figures:
            row[name] = curves.figures[name]
    if curves.recall is not None:
        row["recall@10"] = float(curves.recall[1][-1])
    if curves.truth_rates is not None and row["failure_rate"] is not None:
        row["gain"] = captured_gain(row["failure_rate"], curves.truth_rates)
    return row


def captured_gain(failure_rate: float, truth_rates: np.ndarray) -> float:
    """Share of the gap between random search and always asking the worst cell that a
    run's ``failure_rate`` captured, from the truth's ``(A,)`` per-cell rates (NaN when
    every cell fails equally often: there is no gap)."""
    random_rate, ceiling = float(np.mean(truth_rates)), float(np.max(truth_rates))
    return (failure_rate - random_rate) / (ceiling - random_rate) if ceiling > random_rate else float("nan")


def write_report(sweep_dir: str | Path, *, trust_code: bool = False) -> dict[str, Path]:
    """Write ``sweep.csv``, ``summary.csv``, ``summary.md`` and ``summary.png``; returns their paths."""
    sweep_dir = Path(sweep_dir)
    path = sweep_dir / MANIFEST
    if not path.is_file():
        raise SweepError(f"'{sweep_dir}' is not a sweep directory (no {MANIFEST})")
    try:
        manifest = json.loads(path.read_bytes())
        entries, spec = manifest["points"], manifest["spec_contents"]
    except (ValueError, KeyError, TypeError) as exc:
        raise SweepError(f"'{path}' is not a sweep manifest ({exc})") from None
    ground_truth = None
    if spec.get("ground_truth"):
        ground_truth = (Path(manifest["spec"]).parent / spec["ground_truth"]).resolve()
    varied = list(spec["vary"])
    rows = [point_row(sweep_dir, e, ground_truth, trust_code) for e in entries]
    columns = ["index", *varied, "status", "iterations", "queries", *FIGURES, "error"]
    files = {"points": sweep_dir / "sweep.csv", "summary": sweep_dir / "summary.csv", "markdown": sweep_dir / "summary.md",
             "figure": sweep_dir / "summary.png"}
    _write_csv(files["points"], columns, rows)
    grouping = [f for f in varied if not f.split(".")[-1].endswith("seed")]
    groups: dict[tuple, list[dict[str, Any]]] = {}
    for row in rows:
        groups.setdefault(tuple(json.dumps(row[f]) for f in grouping), []).append(row)
    summary = []
    for key, members in groups.items():
        done = [r for r in members if r["status"] == "complete"]
        line: dict[str, Any] = {**{f: json.loads(k) for f, k in zip(grouping, key)}, "points": len(members), "complete": len(done)}
        for name in FIGURES:
            values = [r[name] for r in done if r[name] is not None]
            line[name], line[f"{name}_ci95"] = mean_ci(values) if values else (None, None)
        summary.append(line)
    summary_columns = [*grouping, "points", "complete", *[c for n in FIGURES for c in (n, f"{n}_ci95")]]
    _write_csv(files["summary"], summary_columns, summary)
    files["markdown"].write_text(_markdown(summary, grouping, rows))
    _figure(summary, grouping, files["figure"])
    return files


def _write_csv(path: Path, columns: list[str], rows: list[dict[str, Any]]) -> None:
    with open(path, "w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(columns)
        for row in rows:
            writer.writerow(["" if row.get(c) is None or (isinstance(row.get(c), float) and not np.isfinite(row[c])) else row[c] for c in columns])


def _cell(mean: float | None, half: float | None, digits: int) -> str:
    if mean is None or not np.isfinite(mean):
        return "—"
    return f"{mean:.{digits}f}" + ("" if half is None or not np.isfinite(half) else f" ± {half:.{digits}f}")


def _markdown(summary: list[dict[str, Any]], grouping: list[str], rows: list[dict[str, Any]]) -> str:
    head = [*grouping, "points", "distinct failing pairs", "re-asked", "recall@10", "coverage", "failures", "failure rate", "gain", "queries/s"]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for s in summary:
        lines.append("| " + " | ".join([*(str(s[f]) for f in grouping), f"{s['complete']}/{s['points']}",
                                         _cell(s["distinct"], s["distinct_ci95"], 0), _cell(s["reasked"], s["reasked_ci95"], 3),
                                         _cell(s["recall@10"], s["recall@10_ci95"], 2), _cell(s["coverage"], s["coverage_ci95"], 2),
                                         _cell(s["failures"], s["failures_ci95"], 0), _cell(s["failure_rate"], s["failure_rate_ci95"], 3),
                                         _cell(s["gain"], s["gain_ci95"], 2), _cell(s["queries_per_s"], s["queries_per_s_ci95"], 0)]) + " |")
    failed = [r for r in rows if r["status"] == "failed"]
    notes = ["", "Mean ± half-width of the 95% t-interval over each group's complete points (seeds)."]
    notes += [f"- point {r['index']} failed: {r['error']}" for r in failed]
    return "\n".join(lines + notes) + "\n"


def _figure(summary: list[dict[str, Any]], grouping: list[str], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    labels = [", ".join(f"{f.split('.')[-1]}={s[f]}" for f in grouping) or "all" for s in summary]
    fig, axes = plt.subplots(1, 2, figsize=(max(6.0, 1.2 * len(summary) + 3), 3.6))
    for ax, name, title in zip(axes, ("failures", "recall@10"), ("failures found", "recall@10 of the report's top 10")):
        means = [np.nan if s[name] is None else s[name] for s in summary]
        halves = [0.0 if s[f"{name}_ci95"] is None or not np.isfinite(s[f"{name}_ci95"]) else s[f"{name}_ci95"] for s in summary]
        ax.bar(range(len(summary)), means, yerr=halves, capsize=4, color="#4c72b0")
        ax.set_xticks(range(len(summary)), labels, rotation=30, ha="right", fontsize=8)
        ax.set_title(title + " (95% CI)", fontsize=10)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
