"""``fadejax compare RUN_DIR...``: learning curves of several runs side by side.

For each run directory it reads the learning curves (``metrics.jsonl``: failures found,
throughput and the searcher's own figures per iteration; a run made before they were kept
falls back to its records for the failures) and, where a ground truth exists (the run's
``ground_truth.json`` from ``fadejax landscape``, or ``--ground-truth FILE`` for runs that
share one), the recall@10 of the report's ranking after every tenth of the run's queries.
Every curve is plotted against queries, so runs with different batch sizes line up.

Runs are labelled by the config fields in which they differ (``searcher.kind=dqn,
run.seed=1``); fields that follow from a differing ``kind`` (a DQN's network sizes next
to a random search) are left out of the label. Outputs: ``compare.png`` and ``compare.pdf``
(matplotlib, one panel per curve) and ``compare.html`` (plotly, offline: the library is
inlined, so the page opens without a network).
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Sequence

import numpy as np

from fadejax.engine.config import ExperimentConfig
from fadejax.engine.ground_truth import GROUND_TRUTH_FILE, GroundTruthError, landscape_key, read_ground_truth
from fadejax.engine.store.learning_log import METRICS_FILE, MetricsError, read_metrics
from fadejax.engine.store.records import RecordsError, has_records, query_drawn, read_records, records_path
from fadejax.engine.store.record_columns import read_columns
from fadejax.engine.store.rundir import read_run_config


class CompareError(ValueError):
    """The runs given cannot be compared (a bad run directory, a ground truth of another landscape)."""


@dataclass
class RunCurves:
    """One run's curves, each over ``queries`` (cumulative, one point per iteration)."""

    run_dir: Path
    config: ExperimentConfig
    queries: np.ndarray  # (T,) int64
    columns: dict[str, np.ndarray]  # column name (as in metrics.jsonl) -> (T,) float64, nan where undefined
    recall: tuple[np.ndarray, np.ndarray] | None = None  # (queries (P,), recall@10 (P,)) where a ground truth exists
    truth_rates: np.ndarray | None = None  # (A,) the ground truth's failure rate per cell, where it exists
    figures: dict[str, float] = field(default_factory=dict)  # the run's headline figures at its last query (see compare's table)
    label: str = ""
    notes: list[str] = field(default_factory=list)


#: Panels in this order first; then every searcher figure any run reports.
PANELS = [
    ("distinct_failing_pairs", "distinct failing (sample, cell) pairs found"),
    ("reasked_share", "share of queries that re-asked a pair"),
    ("failures_total", "failing queries (re-asks included)"),
    ("recall@10", "recall@10 of the report's top 10"),
    ("queries_per_s", "queries per second"),
]


def _columns_from_metrics(rows: list[dict[str, Any]]) -> tuple[np.ndarray, dict[str, np.ndarray]]:
    names = sorted({k for row in rows for k in row} - {"iteration", "queries"})
    queries = np.asarray([row["queries"] for row in rows], np.int64)
    columns = {}
    for name in names:
        values = [row.get(name) for row in rows]
        columns[name] = np.asarray([v if isinstance(v, (int, float)) and not isinstance(v, bool) else np.nan for v in values], np.float64)
    return queries, columns


def _queries_of(run_dir: Path) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Every recorded query's ``(iteration, sample, cell, failed)``, each ``(Q,)``."""
    fast = read_columns(records_path(run_dir), {"iteration": "int64", "sample": "int64", "cell": "int64", "failed": "bool"})
    if fast is not None and all((fast[0][k] >= 0).all() for k in ("iteration", "sample", "cell")):
        columns = fast[0]
        return columns["iteration"], columns["sample"], columns["cell"], columns["failed"]
    iteration, sample, cell, failed = [], [], [], []  # line by line: names the bad record
    for number, record in enumerate(read_records(records_path(run_dir)), 1):
        values = (record.get("iteration"), record.get("sample"), record.get("cell"), record.get("failed"))
        if not all(type(v) is int and v >= 0 for v in values[:3]) or type(values[3]) is not bool:
            raise CompareError(f"'{records_path(run_dir)}' record {number} lacks a valid iteration, sample, cell or failed flag")
        iteration.append(values[0])
        sample.append(values[1])
        cell.append(values[2])
        failed.append(values[3])
    return np.asarray(iteration, np.int64), np.asarray(sample, np.int64), np.asarray(cell, np.int64), np.asarray(failed, bool)


def _truth_for(run_dir: Path, config: ExperimentConfig, ground_truth: Path | None) -> tuple[np.ndarray, int | None] | None:
    """The run's true per-cell rates and held-out sample count, if a ground truth exists."""
    path = Path(ground_truth) if ground_truth is not None else run_dir / GROUND_TRUTH_FILE
    space = config.concept_space()
    try:
        stored = read_ground_truth(path, landscape_key(config), space.num_actions)
    except GroundTruthError as exc:
        raise CompareError(str(exc)) from None
    if stored is None:
        if ground_truth is not None:
            raise CompareError(f"'{path}' is not the ground truth of run '{run_dir}' (another audit or concept space, or no such file)")
        return None
    rates, statistics = stored
    held_out = statistics.get("held_out_samples")
    return rates, held_out if type(held_out) is int and held_out > 0 else None


def load_curves(run_dir: str | Path, *, trust_code: bool = False, ground_truth: str | Path | None = None, points: int = 10) -> RunCurves:
    """One run's learning curves (see the module docstring); :class:`CompareError` (or
    :class:`fadejax.stages.summarize.SummarizeError` for a missing or corrupt config) names what is wrong."""
    run_dir = Path(run_dir)
    config = read_run_config(run_dir, trust_code)
    notes = []
    has_metrics = (run_dir / METRICS_FILE).is_file()
    records_kept = has_records(run_dir)
    if not has_metrics and not records_kept:
        raise CompareError(f"run directory '{run_dir}' has no {METRICS_FILE} or records yet: nothing to compare")
    try:
        rows = list(read_metrics(run_dir / METRICS_FILE)) if has_metrics else []
    except MetricsError as exc:
        raise CompareError(str(exc)) from None
    queries, columns = _columns_from_metrics(rows) if rows else (np.zeros(0, np.int64), {})
    truth = _truth_for(run_dir, config, ground_truth) if records_kept else None
    recorded = None
    if records_kept:
        try:
            recorded = _queries_of(run_dir)
        except RecordsError as exc:
            raise CompareError(str(exc)) from None
    if not rows:
        if recorded is None or recorded[0].size == 0:
            raise CompareError(f"run directory '{run_dir}' has no iterations recorded yet: nothing to compare")
        notes.append(f"{run_dir}: no {METRICS_FILE} (a run from before learning curves were kept): failures from its records only")
        per_iteration = np.bincount(recorded[0], weights=recorded[3].astype(np.float64))
        iterations = np.unique(recorded[0])
        queries = np.cumsum(np.bincount(recorded[0])[iterations]).astype(np.int64)
        columns = {"failures": per_iteration[iterations], "failures_total": np.cumsum(per_iteration[iterations])}
    curves = RunCurves(run_dir, config, queries, columns, notes=notes)
    if recorded is not None and recorded[0].size:
        _add_information_curves(curves, recorded)
    if truth is not None and recorded is not None and recorded[0].size:
        try:
            drawn = query_drawn(records_path(run_dir))
        except RecordsError as exc:
            raise CompareError(str(exc)) from None
        curves.recall = _recall_curve(recorded, drawn, truth, config, points, run_dir)
        curves.truth_rates = truth[0]
        _add_truth_figures(curves, recorded, drawn, truth)
    return curves


def _add_information_curves(curves: RunCurves, recorded) -> None:
    """Per iteration, the distinct failing pairs found so far and the share of queries so far
    that re-asked a pair (from the records), and the run's final figures of both."""
    from fadejax.analysis import metrics

    iteration, sample, cell, failed = recorded
    num_actions = curves.config.concept_space().num_actions
    pairs = sample * num_actions + cell
    _, first = np.unique(pairs, return_index=True)  # each pair's first query
    new_pair = np.zeros(pairs.size, bool)
    new_pair[first] = True
    steps = curves.queries.size
    per_iteration = lambda mask: np.bincount(iteration[mask], minlength=steps)[:steps]  # noqa: E731
    asked = np.cumsum(per_iteration(np.ones(pairs.size, bool))).astype(np.float64)
    with np.errstate(invalid="ignore", divide="ignore"):
        curves.columns["distinct_failing_pairs"] = np.cumsum(per_iteration(new_pair & failed)).astype(np.float64)
        curves.columns["reasked_share"] = np.where(asked > 0, 1.0 - np.cumsum(per_iteration(new_pair)) / asked, np.nan)
    curves.figures.update(queries=float(pairs.size), distinct=float(metrics.distinct_failing_pairs(sample, cell, failed, num_actions)),
                          reasked=metrics.reasked_share(sample, cell, num_actions), failing_queries=float(failed.sum()))


def _add_truth_figures(curves: RunCurves, recorded, drawn: np.ndarray | None, truth: tuple[np.ndarray, int | None]) -> None:
    """Against the ground truth: the report's final recall@10, the coverage of its 95%
    intervals over the true top 10 (checked on the uniformly ``drawn`` ``(Q,)`` queries where
    the records mark them), and the queries until its recall@10 reached 0.9 for good."""
    from fadejax.analysis import metrics
    from fadejax.analysis.estimates import cell_estimates

    _, sample, cell, failed = recorded
    rates, held_out = truth
    num_samples = held_out if held_out is not None else int(sample.max()) + 1
    est = cell_estimates(sample, cell, failed, num_samples, tuple(curves.config.concept_space().sizes), drawn=drawn)
    lower, upper = np.full(rates.size, np.nan), np.full(rates.size, np.nan)
    lower[est.cells], upper[est.cells] = est.lower, est.upper
    k = min(10, rates.size)
    marks, recall = curves.recall
    curves.figures.update(recall_at_10=float(recall[-1]), coverage=metrics.interval_coverage(lower, upper, rates, k),
                          queries_to_recall_0_9=metrics.queries_to_level(list(zip(marks.tolist(), recall.tolist())), 0.9))


def _recall_curve(recorded, drawn: np.ndarray | None, truth: tuple[np.ndarray, int | None], config: ExperimentConfig, points: int,
                  run_dir: Path) -> tuple[np.ndarray, np.ndarray]:
    """Recall@10 of the report's ranking after ``points`` evenly spaced shares of the queries."""
    from fadejax.analysis.estimates import report_recall

    _, sample, cell, failed = recorded
    rates, held_out = truth
    num_samples = held_out if held_out is not None else int(sample.max()) + 1
    if int(sample.max()) >= num_samples or int(cell.max()) >= rates.size:
        raise CompareError(f"the records of run '{run_dir}' name samples or cells outside its ground truth's landscape "
                           f"({rates.size} cells x {num_samples} samples)")
    sizes = tuple(config.concept_space().sizes)
    marks = np.unique(np.linspace(sample.size / points, sample.size, points).astype(np.int64))
    marks = marks[marks > 0]  # more points than queries: no empty prefixes
    recall = [report_recall(sample[:m], cell[:m], failed[:m], rates, sizes, num_samples, drawn=None if drawn is None else drawn[:m])[0]
              for m in marks]
    return marks, np.asarray(recall, np.float64)


def _flatten(data: Any, prefix: str = "") -> dict[str, Any]:
    if isinstance(data, dict):
        out: dict[str, Any] = {}
        for key, value in data.items():
            out.update(_flatten(value, f"{prefix}{key}."))
        return out
    return {prefix.rstrip("."): data}


def differing_fields(configs: Sequence[ExperimentConfig]) -> list[str]:
    """The dotted config fields whose values are not the same in every config, in config
    order; a section's fields are left out where its ``kind`` differs (they follow from it)."""
    flat = [_flatten(c.model_dump(mode="json")) for c in configs]
    keys: list[str] = []
    for f in flat:
        keys += [k for k in f if k not in keys]
    missing = object()
    differ = [k for k in keys if len({json.dumps(f.get(k, missing), sort_keys=True, default=str) for f in flat}) > 1]
    kinds = {k.rsplit(".", 1)[0] for k in differ if k.endswith(".kind")}
    return [k for k in differ if k.endswith(".kind") or not any(k.startswith(section + ".") for section in kinds)]


def labels_for(configs: Sequence[ExperimentConfig], run_dirs: Sequence[Path]) -> list[str]:
    """Each run's label: ``field=value`` for every differing field, else its directory name
    (also added where two runs would share a label)."""
    fields = differing_fields(configs)
    labels = []
    for config in configs:
        flat = _flatten(config.model_dump(mode="json"))
        labels.append(", ".join(f"{k}={_short(flat.get(k))}" for k in fields))
    for i, run_dir in enumerate(run_dirs):
        if not labels[i] or labels.count(labels[i]) > 1:
            labels[i] = f"{labels[i]} ({run_dir.name})" if labels[i] else run_dir.name
    return labels


def _short(value: Any) -> str:
    return value if isinstance(value, str) else json.dumps(value, separators=(",", ":"))


def panels_of(curves: Sequence[RunCurves]) -> list[tuple[str, str]]:
    """``(column, title)`` of every panel some run has data for."""
    panels = [(name, title) for name, title in PANELS if any(_curve(c, name) is not None for c in curves)]
    searcher = sorted({name for c in curves for name in c.columns if name.startswith("searcher.")})
    return panels + [(name, "searcher: " + name.removeprefix("searcher.")) for name in searcher]


def _curve(curves: RunCurves, name: str) -> tuple[np.ndarray, np.ndarray] | None:
    if name == "recall@10":
        return curves.recall
    values = curves.columns.get(name)
    if values is None or not np.isfinite(values).any():
        return None
    return curves.queries, values


def compare(run_dirs: Sequence[str | Path], out_dir: str | Path, *, trust_code: bool = False, ground_truth: str | Path | None = None, points: int = 10) -> dict[str, Any]:
    """Write ``compare.png``, ``compare.pdf`` and ``compare.html`` for ``run_dirs`` into
    ``out_dir``; returns their paths (``png``, ``pdf``, ``html``) and ``notes``, a list of
    what a reader should know (e.g. a run compared from its records only)."""
    run_dirs = [Path(r) for r in run_dirs]
    resolved = [r.resolve() for r in run_dirs]
    repeated = sorted({str(r) for r in run_dirs if resolved.count(r.resolve()) > 1})
    if repeated:
        raise CompareError(f"run directory given more than once: {', '.join(repeated)}")
    if points < 1:
        raise CompareError(f"--points must be at least 1, got {points}")
    curves = [load_curves(r, trust_code=trust_code, ground_truth=ground_truth, points=points) for r in run_dirs]
    for c, label in zip(curves, labels_for([c.config for c in curves], run_dirs)):
        c.label = label
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    panels = panels_of(curves)
    written: dict[str, Any] = _write_figure(curves, panels, out)
    written["html"] = _write_html(curves, panels, out)
    written["table"] = _write_table(curves, out)
    written["notes"] = [note for c in curves for note in c.notes]
    return written


#: The table's columns: (figure, heading, format); information first, the paper's count last.
TABLE = [
    ("queries", "queries", "{:.0f}"),
    ("distinct", "distinct failing pairs", "{:.0f}"),
    ("reasked", "re-asked", "{:.1%}"),
    ("recall_at_10", "recall@10", "{:.2f}"),
    ("coverage", "interval coverage (top 10)", "{:.2f}"),
    ("queries_to_recall_0_9", "queries to recall@10 ≥ 0.9", "{:.0f}"),
    ("failing_queries", "failing queries", "{:.0f}"),
]


def _write_table(curves: Sequence[RunCurves], out: Path) -> Path:
    """``compare.md`` and ``compare.csv``: each run's figures at its last query (``TABLE``;
    those against the ground truth only where it exists; queries to recall 0.9 is ``inf``
    where the run never got there for good)."""
    import csv

    def text(value: float | None, form: str) -> str:
        if value is None or (isinstance(value, float) and np.isnan(value)):
            return "—"
        return "never" if value == float("inf") else form.format(value)

    lines = ["| run | " + " | ".join(h for _, h, _ in TABLE) + " |", "|---|" + "---|" * len(TABLE)]
    lines += [f"| {c.label} | " + " | ".join(text(c.figures.get(k), f) for k, _, f in TABLE) + " |" for c in curves]
    (out / "compare.md").write_text("\n".join(lines) + "\n")
    with open(out / "compare.csv", "w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(["run", "label"] + [k for k, _, _ in TABLE])
        for c in curves:
            writer.writerow([str(c.run_dir), c.label] + ["" if c.figures.get(k) is None else c.figures[k] for k, _, _ in TABLE])
    return out / "compare.md"


def _write_figure(curves: Sequence[RunCurves], panels: list[tuple[str, str]], out: Path) -> dict[str, Path]:
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    cols = min(3, len(panels))
    rows = -(-len(panels) // cols)
    legend_rows = -(-len(curves) // 2)
    height = 3.3 * rows + 0.3 * legend_rows + 0.2
    figure = Figure(figsize=(4.6 * cols, height))
    FigureCanvasAgg(figure)
    axes = figure.subplots(rows, cols, squeeze=False).ravel()
    for ax, (name, title) in zip(axes, panels):
        for i, c in enumerate(curves):
            line = _curve(c, name)
            if line is not None:
                ax.plot(*line, color=f"C{i % 10}", marker="o" if name == "recall@10" else None, markersize=3, linewidth=1.2, label=c.label)
        ax.set_title(title)
        ax.set_xlabel("queries")
        ax.grid(alpha=0.3)
    for ax in axes[len(panels):]:
        ax.set_visible(False)
    handles = {label: h for ax in axes for h, label in zip(*ax.get_legend_handles_labels())}  # every run, once
    figure.legend(list(handles.values()), list(handles), loc="upper center", ncol=2, frameon=False)
    figure.tight_layout(rect=(0, 0, 1, 1 - (0.3 * legend_rows + 0.1) / height))
    paths = {"png": out / "compare.png", "pdf": out / "compare.pdf"}
    figure.savefig(paths["png"], dpi=110)
    figure.savefig(paths["pdf"])
    return paths


def _write_html(curves: Sequence[RunCurves], panels: list[tuple[str, str]], out: Path) -> Path:
    from plotly.subplots import make_subplots

    cols = min(3, len(panels))
    rows = -(-len(panels) // cols)
    figure = make_subplots(rows=rows, cols=cols, subplot_titles=[title for _, title in panels])
    for p, (name, _) in enumerate(panels):
        for i, c in enumerate(curves):
            line = _curve(c, name)
            if line is None:
                continue
            x, y = line
            figure.add_scatter(
                x=x.tolist(), y=[None if not np.isfinite(v) else float(v) for v in y], name=c.label, legendgroup=c.label,
                showlegend=p == 0, mode="lines+markers" if name == "recall@10" else "lines",
                line={"color": _COLOURS[i % len(_COLOURS)]}, row=p // cols + 1, col=p % cols + 1,
            )
    figure.update_xaxes(title_text="queries")
    height = 320 * rows + 160
    figure.update_layout(
        height=height, title={"text": "fadejax compare: " + ", ".join(str(c.run_dir) for c in curves), "y": 1 - 12 / height, "yanchor": "top"},
        legend={"orientation": "h", "x": 0, "y": 1 - 48 / height, "yanchor": "top", "yref": "container"}, margin={"t": 120},
        template="plotly_white",
    )
    path = out / "compare.html"
    path.write_text(figure.to_html(include_plotlyjs=True, full_html=True))
    return path


#: matplotlib's default colour cycle, so the HTML page and the PNG agree.
_COLOURS = ["#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b", "#e377c2", "#7f7f7f", "#bcbd22", "#17becf"]

