"""``fadejax describe`` for the generated-conditions audit: the classifier's real failures,
each named by CLIP with the most likely condition of its class's vocabulary.

The debug set is the classifier's misclassified held-out images (the ``data`` section's
held-out split: the clean debug set of Chegini & Feizi) whose true class is a word of the
``class`` axis. Per class it is split at random into a *debug seed* share
(``conditions.debug_seed_fraction``; what a fix may learn from) and a *debug held-out*
share (what checks the fix). CLIP assigns each failure the condition whose prompt
(``conditions.describe_template``, default ``templates[0]``, filled with the class and the
condition) it matches best among the
class's candidates (``conditions.vocabulary``; default every condition word), and the
(class, condition) pairs are ranked by the seed failures they explain.

With ``--run RUN_DIR`` the failures are instead those an image-audit discovery run of the
same classifier found (``task: image``; e.g. rotations and blur of the same held-out
images): each distinct failing (held-out sample, cell) pair's image is regenerated from the
run's config (keyed perturbations, such as noise, redrawn with a fixed key) and described
in the same way, at most ``--max-failures`` of them (a seeded random choice).

Writes ``describe.json`` (every failure: its held-out index, or its run sample and cell,
class, condition, CLIP's probability and split; the ranked pairs with their cells), ``describe.md`` and each
failure's image as ``images/NNNNNN.png``.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from fadejax.engine.audit import AuditError
from fadejax.audits.prompt.prompts import compose


def predictions(classifier, images: np.ndarray, batch: int = 256) -> np.ndarray:
    """Argmax class of each of ``(N, H, W, C)`` float images in [0, 1]: ``(N,)`` int64."""
    out = [np.asarray(classifier(images[i : i + batch])).argmax(-1) for i in range(0, len(images), batch)]
    return np.concatenate(out).astype(np.int64) if out else np.zeros(0, np.int64)


def split_debug(indices: np.ndarray, classes: np.ndarray, fraction: float, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """``(debug seed, debug held-out)`` indices: per class, a random ``fraction`` (at least
    one where the class has two or more failures) goes to the seed set, the rest to held-out."""
    rng = np.random.default_rng(seed)
    seed_part, held = [], []
    for c in np.unique(classes):
        members = rng.permutation(indices[classes == c])
        k = int(round(fraction * len(members)))
        k = min(max(k, 1), len(members) - 1) if len(members) >= 2 else len(members)
        seed_part.append(members[:k])
        held.append(members[k:])
    join = lambda parts: np.sort(np.concatenate(parts)).astype(np.int64) if parts else np.zeros(0, np.int64)  # noqa: E731
    return join(seed_part), join(held)


def assign_conditions(scorer, images: np.ndarray, words: list[str], vocabulary: dict[str, list[str]], template: str) -> tuple[list[str], np.ndarray]:
    """Each image's most likely condition among its class word's candidates, and CLIP's
    probability of it. ``images``: ``(B, H, W, 3)`` uint8; ``words``: each image's class word."""
    conditions: list[str] = [""] * len(words)
    probability = np.ones(len(words), np.float32)
    for word in sorted(set(words)):
        rows = [i for i, w in enumerate(words) if w == word]
        candidates = vocabulary[word]
        if len(candidates) == 1:  # nothing to choose
            for i in rows:
                conditions[i] = candidates[0]
            continue
        prompts = {c: compose(template, {"class": word, "condition": c}) for c in candidates}
        probs = np.asarray(scorer.zero_shot(images[rows], prompts))
        for i, p in zip(rows, probs):
            conditions[i], probability[i] = candidates[int(np.argmax(p))], float(p.max())
    return conditions, probability


def as_uint8_rgb(images: np.ndarray) -> np.ndarray:
    """``(N, H, W, C)`` float images in [0, 1] as ``(N, H, W, 3)`` uint8 (grey repeated)."""
    x = np.clip(np.rint(np.asarray(images) * 255.0), 0, 255).astype(np.uint8)
    return np.repeat(x, 3, axis=-1) if x.shape[-1] == 1 else x


@dataclass
class Failures:
    """The failures to describe, in one order.

    Attributes:
      images: ``(N, H, W, 3)`` uint8, what CLIP sees.
      labels, predicted: ``(N,)`` int64, the true and the answered label.
      entries: per failure what identifies it: ``{"index"}``, its held-out index, for the
        debug set; for a run's failure ``{"index", "sample", "cell", "concepts"}``, its
        number among the run's failures described, its held-out sample and its cell.
      facts: what the report says of where they came from.
      names: the classifier's class names (``None`` if it names none).
    """

    images: np.ndarray
    labels: np.ndarray
    predicted: np.ndarray
    entries: list[dict[str, Any]]
    facts: dict[str, Any]
    names: list[str] | None


def debug_set_failures(audited, progress: bool) -> Failures:
    """The classifier's misclassified held-out images (the clean debug set)."""
    from fadejax.audits.image.task import load_classifier

    classifier, held_out, info = load_classifier(audited, None, progress)
    if progress:
        print(f"classifying {len(held_out)} held-out images ...", flush=True)
    predicted = predictions(classifier, np.asarray(held_out.images, np.float32))
    labels = np.asarray(held_out.labels, np.int64)
    wrong = np.flatnonzero(predicted != labels)
    facts = {"source": "debug_set", "held_out_samples": len(held_out),
             "clean_accuracy": float(np.mean(predicted == labels)) if len(labels) else None, "failures": len(wrong)}
    return Failures(as_uint8_rgb(held_out.images[wrong]), labels[wrong],
                    predicted[wrong], [{"index": int(i)} for i in wrong], facts, info.get("label_names") or held_out.class_names)


def _same_classifier(run_model, audited_model, run_dir: Path) -> None:
    """Refuse a run of another classifier than the one described (the device and the
    pre-flight's chance check may differ)."""
    ours, theirs = (m.model_dump(mode="json", exclude={"device", "refuse_chance"}) for m in (audited_model, run_model))
    differing = sorted(k for k in set(ours) | set(theirs) if ours.get(k) != theirs.get(k))
    if differing:
        shown = "; ".join(f"model.{k}: run {theirs.get(k)!r}, config {ours.get(k)!r}" for k in differing)
        raise AuditError(f"--run '{run_dir}' audited another classifier than this config's ({shown}); "
                         "describe a run of the classifier the config names")


def run_failures(audited, run_dir: Path, model: str | None, limit: int, seed: int, trust_code: bool, progress: bool,
                 audited_is_member: bool = False) -> Failures:
    """The distinct failing (held-out sample, cell) pairs of an image-audit discovery run of
    the same classifier, each image regenerated; at most ``limit`` of them (a seeded random
    choice, kept in the order the run found them). ``model`` names the run's family member,
    or (``audited_is_member``) the config's."""
    from fadejax.audits.image import member_config
    from fadejax.audits.image.task import compose_perturbations, load_classifier, perturbed_images
    from fadejax.engine.store.records import has_records, read_records, records_path
    from fadejax.engine.store.rundir import note_outside_paths, read_run_config

    run_config = read_run_config(run_dir, trust_code)
    if run_config.audit.name != "image":
        raise AuditError(f"--run '{run_dir}' is a '{run_config.audit.name}' run; describe reads the failures of an image-audit run "
                         "(task: image) of the same classifier")
    family = run_config.models.names
    if family and model not in family:
        raise AuditError(f"--run '{run_dir}' audits a family {family}: name the model whose failures to describe with --model")
    if model is not None and not family and not audited_is_member:
        raise AuditError(f"--model '{model}': neither this config nor the run '{run_dir}' audits a family of models")
    if model is not None and family:
        run_config, prefix = member_config(run_config, model), f"{model}."
    else:
        prefix = ""
    _same_classifier(run_config.model, audited.model, run_dir)
    if not has_records(run_dir):
        raise AuditError(f"--run '{run_dir}' has no records: it has not queried its model yet")
    note_outside_paths(run_dir, run_config)

    seen: dict[tuple[int, int], dict[str, Any]] = {}
    records = 0
    for r in read_records(records_path(run_dir)):
        if r.get(f"{prefix}failed"):
            records += 1
            seen.setdefault((int(r["sample"]), int(r["cell"])), {"sample": int(r["sample"]), "cell": int(r["cell"]), "concepts": r["concepts"],
                                                                 "label": int(r["label"]), "predicted": int(r[f"{prefix}predicted"])})
    found = list(seen.values())
    kept = found if len(found) <= limit else [found[i] for i in np.sort(np.random.default_rng(seed).choice(len(found), limit, replace=False))]
    _, held_out, info = load_classifier(run_config, None, progress)
    if progress:
        print(f"regenerating {len(kept)} of the run's {len(found)} distinct failures ...", flush=True)
    samples = np.asarray([f["sample"] for f in kept], np.int64)
    images = perturbed_images(compose_perturbations(run_config), run_config.concept_space(), np.asarray(held_out.images)[samples],
                              np.asarray([f["cell"] for f in kept], np.int64))
    facts = {"source": "run", "run": str(run_dir), "failure_records": records, "failures": len(found), "left_out": len(found) - len(kept),
             "held_out_samples": len(held_out)}
    return Failures(as_uint8_rgb(images),
                    np.asarray([f["label"] for f in kept], np.int64), np.asarray([f["predicted"] for f in kept], np.int64),
                    [{"index": j, **{k: f[k] for k in ("sample", "cell", "concepts")}} for j, f in enumerate(kept)], facts,
                    info.get("label_names") or held_out.class_names)


def describe(config, out: Path, *, model: str | None = None, top: int = 5, run: Path | None = None, limit: int = 1000,
             trust_code: bool = False, progress: bool = True) -> dict[str, Any]:
    """Describe the failures of the config's classifier (``model``: that member of its
    family): its held-out failures, or with ``run`` those an image-audit discovery run of it
    found (at most ``limit``). Writes ``describe.json``, ``describe.md`` and ``images/`` to ``out``."""
    from bridges.clip_scorer import load_clip
    from bridges.diffusion import save_png
    from fadejax.audits.conditions import describe_template, read_vocabulary
    from fadejax.audits.conditions.task import class_labels_of
    from fadejax.audits.image import member_config

    vocabulary = read_vocabulary(config)  # a vocabulary file's mistakes are named before any model loads
    audited = member_config(config, model) if model is not None and config.models.names else config
    c = config.conditions
    template = describe_template(config)
    found = run_failures(audited, Path(run), model, limit, c.debug_split_seed, trust_code, progress,
                         audited_is_member=bool(config.models.names)) if run is not None \
        else debug_set_failures(audited, progress)
    words = [str(v) for v in config.space.axes[0].values]
    conditions = [str(v) for v in config.space.axes[1].values]
    word_of = {int(label): word for word, label in zip(words, class_labels_of(config, found.names))}

    named = np.asarray([j for j, label in enumerate(found.labels) if int(label) in word_of], np.int64)
    seed_idx, held_idx = split_debug(named, found.labels[named], c.debug_seed_fraction, c.debug_split_seed)
    if progress:
        print(f"{len(found.labels)} failures, {len(named)} of classes on the class axis; naming their conditions with CLIP ...", flush=True)
    scorer = load_clip(c.clip, c.device)
    images = found.images[named]
    assigned, probability = assign_conditions(scorer, images, [word_of[int(found.labels[j])] for j in named], vocabulary, template)

    out.mkdir(parents=True, exist_ok=True)
    (out / "images").mkdir(exist_ok=True)
    in_seed = set(seed_idx.tolist())
    failures = []
    for k, j in enumerate(named.tolist()):
        entry = found.entries[j]
        name = f"{entry['index']:06d}"
        save_png(images[k], out / "images" / f"{name}.png")
        label = int(found.labels[j])
        failures.append({**entry, "label": label, "class": word_of[label], "predicted": int(found.predicted[j]), "condition": assigned[k],
                         "probability": float(probability[k]), "split": "seed" if j in in_seed else "held_out", "image": f"images/{name}.png"})
    pairs: dict[tuple[str, str], dict[str, Any]] = {}
    for f in failures:
        pair = pairs.setdefault((f["class"], f["condition"]), {"class": f["class"], "condition": f["condition"], "seed_failures": 0,
                                                              "held_out_failures": 0, "images": []})
        pair["seed_failures" if f["split"] == "seed" else "held_out_failures"] += 1
        pair["images"].append(f["image"])
    ranked = sorted(pairs.values(), key=lambda p: (-p["seed_failures"], -p["held_out_failures"], p["class"], p["condition"]))
    sizes = config.concept_space().sizes
    for p in ranked:
        # the pair's cells: one, or one per combination of the further axes' words (e.g. styles)
        p["cells"] = [int(np.ravel_multi_index((words.index(p["class"]), conditions.index(p["condition"]), *rest), sizes))
                      for rest in np.ndindex(*sizes[2:])]
        p["share_of_seed"] = p["seed_failures"] / max(len(seed_idx), 1)
    report = {
        "config": config.name, "model": model, **found.facts, "described": len(named), "debug_seed": [found.entries[j]["index"] for j in seed_idx],
        "debug_held_out": [found.entries[j]["index"] for j in held_idx], "template": template, "vocabulary": vocabulary, "pairs": ranked, "top": ranked[:top],
        "assignments": failures,
    }
    report["lines"] = [f"{len(named)} failures described: {out / 'describe.md'}"] + [
        f"  {rank}. {p['class']} {p['condition']}: {p['seed_failures']} debug-seed and {p['held_out_failures']} debug-held-out "
        f"failures ({_cells(p)})" for rank, p in enumerate(ranked[:top], 1)]
    (out / "describe.json").write_text(json.dumps(report, indent=2))
    (out / "describe.md").write_text(render_markdown(report))
    return report


def _cells(pair: dict[str, Any]) -> str:
    """``cell N`` or ``cells N, M, ...`` of a (class, condition) pair."""
    cells = pair["cells"]
    return f"cell {cells[0]}" if len(cells) == 1 else "cells " + ", ".join(str(c) for c in cells)


def render_markdown(report: dict[str, Any]) -> str:
    """The description as Markdown: the ranked (class, condition) pairs with a few images each."""
    who = f" ({report['model']})" if report.get("model") else ""
    accuracy = report.get("clean_accuracy")
    if report.get("source") == "run":
        left_out = f", {report['left_out']} of them left out at random (--max-failures)" if report["left_out"] else ""
        found = (f"{report['failures']} distinct failing (held-out sample, cell) pairs in the discovery run {report['run']} "
                 f"({report['failure_records']} failed queries{left_out}), each image regenerated")
    else:
        found = (f"{report['failures']} of {report['held_out_samples']} held-out images misclassified"
                 + (f" (clean accuracy {accuracy:.1%})" if accuracy is not None else ""))
    lines = [
        f"# Failures of {report['config']}{who}, described in words", "",
        found + f"; {report['described']} of classes on the class axis, split into {len(report['debug_seed'])} debug-seed and "
          f"{len(report['debug_held_out'])} debug-held-out failures. CLIP named each one's condition with "
          f"\"{report['template']}\" over its class's candidates.", "",
        "| rank | class | condition | cells | debug seed | debug held-out | share of seed | images |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for rank, p in enumerate(report["pairs"], 1):
        shown = " ".join(f"![{Path(i).stem}]({i})" for i in p["images"][:4])
        lines.append(f"| {rank} | {p['class']} | {p['condition']} | {_cells(p).split(' ', 1)[1]} | {p['seed_failures']} | {p['held_out_failures']} | "
                     f"{p['share_of_seed']:.0%} | {shown} |")
    return "\n".join(lines) + "\n"
