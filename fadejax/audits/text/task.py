"""The text-summarization audit task (paper §2.3.2): edit articles, summarize, score with BLEU.

A query is an (article, cell) pair. The cell says which text edits to apply:

* an axis of edit *names* (``{name: edit, values: [misspell, delete_word, ...]}``) applies
  the chosen edit once — the paper's macroscopic action space, one edit per query;
* an axis named after (or ``perturbation:``) one edit with *count* values
  (``{name: delete_word, values: [0, 1, 2, 3]}``) applies that edit so many times — the
  microscopic walk moves one count up or down, so edits accumulate over an episode.

The text of a cell is its article with every axis' edits applied in axis order, each
application seeded by ``(seed, article, axis, application)``: the same query always gives
the same text (the landscape is a function of the cell, records are reproducible), and a
step up on a count axis adds one edit to the previous step's text.

One iteration edits ``B`` articles on the host (optionally in worker processes), makes one
batched ``generate`` call for their summaries, and scores them against the reference
summaries (eq. 6 / eq. 7, Definition 2.1; :mod:`fadejax.audits.text.rewards`). Observations are
the audited model's mean-pooled encoder states of each unedited article (the paper's BART
embeddings), standardised per feature, computed once in one batched call.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Sequence

import jax
import jax.numpy as jnp
import numpy as np

from fadejax.audits.text import edits, rewards
from fadejax.audits.text.data import TextDataset, builtin_articles
from fadejax.core.spaces import ConceptSpace


@dataclass(frozen=True)
class AxisEdits:
    """How one axis edits text: ``choose`` one of ``names`` (the value), or ``count`` applications of ``names[0]``."""

    kind: str  # "choose" | "count"
    names: tuple[str, ...]


def axis_edits(space: ConceptSpace, perturbations: Sequence[str]) -> list[AxisEdits]:
    """The edit rule of every axis (see the module docstring); ``perturbations[i]`` is axis i's edit name."""
    rules = []
    for axis, name in zip(space.axes, perturbations):
        rules.append(AxisEdits("choose", tuple(str(v) for v in axis.values)) if axis.categorical else AxisEdits("count", (name,)))
    return rules


def edit_plan(rules: Sequence[AxisEdits], cell: Sequence[int], values: Sequence[float | str], seed: int, sample: int) -> tuple[list[str], list[int]]:
    """The edit names and seeds, in order, that turn article ``sample`` into the text of ``cell``."""
    names, seeds = [], []
    for i, (rule, index) in enumerate(zip(rules, cell)):
        if rule.kind == "choose":
            names.append(rule.names[int(index)])
            seeds.append(_seed(seed, sample, i, 0))
        else:
            count = int(values[i])
            names.extend([rule.names[0]] * count)
            seeds.extend(_seed(seed, sample, i, j) for j in range(count))
    return names, seeds


def _seed(seed: int, sample: int, axis: int, application: int) -> int:
    return int(np.random.SeedSequence([seed, sample, axis, application]).generate_state(2, np.uint64)[0] >> np.uint64(1))


@dataclass
class TextTask:
    """Everything a discovery run needs about a summarization audit.

    Attributes:
      data: the audited articles and their reference summaries (``N``).
      observations: ``(N, D)`` float32 on device, standardised encoder embeddings.
      space: the concept space (edit names or edit counts).
      rules: per axis, how it edits text.
      oracle: the audited summarizer (``summarize(texts) -> texts``, ``embed(texts) -> (B, D)``).
      clean_summaries: the model's summary of each unedited article.
      bleu_clean: ``(N,)`` BLEU of those summaries against the references, [0, 1].
      epsilon, form: Definition 2.1's threshold and the reward form (``paper`` / ``authors``).
      mode: ``macro`` (eq. 6) or ``micro`` (eq. 7).
      seed: seeds the spot each edit hits.
      workers: processes editing texts in parallel (0: in this process).
    """

    data: TextDataset
    observations: jax.Array
    space: ConceptSpace
    rules: list[AxisEdits]
    oracle: Any
    clean_summaries: list[str]
    bleu_clean: np.ndarray
    epsilon: float
    form: str = "paper"
    mode: str = "macro"
    seed: int = 0
    workers: int = 0
    info: dict[str, Any] = field(default_factory=dict)
    kind: str = "text"
    #: each edit's spot is seeded by (seed, article, axis, application) and the summarizer
    #: decodes greedily: a (sample, cell) pair asked twice is answered the same
    deterministic = True

    @property
    def num_samples(self) -> int:
        return len(self.data)

    def prepare(self, sample: jax.Array, values: jax.Array, key: jax.Array) -> None:
        return None  # texts are edited on the host, in evaluate

    def edited_texts(self, samples: np.ndarray, cells: np.ndarray) -> list[str]:
        """The texts of ``B`` queries: article ``samples[b]`` under cell ``cells[b]`` ``(B, num_axes)``."""
        values = [[axis.values[int(i)] for axis, i in zip(self.space.axes, cell)] for cell in cells]
        plans = [edit_plan(self.rules, cell, vals, self.seed, int(s)) for s, cell, vals in zip(samples, cells, values)]
        if all(len(names) == 1 for names, _ in plans):  # one edit each: the batched (parallel) path
            return edits.apply_batch([n[0] for n, _ in plans], [self.data.articles[int(s)] for s in samples], [sd[0] for _, sd in plans], workers=self.workers)
        return [edits.apply_sequence(names, self.data.articles[int(s)], seeds) for s, (names, seeds) in zip(samples, plans)]

    def evaluate(self, inputs: None, pending: dict[str, jax.Array]) -> tuple[dict[str, Any], dict[str, Any]]:
        """Edit, summarize in one batched call, score: eq. 6 (or eq. 7's base) and Definition 2.1."""
        samples = np.asarray(pending["sample"])
        cells = np.asarray(pending["cell"])
        steps = np.asarray(pending["steps"])
        texts = self.edited_texts(samples, cells)
        summaries = self.oracle.summarize(texts)
        originals = [self.data.articles[int(s)] for s in samples]
        out = rewards.score_summaries(
            summaries, [self.data.references[int(s)] for s in samples], self.bleu_clean[samples],
            epsilon=self.epsilon, exploration="macro", form=self.form,
            edited_articles=texts, original_articles=originals,
        )
        core: dict[str, Any] = {"reward": out.reward.astype(np.float32), "failed": out.failed}
        if self.mode == "micro":  # eq. 7 = base - steps; the loop subtracts alpha * steps (alpha = 1)
            reward_bleu = rewards.authors_bleu(texts, summaries) if self.form == "authors" else out.bleu
            core["micro_base"] = (rewards.micro_reward(reward_bleu, np.maximum(steps, 1), self.form) + np.maximum(steps, 1)).astype(np.float32)
        fields = {"text": texts, "summary": summaries, "bleu": out.bleu, "bleu_clean": out.bleu_clean}
        return core, fields

    def replicate(self, sharding: Any) -> None:
        self.observations = jax.device_put(self.observations, sharding)


def load_text_data(config) -> tuple[TextDataset | None, TextDataset]:
    """``(training split or None, audited split)`` as ``config.text`` says."""
    from fadejax.audits.text.data import builtin_articles, load_summarize_from_feedback

    t = config.text
    if t.data == "builtin":
        return builtin_articles("train"), builtin_articles("held_out", n=t.held_out)
    return None, load_summarize_from_feedback(t.path, split=t.split, limit=t.limit)


def load_summarizer(config, progress: bool = True):
    """The audited summarizer of ``config.text`` through the torch bridge: the project's tiny
    T5 (trained once and cached) or any local seq2seq model."""
    from bridges.seq2seq import load_seq2seq

    t = config.text
    path = t.model
    if path == "tiny":
        path = str(tiny_summarizer(progress))
    return load_seq2seq(
        path, t.device, embedder_path=t.embedder, max_input_tokens=t.max_input_tokens, max_new_tokens=t.max_new_tokens,
        num_beams=t.num_beams, batch_size=t.batch_size, observation=t.observation, observation_dim=t.observation_dim,
    )


def build_text_task(config, oracle: Any = None, progress: bool = True) -> TextTask:
    """Load the articles and the summarizer, summarize and embed every unedited article once."""
    _, held_out = load_text_data(config)
    oracle = oracle if oracle is not None else load_summarizer(config, progress=progress)
    clean = oracle.summarize(held_out.articles)
    bleu_clean = rewards.bleu_batch(clean, held_out.references)
    embeddings = np.asarray(oracle.embed(held_out.articles), np.float32)
    embeddings = (embeddings - embeddings.mean(0)) / (embeddings.std(0) + 1e-6)
    space = config.concept_space()
    info = {
        "data": held_out.name, "held_out_samples": len(held_out), "model": getattr(oracle, "path", None) or config.text.model,
        "clean_bleu": float(bleu_clean.mean()), **getattr(oracle, "info", {}),
    }
    return TextTask(
        data=held_out, observations=jnp.asarray(embeddings), space=space,
        rules=axis_edits(space, [a.perturbation_name for a in config.space.axes]), oracle=oracle,
        clean_summaries=clean, bleu_clean=bleu_clean, epsilon=config.text.epsilon, form=config.text.reward_form,
        mode=config.mode, seed=config.run.seed, workers=config.text.edit_workers, info=info,
    )


def tiny_summarizer(progress: bool = True) -> Path:
    """The project's tiny T5, trained once on the built-in articles and cached
    (:mod:`bridges.tiny_summarizer`)."""
    from bridges.tiny_summarizer import ensure_tiny_summarizer

    return ensure_tiny_summarizer(builtin_articles, rewards.bleu_batch, progress=progress)


if __name__ == "__main__":  # python -m fadejax.audits.text.task: train (or find) the tiny T5 and print its numbers
    import json

    from bridges.tiny_summarizer import load_info

    location = tiny_summarizer()
    print(json.dumps({"path": str(location), **load_info(location)}, indent=2))
