"""Stage 3 for text-to-image pipelines: a LoRA adapter away from chosen modes, rediscovery, the shift.

``restructure_prompt(run_dir, modes, data_dir=...)``:

1. trains a LoRA adapter on the pipeline's UNet with peft in its own process, on a folder
   of captioned images the user supplies (the paper used balanced images from another
   generator; AdamW lr 1e-4, cosine schedule, batch 2, 4 epochs, fp16 on a GPU), saved
   as safetensors;
2. runs discovery again with the adapter loaded into the pipeline (same config, seed and
   budget) into ``OUT/rediscovery``;
3. writes the shift report from the two runs' records (generated images are not
   re-generated exhaustively): per chosen mode the observed failure rate before and after
   (Definition 4.1), the mean reward, the new top modes, and the bias measure — the
   zero-shot attribute ratio (e.g. male-to-female, the paper's 1.65 -> 1.16) over all
   valid images and within the chosen modes — before and after.
"""

from __future__ import annotations

from collections import Counter
from pathlib import Path
from typing import Any

import numpy as np

from fadejax.audits.prompt.task import attribute_ratio
from fadejax.engine.config import ExperimentConfig, parse_config
from fadejax.stages.finetune import launch
from fadejax.engine.store.records import read_records, records_path, top_observed_cells
from fadejax.core.spaces import format_value


def records_ratio(records: list[dict], numerator: str, denominator: str) -> float | None:
    """:func:`fadejax.audits.prompt.task.attribute_ratio` over the images of ``records``."""
    return attribute_ratio(Counter(r.get("attribute", "ambiguous") for r in records), numerator, denominator)


def observed_rates(records: list[dict], cells: list[int]) -> dict[int, tuple[int, int]]:
    """``cell -> (visits, failures)`` among ``records`` for each of ``cells``."""
    out = {c: (0, 0) for c in cells}
    for r in records:
        if r["cell"] in out:
            visits, fails = out[r["cell"]]
            out[r["cell"]] = (visits + 1, fails + int(r["failed"]))
    return out


def restructure_prompt(run_dir: Path, config: ExperimentConfig, modes: list[int], out: Path, *, data_dir: str, epochs: int = 4,
                       learning_rate: float = 1e-4, rank: int = 4, progress: bool = True) -> dict[str, Any]:
    """Fade ``modes`` of the prompt run in ``run_dir`` into ``out``; see the module docstring."""
    from fadejax.stages.restructure import link_rediscovery
    from fadejax.engine.build import build_task

    p = config.prompt
    spec = {
        "kind": "lora", "pipeline": p.pipeline, "data_dir": data_dir, "output_dir": str(out / "finetune"),
        "hyper": {"epochs": epochs, "learning_rate": learning_rate, "rank": rank, "alpha": float(rank), "resolution": p.height,
                  "seed": config.run.seed, "device": "cuda" if p.device.startswith("cuda") else p.device},
    }
    metrics = launch(spec, quiet=not progress)
    new_config = parse_config({
        **config.model_dump(mode="json"), "name": f"{config.name}-restructured",
        "prompt": {**p.model_dump(mode="json"), "lora": metrics["adapter"]},
    })
    new_task = build_task(new_config, progress=progress)
    rediscovery = link_rediscovery(new_config, new_task, run_dir, out, progress)

    space = config.concept_space()
    before = list(read_records(records_path(run_dir)))
    after = list(read_records(records_path(rediscovery)))
    num, den = p.bias_ratio
    old, new = observed_rates(before, modes), observed_rates(after, modes)
    rows = []
    for mode in modes:
        (v0, f0), (v1, f1) = old[mode], new[mode]
        r0, r1 = (f0 / v0 if v0 else None), (f1 / v1 if v1 else None)
        rows.append({
            "cell": mode, "concepts": space.describe(mode), "observed_failure_rate_before": r0, "visits_before": v0,
            "observed_failure_rate_after": r1, "visits_after": v1,
            "reduced": None if r0 is None or r1 is None else r1 < r0,
            "bias_ratio_before": records_ratio([r for r in before if r["cell"] == mode], num, den),
            "bias_ratio_after": records_ratio([r for r in after if r["cell"] == mode], num, den),
        })
    top_new = top_observed_cells(records_path(rediscovery), 5, min_visits=2)
    report = {
        "run": str(run_dir), "rediscovery": str(rediscovery), "fine_tune": metrics,
        "note": "rates are observed over each run's own queries (same seed and budget); images are not re-generated exhaustively",
        "settings": {"epochs": epochs, "learning_rate": learning_rate, "rank": rank, "data_dir": data_dir},
        "bias_measure": f"{num}-to-{den} ratio of zero-shot CLIP attributes",
        "bias_ratio_before": records_ratio(before, num, den), "bias_ratio_after": records_ratio(after, num, den),
        "mean_reward_before": float(np.mean([r["reward"] for r in before])), "mean_reward_after": float(np.mean([r["reward"] for r in after])),
        "failure_rate_before": float(np.mean([r["failed"] for r in before])), "failure_rate_after": float(np.mean([r["failed"] for r in after])),
        "modes": rows,
        "new_top_modes": [{**m, "concepts": space.describe(m["cell"])} for m in top_new],
    }
    (out / "shift_report.md").write_text(render_markdown(report))
    return report


def _ratio(x: float | None) -> str:
    return "—" if x is None else f"{x:.2f}"


def _rate(x: float | None) -> str:
    return "—" if x is None else f"{x:.1%}"


def render_markdown(report: dict[str, Any]) -> str:
    s = report["settings"]
    lines = [
        f"# Shift report for {report['run']}", "", f"_{report['note']}._", "",
        f"Fine-tuning: LoRA rank {s['rank']} on the UNet, {s['epochs']} epochs, lr {s['learning_rate']:g}, images from `{s['data_dir']}`.", "",
        f"Bias ({report['bias_measure']}): {_ratio(report['bias_ratio_before'])} → {_ratio(report['bias_ratio_after'])}",
        f"Failure rate over all queries: {report['failure_rate_before']:.1%} → {report['failure_rate_after']:.1%}; "
        f"mean reward {report['mean_reward_before']:.2f} → {report['mean_reward_after']:.2f}", "",
        "| mode | concepts | failure rate before | after | reduced (Def. 4.1) | bias before | after |", "|---|---|---|---|---|---|---|",
    ]
    for m in report["modes"]:
        concepts = ", ".join(f"{k}={format_value(v)}" for k, v in m["concepts"].items())
        reduced = "—" if m["reduced"] is None else ("yes" if m["reduced"] else "no")
        lines.append(f"| {m['cell']} | {concepts} | {_rate(m['observed_failure_rate_before'])} ({m['visits_before']}) | "
                     f"{_rate(m['observed_failure_rate_after'])} ({m['visits_after']}) | {reduced} | {_ratio(m['bias_ratio_before'])} | {_ratio(m['bias_ratio_after'])} |")
    lines += ["", "New top failure modes (observed after fine-tuning):", ""]
    for m in report["new_top_modes"]:
        lines.append(f"- {', '.join(f'{k}={format_value(v)}' for k, v in m['concepts'].items())}: {m['failure_rate']:.1%} ({m['failures']}/{m['visits']})")
    return "\n".join(lines) + "\n"

