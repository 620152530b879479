"""Stage 3 for summarizers: fine-tune away from chosen edit modes, rediscover, measure the shift.

``restructure_text(run_dir, modes)``:

1. fine-tuning data from the **training articles only**: each training article edited
   under every chosen mode, paired with its reference summary (``train.jsonl``), plus the
   unedited pairs (``clean.jsonl``) unless ``use_clean`` is off;
2. the Hugging Face ``Seq2SeqTrainer`` fine-tuner in its own process (the paper's
   Appendix D.2: lr 2e-5, weight decay 1e-2, batch 2, 3 epochs; ``fadejax.stages.finetune``);
3. discovery again on the fine-tuned model with the same config, seed and budget, into
   ``OUT/rediscovery``;
4. the shift report on the **held-out articles** the fine-tuner never saw: per chosen mode
   the failure rate before and after (Definition 4.1), the clean held-out BLEU before and
   after, the 1-D Wasserstein distance between the old and new failure distributions over
   the actions (the paper's Table 3: actions without an order, at positions 0..A-1) and
   the new top modes — the paper saw "delete random word" give way to "repeat random word".
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np

from fadejax.audits.text.task import TextTask, axis_edits, edit_plan, load_text_data
from fadejax.analysis.barycenters import unordered_distance
from fadejax.engine.config import ExperimentConfig, parse_config
from fadejax.stages.finetune import launch
from fadejax.engine.ground_truth import failure_landscape
from fadejax.core.spaces import format_value
from fadejax.stages.summarize import SummarizeError

#: Training articles used per chosen mode (the paper's fine-tunes are small; this keeps a CPU run to minutes).
TRAIN_ARTICLES = 600


def finetune_pairs(config: ExperimentConfig, modes: list[int], out: Path, articles: int = TRAIN_ARTICLES) -> tuple[Path, Path]:
    """``train.jsonl`` (training articles edited under each mode, reference summaries) and ``clean.jsonl``."""
    train, _ = load_text_data(config)
    if train is None:
        raise SummarizeError("restructure needs training articles the audit never used; text.data 'builtin' has them, a local data set does not")
    space = config.concept_space()
    rules = axis_edits(space, [a.perturbation_name for a in config.space.axes])
    from fadejax.audits.text import edits

    n = min(articles, len(train))
    out.mkdir(parents=True, exist_ok=True)
    with open(out / "train.jsonl", "w") as f:
        for mode in modes:
            cell = np.unravel_index(mode, space.sizes)
            values = [space.axes[i].values[int(c)] for i, c in enumerate(cell)]
            for i in range(n):
                names, seeds = edit_plan(rules, cell, values, config.run.seed + 1, i)  # other seeds than the audit's
                f.write(json.dumps({"article": edits.apply_sequence(names, train.articles[i], seeds), "summary": train.references[i]}) + "\n")
    with open(out / "clean.jsonl", "w") as f:
        for i in range(n):
            f.write(json.dumps({"article": train.articles[i], "summary": train.references[i]}) + "\n")
    return out / "train.jsonl", out / "clean.jsonl"


def restructure_text(run_dir: Path, config: ExperimentConfig, modes: list[int], out: Path, old_task: TextTask, *, use_clean: bool = True,
                     epochs: int = 3, learning_rate: float = 2e-5, articles: int = TRAIN_ARTICLES, progress: bool = True,
                     scope: str = "full") -> dict[str, Any]:
    """Fade ``modes`` of the text run in ``run_dir`` into ``out``; see the module docstring.
    ``scope``: ``full`` (every weight) or ``lora`` (peft's adapters, merged into the saved model)."""
    from fadejax.stages.restructure import link_rediscovery
    from fadejax.engine.build import build_task

    train, clean = finetune_pairs(config, modes, out / "finetune", articles)
    spec = {
        "kind": "seq2seq", "model": old_task.info["model"], "train_data": str(train),
        "clean_data": str(clean) if use_clean else None, "output_dir": str(out / "finetune"),
        "hyper": {"epochs": epochs, "learning_rate": learning_rate, "seed": config.run.seed, "scope": scope,
                  "max_input_tokens": config.text.max_input_tokens, "max_target_tokens": config.text.max_new_tokens},
    }
    metrics = launch(spec, quiet=not progress)
    new_config = parse_config({
        **config.model_dump(mode="json"), "name": f"{config.name}-restructured",
        "text": {**config.text.model_dump(mode="json"), "model": metrics["model"]},
    })
    new_task = build_task(new_config, progress=progress)
    rediscovery = link_rediscovery(new_config, new_task, run_dir, out, progress)

    space = config.concept_space()
    old_land = failure_landscape(old_task, batch_size=256, progress=progress)
    new_land = failure_landscape(new_task, batch_size=256, progress=progress)
    rows = [{
        "cell": mode, "concepts": space.describe(mode), "held_out_failure_rate_before": float(old_land[mode]),
        "held_out_failure_rate_after": float(new_land[mode]), "reduced": bool(new_land[mode] < old_land[mode]),
    } for mode in modes]
    top_new = [int(c) for c in np.argsort(-new_land, kind="stable")[:5]]
    report = {
        "run": str(run_dir), "rediscovery": str(rediscovery), "fine_tune": metrics,
        "note": "fine-tuning used only the training articles; every figure here is measured on the held-out articles it never saw",
        "clean_held_out_bleu_before": old_task.info["clean_bleu"], "clean_held_out_bleu_after": new_task.info["clean_bleu"],
        "clean": {"name": "BLEU", "before": old_task.info["clean_bleu"], "after": new_task.info["clean_bleu"]},
        "settings": {"clean_data": use_clean, "epochs": epochs, "learning_rate": learning_rate, "scope": scope},
        "modes": rows,
        "wasserstein_unordered": unordered_distance(old_land, new_land) if old_land.sum() > 0 and new_land.sum() > 0 else None,
        "landscape_mean_before": float(old_land.mean()), "landscape_mean_after": float(new_land.mean()),
        "top_mode_before": {"cell": int(np.argmax(old_land)), "concepts": space.describe(int(np.argmax(old_land))), "held_out_failure_rate": float(old_land.max())},
        "new_top_modes": [{"cell": c, "concepts": space.describe(c), "held_out_failure_rate": float(new_land[c])} for c in top_new],
        "landscape_before": old_land.tolist(), "landscape_after": new_land.tolist(),
    }
    (out / "shift_report.md").write_text(render_markdown(report))
    _figure(old_land, new_land, config, out / "landscapes_before_after.png")
    return report


def _concepts(concepts: dict) -> str:
    return ", ".join(f"{k}={format_value(v)}" for k, v in concepts.items())


def render_markdown(report: dict[str, Any]) -> str:
    s = report["settings"]
    w = report["wasserstein_unordered"]
    lines = [
        f"# Shift report for {report['run']}", "", f"_{report['note']}._", "",
        f"Fine-tuning: Seq2SeqTrainer, {s['epochs']} epochs, lr {s['learning_rate']:g}, "
        + ("edited and unedited training pairs" if s["clean_data"] else "edited training pairs alone") + ".", "",
        f"Clean held-out BLEU: {report['clean_held_out_bleu_before']:.3f} → {report['clean_held_out_bleu_after']:.3f}",
        f"Mean failure rate over all actions: {report['landscape_mean_before']:.1%} → {report['landscape_mean_after']:.1%}",
        "1-D Wasserstein distance between the old and new failure distributions (Table 3): " + ("—" if w is None else f"{w:.3f}"), "",
        "| mode | concepts | failure rate before | after | reduced (Def. 4.1) |", "|---|---|---|---|---|",
    ]
    for m in report["modes"]:
        lines.append(f"| {m['cell']} | {_concepts(m['concepts'])} | {m['held_out_failure_rate_before']:.1%} | {m['held_out_failure_rate_after']:.1%} | {'yes' if m['reduced'] else 'no'} |")
    top = report["top_mode_before"]
    lines += ["", f"Top mode before: {_concepts(top['concepts'])} ({top['held_out_failure_rate']:.1%}).", "",
              "New top failure modes (held-out):", ""]
    for m in report["new_top_modes"]:
        lines.append(f"- {_concepts(m['concepts'])}: {m['held_out_failure_rate']:.1%}")
    return "\n".join(lines) + "\n"


def _figure(before: np.ndarray, after: np.ndarray, config: ExperimentConfig, path: Path) -> None:
    """Failure rate per action before and after, as bars (the paper's Fig. 4b)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    space = config.concept_space()
    labels = [_concepts(space.describe(a)) for a in range(space.num_actions)]
    x = np.arange(len(labels))
    fig, ax = plt.subplots(figsize=(max(6, 0.45 * len(labels)), 4))
    ax.bar(x - 0.2, before, 0.4, label="before fine-tuning")
    ax.bar(x + 0.2, after, 0.4, label="after fine-tuning")
    ax.set_xticks(x, labels, rotation=60, ha="right", fontsize=8)
    ax.set_ylabel("held-out failure rate")
    ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
