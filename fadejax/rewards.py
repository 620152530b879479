"""Rewards for classifier audits: the paper's eq. 4 (macroscopic) and eq. 5 (microscopic).

Eq. 4, on a misclassification (``predicted != label``)::

    R = K * ln(score / (1 - score + const))        form="paper"
    R = K * |ln(score / (1 - score + const))|      form="abs"   (the authors' public code)

and ``R = -1`` on a correct prediction, where ``score = max softmax(logits)``.

The default is ``form="abs"``: with it every failure scores ``>= 0 > -1``, so a failure
always outranks a success. In the paper's form a misclassification made with
``score < ~0.5`` gets a *negative* log-odds that can fall below the ``-1`` of a success
(score 0.2 gives ``K * ln(0.25) = -1.39 K``), which teaches the agent to avoid
hesitant failures. Both are available.
"""

from __future__ import annotations

from typing import Literal, NamedTuple

import jax
import jax.numpy as jnp

RewardForm = Literal["abs", "paper"]


class ClassifierOutcome(NamedTuple):
    """Per-query outcome of a batch, each field ``(B,)``."""

    reward: jax.Array  # float32
    failed: jax.Array  # bool, predicted != label
    predicted: jax.Array  # int32, argmax class
    score: jax.Array  # float32, max softmax probability


def classification_reward(
    logits: jax.Array,
    labels: jax.Array,
    *,
    scale: float = 1.0,
    const: float = 1e-3,
    form: RewardForm = "abs",
) -> ClassifierOutcome:
    """Eq. 4 for a batch.

    Args:
      logits: ``(B, num_classes)`` raw scores of the audited model.
      labels: ``(B,)`` int true labels.
      scale: K, multiplies the log-odds.
      const: keeps the denominator positive when ``score -> 1``.
      form: ``"abs"`` (default) or ``"paper"``; see the module docstring.
    """
    probs = jax.nn.softmax(logits.astype(jnp.float32), axis=-1)
    predicted = jnp.argmax(probs, axis=-1).astype(jnp.int32)
    score = jnp.max(probs, axis=-1)
    failed = predicted != labels.astype(jnp.int32)
    log_odds = jnp.log(score / (1.0 - score + const))
    if form == "abs":
        log_odds = jnp.abs(log_odds)
    elif form != "paper":
        raise ValueError(f"reward form '{form}' is not one of 'abs', 'paper'")
    reward = jnp.where(failed, scale * log_odds, -1.0)
    return ClassifierOutcome(reward, failed, predicted, score)


def micro_reward(macro_reward: jax.Array, steps: jax.Array, alpha: float = 5.0) -> jax.Array:
    """Eq. 5: ``R_micro = R_macro - alpha * steps``; ``steps`` ``(B,)`` counts moves so far in the episode (>= 1)."""
    return macro_reward - alpha * steps.astype(jnp.float32)
