"""How far can any fine-tune fade the text audit's `lower_case` mode? A bound from the tokenizer.

    .venv/bin/python benchmarks/text_fade_bound.py [--config configs/summarize.yaml] [--edit lower_case]

The project's tiny summarizer reads a cased word-level vocabulary: a word whose lower-cased
form never occurs in its training text (a name, a place, a month) becomes ``<unk>`` once the
article is lower-cased, and no change of the weights can tell which word it was. For each
held-out article this takes the model's own clean summary and deletes every word the edited
article no longer carries (a cased word whose lower-cased form is not in the vocabulary and
that the edit changed), then scores that summary with the audit's rule (Definition 2.1:
BLEU against the reference more than ε below the clean summary's). That is the model at its
clean best, minus only what the edit erased: the share of articles it still fails is a
floor under what a fine-tune of these weights can reach on that edit while it keeps its
clean quality. It prints the floor beside the model's measured failure rate on the edit.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from fadejax.audits.text import edits, rewards  # noqa: E402
from fadejax.audits.text.task import build_text_task  # noqa: E402
from fadejax.engine.config import load_config  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--config", default="configs/summarize.yaml")
    parser.add_argument("--edit", default="lower_case", choices=edits.names())
    args = parser.parse_args()
    from transformers import AutoTokenizer

    config = load_config(args.config)
    task = build_text_task(config, progress=False)
    tokenizer = AutoTokenizer.from_pretrained(task.info["model"], local_files_only=True)
    vocab = tokenizer.get_vocab()
    articles = task.data.articles
    values = list(task.space.axes[0].values)
    if task.space.num_axes != 1 or args.edit not in values:
        raise SystemExit(f"--config's space must be one axis of edit names holding {args.edit}")
    cells = np.full((len(articles), 1), values.index(args.edit))
    edited = task.edited_texts(np.arange(len(articles)), cells)  # exactly the audit's edit
    erased = []  # per article: the words the edit turned into <unk>
    for original, changed in zip(articles, edited):
        before = set(tokenizer.tokenize(original))
        after = {t for t in tokenizer.tokenize(changed) if t in vocab}
        erased.append({w for w in before - after if w in vocab and w.lower() not in vocab})
    floors = []
    for summary, gone in zip(task.clean_summaries, erased):
        kept = [t for t in tokenizer.tokenize(summary) if t not in gone]
        floors.append(tokenizer.convert_tokens_to_string(kept) if kept else "")
    floor_bleu = rewards.bleu_batch([f or "." for f in floors], task.data.references)
    floor_fail = floor_bleu < task.bleu_clean - task.epsilon
    measured = rewards.bleu_batch(task.oracle.summarize(edited), task.data.references) < task.bleu_clean - task.epsilon
    words = np.array([len(g) for g in erased])
    print(f"{args.config}: {len(articles)} held-out articles, edit {args.edit}, epsilon {task.epsilon:g}, clean BLEU {task.bleu_clean.mean():.3f}")
    print(f"words the edit erases per article (cased, lower-cased form not in the {len(vocab)}-word vocabulary): "
          f"mean {words.mean():.1f}, articles with any {np.mean(words > 0):.0%}")
    print(f"the model's measured failure rate on the edit:                      {measured.mean():.1%}")
    print(f"floor: its clean summary minus the erased words fails on            {floor_fail.mean():.1%}")


if __name__ == "__main__":
    main()
