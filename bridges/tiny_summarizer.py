"""The demo's audited summarizer: a tiny T5 trained from scratch on the built-in articles.

A word-level tokenizer (``tokenizers`` WordLevel, cased, split on whitespace and
punctuation, decoded with punctuation re-attached) is built on the training articles and
wrapped as a ``transformers.PreTrainedTokenizerFast``; a small ``T5ForConditionalGeneration``
learns to write the one-sentence summaries of the built-in articles (``"train"``) with
AdamW. The caller (the text audit) hands over the articles and the BLEU scorer: bridges
know nothing of audits. Training is seeded and runs in a few minutes on a CPU; model and
tokenizer are saved with ``save_pretrained`` under ``$FADEJAX_CACHE`` (default
``~/.cache/fadejax``) in ``models/tiny-summarizer-<hash of the recipe>`` and reused on
later runs. ``info.json`` beside them records the recipe, size, training time and the
clean held-out BLEU.

Run ``python -m fadejax.audits.text.task`` to train (or find) it and print its numbers.
"""

from __future__ import annotations

import hashlib
import json
import math
import os
import shutil
import time
from pathlib import Path
from typing import Any, Callable, Protocol, Sequence

import numpy as np
import torch
from tqdm import tqdm

from bridges.digits_cnn import cache_dir

ARCHITECTURE_VERSION = 1
SPECIAL_TOKENS = ("<pad>", "</s>", "<unk>")  # ids 0, 1, 2; T5 starts decoding from <pad>

#: the demo model's recipe; every field shapes the weights, so all of them key the cache.
RECIPE: dict[str, Any] = {
    "train_articles": 6000,
    "data_seed": 0,
    "d_model": 128,
    "d_ff": 256,
    "num_layers": 1,
    "num_decoder_layers": 1,
    "num_heads": 4,
    "d_kv": 32,
    "max_input_tokens": 128,
    "max_target_tokens": 32,
    "batch_size": 32,
    "epochs": 5,
    "learning_rate": 3e-3,
    "weight_decay": 0.01,
    "warmup_steps": 50,
    "seed": 0,
    "eval_articles": 200,
}


def build_word_tokenizer(texts: Sequence[str]):
    """A cased word-level ``PreTrainedTokenizerFast`` whose vocabulary is every word in ``texts``.

    Words and punctuation marks are tokens; inputs get a closing ``</s>``; unknown words map
    to ``<unk>`` (dropped by ``decode(..., skip_special_tokens=True)``). Decoding re-attaches
    full stops and commas, so text of words, integers, commas and full stops round-trips.
    """
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, processors, trainers
    from transformers import PreTrainedTokenizerFast

    tokenizer = Tokenizer(models.WordLevel(unk_token="<unk>"))
    tokenizer.pre_tokenizer = pre_tokenizers.Whitespace()
    tokenizer.decoder = decoders.WordPiece(prefix="##", cleanup=True)
    tokenizer.train_from_iterator(list(texts), trainers.WordLevelTrainer(special_tokens=list(SPECIAL_TOKENS), show_progress=False))
    tokenizer.post_processor = processors.TemplateProcessing(single="$A </s>", special_tokens=[("</s>", 1)])
    return PreTrainedTokenizerFast(
        tokenizer_object=tokenizer, pad_token="<pad>", eos_token="</s>", unk_token="<unk>",
        clean_up_tokenization_spaces=False,
    )


def build_model(tokenizer, recipe: dict[str, Any]):
    """A freshly initialised ``T5ForConditionalGeneration`` sized by ``recipe``."""
    from transformers import T5Config, T5ForConditionalGeneration

    config = T5Config(
        vocab_size=len(tokenizer), d_model=recipe["d_model"], d_ff=recipe["d_ff"], d_kv=recipe["d_kv"],
        num_layers=recipe["num_layers"], num_decoder_layers=recipe["num_decoder_layers"], num_heads=recipe["num_heads"],
        dropout_rate=0.0, feed_forward_proj="relu", pad_token_id=tokenizer.pad_token_id,
        eos_token_id=tokenizer.eos_token_id, decoder_start_token_id=tokenizer.pad_token_id,
    )
    torch.manual_seed(recipe["seed"])
    return T5ForConditionalGeneration(config)


def _cache_key(recipe: dict[str, Any]) -> str:
    blob = json.dumps({**recipe, "architecture_version": ARCHITECTURE_VERSION}, sort_keys=True)
    return hashlib.sha256(blob.encode()).hexdigest()[:16]


def model_dir(recipe: dict[str, Any] = RECIPE) -> Path:
    """Where the model of ``recipe`` is (or will be) cached."""
    return cache_dir() / "models" / f"tiny-summarizer-{_cache_key(recipe)}"


def train(articles: Sequence[str], summaries: Sequence[str], recipe: dict[str, Any], progress: bool = True):
    """``(model in eval mode, tokenizer)`` trained on the pairs; deterministic for a recipe.

    Runs on one CPU thread: the same weights whatever the core count, and no slowdown from
    threads spinning against other work on a busy machine (the demo recipe takes about
    2.5 minutes of one core).
    """
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        return _train(articles, summaries, recipe, progress)
    finally:
        torch.set_num_threads(threads)


def _train(articles: Sequence[str], summaries: Sequence[str], recipe: dict[str, Any], progress: bool):
    tokenizer = build_word_tokenizer(list(articles) + list(summaries))
    model = build_model(tokenizer, recipe)
    inputs = tokenizer(list(articles), truncation=True, max_length=recipe["max_input_tokens"])["input_ids"]
    targets = tokenizer(list(summaries), truncation=True, max_length=recipe["max_target_tokens"])["input_ids"]
    batch_size = recipe["batch_size"]
    steps_per_epoch = math.ceil(len(inputs) / batch_size)
    total = steps_per_epoch * recipe["epochs"]
    optimizer = torch.optim.AdamW(model.parameters(), lr=recipe["learning_rate"], weight_decay=recipe["weight_decay"])
    warmup = recipe["warmup_steps"]

    def schedule(step: int) -> float:  # linear warm-up, then linear decay to zero
        return min((step + 1) / warmup, max(0.0, (total - step) / max(1, total - warmup)))

    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, schedule)
    generator = torch.Generator().manual_seed(recipe["seed"])
    pad = tokenizer.pad_token_id
    model.train()
    bar = tqdm(total=total, desc="training the tiny summarizer", unit="step", disable=not progress)
    for _ in range(recipe["epochs"]):
        order = torch.randperm(len(inputs), generator=generator).tolist()
        for start in range(0, len(order), batch_size):
            batch = order[start : start + batch_size]
            x = _pad([inputs[i] for i in batch], pad)
            y = _pad([targets[i] for i in batch], -100)
            loss = model(input_ids=x, attention_mask=(x != pad).long(), labels=y).loss
            optimizer.zero_grad()
            loss.backward()
            torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
            optimizer.step()
            scheduler.step()
            bar.update(1)
            bar.set_postfix(loss=f"{loss.item():.3f}")
    bar.close()
    return model.eval(), tokenizer


def _pad(rows: list[list[int]], value: int) -> torch.Tensor:
    width = max(len(r) for r in rows)
    return torch.tensor([r + [value] * (width - len(r)) for r in rows], dtype=torch.long)


class Corpus(Protocol):
    """Articles and their reference summaries, index-aligned."""

    articles: list[str]
    references: list[str]


#: ``articles(split, n, seed=...)``: ``n`` articles of ``"train"`` or ``"held_out"``.
Articles = Callable[..., Corpus]
#: ``bleu(hypotheses, references)``: ``(n,)`` sentence BLEU in [0, 1].
Bleu = Callable[[list[str], list[str]], np.ndarray]


def held_out_bleu(path: Path, n: int, articles: Articles, bleu_batch: Bleu, max_input_tokens: int = RECIPE["max_input_tokens"],
                  max_new_tokens: int = RECIPE["max_target_tokens"]) -> float:
    """Mean sentence BLEU in [0, 1] of the saved model's greedy summaries of the first ``n`` held-out articles."""
    from bridges.seq2seq import load_seq2seq

    held_out = articles("held_out", n)
    oracle = load_seq2seq(str(path), "cpu", max_input_tokens=max_input_tokens, max_new_tokens=max_new_tokens)
    return float(bleu_batch(oracle.summarize(held_out.articles), held_out.references).mean())


def ensure_tiny_summarizer(articles: Articles, bleu_batch: Bleu, progress: bool = True, recipe: dict[str, Any] | None = None) -> Path:
    """The directory of the trained tiny summarizer (model + tokenizer), training it once if absent.

    ``articles`` and ``bleu_batch`` are the text audit's corpus and scorer (used only to
    train and score a new model; the cache key is the recipe). ``recipe`` defaults to
    :data:`RECIPE`; tests may pass a smaller one. Load the result with
    :func:`bridges.seq2seq.load_seq2seq`.
    """
    recipe = dict(RECIPE if recipe is None else recipe)
    target = model_dir(recipe)
    if (target / "info.json").is_file():
        return target
    if progress:
        print(f"training the tiny summarizer once (cached at {target})", flush=True)
    data = articles("train", recipe["train_articles"], seed=recipe["data_seed"])
    started = time.perf_counter()
    model, tokenizer = train(data.articles, data.references, recipe, progress=progress)
    seconds = time.perf_counter() - started
    # Write into a temporary directory first so an interrupted run never leaves half a model.
    staging = target.with_name(target.name + f".tmp{os.getpid()}")
    shutil.rmtree(staging, ignore_errors=True)
    model.save_pretrained(staging)
    tokenizer.save_pretrained(staging)
    info = {
        "recipe": recipe,
        "parameters": int(sum(p.numel() for p in model.parameters())),
        "vocab_size": len(tokenizer),
        "train_seconds": round(seconds, 1),
        "held_out_bleu": held_out_bleu(staging, recipe["eval_articles"], articles, bleu_batch, recipe["max_input_tokens"], recipe["max_target_tokens"]),
        "eval_articles": recipe["eval_articles"],
    }
    (staging / "info.json").write_text(json.dumps(info, indent=2))
    target.parent.mkdir(parents=True, exist_ok=True)
    if target.exists():  # another process finished first; keep its copy
        shutil.rmtree(staging)
    else:
        os.replace(staging, target)
    if progress:
        print(f"tiny summarizer: {info['parameters']:,} parameters, trained in {seconds:.0f} s, "
              f"clean held-out BLEU {info['held_out_bleu']:.3f} on {info['eval_articles']} articles", flush=True)
    return target


def load_info(path: Path) -> dict[str, Any]:
    """The ``info.json`` written beside a trained tiny summarizer."""
    return json.loads((Path(path) / "info.json").read_text())
