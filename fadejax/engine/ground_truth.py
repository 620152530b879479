"""The exhaustive failure landscape: failure rate of every action over every held-out sample.

This is the truth a searcher is scored against. It costs ``num_actions x N`` audited-model
queries, run in batches of about ``batch_size`` images.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
import yaml
from tqdm import tqdm

from fadejax.engine.store.rundir import CONFIG_FILE, RunDirError
from fadejax.engine.task import AuditTask


def failure_rates(task: AuditTask, actions: np.ndarray, batch_size: int = 1024, seed: int = 0, progress: bool = False) -> np.ndarray:
    """Failure rate of each of ``actions`` over every held-out sample, ``(len(actions),)`` float64.

    Works for any :class:`fadejax.engine.task.AuditTask` through its ``prepare`` / ``evaluate``;
    about ``batch_size`` queries per audited-model call. Keyed perturbations (noise, the
    spot a text edit hits) use one fixed key per call.
    """
    return failure_rates_by_model(task, actions, batch_size, seed, progress)[0]


def failure_rates_by_model(task: AuditTask, actions: np.ndarray, batch_size: int = 1024, seed: int = 0,
                           progress: bool = False) -> tuple[np.ndarray, dict[str, np.ndarray]]:
    """:func:`failure_rates` and, for a model family (a task with ``members``), each
    model's own failure rates from the same calls: ``(rates (A,), {model: rates (A,)})``
    (the dict is empty for one audited model)."""
    n = task.num_samples
    members = tuple(getattr(task, "members", ()))
    actions = np.asarray(actions, np.int32)
    per_call = actions_per_call(n, actions.size, batch_size)
    propose = _every_sample_under(task, per_call)
    rates = np.zeros((1 + len(members), actions.size), np.float64)
    key = jax.random.PRNGKey(seed)
    starts = range(0, actions.size, per_call)
    for start in tqdm(starts, disable=not progress, desc="ground truth", unit="call"):
        chunk = actions[start : start + per_call]
        count = chunk.size
        if count < per_call:  # keep one compiled shape: pad with the last action
            chunk = np.concatenate([chunk, np.full(per_call - count, chunk[-1], np.int32)])
        inputs, pending = propose(jnp.asarray(chunk), jax.random.fold_in(key, start))
        core, fields = task.evaluate(inputs, pending)
        columns = [core["failed"]] + [fields[f"{m}.failed"] for m in members]
        for row, failed in enumerate(columns):
            rates[row, start : start + count] = np.asarray(failed, bool).reshape(per_call, n)[:count].mean(axis=1)
    return rates[0], {m: rates[1 + i] for i, m in enumerate(members)}


def actions_per_call(num_samples: int, num_actions: int, batch_size: int = 1024) -> int:
    """Whole actions per audited-model call: about ``batch_size`` queries, but no more
    actions than asked for, rounded up to a power of two (a summary re-checks a few cells at
    a time; padding them to a full batch would evaluate mostly padding, and powers of two
    keep the compiled shapes few)."""
    full = max(1, batch_size // num_samples)
    return min(full, 1 << max(0, int(num_actions) - 1).bit_length())


def per_sample_failures(task: AuditTask, action: int, seed: int = 0) -> np.ndarray:
    """Whether the audited model fails on each held-out sample under ``action``, ``(N,)`` bool."""
    inputs, pending = _every_sample_under(task, 1)(jnp.asarray([action], jnp.int32), jax.random.PRNGKey(seed))
    core, _ = task.evaluate(inputs, pending)
    return np.asarray(core["failed"], bool)


def _every_sample_under(task: AuditTask, per_call: int):
    """A jitted ``(actions (per_call,), key) -> (inputs, pending)`` that queries every
    held-out sample under each of the actions, in the form ``task.evaluate`` takes.

    Kept on the task per ``per_call``: a summary asks for a few cells at a time, many
    times, and each new closure would compile again (seconds each)."""
    cache = task.__dict__.setdefault("_every_sample_under", {})
    if per_call not in cache:
        cache[per_call] = _compile_every_sample_under(task, per_call)
    return cache[per_call]


def _compile_every_sample_under(task: AuditTask, per_call: int):
    n = task.num_samples
    space = task.space
    samples = jnp.tile(jnp.arange(n, dtype=jnp.int32), per_call)

    @jax.jit
    def propose(chunk: jax.Array, key: jax.Array):
        cell = jnp.repeat(space.cell_of(chunk), n, axis=0)  # (per_call * n, axes)
        values = space.values_of_cell(cell)
        pending = {"sample": samples, "cell": cell, "values": values, "steps": jnp.ones_like(samples), "iteration": jnp.int32(0), "k_perturb": key}
        return task.prepare(samples, values, key), pending

    return propose


#: The most audited-model queries an exhaustive landscape may cost (actions x held-out samples).
MAX_EXHAUSTIVE_QUERIES = 50_000_000


class LandscapeTooLarge(ValueError):
    """The exhaustive landscape would cost more queries than :data:`MAX_EXHAUSTIVE_QUERIES`."""


def failure_landscape(task: AuditTask, batch_size: int = 1024, seed: int = 0, progress: bool = False) -> np.ndarray:
    """Failure rate per action, ``(num_actions,)`` float64 in [0, 1]: every held-out sample
    perturbed under every action and scored by the audited model.

    Refuses (:class:`LandscapeTooLarge`) beyond :data:`MAX_EXHAUSTIVE_QUERIES` queries: large
    spaces are summarised from the search's records and re-evaluated modes instead.
    """
    return failure_landscapes(task, batch_size, seed, progress)[0]


def failure_landscapes(task: AuditTask, batch_size: int = 1024, seed: int = 0, progress: bool = False) -> tuple[np.ndarray, dict[str, np.ndarray]]:
    """:func:`failure_landscape` and each family model's own landscape, ``(rates, {model: rates})``."""
    refusal = getattr(task, "landscape_refusal", None)
    if refusal:
        raise LandscapeTooLarge(refusal)
    cost = task.space.num_actions * task.num_samples
    if cost > MAX_EXHAUSTIVE_QUERIES:
        raise LandscapeTooLarge(
            f"the exhaustive landscape of {task.space.num_actions} actions x {task.num_samples} samples would cost "
            f"{cost:,} audited-model queries (limit {MAX_EXHAUSTIVE_QUERIES:,}); discover and summarize instead — "
            "summaries re-evaluate the reported modes directly"
        )
    return failure_rates_by_model(task, np.arange(task.space.num_actions), batch_size, seed, progress)


def landscape_statistics(rates: np.ndarray, space) -> dict:
    """Headline figures of a landscape: worst cell, mean, share of cells failing > 50%."""
    worst = int(np.argmax(rates))
    return {
        "num_actions": int(rates.size),
        "mean_failure_rate": float(rates.mean()),
        "worst_cell": worst,
        "worst_concepts": space.describe(worst),
        "worst_failure_rate": float(rates[worst]),
        "share_of_cells_above_50pct": float((rates > 0.5).mean()),
    }


GROUND_TRUTH_FILE = "ground_truth.json"


def landscape_key(config) -> str:
    """Hash of what the landscape depends on: the concept space and what the config's audit
    names (:meth:`fadejax.audits.Audit.landscape_identity`; for images, data and model)."""
    relevant = {**config.audit.landscape_identity(config), "space": config.space.model_dump(mode="json")}
    return hashlib.sha256(json.dumps(relevant, sort_keys=True).encode()).hexdigest()[:16]


def check_landscape_dir(config, run_dir: Path) -> str:
    """The config's landscape key; :class:`RunDirError` if ``run_dir`` holds a run of other
    data, model or space, :class:`LandscapeTooLarge` for an audit that has no exhaustive
    landscape (refused here, before its model is loaded)."""
    if config.audit.landscape_refusal:
        raise LandscapeTooLarge(config.audit.landscape_refusal)
    key = landscape_key(config)
    run_config = Path(run_dir) / CONFIG_FILE
    if run_config.is_file():
        from fadejax.engine.config import parse_config
        from fadejax.engine.store.trust import code_named, refuse_untrusted_code

        data = yaml.safe_load(run_config.read_text())
        # --out may hold someone else's run: parse it only if it names no code beyond the user's config's
        refuse_untrusted_code(data, f"'{run_dir}'", False, trusted=code_named(config.model_dump(mode="json")), run_dir=run_dir)
        if landscape_key(parse_config(data)) != key:
            raise RunDirError(
                f"'{run_dir}' holds a run with different data, model or concept space; "
                "choose another --out for this landscape"
            )
    return key


def load_or_compute(config, run_dir: Path, task_factory, progress: bool = True) -> tuple[np.ndarray, dict, bool]:
    """The landscape of ``config`` from ``run_dir/ground_truth.json`` if it is there for the
    same data, model and space; else computed (``task_factory()`` builds the task) and saved.

    Returns ``(rates (num_actions,), statistics, reused)``.
    """
    key = check_landscape_dir(config, run_dir)
    stored = read_ground_truth(Path(run_dir) / GROUND_TRUTH_FILE, key, config.concept_space().num_actions)
    if stored is not None:
        # The figures shown are recomputed from the rates; only the two facts about the model are read back.
        rates, saved = stored
        stats = landscape_statistics(rates, config.concept_space())
        for fact in ("clean_accuracy", "held_out_samples"):
            stats[fact] = saved.get(fact) if type(saved.get(fact)) in (int, float) else None
        family = config.audit.family_members(config)
        truths = read_model_truths(Path(run_dir) / GROUND_TRUTH_FILE, key, rates.size, family) if family else None
        if truths is not None:
            saved_models = saved.get("models") if isinstance(saved.get("models"), dict) else {}
            stats["models"] = {}
            for m, r in truths.items():
                clean = (saved_models.get(m) or {}).get("clean_accuracy") if isinstance(saved_models.get(m), dict) else None
                stats["models"][m] = {**landscape_statistics(r, config.concept_space()), "clean_accuracy": clean if type(clean) in (int, float) else None}
            return rates, stats, True
        if not family:
            return rates, stats, True
    task = task_factory()
    rates, by_model = failure_landscapes(task, progress=progress)
    return rates, save_ground_truth(config, run_dir, rates, task, by_model), False


class GroundTruthError(ValueError):
    """A ground-truth file is unreadable or does not hold a landscape."""


def read_ground_truth(path: Path, key: str, num_actions: int) -> tuple[np.ndarray, dict] | None:
    """``(rates (num_actions,), statistics)`` from a ground-truth file made for landscape
    ``key``; ``None`` if there is no file or it was made for another landscape.
    :class:`GroundTruthError` names the file if it is corrupt."""
    stored = _document(Path(path), key)
    if stored is None:
        return None
    return _rates(stored.get("failure_rates"), num_actions, Path(path), ""), stored["statistics"]


def _document(path: Path, key: str) -> dict | None:
    """The parsed ground-truth file if it is there and made for landscape ``key``."""
    if not path.is_file():
        return None
    try:
        stored = json.loads(path.read_bytes())
    except ValueError as exc:  # bad JSON or bytes that are not UTF-8
        raise GroundTruthError(f"'{path}' is not a ground-truth file ({exc}); delete it to compute the landscape again") from None
    if not isinstance(stored, dict) or not isinstance(stored.get("statistics"), dict):
        raise GroundTruthError(f"'{path}' is not a ground-truth file (no statistics); delete it to compute the landscape again")
    return stored if stored.get("key") == key else None


def _rates(rates, num_actions: int, path: Path, what: str) -> np.ndarray:
    """``rates`` as ``(num_actions,)`` float64, or :class:`GroundTruthError` if they are not
    that many rates in [0, 1] (``what``: e.g. " for model 'a'")."""
    valid = isinstance(rates, list) and len(rates) == num_actions and all(type(r) in (int, float) and 0.0 <= r <= 1.0 for r in rates)
    if not valid:
        raise GroundTruthError(
            f"'{path}' does not hold {num_actions} failure rates in [0, 1]{what}; delete it to compute the landscape again"
        )
    return np.asarray(rates, np.float64)


def save_ground_truth(config, run_dir: Path, rates: np.ndarray, task: AuditTask, by_model: dict[str, np.ndarray] | None = None) -> dict:
    """Write ``run_dir/ground_truth.json`` for ``rates`` ``(num_actions,)`` (and, for a
    family, each model's ``by_model`` rates and statistics); returns its statistics."""
    stats = landscape_statistics(rates, task.space)
    stats["clean_accuracy"] = task.info.get("clean_accuracy")
    stats["held_out_samples"] = task.num_samples
    document: dict = {"key": landscape_key(config), "statistics": stats, "failure_rates": rates.tolist()}
    if by_model:
        family = task.info.get("family", {})
        stats["models"] = {m: {**landscape_statistics(r, task.space), "clean_accuracy": family.get(m, {}).get("clean_accuracy")}
                           for m, r in by_model.items()}
        document["model_failure_rates"] = {m: r.tolist() for m, r in by_model.items()}
    path = Path(run_dir) / GROUND_TRUTH_FILE
    Path(run_dir).mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(json.dumps(document))
    tmp.replace(path)
    return stats


def read_model_truths(path: Path, key: str, num_actions: int, models: list[str]) -> dict[str, np.ndarray] | None:
    """Each family model's exhaustive rates ``{model: (num_actions,)}`` from a ground-truth
    file made for landscape ``key``; ``None`` if there is none or it lacks a model.
    :class:`GroundTruthError` names the file if they are malformed."""
    stored = _document(Path(path), key)
    by_model = None if stored is None else stored.get("model_failure_rates")
    if not isinstance(by_model, dict) or any(m not in by_model for m in models):
        return None
    return {m: _rates(by_model[m], num_actions, Path(path), f" for model '{m}'") for m in models}
