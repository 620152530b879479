"""Stage 3 for image classifiers: fade chosen failure modes, rediscover, and measure the shift.

1. builds the fine-tuning data from the **training split only** — every training image
   perturbed under every chosen mode, with its true label (plus the clean training images
   for the lambda-weighted loss);
2. runs the classifier fine-tuner in its own process (``fadejax.stages.finetune``);
3. re-runs discovery on the fine-tuned model with the same config, seed and budget into
   ``OUT/rediscovery`` (linked to the original run);
4. writes the shift report, every figure measured on the **held-out split** the
   fine-tuner never saw: per chosen mode the failure rate before and after (Definition
   4.1: reduced iff it drops), clean held-out accuracy before and after, the Wasserstein
   distance between the old and new exhaustive landscapes by radius around each mode
   (the paper's Table 2), and the new top failure modes.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from fadejax.engine.audit import AuditError, RestructureRequest
from fadejax.audits.image.task import ClassificationTask, load_data
from fadejax.analysis.barycenters import distances_by_radius
from fadejax.engine.config import ExperimentConfig, parse_config
from fadejax.stages.finetune import launch
from fadejax.engine.ground_truth import failure_landscape
from fadejax.stages.restructure import link_rediscovery, settings_of
from fadejax.core.spaces import format_value
from fadejax.engine.build import build_task


def _architecture(config: ExperimentConfig) -> tuple[str, dict[str, Any]]:
    if config.model.source == "embedded":
        from bridges.digits_cnn import EMBEDDED  # torch enters here, not at import time

        kwargs = {"image_size": config.data.image_size}
        channels = config.data.channels or (3 if config.data.source == "colour_digits" else 1)
        if channels != 1:  # the grey models' kwargs stay as they were
            kwargs["channels"] = channels
        return EMBEDDED[config.model.architecture][0], kwargs
    if config.model.source == "file":
        return config.model.architecture, dict(config.model.architecture_kwargs)
    raise AuditError(f"restructure fine-tunes 'embedded' or 'file' models; this run audits a '{config.model.source}' model")


def finetune_data(config: ExperimentConfig, task: ClassificationTask, modes: list[int], out: Path, data: str = "modes",
                  cell_weights: "np.ndarray | tuple[float, ...] | None" = None) -> tuple[Path, Path]:
    """``failures.npz`` and ``clean.npz`` (the clean training split); ``task`` supplies the
    run's concept space and perturbations.

    ``failures.npz`` holds ``len(modes)`` copies of the training split (``images`` ``(M·N,
    H, W, C)``, true ``labels`` ``(M·N,)``) whatever ``data`` is, so that every kind costs the
    same fine-tune budget: ``modes``, copy ``m`` under mode ``m``; ``uniform``, each image
    under a cell drawn uniformly from the whole space (``run.seed``); ``weighted``, each image
    under a cell drawn from ``cell_weights`` (``(num_actions,)``, non-negative, summing to 1:
    fade's mix of uniform and estimated failure rates, so the data covers the whole
    landscape, more of it where the failures are); ``random``, the clean images themselves (Chegini & Feizi's random
    debugging: as much training, nothing targeted).
    """
    train, _ = load_data(config)
    if train is None:
        raise AuditError("restructure needs a training split the audit never used; data.source 'npz' has none")
    space, perturb = task.space, jax.jit(task.perturb)
    images = jnp.asarray(train.images)
    rng = np.random.default_rng(config.run.seed)
    if data == "weighted":
        draws = rng.choice(space.num_actions, size=(len(modes), len(train)), p=np.asarray(cell_weights, np.float64))
    else:
        draws = rng.integers(0, space.num_actions, (len(modes), len(train)))
    parts = []
    for copy, mode in enumerate(modes):
        if data == "random":
            parts.append(np.asarray(train.images))
            continue
        cells = jnp.full((len(train),), mode, jnp.int32) if data == "modes" else jnp.asarray(draws[copy], jnp.int32)
        key = jax.random.PRNGKey(mode if data == "modes" else config.run.seed * 100_003 + copy)
        parts.append(np.asarray(perturb(images, space.decode(cells), key)))
    out.mkdir(parents=True, exist_ok=True)
    np.savez(out / "failures.npz", images=np.concatenate(parts), labels=np.tile(train.labels, len(modes)))
    np.savez(out / "clean.npz", images=train.images, labels=train.labels)
    return out / "failures.npz", out / "clean.npz"


def restructure_classifier(run_dir: Path, config: ExperimentConfig, modes: list[int], out: Path, request: RestructureRequest) -> dict[str, Any]:
    """Fade ``modes`` of the image run in ``run_dir`` into ``out``; see the module docstring."""
    progress, use_clean, radius = request.progress, request.use_clean, request.radius
    epochs, learning_rate, failure_weight = request.epochs, request.learning_rate, request.failure_weight
    old_task = build_task(config, progress=progress)
    architecture, kwargs = _architecture(config)
    failures, clean = finetune_data(config, old_task, modes, out / "finetune", request.data, request.cell_weights)
    spec = {
        "architecture": architecture, "architecture_kwargs": kwargs, "weights": old_task.info["weights"],
        "failure_data": str(failures), "clean_data": str(clean) if use_clean else None,
        "output_dir": str(out / "finetune"),
        "hyper": {"epochs": epochs, "learning_rate": learning_rate, "failure_weight": failure_weight, "seed": config.run.seed,
                  "scope": request.scope or "head",  # restructure's default is the paper's; fade asks for its own
                  "anchor": float(request.options.get("anchor") or 0.0)},
        "normalize_mean": config.model.normalize_mean, "normalize_std": config.model.normalize_std,
    }
    metrics = launch(spec, quiet=not progress)

    new_config = parse_config({
        **config.model_dump(mode="json"),
        "name": f"{config.name}-restructured",
        "model": {**config.model.model_dump(mode="json"), "source": "file", "architecture": architecture,
                  "architecture_kwargs": kwargs, "weights": metrics["model"]},
    })
    new_task = build_task(new_config, progress=progress)
    rediscovery = link_rediscovery(new_config, new_task, run_dir, out, progress)

    space = config.concept_space()
    old_land = failure_landscape(old_task, progress=progress)
    new_land = failure_landscape(new_task, progress=progress)
    rows = []
    for mode in modes:
        before, after = float(old_land[mode]), float(new_land[mode])
        rows.append({
            "cell": mode, "concepts": space.describe(mode), "held_out_failure_rate_before": before,
            "held_out_failure_rate_after": after, "reduced": after < before,
            "wasserstein_by_radius": distances_by_radius(old_land, new_land, space.sizes, mode, radius),
        })
    top_new = [int(c) for c in np.argsort(-new_land, kind="stable")[:5]]
    report = {
        "run": str(run_dir), "model": request.options.get("model"), "rediscovery": str(rediscovery), "fine_tune": metrics,
        "note": "fine-tuning used only the training split; every figure here is measured on the held-out split it never saw",
        "clean_held_out_accuracy_before": old_task.info["clean_accuracy"],
        "clean_held_out_accuracy_after": new_task.info["clean_accuracy"],
        "clean": {"name": "accuracy", "before": old_task.info["clean_accuracy"], "after": new_task.info["clean_accuracy"]},
        "settings": settings_of(request),
        "modes": rows,
        "landscape_mean_before": float(old_land.mean()), "landscape_mean_after": float(new_land.mean()),
        "new_top_modes": [{"cell": c, "concepts": space.describe(c), "held_out_failure_rate": float(new_land[c])} for c in top_new],
        "landscape_before": old_land.tolist(), "landscape_after": new_land.tolist(),
    }
    (out / "shift_report.md").write_text(render_markdown(report))
    _figure(old_land, new_land, config, out / "landscapes_before_after.png")
    return report


def _figure(before: np.ndarray, after: np.ndarray, config: ExperimentConfig, path: Path) -> None:
    """Old and new exhaustive landscapes side by side (first two axes; the others averaged)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from fadejax.stages.figures import heatmap

    space = config.concept_space()
    keep = [0, 1] if space.num_axes > 1 else [0]
    fig, axs = plt.subplots(1, 2, figsize=(9, 3.8), squeeze=False)
    for ax, title, values in zip(axs[0], ("before fine-tuning", "after fine-tuning"), (before, after)):
        im = heatmap(ax, values, space, keep, vmin=0, vmax=1)
        ax.set_title(f"held-out failure rate, {title}", fontsize=10)
    fig.colorbar(im, ax=axs[0].tolist(), shrink=0.8)
    fig.savefig(path, dpi=120, bbox_inches="tight")
    plt.close(fig)


def render_markdown(report: dict[str, Any]) -> str:
    """The classifier's shift report as Markdown."""
    weight = report["settings"]["failure_weight"]
    lines = [
        f"# Shift report for {report['run']}", "", f"_{report['note']}._", "",
        *([f"Model: `{report['model']}` of the run's family, fine-tuned and rediscovered on its own.", ""] if report.get("model") else []),
        "Fine-tuning loss: " + ("failure data alone" if weight is None else f"L_clean + {weight:g} · L_failure")
        + f", {report['settings']['epochs']} epochs, "
        + ("every parameter" if report["fine_tune"].get("scope") == "full" else "final layer only") + ".", "",
        f"Clean held-out accuracy: {report['clean_held_out_accuracy_before']:.1%} → {report['clean_held_out_accuracy_after']:.1%}",
        f"Mean failure rate over all cells: {report['landscape_mean_before']:.1%} → {report['landscape_mean_after']:.1%}", "",
        "| mode | concepts | failure rate before | after | reduced (Def. 4.1) | W1 by radius 1..R |", "|---|---|---|---|---|---|",
    ]
    for m in report["modes"]:
        concepts = ", ".join(f"{k}={format_value(v)}" for k, v in m["concepts"].items())
        w = ", ".join(f"{x:.3f}" for x in m["wasserstein_by_radius"])
        lines.append(f"| {m['cell']} | {concepts} | {m['held_out_failure_rate_before']:.1%} | {m['held_out_failure_rate_after']:.1%} | {'yes' if m['reduced'] else 'no'} | {w} |")
    lines += ["", "Old and new landscapes side by side: `landscapes_before_after.png`.", "", "New top failure modes (held-out):", ""]
    for m in report["new_top_modes"]:
        lines.append(f"- cell {m['cell']} ({', '.join(f'{k}={format_value(v)}' for k, v in m['concepts'].items())}): {m['held_out_failure_rate']:.1%}")
    return "\n".join(lines) + "\n"
