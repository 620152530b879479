"""Corruption-robustness figures of a failure landscape, in the terms the common-corruptions
literature reports (Hendrycks & Dietterich, ICLR 2019), and the combinations a
one-at-a-time benchmark cannot see.

Every cell of an image audit's concept space applies a chain of *stages*
(:func:`fadejax.core.perturbations.plan`): a ``corruption`` x ``severity`` pair, a
corruption's own severity axis (``fog: [0, 1, 3, 5]``), or another family (``rotation``).
A stage is *inactive* in a cell when its value changes nothing (severity 0, a family's
identity value); the cell's *terms* are its active stages, each ``(family, value)``. Cells
with the same terms apply the same perturbation and are pooled (their rates averaged).

From one failure rate per cell (the audit's failure: a wrong label for a classifier):

- ``E[c, s]``: the error under corruption ``c`` alone at severity ``s``;
- ``CE[c] = sum_s E[c, s]``: the corruption error summed over the grid's severities
  (unnormalised, as one model's figure);
- for several models (a model family), each model's relative ``CE[c] / CE_base[c]`` and
  ``mCE`` (their mean over corruptions), with the family's first model as the baseline
  (the part AlexNet plays in the benchmark);
- every combination of two or more terms whose parts are each in the space alone, with its
  *interaction*: its rate minus its worst part's (how much worse the combination is than any
  of its parts), and, for reference, the rate if each part failed independently,
  ``1 - prod(1 - E_part)``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Sequence

import numpy as np

from fadejax.core import perturbations
from fadejax.core.corruptions import CORRUPTIONS

#: Above this many cells the figures are not computed (the stages of every cell are listed).
MAX_CELLS = 250_000

#: One active stage of a cell: ``(name, value, is_corruption)``: a common corruption's reference
#: name and its severity, or another family's name and its strength (fadejax's own
#: ``brightness`` is a factor, ImageNet-C's a severity: the flag tells them apart).
Term = tuple[str, float, bool]


@dataclass
class Robustness:
    """The figures (JSON-able through :meth:`as_dict`).

    Attributes:
      source: where the rates come from: ``"exhaustive"`` (every cell on every held-out
        sample) or ``"estimated"`` (the records' shrinkage estimates; cells never asked are
        unknown).
      severities: the severities of the table's columns, ascending.
      rows: one per corruption in the reference's order: ``{corruption, error, in_space,
        lower, upper, ce}``: ``error`` the rate at each of ``severities`` (None: unknown or
        not in the space), ``in_space`` whether the space applies the corruption alone at that
        severity, ``lower`` and ``upper`` its 95% interval (None where exact), ``ce`` the sum
        over the severities in the space (None unless each is known).
      mean_ce: the mean of the known ``ce`` over corruptions.
      relative: for several models, ``{baseline, models: {model: {ce {corruption: CE},
        relative {corruption: CE / CE_base}, mce}}}``.
      interactions: combinations, most interacting first: ``{terms [[family, value]], rate,
        parts [rate per term], worst_part, independent, interaction}``.
      combinations: how many combinations were ranked (``interactions`` keeps the first ``top``).
      notes: what the figures could not cover.
    """

    source: str
    severities: list[float]
    rows: list[dict[str, Any]]
    mean_ce: float | None
    relative: dict[str, Any] | None
    interactions: list[dict[str, Any]]
    combinations: int
    notes: list[str] = field(default_factory=list)

    def as_dict(self) -> dict[str, Any]:
        return {k: getattr(self, k) for k in self.__dataclass_fields__}


def names_a_corruption(names: Sequence[str]) -> bool:
    """Whether any of these perturbation names (one per axis) applies a common corruption."""
    return any(n == perturbations.CORRUPTION_AXIS or perturbations.corruption_of(n) is not None for n in names)


def axis_terms(names: Sequence[str], axis_values: Sequence[Sequence[float | str]]) -> list[tuple[tuple[int, ...], list]] | None:
    """Each stage's axes and its term per value index: ``[(columns, table)]``, ``table`` the
    term of each value of a one-axis stage (``None``: inactive) or, for a ``corruption`` x
    ``severity`` pair, ``table[i][j]`` the term of corruption ``i`` at severity ``j``.
    ``None`` when no stage is a common corruption (nothing to report)."""
    stages = perturbations.plan(names, axis_values, build=False)
    out, any_corruption = [], False
    for stage in stages:
        if len(stage.columns) == 2:
            kinds, severities = axis_values[stage.columns[0]], axis_values[stage.columns[1]]
            table = [[None if float(s) == 0 else (str(k), float(s), True) for s in severities] for k in kinds]
            any_corruption = True
        else:
            (axis,) = stage.columns
            family = names[axis]
            corruption = perturbations.corruption_of(family)
            any_corruption |= corruption is not None
            identity = perturbations.identity(family)
            table = [None if identity is not None and float(v) == identity else (corruption or family, float(v), corruption is not None)
                     for v in axis_values[axis]]
        out.append((stage.columns, table))
    return out if any_corruption else None


def cell_terms(stages: list[tuple[tuple[int, ...], list]], sizes: Sequence[int]) -> list[tuple[Term, ...]]:
    """The active terms of every cell, in stage order: ``(A,)`` list (cells in the space's
    row-major order)."""
    out = []
    for index in np.ndindex(*sizes):
        terms = []
        for columns, table in stages:
            term = table[index[columns[0]]][index[columns[1]]] if len(columns) == 2 else table[index[columns[0]]]
            if term is not None:
                terms.append(term)
        out.append(tuple(terms))
    return out


def _pooled(keys: list[tuple[Term, ...]], rates: np.ndarray) -> dict[tuple[Term, ...], float]:
    """The mean known rate of each distinct term tuple (cells with no known rate are left out)."""
    sums: dict[tuple[Term, ...], list[float]] = {}
    for key, rate in zip(keys, rates.tolist()):
        if np.isfinite(rate):
            sums.setdefault(key, []).append(rate)
    return {key: float(np.mean(v)) for key, v in sums.items()}


def _alone_in_space(keys: list[tuple[Term, ...]]) -> tuple[set[Term], set[Term]]:
    """The corruption terms the space applies: ``(alone, beside)``, ``alone`` those some cell
    applies with nothing else, ``beside`` those it applies only with other families' terms
    (another axis has no identity value), never with another corruption."""
    distinct = set(keys)
    alone = {key[0] for key in distinct if len(key) == 1 and key[0][2]}
    beside = set()
    for key in distinct:
        corruption_terms = [t for t in key if t[2]]
        if len(corruption_terms) == 1 and len(key) > 1 and corruption_terms[0] not in alone:
            beside.add(corruption_terms[0])
    return alone, beside


def _single_corruptions(pooled: dict[tuple[Term, ...], float], alone: set[Term], beside: set[Term]) -> dict[Term, float]:
    """``E[c, s]``: the known rate of each corruption term alone (``alone``, from
    :func:`_alone_in_space`); a term in ``beside`` gets the mean of its known cells with
    other families. A term whose cells are all unknown is left out."""
    single = {key[0]: rate for key, rate in pooled.items() if len(key) == 1 and key[0] in alone}
    mixed: dict[Term, list[float]] = {}
    for key, rate in pooled.items():
        corruption_terms = [t for t in key if t[2]]
        if len(key) > 1 and len(corruption_terms) == 1 and corruption_terms[0] in beside:
            mixed.setdefault(corruption_terms[0], []).append(rate)
    return {**single, **{t: float(np.mean(v)) for t, v in mixed.items()}}


def _summed(single: dict[Term, float], terms: list[Term]) -> float | None:
    """The summed error over ``terms`` (a corruption's severities in the space), None if any is unknown."""
    return float(sum(single[t] for t in terms)) if all(t in single for t in terms) else None


def robustness(names: Sequence[str], axis_values: Sequence[Sequence[float | str]], rates: np.ndarray, *, source: str,
               lower: np.ndarray | None = None, upper: np.ndarray | None = None, model_rates: dict[str, np.ndarray] | None = None,
               top: int = 10) -> Robustness | None:
    """The corruption-robustness figures of a space whose axes are ``names`` with ``axis_values``.

    Args:
      rates: ``(A,)`` failure rate of every cell (row-major over the axes), ``nan`` where unknown.
      source: ``"exhaustive"`` or ``"estimated"`` (see :class:`Robustness`).
      lower, upper: ``(A,)`` 95% interval of each rate (estimates), or None.
      model_rates: for a model family, model -> ``(A,)`` rates, first model the baseline.
      top: combinations kept, most interacting first.

    Returns:
      The figures, or None when no axis of the space is a common corruption.
    """
    stages = axis_terms(names, axis_values)
    if stages is None:
        return None
    sizes = [len(v) for v in axis_values]
    notes: list[str] = []
    if int(np.prod(sizes)) > MAX_CELLS:
        return Robustness(source, [], [], None, None, [], 0, [f"the space has more than {MAX_CELLS:,} cells: no corruption figures"])
    keys = cell_terms(stages, sizes)
    rates = np.asarray(rates, np.float64)
    pooled = _pooled(keys, rates)
    alone, beside = _alone_in_space(keys)
    designed = alone | beside  # the corruption terms the space holds, known or not
    single = _single_corruptions(pooled, alone, beside)
    bounds = {}
    if lower is not None and upper is not None:
        low, high = _pooled(keys, np.asarray(lower, np.float64)), _pooled(keys, np.asarray(upper, np.float64))
        bounds = {key[0]: (low[key], high[key]) for key in low if len(key) == 1 and key in high}
    severities = sorted({s for (_, s, _) in designed})
    rows = []
    for corruption in CORRUPTIONS:
        terms = [(corruption, s, True) for s in severities]
        if not any(t in designed for t in terms):
            continue
        error = [single.get(t) for t in terms]
        ce = _summed(single, [t for t in terms if t in designed])
        rows.append({"corruption": corruption, "error": error, "in_space": [t in designed for t in terms], "ce": ce,
                     "lower": [bounds.get(t, (None, None))[0] for t in terms], "upper": [bounds.get(t, (None, None))[1] for t in terms]})
    if beside:
        notes.append("no cell applies some corruption alone (another axis has no value that leaves the image unchanged): "
                     "its error is averaged over that axis's values")
    if rows and any(r["ce"] is None for r in rows):
        notes.append("a corruption's summed error needs every severity of the grid known; unknown ones (never asked) are left blank")
    known_ce = [r["ce"] for r in rows if r["ce"] is not None]
    relative = _relative(keys, model_rates, alone, beside) if model_rates and len(model_rates) > 1 else None
    interactions = _interactions(pooled)
    if source == "estimated" and rows:
        notes.append("estimated from the records: a cell asked a few times has a wide interval, and so has any figure made "
                     "from it; the exhaustive landscape in the run directory (fadejax landscape --out RUN) makes them exact")
    if not interactions and any(len(k) > 1 for k in pooled):
        notes.append("combinations are in the space, but not each of their parts alone (add severity 0, or the family's "
                     "identity value, to the axes): their interactions cannot be measured")
    return Robustness(source=source, severities=[_number(s) for s in severities], rows=rows, mean_ce=float(np.mean(known_ce)) if known_ce else None,
                      relative=relative, interactions=interactions[:top], combinations=len(interactions), notes=notes)


def _relative(keys: list[tuple[Term, ...]], model_rates: dict[str, np.ndarray], alone: set[Term], beside: set[Term]) -> dict[str, Any]:
    """Each model's CE per corruption relative to the first model's, and their mean (mCE)."""
    designed = alone | beside
    per_model = {}
    for model, rates in model_rates.items():
        single = _single_corruptions(_pooled(keys, np.asarray(rates, np.float64)), alone, beside)
        summed = {c: _summed(single, [t for t in designed if t[0] == c]) for c in CORRUPTIONS if any(t[0] == c for t in designed)}
        per_model[model] = {c: v for c, v in summed.items() if v is not None}
    baseline = next(iter(model_rates))
    out = {}
    for model, ce in per_model.items():
        ratio = {c: v / per_model[baseline][c] for c, v in ce.items() if per_model[baseline].get(c)}
        out[model] = {"ce": ce, "relative": ratio, "mce": float(np.mean(list(ratio.values()))) if ratio else None}
    return {"baseline": baseline, "models": out}


def _interactions(pooled: dict[tuple[Term, ...], float]) -> list[dict[str, Any]]:
    """Every combination of two or more terms whose parts are each known alone, most
    interacting (rate minus worst part) first; ties by rate, then by terms."""
    alone = {key[0]: rate for key, rate in pooled.items() if len(key) == 1}
    out = []
    for key, rate in pooled.items():
        if len(key) < 2 or not all(t in alone for t in key):
            continue
        parts = [alone[t] for t in key]
        worst = max(parts)
        out.append({"terms": [[f, _number(v)] for f, v, _ in key], "rate": rate, "parts": parts, "worst_part": worst,
                    "independent": float(1.0 - np.prod([1.0 - p for p in parts])), "interaction": rate - worst})
    out.sort(key=lambda row: (-row["interaction"], -row["rate"], str(row["terms"])))
    return out


def _number(value: float) -> float | int:
    """A whole value as an int (severities, pixels), else the float."""
    return int(value) if float(value).is_integer() else float(value)
