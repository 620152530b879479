"""Stage 2: turn a run directory into the numbers a person needs to judge its failure modes.

:func:`load_summary` reads a run (complete or interrupted), rebuilds the task and the
searcher's latest state, and assembles: the empirical landscape (records), the policy
landscape (eq. 10 over the held-out observations), the ground truth when
``ground_truth.json`` exists — each reduced to a view of at most three axes — the failure
modes ranked by the records' shrinkage estimate (with 95% intervals) and by the policy's Q-values, each re-evaluated on every
held-out sample with its minimal description (after PRIME), the barycenters by radius
(eq. 11) and sample failures per cell. Nothing here allocates per cell of the product
space, so it works on 10^6-action spaces. The report and figures (``fadejax.stages.report``,
``fadejax.stages.figures``) only render this.
"""

from __future__ import annotations

import base64
import io
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import jax.numpy as jnp
import numpy as np

from fadejax.analysis import metrics
from fadejax.analysis.barycenters import barycenter
from fadejax.engine.config import ExperimentConfig
from fadejax.analysis.estimates import cell_estimates
from fadejax.engine.ground_truth import GROUND_TRUTH_FILE, GroundTruthError, failure_rates, landscape_key, read_ground_truth
from fadejax.core.landscapes import check_view, dense_view_mean, grouped_sum, pooled_cells, view_shape
from fadejax.engine.store.records import query_drawn, records_path, sparse_counts
from fadejax.engine.store.record_columns import CompleteLines, read_columns
from fadejax.engine.store.run_check import digest_damage, records_damage
from fadejax.engine.store.rundir import RunReadError, note_outside_paths, read_run_config, read_status
from fadejax.core.spaces import format_value
from fadejax.engine.task import AuditTask
from fadejax.engine.build import build_task
from fadejax.stages.corruption_report import corruption_figures
from fadejax.stages.family import FamilySummary, family_summary


#: A run directory is missing, unreadable or corrupt; the message says which file. The same
#: class as :class:`fadejax.engine.store.rundir.RunReadError`, which every stage raises.
SummarizeError = RunReadError


@dataclass
class RunSummaryData:
    """What the report shows. Per-cell data are sparse (visited cells only) and every
    landscape is a *view*: the ``keep`` axes (at most three), ``fixed`` axes sliced, the rest
    marginalised, so a space of any size summarises in memory proportional to the view."""

    run_dir: Path
    config: ExperimentConfig
    partial: bool
    iterations: int
    planned: int
    queries: int
    keep: list[int]  # axes of the view, in display order
    fixed: dict[int, int]  # axis -> value index it is sliced at
    pooled: int  # cells pooled into each point of the view
    cells: np.ndarray  # (V,) visited cells
    cell_visits: np.ndarray  # (V,)
    cell_failures: np.ndarray  # (V,)
    view_visits: np.ndarray  # (*view) summed visits
    view_failures: np.ndarray  # (*view) summed failures
    view_policy_mean: np.ndarray | None  # (*view) mean over held-out states of P(view point | s), eq. 10
    view_policy_confidence: np.ndarray | None  # (*view) 1 / std of the same
    view_truth: np.ndarray | None  # (*view) true failure rate averaged over pooled cells
    modes: list[dict[str, Any]]  # ranked by the shrinkage estimate from the records (fadejax.analysis.estimates)
    policy_modes: list[dict[str, Any]]  # ranked by the policy's mean score (Q-values), re-evaluated
    barycenters: dict[int, list[float]]  # radius -> coordinates on the view's grid (fractional indices)
    examples: dict[int, list[dict[str, Any]]]  # cell -> failures with images
    entropy: float
    kind: str = "picture"  # how the report shows an example: the audit's example_view, or "recorded"
    attributes: dict[str, Any] | None = None  # the audit's summary_extras (a prompt run's zero-shot attribute counts and ratio)
    family: dict[str, Any] | None = None  # a model family's comparison (fadejax.stages.family.FamilySummary.as_dict)
    notes: list[str] = field(default_factory=list)
    view_estimate: np.ndarray | None = None  # (*view) estimated failure rate (fadejax.analysis.estimates) averaged over the visited pooled cells; nan where none
    corruptions: dict[str, Any] | None = None  # the common-corruptions figures (fadejax.stages.corruption_report), for spaces that apply them

    @property
    def failures_total(self) -> int:
        return int(self.cell_failures.sum())

    @property
    def view_rate(self) -> np.ndarray:
        """Observed failure rate per view point; ``nan`` where never visited."""
        with np.errstate(invalid="ignore", divide="ignore"):
            return np.where(self.view_visits > 0, self.view_failures / np.maximum(self.view_visits, 1), np.nan)


def _read_records(run_dir: Path, num_actions: int, per_cell: int, members: list[str] = ()) -> tuple[np.ndarray, np.ndarray, np.ndarray, dict[int, list[dict]], int, np.ndarray, tuple[np.ndarray, np.ndarray, np.ndarray], dict[str, np.ndarray]]:
    """Sparse per-cell statistics ``(visited cells, visits, failures)``, up to ``per_cell``
    failure records per cell, the number of queries, every failure's cell, every
    query's ``(sample, cell, failed)`` (for the shrinkage estimate), and for a family each
    model's answer to every query (``{model: (Q,) bool}`` from ``NAME.failed``)."""
    path = records_path(run_dir)
    if not path.is_file():
        raise SummarizeError(f"'{run_dir}' has no records: the run never made a query")
    fast = read_columns(path, {"cell": "int64", "sample": "int64", "failed": "bool", **{f"{m}.failed": "bool" for m in members}})
    if fast is not None and ((fast[0]["cell"] >= 0) & (fast[0]["cell"] < num_actions)).all():
        columns, lines = fast
        cells_arr, failed_arr = columns["cell"], columns["failed"]
        cells, visits, failures = sparse_counts(cells_arr, failed_arr)
        member_failed = {m: columns[f"{m}.failed"] for m in members}
        examples = _first_failures(lines, cells_arr, failed_arr, per_cell)
        return cells, visits, failures, examples, int(cells_arr.size), cells_arr[failed_arr], (columns["sample"], cells_arr, failed_arr), member_failed
    # Line by line: names the bad line in its error, or reads the rare lines Arrow refuses.
    all_cells: list[int] = []
    all_samples: list[int] = []
    all_failed: list[bool] = []
    by_model: dict[str, list[bool]] = {m: [] for m in members}
    examples: dict[int, list[dict]] = {}
    with open(path, "rb") as f:
        for number, line in enumerate(f, 1):
            if not line.endswith(b"\n"):
                break  # a final line cut off by a kill: the checkpointed part is complete
            try:
                record = json.loads(line)
                cell, sample, failed = record["cell"], record["sample"], record["failed"]
            except (ValueError, KeyError, TypeError):
                raise SummarizeError(f"'{path}' line {number} is corrupt: {line[:80]!r}") from None
            if type(cell) is not int or type(sample) is not int or type(failed) is not bool:
                raise SummarizeError(f"'{path}' line {number} is corrupt: cell and sample must be integers, failed true or false")
            if not 0 <= cell < num_actions:
                raise SummarizeError(f"'{path}' line {number} names cell {cell}, outside this run's {num_actions} cells")
            all_cells.append(cell)
            all_samples.append(sample)
            all_failed.append(failed)
            for m, answers in by_model.items():
                answer = record.get(f"{m}.failed")
                if type(answer) is not bool:
                    raise SummarizeError(f"'{path}' line {number} has no answer of model '{m}' ({m}.failed true or false)")
                answers.append(answer)
            if failed:
                bucket = examples.setdefault(cell, [])
                if len(bucket) < per_cell:
                    bucket.append(record)
    if not all_cells:
        raise SummarizeError(f"'{path}' holds no records yet")
    cells_arr = np.asarray(all_cells, np.int64)
    failed_arr = np.asarray(all_failed, bool)
    cells, visits, failures = sparse_counts(cells_arr, failed_arr)
    member_failed = {m: np.asarray(a, bool) for m, a in by_model.items()}
    return cells, visits, failures, examples, int(cells_arr.size), cells_arr[failed_arr], (np.asarray(all_samples, np.int64), cells_arr, failed_arr), member_failed


def _first_failures(lines: CompleteLines, cells: np.ndarray, failed: np.ndarray, per_cell: int) -> dict[int, list[dict]]:
    """The first ``per_cell`` failed records of each cell, in file order (``cells``,
    ``failed``: ``(Q,)`` columns of the records file's ``lines``): every failed cell is a key,
    in the order of its first failure, as the line-by-line reading fills them."""
    rows = np.flatnonzero(failed)
    failed_cells = cells[rows]
    order = np.argsort(failed_cells, kind="stable")
    ranked = failed_cells[order]
    rank = np.arange(ranked.size) - np.searchsorted(ranked, ranked, side="left")  # place among its cell's failures
    kept = np.sort(rows[order[rank < per_cell]])
    unique, first = np.unique(failed_cells, return_index=True)
    examples: dict[int, list[dict]] = {int(c): [] for c in unique[np.argsort(first)]}
    for row, line in zip(kept.tolist(), lines.lines(kept)):
        examples[int(cells[row])].append(json.loads(line))
    return examples


def png_base64(image: np.ndarray, scale: int = 2) -> str:
    from PIL import Image

    pixels = (np.clip(image, 0, 1) * 255).round().astype(np.uint8)
    pil = Image.fromarray(pixels[..., 0] if pixels.shape[-1] == 1 else pixels)
    buffer = io.BytesIO()
    pil.resize((pil.width * scale, pil.height * scale), Image.NEAREST).save(buffer, format="PNG")
    return base64.b64encode(buffer.getvalue()).decode()


def _attach_examples(task: AuditTask, config: ExperimentConfig, examples: dict[int, list[dict]], run_dir: Path) -> None:
    """Give each example what its audit shows beyond the record's fields (e.g. the perturbed
    or generated picture); a replayed recording keeps answers, not inputs: nothing to add."""
    flat = [(cell, r) for cell, rows in examples.items() for r in rows]
    if flat and task.kind != "recorded":
        config.audit.attach_examples(task, flat, run_dir)


def neutral_index(config: ExperimentConfig, axis: int, marginal: np.ndarray) -> int:
    """The value of an axis that perturbs least: its identity value if it has one, else
    the value with the lowest failure rate in ``marginal``."""
    identity = config.axis_identity(axis)
    values = config.space.axes[axis].values
    if identity is not None and identity in values:
        return values.index(identity)
    return int(np.nanargmin(marginal))


def minimal_description(cell: int, rate_of, config: ExperimentConfig, neutral: list[int], margin: float) -> dict[str, Any]:
    """PRIME's test: an axis is necessary for the mode iff resetting it to neutral lowers
    the failure rate by more than ``margin``. ``rate_of(cells)`` gives true rates."""
    space = config.concept_space()
    index = np.asarray(space.cell_of(jnp.int32(cell)))
    probes, names = [], []
    for axis, a in enumerate(config.space.axes):
        if index[axis] == neutral[axis]:
            continue  # already neutral: trivially not needed
        changed = index.copy()
        changed[axis] = neutral[axis]
        probes.append(int(space.action_of(jnp.asarray(changed))))
        names.append(a.name)
    rates = rate_of(np.asarray([cell] + probes, np.int32))
    base = float(rates[0])
    checks = [{"axis": n, "rate_without": float(r), "needed": base - float(r) > margin} for n, r in zip(names, rates[1:])]
    needed = [c["axis"] for c in checks if c["needed"]]
    concepts = space.describe(cell)
    text = " + ".join(f"{n} {format_value(concepts[n])}" for n in needed) or "(no single axis is necessary)"
    dropped = [c["axis"] for c in checks if not c["needed"]]
    if dropped:
        text += " — " + ", ".join(dropped) + " not needed"
    evidence = "; ".join(f"without {c['axis']} {c['rate_without']:.0%}" for c in checks)
    text += f" (true rate {base:.0%}" + (f"; {evidence})" if evidence else ")")
    return {"rate": base, "checks": checks, "needed": needed, "text": text}


def load_summary(run_dir: str | Path, *, keep: list[int] | None = None, fixed: dict[int, int] | None = None, top: int = 10, margin: float = 0.1, per_cell: int = 6, radii: int = 3, task: AuditTask | None = None, progress: bool = False, trust_code: bool = False,
                 config: ExperimentConfig | None = None, family_threshold: float = 0.5) -> RunSummaryData:
    """Everything the report shows, from ``run_dir``; see the module docstring.

    ``keep`` (default: the first three axes) and ``fixed`` (``{axis: value index}``) choose
    the view; every landscape is reduced to it without building the product space.
    ``config``: the run's config if the caller has read it already (:func:`read_run_config`).
    ``family_threshold``: for a model family, the failure rate at which a model counts as
    failing in a mode (:mod:`fadejax.stages.family`).
    """
    run_dir = Path(run_dir)
    config = config if config is not None else read_run_config(run_dir, trust_code)
    note_outside_paths(run_dir, config)
    space = config.concept_space()
    keep = list(range(min(3, space.num_axes))) if keep is None else list(keep)
    fixed = dict(fixed or {})
    try:
        check_view(space.sizes, keep, fixed)
    except ValueError as exc:
        raise SummarizeError(str(exc)) from None
    status = read_status(run_dir)
    members = config.audit.family_members(config)

    cells, cell_visits, cell_failures, examples, queries, failed_cells, queried, member_failed = _read_records(run_dir, space.num_actions, per_cell, members)
    damage = records_damage(run_dir, config.run.num_envs) or digest_damage(run_dir, status)
    if damage:  # never a figure from records two writers interleaved or a hand edited (an unreadable line: named above)
        raise SummarizeError(f"{damage} (fadejax check '{run_dir}' lists every problem)")
    notes: list[str] = []
    partial = status.get("status") != "complete"
    if partial:
        notes.append(f"partial run: summarised from the {queries} queries recorded so far (of {config.run.iterations * config.run.num_envs} planned)")
    task = task or build_task(config, progress=progress)
    if tuple(task.space.sizes) != tuple(space.sizes):
        raise SummarizeError(f"the task given audits a space of sizes {task.space.sizes}; the run's space has {space.sizes}")

    policy_mean = policy_conf = None
    searcher = searcher_state = None
    if config.mode == "macro":
        from fadejax.engine.checkpoints import CheckpointLayoutError, build_discovery, load_latest_state

        try:
            discovery = build_discovery(config, task)
            searcher, searcher_state = discovery.searcher, load_latest_state(run_dir, discovery).searcher
            point_p = np.asarray(searcher.policy_view(searcher_state, task.observations, keep, fixed), np.float64)
            policy_mean = point_p.mean(axis=0)
            policy_conf = 1.0 / np.maximum(point_p.std(axis=0), 1e-6)
        except FileNotFoundError:
            notes.append("no checkpoint yet: the policy landscape (eq. 10) is not available, only the observed one")
        except CheckpointLayoutError:
            notes.append("the run's checkpoint was written by another version of its searcher: the policy landscape "
                         "(eq. 10) is not available, only the observed one")
    else:
        notes.append("microscopic run: the policy chooses moves, not cells, so only the observed landscape is shown")

    truth = None
    cache: dict[int, float] = {}
    try:
        stored = read_ground_truth(run_dir / GROUND_TRUTH_FILE, landscape_key(config), space.num_actions)
    except GroundTruthError as exc:
        raise SummarizeError(str(exc)) from None
    if stored is not None:
        rates = stored[0]
        truth = dense_view_mean(rates, space.sizes, keep, fixed)
        cache = dict(enumerate(rates.tolist()))  # modes are then checked against the exhaustive truth, not re-queried

    def rate_of(query: np.ndarray) -> np.ndarray:
        missing = [int(c) for c in query if int(c) not in cache]
        if missing:
            cache.update(zip(missing, failure_rates(task, np.asarray(missing, np.int32))))
        return np.asarray([cache[int(c)] for c in query])

    coords = np.unravel_index(cells, space.sizes)
    neutral = []
    for i, axis in enumerate(config.space.axes):
        v = np.bincount(coords[i], weights=cell_visits, minlength=space.sizes[i])
        f = np.bincount(coords[i], weights=cell_failures, minlength=space.sizes[i])
        with np.errstate(invalid="ignore", divide="ignore"):
            marginal = np.where(v > 0, f / np.maximum(v, 1), np.inf)  # never visited: not a neutral candidate
        neutral.append(neutral_index(config, i, marginal))

    # An audit may not re-check modes (generated images: each check costs a diffusion run and,
    # with human rewards, a person's rating): its summaries report observed rates only.
    reevaluate = config.audit.reevaluates_modes
    if not reevaluate:
        notes.append(f"modes are not re-evaluated for '{config.task}' audits: rates are the observed ones")

    def describe_mode(rank: int, cell: int) -> dict[str, Any]:
        where = np.searchsorted(cells, cell)
        seen = where < cells.size and cells[where] == cell
        visits, fails = (int(cell_visits[where]), int(cell_failures[where])) if seen else (0, 0)
        minimal = (minimal_description(int(cell), rate_of, config, neutral, margin) if reevaluate
                   else {"rate": None, "checks": [], "needed": [], "text": "— (not re-evaluated)"})
        j = where_estimated.get(int(cell))
        return {
            "rank": rank, "cell": int(cell), "concepts": space.describe(int(cell)),
            "failure_rate": fails / visits if visits else None, "visits": visits, "failures": fails, "minimal": minimal,
            "estimate": None if j is None else float(estimates.rate[j]),
            "interval": None if j is None else [float(estimates.lower[j]), float(estimates.upper[j])],
            # the ranks of the estimated ranking that the cell's 95% interval allows
            "ranks": None if j is None else [int(rank_lowest[j]), int(rank_highest[j])],
        }

    # Modes are ranked by the shrinkage estimate (fadejax.analysis.estimates), not by raw observed
    # rates: a searcher that concentrates leaves cells with few visits, and one that picks
    # hard samples inflates the rates of the cells it tried on them.
    if not 0 <= int(queried[0].min()) <= int(queried[0].max()) < task.num_samples:
        raise SummarizeError(f"the records name samples outside the audit's {task.num_samples} held-out samples")
    estimates = cell_estimates(*queried, task.num_samples, space.sizes, drawn=query_drawn(records_path(run_dir)))
    where_estimated = {int(c): i for i, c in enumerate(estimates.cells)}
    rank_lowest, rank_highest = estimates.rank_ranges()
    ranked = estimates.cells[estimates.ranked(top)]
    modes = [describe_mode(rank, int(c)) for rank, c in enumerate(ranked, 1)]
    policy_modes = []
    if searcher is not None:
        best, scores = searcher.top_actions(searcher_state, task.observations, top)
        for rank, (cell, score) in enumerate(zip(best, scores), 1):
            mode = describe_mode(rank, int(cell))
            mode["mean_score"] = float(score)
            mode["ranks"] = None  # its rank is the policy's; the estimate's range would read as this one's
            policy_modes.append(mode)
    for mode in modes + policy_modes:
        mode["true_rate"] = mode["minimal"]["rate"]  # re-evaluated on every held-out sample

    view_visits = grouped_sum(cells, cell_visits, space.sizes, keep, fixed)
    view_failures = grouped_sum(cells, cell_failures, space.sizes, keep, fixed)
    with np.errstate(invalid="ignore", divide="ignore"):
        observed = np.where(view_visits > 0, view_failures / np.maximum(view_visits, 1), 0.0)
    with np.errstate(invalid="ignore", divide="ignore"):
        view_estimate = (grouped_sum(estimates.cells, estimates.rate, space.sizes, keep, fixed)
                         / grouped_sum(estimates.cells, np.ones(estimates.cells.size), space.sizes, keep, fixed))
    mass = policy_mean if policy_mean is not None else observed
    shape = view_shape(space.sizes, keep)
    centers = {}
    if mass.sum() > 0:
        center = int(np.argmax(mass))
        centers = {r: barycenter(mass.ravel(), shape, center, r).tolist() for r in range(1, radii + 1)}
    family = family_rates = None
    if members:
        family = _family(config, task, run_dir, stored is not None, queried, member_failed, modes, keep, fixed, top, family_threshold, reevaluate)
        family_rates = (family.models, *family.rates)
    corruptions = corruption_figures(config, estimates, None if stored is None else stored[0], family_rates)
    shown = {int(c): examples[c] for c in sorted(examples, key=lambda c: -len(examples[c]))[:200]}
    _attach_examples(task, config, shown, run_dir)
    return RunSummaryData(
        run_dir=run_dir, config=config, partial=partial, iterations=int(status.get("iterations", queries // config.run.num_envs)),
        planned=config.run.iterations, queries=queries, keep=keep, fixed=fixed, pooled=pooled_cells(space.sizes, keep, fixed),
        cells=cells, cell_visits=cell_visits, cell_failures=cell_failures, view_visits=view_visits, view_failures=view_failures,
        view_policy_mean=policy_mean, view_policy_confidence=policy_conf, view_truth=truth, modes=modes, policy_modes=policy_modes,
        barycenters=centers, examples=shown, entropy=metrics.failure_entropy(failed_cells, space.num_actions), notes=notes,
        kind="recorded" if task.kind == "recorded" else config.audit.example_view, attributes=config.audit.summary_extras(run_dir, config),
        family=None if family is None else family.as_dict(), view_estimate=view_estimate, corruptions=corruptions,
    )


def _family(config: ExperimentConfig, task: AuditTask, run_dir: Path, has_truth: bool, queried, member_failed: dict[str, np.ndarray],
            modes: list[dict[str, Any]], keep: list[int], fixed: dict[int, int], top: int, threshold: float, reevaluate: bool) -> FamilySummary:
    """The family section (:func:`fadejax.stages.family.family_summary`) of a model family's run."""
    from fadejax.engine.ground_truth import failure_rates_by_model, read_model_truths

    members = config.audit.family_members(config)
    space = config.concept_space()
    truths = None
    if has_truth:
        try:
            truths = read_model_truths(run_dir / GROUND_TRUTH_FILE, landscape_key(config), space.num_actions, members)
        except GroundTruthError as exc:
            raise SummarizeError(str(exc)) from None
    rates_of = (lambda cells: failure_rates_by_model(task, cells)[1]) if reevaluate else None
    facts = task.info.get("family", {})
    return family_summary(
        members, space, queried[:2], member_failed, task.num_samples, truths=truths, rates_of=rates_of,
        aggregate_modes=[m["cell"] for m in modes], keep=keep, fixed=fixed, top=top, threshold=threshold,
        clean_accuracy={m: facts.get(m, {}).get("clean_accuracy") for m in members},
    )


def read_modes_file(path: str | Path, config: ExperimentConfig) -> list[int]:
    """The cells of a ``modes.json`` export (``{"modes": [{"cell": int, ...}, ...]}``), each
    checked against the run's space; :class:`SummarizeError` names the file otherwise."""
    try:
        chosen = json.loads(Path(path).read_bytes())["modes"]
        cells = [m["cell"] for m in chosen]
    except (OSError, ValueError, KeyError, TypeError, IndexError) as exc:
        raise SummarizeError(f"--modes-file '{path}' is not a modes.json export: {type(exc).__name__}: {exc}") from None
    if not isinstance(chosen, list) or any(type(cell) is not int for cell in cells):
        raise SummarizeError(f"--modes-file '{path}' is not a modes.json export: 'modes' must list objects with an integer 'cell'")
    return [parse_mode(str(cell), config) for cell in cells]


def parse_mode(text: str, config: ExperimentConfig) -> int:
    """A failure mode given on the command line: a cell index (``24``) or concept values
    (``rotation=-20,darkness=0.7,blur=3``; every axis, values from the space)."""
    space = config.concept_space()
    if text.strip().isdigit():
        cell = int(text)
        if not 0 <= cell < space.num_actions:
            raise SummarizeError(f"mode '{text}': cell index must be in 0..{space.num_actions - 1}")
        return cell
    given = {}
    for part in text.split(","):
        name, _, value = part.partition("=")
        given[name.strip()] = value.strip()
    if set(given) != set(space.names):
        raise SummarizeError(f"mode '{text}' must give a value for every axis {list(space.names)}, or a cell index")
    index = []
    for axis in space.axes:
        value: float | str = given[axis.name]
        if not axis.categorical:
            try:
                value = float(value)
            except ValueError:
                raise SummarizeError(f"mode '{text}': '{given[axis.name]}' is not a number") from None
        if value not in axis.values:
            raise SummarizeError(f"mode '{text}': {axis.name} takes one of {list(axis.values)}, not {format_value(value)}")
        index.append(axis.values.index(value))
    return int(space.action_of(jnp.asarray(index)))


def modes_document(run_dir: Path, config: ExperimentConfig, cells: list[int]) -> dict[str, Any]:
    """The small JSON the restructure stage reads (the report's export writes the same)."""
    space = config.concept_space()
    return {"run": str(run_dir), "modes": [{"cell": int(c), "concepts": space.describe(int(c))} for c in cells]}
