"""Stage 3 for the generated-conditions audit: fix the classifier's head with generated
data (Chegini & Feizi), for one model or a whole family with one generated set.

``restructure_conditions(run_dir, config, modes, out, request)``:

1. **generates the data**, every image checked as discovery checks it (not blank, class
   visible to CLIP), with seeds that no image of the run, nor of another set, uses
   (:data:`~fadejax.audits.conditions.task.TRAIN`, ``RANDOM`` and ``EVAL`` seed domains):
   ``images_per_mode`` images of each chosen (class, condition) mode from the first
   template (the *generated* set); the same number of images of the same classes from
   ``class_prompt`` alone, "a photo of a {class}" (the *random-debugging* baseline of the
   paper, with the same image budget); and ``eval_images_per_mode`` fresh images per mode
   (the *generated held-out* check);
2. **retrains the final layer** of each model (``--model NAME``: that member only; by
   default every member of a family: the collective fix) twice with the classifier
   fine-tuner, ``L_original + λ·L_generated`` (λ: ``--failure-weight``; L_original on
   ``conditions.train_data``; ``--no-clean``: the generated data alone), once on the
   generated set and once on the baseline's; the fine-tunes run side by side, one process
   each, as many at once as there are cores;
3. **measures** each model before, after the fix and after the baseline on its debug
   held-out failures (``fadejax describe``'s split of its misclassified held-out images),
   on the clean held-out set, and on the generated held-out images, overall and per mode;
4. **rediscovers** with the fixed models (same config, seed and budget) into
   ``OUT/rediscovery`` and reports each mode's observed failure rate before and after.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import numpy as np

from fadejax.engine.audit import AuditError, RestructureRequest
from fadejax.audits.conditions.task import EVAL, RANDOM, TRAIN, generation_seed, to_classifier, visible
from fadejax.audits.prompt.prompts import compose
from fadejax.audits.prompt.restructure import observed_rates
from fadejax.engine.config import ExperimentConfig, parse_config
from fadejax.engine.store.records import read_records, records_path

#: how many tries a set may take per image it needs before it settles for fewer valid ones
TRIES_PER_IMAGE = 4
#: the head's SGD weight decay unless --weight-decay says otherwise (the paper's Table 4)
WEIGHT_DECAY = 5e-4


def targets_of(config: ExperimentConfig, model: str | None) -> list[str | None]:
    """The models to fix: ``model``, else every family member, else the one model (``None``)."""
    if model is not None:
        if model not in config.models.names:
            raise AuditError(f"--model '{model}' is not a model of this run's family {config.models.names or '(it audits one model)'}")
        return [model]
    return list(config.models.names) or [None]


def model_section(config: ExperimentConfig, name: str | None):
    return config.models.member(name) if name is not None else config.model


def check(config: ExperimentConfig, request: RestructureRequest) -> None:
    """Refuse what the head fine-tuner cannot do, before anything is generated."""
    for name in targets_of(config, request.options.get("model")):
        m = model_section(config, name)
        where = f"model '{name}'" if name else "the model"
        if m.source != "file":
            raise AuditError(f"restructure retrains the final layer of 'file' models (an architecture class and its weights); "
                             f"{where} is a '{m.source}' model")
    if request.use_clean and config.conditions.train_data is None:
        raise AuditError("L_original needs the classifier's training images: set conditions.train_data (a folder of class "
                         "folders or an .npz), or pass --no-clean to train on the generated data alone")
    for name in ("images_per_mode", "eval_images_per_mode"):
        value = request.options.get(name)
        if value is not None and value < 1:
            raise AuditError(f"--{name.replace('_', '-')} {value}: give 1 or more")
    if request.options.get("weight_decay") is not None and request.options["weight_decay"] < 0:
        raise AuditError(f"--weight-decay {request.options['weight_decay']}: give 0 or more")


def generate_set(task, prompts: list[str], classes: list[int], domain: int, taken: set[int], progress: bool = True
                 ) -> tuple[np.ndarray, np.ndarray, list[int], list[str], list[int]]:
    """One valid image per prompt where possible: ``(images (K, H, W, 3) uint8, labels (K,),
    seeds, prompts, positions)``, ``positions`` the index in ``prompts`` of each kept
    image's prompt; a prompt gets up to :data:`TRIES_PER_IMAGE` seeds, each new to
    ``taken`` (which the chosen ones join). ``classes``: each prompt's class word index."""
    from bridges.clip_scorer import invalid

    kept_images, kept_labels, kept_seeds, kept = [], [], [], []
    pending = list(range(len(prompts)))
    for attempt in range(TRIES_PER_IMAGE):
        if not pending:
            break
        seeds = []
        for i in pending:
            j = 0
            while (seed := generation_seed(task.seed, domain, i, attempt * 1000 + j)) in taken:
                j += 1
            seeds.append(seed)
        images = np.asarray(task.generator.generate([prompts[i] for i in pending], seeds))
        intended = np.asarray([classes[i] for i in pending], np.int64)
        ok = ~np.asarray(invalid(images), bool) & visible(np.asarray(task.scorer.zero_shot(images, task.class_prompts)), intended, task.visible_top_k)
        for k, i in enumerate(pending):
            if ok[k]:
                kept_images.append(images[k])
                kept_labels.append(int(task.class_labels[classes[i]]))
                kept_seeds.append(seeds[k])
                kept.append(i)
                taken.add(seeds[k])
        pending = [i for k, i in enumerate(pending) if not ok[k]]
    if pending and progress:
        print(f"note: {len(pending)} of {len(prompts)} images stayed invalid after {TRIES_PER_IMAGE} seeds each; the set is smaller")
    images = np.stack(kept_images) if kept_images else np.zeros((0, 1, 1, 3), np.uint8)
    return images, np.asarray(kept_labels, np.int64), kept_seeds, [prompts[i] for i in kept], kept


def _accuracy(classifier, x, labels: np.ndarray) -> float | None:
    if len(labels) == 0:
        return None
    from fadejax.audits.conditions.describe import predictions

    return float(np.mean(predictions(classifier, np.asarray(x, np.float32)) == labels))


def _load(section, held_out, config):
    from bridges.loading import build_classifier_oracle

    return build_classifier_oracle(section, None, held_out, config.data, progress=False)[0]


def mode_prompts(space, modes: list[int], template: str, count: int) -> tuple[list[str], list[int]]:
    """``count`` copies of ``template`` filled with each mode's words (every axis the
    template names), in mode order, and each prompt's class index (the ``class`` axis)."""
    prompts, classes = [], []
    for mode in modes:
        index = [int(v) for v in np.unravel_index(mode, space.sizes)]
        concepts = {axis.name: str(axis.values[i]) for axis, i in zip(space.axes, index)}
        prompts += [compose(template, {k: v for k, v in concepts.items() if "{" + k + "}" in template})] * count
        classes += [index[0]] * count
    return prompts, classes


def restructure_conditions(run_dir: Path, config: ExperimentConfig, modes: list[int], out: Path, request: RestructureRequest) -> dict[str, Any]:
    """Fix ``modes`` of the conditions run in ``run_dir`` into ``out``; see the module docstring."""
    from fadejax.audits.conditions.describe import predictions, split_debug
    from fadejax.audits.image.data import load_folder, load_npz
    from fadejax.audits.image.task import load_classifier
    from fadejax.stages.finetune import launch_all
    from fadejax.stages.restructure import link_rediscovery, settings_of
    from fadejax.engine.build import build_task

    progress, c = request.progress, config.conditions
    per_mode = request.options.get("images_per_mode") or 5
    eval_per_mode = request.options.get("eval_images_per_mode") or 5
    weight_decay = request.options.get("weight_decay", WEIGHT_DECAY)
    targets = targets_of(config, request.options.get("model"))
    task = build_task(config, progress=progress)
    space = config.concept_space()
    words = [str(v) for v in space.axes[0].values]
    taken = {int(r["seed"]) for r in read_records(records_path(run_dir))}
    searched = len(taken)

    if progress:
        print(f"generating {per_mode} images per mode for the fix, as many for the random baseline, {eval_per_mode} to check ...", flush=True)
    fix_prompts, fix_classes = mode_prompts(space, modes, c.templates[0], per_mode)
    fix = generate_set(task, fix_prompts, fix_classes, TRAIN, taken, progress)
    if not len(fix[1]):
        raise AuditError("no valid image of the chosen modes was generated (each was blank or CLIP did not see its class); "
                         "choose other modes or loosen conditions.visible_top_k")
    fix_kept_classes = [fix_classes[i] for i in fix[4]]
    baseline_prompts = [compose(c.class_prompt, {"class": words[k]}) for k in fix_kept_classes]  # the same classes, as many images
    baseline = generate_set(task, baseline_prompts, fix_kept_classes, RANDOM, taken, progress)
    eval_prompts, eval_classes = mode_prompts(space, modes, c.templates[0], eval_per_mode)
    held = generate_set(task, eval_prompts, eval_classes, EVAL, taken, progress)
    data_dir = out / "generated"
    data_dir.mkdir(parents=True, exist_ok=True)
    size = task.image_size
    inputs = {}  # each set as the classifier's input (B, S, S, 3) in [0, 1]
    for name, (images, labels, seeds, prompts, _) in {"generated": fix, "random": baseline, "eval": held}.items():
        inputs[name] = np.asarray(to_classifier(images, size)) if len(images) else np.zeros((0, size, size, 3), np.float32)
        np.savez(data_dir / f"{name}.npz", images=inputs[name], labels=labels, seeds=np.asarray(seeds, np.int64), prompts=np.asarray(prompts))
    clean = None
    if request.use_clean:
        source = Path(c.train_data)
        original = load_npz(source) if source.suffix == ".npz" else load_folder(source, size)
        np.savez(data_dir / "original.npz", images=original.images, labels=original.labels)
        clean = str(data_dir / "original.npz")

    held_x = inputs["eval"]
    eval_cells = np.asarray([modes[i // eval_per_mode] for i in held[4]], np.int64)  # mode_prompts lists each mode's count together
    variants = ("generated", "random")
    specs = {}
    for name in targets:  # every fine-tune at once: each model's head on each set
        section = model_section(config, name)
        for data in variants:
            specs[(name, data)] = {
                "architecture": section.architecture, "architecture_kwargs": dict(section.architecture_kwargs),
                "weights": section.weights, "failure_data": str(data_dir / f"{data}.npz"), "clean_data": clean,
                "output_dir": str(out / "finetune" / (name or "model") / data),
                "hyper": {"epochs": request.epochs, "learning_rate": request.learning_rate,
                          "failure_weight": request.failure_weight, "weight_decay": weight_decay, "seed": config.run.seed},
                "normalize_mean": section.normalize_mean, "normalize_std": section.normalize_std}
    if progress:
        print(f"retraining the final layer of {len(targets)} model(s) on each set ({len(specs)} fine-tunes) ...", flush=True)
    tuned_metrics = dict(zip(specs, launch_all(list(specs.values()), quiet=not progress, parallel=min(len(specs), os.cpu_count() or 1))))

    models: dict[str, Any] = {}
    fixed_sections: dict[str | None, dict[str, Any]] = {}
    fine_tunes = {f"{name or 'model'}/{data}": metrics for (name, data), metrics in tuned_metrics.items()}
    for name in targets:
        section = model_section(config, name)
        single = config if name is None else _member(config, name)
        before, held_out, _ = load_classifier(single, None, False)
        predicted = predictions(before, np.asarray(held_out.images, np.float32))
        wrong = np.flatnonzero(predicted != held_out.labels)
        _, debug_held = split_debug(wrong, held_out.labels[wrong], c.debug_seed_fraction, c.debug_split_seed)
        row: dict[str, Any] = {}
        for variant in ("before", *variants):
            classifier = before
            if variant != "before":
                tuned = section.model_copy(update={"weights": tuned_metrics[(name, variant)]["model"]})
                classifier = _load(tuned, held_out, config)
                if variant == "generated":
                    fixed_sections[name] = tuned.model_dump(mode="json")
            row[variant] = {
                "debug_held_out_accuracy": _accuracy(classifier, held_out.images[debug_held], held_out.labels[debug_held]),
                "clean_held_out_accuracy": _accuracy(classifier, held_out.images, held_out.labels),
                "generated_held_out_accuracy": _accuracy(classifier, held_x, held[1]),
                "generated_held_out_by_mode": {str(m): _accuracy(classifier, held_x[eval_cells == m], held[1][eval_cells == m]) for m in modes},
            }
        row["debug_held_out_failures"] = len(debug_held)
        models[name or "model"] = row

    new_data = config.model_dump(mode="json")
    new_data["name"] = f"{config.name}-restructured"
    if config.models.names:
        new_data["models"] = [{**m.model_dump(mode="json"), **({k: v for k, v in fixed_sections[m.name].items()} if m.name in fixed_sections else {})}
                              for m in config.models.root]
    else:
        new_data["model"] = fixed_sections[None]
    new_config = parse_config(new_data)
    new_task = build_task(new_config, progress=progress)
    rediscovery = link_rediscovery(new_config, new_task, run_dir, out, progress)
    before_rates = observed_rates(list(read_records(records_path(run_dir))), modes)
    after_rates = observed_rates(list(read_records(records_path(rediscovery))), modes)
    rows = []
    for mode in modes:
        (v0, f0), (v1, f1) = before_rates[mode], after_rates[mode]
        r0, r1 = (f0 / v0 if v0 else None), (f1 / v1 if v1 else None)
        rows.append({"cell": mode, "concepts": space.describe(mode), "observed_failure_rate_before": r0, "visits_before": v0,
                     "observed_failure_rate_after": r1, "visits_after": v1, "reduced": None if r0 is None or r1 is None else r1 < r0})
    report = {
        "run": str(run_dir), "model": request.options.get("model"), "rediscovery": str(rediscovery),
        "note": "the fix retrained only each model's final layer, on generated images whose seeds no image of the run or of the "
                "other sets uses; debug held-out failures and clean held-out images are real ones it never saw",
        "lambda": request.failure_weight if request.use_clean else None, "settings": {**settings_of(request), "weight_decay": weight_decay},
        "generated": {"per_mode": per_mode, "images": len(fix[1]), "random_baseline_images": len(baseline[1]),
                      "eval_images": len(held[1]), "seeds": {"generated": fix[2], "random": baseline[2], "eval": held[2]},
                      "prompts": {"generated": fix[3], "random": baseline[3]}, "searched_seeds": searched},
        "modes": rows, "models": models, "fine_tune": fine_tunes,
    }
    (out / "shift_report.md").write_text(render_markdown(report))
    return report


def _member(config: ExperimentConfig, name: str) -> ExperimentConfig:
    from fadejax.audits.image import member_config

    return member_config(config, name)


def _pct(value: float | None) -> str:
    return "—" if value is None else f"{value:.1%}"


def render_markdown(report: dict[str, Any]) -> str:
    """The shift report: the λ-weighted loss, the collective table (each model: before, fixed
    with the generated set, fixed with the random baseline), and each mode's rates."""
    from fadejax.core.spaces import format_value

    g, lam = report["generated"], report["lambda"]
    loss = "L_generated alone (--no-clean)" if lam is None else f"L_original + {lam:g} · L_generated"
    lines = [
        f"# Shift report for {report['run']}", "", f"_{report['note']}._", "",
        f"Final layer retrained with {loss}, {report['settings']['epochs']} epochs, learning rate {report['settings']['learning_rate']:g}, "
        f"weight decay {report['settings']['weight_decay']:g}; "
        f"{g['images']} generated images ({g['per_mode']} asked per mode), against the random-debugging baseline's {g['random_baseline_images']} "
        f"images of the same classes (\"a photo of a {{class}}\"); {g['eval_images']} fresh generated images check both.", "",
        "| model | measured on | before | fixed (generated) | random baseline | gain over baseline |", "|---|---|---|---|---|---|",
    ]
    for name, row in report["models"].items():
        for key, what in (("debug_held_out_accuracy", f"debug held-out failures ({row['debug_held_out_failures']})"),
                          ("clean_held_out_accuracy", "clean held-out"), ("generated_held_out_accuracy", "generated held-out")):
            b, f, r = (row[v][key] for v in ("before", "generated", "random"))
            gain = "—" if f is None or r is None else f"{100 * (f - r):+.1f} pts"
            lines.append(f"| {name} | {what} | {_pct(b)} | {_pct(f)} | {_pct(r)} | {gain} |")
    lines += ["", "| mode | concepts | observed failure rate before | after (rediscovery) | reduced |", "|---|---|---|---|---|"]
    for m in report["modes"]:
        concepts = ", ".join(f"{k}={format_value(v)}" for k, v in m["concepts"].items())
        reduced = "—" if m["reduced"] is None else ("yes" if m["reduced"] else "no")
        lines.append(f"| {m['cell']} | {concepts} | {_pct(m['observed_failure_rate_before'])} ({m['visits_before']}) | "
                     f"{_pct(m['observed_failure_rate_after'])} ({m['visits_after']}) | {reduced} |")
    return "\n".join(lines) + "\n"
