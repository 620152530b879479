"""Rewards and failures for summarization audits: BLEU, the paper's eq. 6 and eq. 7, Def. 2.1.

BLEU is sacrebleu's sentence BLEU (``BLEU(effective_order=True)``, default 13a
tokenization, exponential smoothing, case-sensitive) reported in ``[0, 1]``: sacrebleu's
score divided by 100.

Two forms of each reward (``form``):

``"paper"`` (default), the equations of §2.3.2::

    eq. 6  R_macro = (1 - BLEU) * len(prediction)
    eq. 7  R_micro = (1 - BLEU) - steps

  where BLEU compares the audited model's summary of the edited article with the human
  reference summary, ``len(prediction)`` is the length of that summary in words
  (whitespace-separated; the paper writes only "len(prediction)") and ``steps`` is the
  number of edits made so far in the episode, this one included.

``"authors"``, what the authors' public code computes (github.com/somsagar07/FailureShiftRL,
``Experiments/Summarization/train RL.py``, ``Examples/Summarization/RL_Bart_Pretrain.ipynb``,
``Experiments/Summarization/Microscopic_BART.ipynb``)::

    R_macro = BLEU_100 * (len(edited article) - len(original article))
    R_micro = BLEU_100 - (steps - 1)

  with three differences from the paper: (1) BLEU is on sacrebleu's 0-100 scale
  (``corpus_bleu([candidate], [[reference]]).score``) and enters *without* ``1 -``, so the
  reward grows with BLEU instead of with its loss; (2) in the code "prediction" is the
  *edited article* (the action's output), and BLEU compares that edited article (as the
  hypothesis) with the model's summary of it (as the reference): the human reference
  summary is loaded but unused; (3) the length factor is the change in *characters* of
  the article made by the edit, not the summary's length. Their micro step counter is 0 on
  an episode's first step, hence ``steps - 1`` here. Their micro episode ends when this
  reward drops below 5, and their baselines count a failure when the BLEU of the unedited
  article against the summary of the edited one is below 10 (0-100 scale); neither rule is
  reproduced here. :func:`authors_bleu` computes their BLEU pairing.

Failure (Definition 2.1): the summary of the edited article fails when its BLEU against the
reference falls more than ``epsilon`` (absolute, BLEU in ``[0, 1]``) below the BLEU of the
summary of the unedited article, ``bleu_clean - bleu_edited > epsilon``. The same rule
serves both reward forms.

Everything here works on NumPy arrays on the host (the texts live there); arrays are
``(B,)`` float64 unless stated.
"""

from __future__ import annotations

from typing import Literal, NamedTuple, Sequence

import numpy as np

RewardForm = Literal["paper", "authors"]
FORMS: tuple[str, ...] = ("paper", "authors")


class RewardInputError(ValueError):
    """Inputs of a text reward have the wrong type, shape or range."""


def _texts(values: Sequence[str], name: str) -> list[str]:
    if isinstance(values, str) or not all(isinstance(v, str) for v in values):
        raise RewardInputError(f"{name} must be a list of strings")
    return list(values)


def _vector(values, name: str, size: int | None = None) -> np.ndarray:
    array = np.asarray(values, dtype=np.float64)
    if array.ndim != 1:
        raise RewardInputError(f"{name} must be a 1-D array (B,), got shape {array.shape}")
    if size is not None and array.shape[0] != size:
        raise RewardInputError(f"{name} has {array.shape[0]} entries; expected {size} to match the batch")
    if not np.all(np.isfinite(array)):
        raise RewardInputError(f"{name} must be finite")
    return array


def _bleu_vector(bleu, name: str = "bleu", size: int | None = None) -> np.ndarray:
    array = _vector(bleu, name, size)
    if array.size and (array.min() < 0.0 or array.max() > 1.0):
        raise RewardInputError(f"{name} must be in [0, 1] (sacrebleu's score / 100), got values in [{array.min()}, {array.max()}]")
    return array


def _form(form: str) -> str:
    if form not in FORMS:
        raise RewardInputError(f"form must be one of {list(FORMS)}, got {form!r}")
    return form


def bleu_batch(hypotheses: Sequence[str], references: Sequence[str]) -> np.ndarray:
    """Sentence BLEU of each hypothesis against its one reference: ``(B,)`` float64 in [0, 1]."""
    from sacrebleu.metrics import BLEU  # imported here: only BLEU needs it

    hypotheses = _texts(hypotheses, "hypotheses")
    references = _texts(references, "references")
    if len(hypotheses) != len(references):
        raise RewardInputError(f"{len(hypotheses)} hypotheses but {len(references)} references")
    metric = BLEU(effective_order=True)
    scores = [metric.sentence_score(h, [r]).score for h, r in zip(hypotheses, references)]
    # sacrebleu can return 100.00000000000004 for a perfect match; keep BLEU inside [0, 1]
    return np.clip(np.asarray(scores, dtype=np.float64) / 100.0, 0.0, 1.0)


def word_lengths(texts: Sequence[str]) -> np.ndarray:
    """Number of whitespace-separated words of each text: ``(B,)`` float64."""
    return np.asarray([len(t.split()) for t in _texts(texts, "texts")], dtype=np.float64)


def char_lengths(texts: Sequence[str]) -> np.ndarray:
    """Number of characters of each text (the authors' ``len``): ``(B,)`` float64."""
    return np.asarray([len(t) for t in _texts(texts, "texts")], dtype=np.float64)


def authors_bleu(edited_articles: Sequence[str], summaries: Sequence[str]) -> np.ndarray:
    """The authors' BLEU pairing: the edited article as hypothesis, its summary as reference, [0, 1]."""
    return bleu_batch(edited_articles, summaries)


def macro_reward(bleu, prediction_lengths, form: RewardForm = "paper", original_lengths=None) -> np.ndarray:
    """Eq. 6 for a batch: ``(B,)`` float64.

    Args:
      bleu: ``(B,)`` BLEU in [0, 1]. ``"paper"``: summary of the edited article vs the
        reference (:func:`bleu_batch`); ``"authors"``: :func:`authors_bleu`.
      prediction_lengths: ``(B,)`` non-negative. ``"paper"``: words in the summary
        (:func:`word_lengths`); ``"authors"``: characters in the edited article.
      form: ``"paper"`` or ``"authors"`` (module docstring).
      original_lengths: ``"authors"`` only: ``(B,)`` characters in the unedited article.
    """
    bleu = _bleu_vector(bleu)
    lengths = _vector(prediction_lengths, "prediction_lengths", bleu.shape[0])
    if lengths.size and lengths.min() < 0:
        raise RewardInputError("prediction_lengths must be non-negative")
    if _form(form) == "paper":
        if original_lengths is not None:
            raise RewardInputError("original_lengths is used only by form='authors'")
        return (1.0 - bleu) * lengths
    if original_lengths is None:
        raise RewardInputError("form='authors' needs original_lengths (characters of the unedited articles)")
    original = _vector(original_lengths, "original_lengths", bleu.shape[0])
    return 100.0 * bleu * (lengths - original)


def micro_reward(bleu, steps, form: RewardForm = "paper") -> np.ndarray:
    """Eq. 7 for a batch: ``(B,)`` float64.

    ``steps``: ``(B,)`` integers >= 1, the edits made so far in each episode including this
    one. ``"paper"``: ``(1 - BLEU) - steps``; ``"authors"``: ``100 BLEU - (steps - 1)``.
    """
    bleu = _bleu_vector(bleu)
    steps = _vector(steps, "steps", bleu.shape[0])
    if steps.size and (steps.min() < 1 or not np.all(steps == np.round(steps))):
        raise RewardInputError("steps must be whole numbers >= 1 (edits so far, this one included)")
    if _form(form) == "paper":
        return (1.0 - bleu) - steps
    return 100.0 * bleu - (steps - 1.0)


def failed(bleu_edited, bleu_clean, epsilon: float) -> np.ndarray:
    """Definition 2.1: ``bleu_clean - bleu_edited > epsilon``, ``(B,)`` bool.

    ``bleu_edited``: BLEU of the summaries of the edited articles; ``bleu_clean``: of the
    unedited ones (same references); both ``(B,)`` in [0, 1]. ``epsilon`` in [0, 1].
    """
    if isinstance(epsilon, bool) or not isinstance(epsilon, (int, float)) or not 0.0 <= float(epsilon) <= 1.0:
        raise RewardInputError(f"epsilon must be a number in [0, 1] (BLEU units), got {epsilon!r}")
    edited = _bleu_vector(bleu_edited, "bleu_edited")
    clean = _bleu_vector(bleu_clean, "bleu_clean", edited.shape[0])
    return (clean - edited) > float(epsilon)


class SummaryOutcome(NamedTuple):
    """Per-query outcome of a batch, each field ``(B,)``."""

    reward: np.ndarray  # float64
    failed: np.ndarray  # bool, Definition 2.1
    bleu: np.ndarray  # float64 in [0, 1]: summary of the edited article vs the reference
    bleu_clean: np.ndarray  # float64 in [0, 1]: summary of the unedited article vs the reference


def score_summaries(
    summaries: Sequence[str],
    references: Sequence[str],
    bleu_clean,
    *,
    epsilon: float,
    exploration: Literal["macro", "micro"] = "macro",
    form: RewardForm = "paper",
    steps=None,
    edited_articles: Sequence[str] | None = None,
    original_articles: Sequence[str] | None = None,
) -> SummaryOutcome:
    """Reward and failure of a batch of summaries of edited articles, in one call.

    ``bleu_clean`` (``(B,)``, [0, 1]) is the BLEU of the model's summary of each *unedited*
    article (compute it once per article with :func:`bleu_batch`). ``steps`` is needed for
    ``exploration="micro"``; ``edited_articles`` for ``form="authors"``, and
    ``original_articles`` too for its macro reward.
    """
    bleu = bleu_batch(summaries, references)
    clean = _bleu_vector(bleu_clean, "bleu_clean", bleu.shape[0])
    if exploration not in ("macro", "micro"):
        raise RewardInputError(f"exploration must be 'macro' or 'micro', got {exploration!r}")
    if _form(form) == "authors":
        if edited_articles is None:
            raise RewardInputError("form='authors' needs edited_articles (its BLEU pairs each edited article with its summary)")
        reward_bleu = authors_bleu(edited_articles, summaries)
    else:
        reward_bleu = bleu
    if exploration == "micro":
        if steps is None:
            raise RewardInputError("exploration='micro' needs steps")
        reward = micro_reward(reward_bleu, steps, form)
    elif form == "paper":
        reward = macro_reward(reward_bleu, word_lengths(summaries), form)
    else:
        if original_articles is None:
            raise RewardInputError("form='authors' macro reward needs original_articles")
        reward = macro_reward(reward_bleu, char_lengths(edited_articles), form, char_lengths(original_articles))
    return SummaryOutcome(reward, failed(bleu, clean, epsilon), bleu, clean)
