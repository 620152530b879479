"""``fadejax describe`` for the generated-conditions audit: the classifier's real failures,
each named by CLIP with the most likely condition of its class's vocabulary.

The debug set is the classifier's misclassified held-out images (the ``data`` section's
held-out split: the clean debug set of Chegini & Feizi) whose true class is a word of the
``class`` axis. Per class it is split at random into a *debug seed* share
(``conditions.debug_seed_fraction``; what a fix may learn from) and a *debug held-out*
share (what checks the fix). CLIP assigns each failure the condition whose prompt
(``templates[0]`` filled with the class and the condition) it matches best among the
class's candidates (``conditions.vocabulary``; default every condition word), and the
(class, condition) pairs are ranked by the seed failures they explain.

Writes ``describe.json`` (every failure: its held-out index, class, condition, CLIP's
probability and split; the ranked pairs with their cells), ``describe.md`` and each
failure's image as ``images/NNNNNN.png``.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np

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


def describe(config, out: Path, *, model: str | None = None, top: int = 5, progress: bool = True) -> dict[str, Any]:
    """Describe the held-out failures of the config's classifier (``model``: that member of
    its family); writes ``describe.json``, ``describe.md`` and ``images/`` to ``out``."""
    from bridges.clip_scorer import load_clip
    from bridges.diffusion import save_png
    from fadejax.audits.conditions import read_vocabulary
    from fadejax.audits.conditions.task import class_labels_of
    from fadejax.audits.image import member_config
    from fadejax.audits.image.task import load_classifier

    vocabulary = read_vocabulary(config)  # a vocabulary file's mistakes are named before any model loads
    audited = member_config(config, model) if model is not None else config
    classifier, held_out, info = load_classifier(audited, None, progress)
    names = info.get("label_names") or held_out.class_names
    c = config.conditions
    words = [str(v) for v in config.space.axes[0].values]
    conditions = [str(v) for v in config.space.axes[1].values]
    word_of = {int(label): word for word, label in zip(words, class_labels_of(config, names))}

    if progress:
        print(f"classifying {len(held_out)} held-out images ...", flush=True)
    predicted = predictions(classifier, np.asarray(held_out.images, np.float32))
    labels = np.asarray(held_out.labels, np.int64)
    wrong = np.flatnonzero(predicted != labels)
    named = np.asarray([i for i in wrong if int(labels[i]) in word_of], np.int64)
    seed_idx, held_idx = split_debug(named, labels[named], c.debug_seed_fraction, c.debug_split_seed)
    images = as_uint8_rgb(held_out.images[named]) if len(named) else np.zeros((0, 1, 1, 3), np.uint8)
    if progress:
        print(f"{len(wrong)} failures, {len(named)} of classes on the class axis; naming their conditions with CLIP ...", flush=True)
    scorer = load_clip(c.clip, c.device)
    assigned, probability = assign_conditions(scorer, images, [word_of[int(labels[i])] for i in named], vocabulary, c.templates[0])

    out.mkdir(parents=True, exist_ok=True)
    (out / "images").mkdir(exist_ok=True)
    in_seed = set(seed_idx.tolist())
    failures = []
    for j, i in enumerate(named.tolist()):
        save_png(images[j], out / "images" / f"{i:06d}.png")
        failures.append({"index": i, "label": int(labels[i]), "class": word_of[int(labels[i])], "predicted": int(predicted[i]),
                         "condition": assigned[j], "probability": float(probability[j]), "split": "seed" if i in in_seed else "held_out",
                         "image": f"images/{i:06d}.png"})
    pairs: dict[tuple[str, str], dict[str, Any]] = {}
    for f in failures:
        pair = pairs.setdefault((f["class"], f["condition"]), {"class": f["class"], "condition": f["condition"], "seed_failures": 0,
                                                              "held_out_failures": 0, "images": []})
        pair["seed_failures" if f["split"] == "seed" else "held_out_failures"] += 1
        pair["images"].append(f["image"])
    ranked = sorted(pairs.values(), key=lambda p: (-p["seed_failures"], -p["held_out_failures"], p["class"], p["condition"]))
    sizes = config.concept_space().sizes
    for p in ranked:
        p["cell"] = int(np.ravel_multi_index((words.index(p["class"]), conditions.index(p["condition"])), sizes))
        p["share_of_seed"] = p["seed_failures"] / max(len(seed_idx), 1)
    report = {
        "config": config.name, "model": model, "held_out_samples": len(held_out), "clean_accuracy": float(np.mean(predicted == labels)) if len(labels) else None,
        "failures": len(wrong), "described": len(named), "debug_seed": seed_idx.tolist(), "debug_held_out": held_idx.tolist(),
        "template": c.templates[0], "vocabulary": vocabulary, "pairs": ranked, "top": ranked[:top], "assignments": failures,
    }
    report["lines"] = [f"{len(named)} failures described: {out / 'describe.md'}"] + [
        f"  {rank}. {p['class']} {p['condition']}: {p['seed_failures']} debug-seed and {p['held_out_failures']} debug-held-out "
        f"failures (cell {p['cell']})" for rank, p in enumerate(ranked[:top], 1)]
    (out / "describe.json").write_text(json.dumps(report, indent=2))
    (out / "describe.md").write_text(render_markdown(report))
    return report


def render_markdown(report: dict[str, Any]) -> str:
    """The description as Markdown: the ranked (class, condition) pairs with a few images each."""
    who = f" ({report['model']})" if report.get("model") else ""
    accuracy = report.get("clean_accuracy")
    lines = [
        f"# Failures of {report['config']}{who}, described in words", "",
        f"{report['failures']} of {report['held_out_samples']} held-out images misclassified"
        + (f" (clean accuracy {accuracy:.1%})" if accuracy is not None else "")
        + f"; {report['described']} of classes on the class axis, split into {len(report['debug_seed'])} debug-seed and "
          f"{len(report['debug_held_out'])} debug-held-out failures. CLIP named each one's condition with "
          f"\"{report['template']}\" over its class's candidates.", "",
        "| rank | class | condition | cell | debug seed | debug held-out | share of seed | images |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for rank, p in enumerate(report["pairs"], 1):
        shown = " ".join(f"![{Path(i).stem}]({i})" for i in p["images"][:4])
        lines.append(f"| {rank} | {p['class']} | {p['condition']} | {p['cell']} | {p['seed_failures']} | {p['held_out_failures']} | "
                     f"{p['share_of_seed']:.0%} | {shown} |")
    return "\n".join(lines) + "\n"
