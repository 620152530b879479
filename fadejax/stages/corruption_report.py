"""The report's common-corruptions section: which rates it is computed from, its HTML, and
its CSV. The figures themselves are :mod:`fadejax.analysis.robustness`'s."""

from __future__ import annotations

import csv
import html
from pathlib import Path
from typing import Any

import numpy as np

from fadejax.analysis.estimates import CellEstimates
from fadejax.analysis.robustness import names_a_corruption, robustness
from fadejax.core.spaces import format_value
from fadejax.engine.config import ExperimentConfig


def corruption_figures(config: ExperimentConfig, estimates: CellEstimates, truth: np.ndarray | None,
                       family_rates: tuple[list[str], np.ndarray, np.ndarray] | None) -> dict[str, Any] | None:
    """The section's figures (:meth:`fadejax.analysis.robustness.Robustness.as_dict`), or None
    when no axis of the run's space is a common corruption.

    Args:
      estimates: the records' per-cell estimates (used without ``truth``).
      truth: ``(A,)`` exhaustive rates (``fadejax landscape``), or None.
      family_rates: for a model family, ``(models, cells (K,), rates (M, K))`` as the family
        section judged them (exhaustive, or each model's estimates).
    """
    names = [a.perturbation_name for a in config.space.axes]
    if not names_a_corruption(names):
        return None
    values = [a.values for a in config.space.axes]
    num_actions = int(np.prod([len(v) for v in values]))

    def dense(cells: np.ndarray, rates: np.ndarray) -> np.ndarray:
        out = np.full(num_actions, np.nan)
        out[cells] = rates
        return out

    models = None
    if family_rates is not None:
        members, cells, matrix = family_rates
        models = {m: dense(cells, matrix[i]) for i, m in enumerate(members)}
    if truth is not None:
        figures = robustness(names, values, truth, source="exhaustive", model_rates=models)
    else:
        figures = robustness(names, values, dense(estimates.cells, estimates.rate), source="estimated", model_rates=models,
                             lower=dense(estimates.cells, estimates.lower), upper=dense(estimates.cells, estimates.upper))
    return None if figures is None else figures.as_dict()


def _pct(value: float | None) -> str:
    return "—" if value is None else f"{value:.1%}"


def corruption_section(r: dict[str, Any]) -> str:
    """The HTML of the section (``r``: :func:`corruption_figures`'s dict)."""
    severities = [format_value(s) for s in r["severities"]]
    head = "".join(f"<th>severity {s}</th>" for s in severities)
    rows = []
    for row in r["rows"]:
        cells = []
        for error, inside, low, high in zip(row["error"], row["in_space"], row["lower"], row["upper"]):
            title = f" title='95% interval {_pct(low)} to {_pct(high)}'" if low is not None and high is not None else ""
            cells.append(f"<td{title}>{_pct(error) if inside else '·'}</td>")
        ce = "—" if row["ce"] is None else f"{row['ce']:.2f}"
        rows.append(f"<tr><td>{html.escape(row['corruption'])}</td>{''.join(cells)}<td>{ce}</td></tr>")
    mean_ce = "—" if r["mean_ce"] is None else f"{r['mean_ce']:.2f}"
    source = ("every cell on every held-out sample (fadejax landscape)" if r["source"] == "exhaustive"
              else "the records' estimates of each cell's rate on the whole held-out set (hover a rate for its 95% interval)")
    table = (f"<table id='corruption-errors'><thead><tr><th>corruption</th>{head}<th>CE (sum over severities)</th></tr></thead>"
             f"<tbody>{''.join(rows)}</tbody></table><p>Mean CE over corruptions: {mean_ce}.</p>") if rows else \
        "<p class='muted'>No cell applies one common corruption alone.</p>"
    relative = ""
    if r["relative"]:
        base = r["relative"]["baseline"]
        corruptions = [row["corruption"] for row in r["rows"]]
        models = r["relative"]["models"]
        head_r = "".join(f"<th>{html.escape(c)}</th>" for c in corruptions)
        body = "".join(
            f"<tr><td>{html.escape(m)}</td>" + "".join(
                f"<td>{'—' if f['relative'].get(c) is None else format(f['relative'][c], '.2f')}</td>" for c in corruptions)
            + f"<td>{'—' if f['mce'] is None else format(f['mce'], '.2f')}</td></tr>" for m, f in models.items())
        relative = (f"<h3>Relative to {html.escape(base)}</h3><p class='muted'>Each model's CE of a corruption divided by "
                    f"{html.escape(base)}'s (the family's first model plays the part AlexNet plays in ImageNet-C); mCE is their "
                    f"mean.</p><table id='corruption-relative'><thead><tr><th>model</th>{head_r}<th>mCE</th></tr></thead>"
                    f"<tbody>{body}</tbody></table>")
    interactions = ""
    if r["interactions"]:
        body = "".join(
            f"<tr><td>{html.escape(' + '.join(f'{n} {format_value(v)}' for n, v in row['terms']))}</td><td>{_pct(row['rate'])}</td>"
            f"<td>{html.escape(', '.join(_pct(p) for p in row['parts']))}</td><td>{_pct(row['independent'])}</td>"
            f"<td>{row['interaction']:+.1%}</td></tr>" for row in r["interactions"])
        interactions = (f"<h3>Combinations, by how much worse they are than their parts</h3><p class='muted'>Interaction: the "
                        f"combination's rate minus its worst part's alone ({r['combinations']} combinations ranked, the first "
                        f"{len(r['interactions'])} shown). 'If independent': the rate were each part to fail on its own.</p>"
                        f"<table id='corruption-interactions'><thead><tr><th>combination</th><th>rate</th><th>each part alone</th>"
                        f"<th>if independent</th><th>interaction</th></tr></thead><tbody>{body}</tbody></table>")
    notes = "".join(f"<li>{html.escape(n)}</li>" for n in r["notes"])
    return (f"<h2 id='corruptions'>Common corruptions</h2><p>Failure rate (for a classifier: its error) under each corruption alone, "
            f"from {html.escape(source)}; CE sums a corruption's errors over the severities in the space, as ImageNet-C reports "
            f"it unnormalised.</p><ul class='notes'>{notes}</ul>{table}{relative}{interactions}")


def write_corruptions_csv(r: dict[str, Any], path: Path) -> None:
    """``corruption, severity, error, lower, upper`` per corruption and severity in the space."""
    with open(path, "w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(["corruption", "severity", "error", "lower", "upper"])
        for row in r["rows"]:
            for s, error, inside, low, high in zip(r["severities"], row["error"], row["in_space"], row["lower"], row["upper"]):
                if inside:
                    writer.writerow([row["corruption"], s, *("" if v is None else f"{v:.6f}" for v in (error, low, high))])
