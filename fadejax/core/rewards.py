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


def family_reward(
    logits: jax.Array,
    labels: jax.Array,
    *,
    aggregate: str = "mean",
    a: int | None = None,
    b: int | None = None,
    **eq4,
) -> tuple[ClassifierOutcome, ClassifierOutcome]:
    """Eq. 4 for each of ``M`` models on the same ``B`` queries, and one outcome of them.

    Args:
      logits: ``(M, B, num_classes)``, model ``m``'s raw scores in row ``m``.
      labels: ``(B,)`` int true labels.
      aggregate: ``mean`` (mean reward; failed when more than half the models fail),
        ``all`` (failed when every model fails; the smallest reward), ``any`` (failed
        when one does; the largest failing reward) or ``a_not_b`` (failed when model
        ``a`` fails and model ``b`` does not; ``a``'s reward).
      a: row index of the model that fails, for ``a_not_b``.
      b: row index of the model that does not, for ``a_not_b``.
      eq4: ``scale``, ``const``, ``form`` of :func:`classification_reward`.

    Returns ``(aggregated, per_model)``: the aggregated outcome's ``reward`` and ``failed``
    are ``(B,)`` (its ``predicted`` and ``score`` are model 0's); every field of
    ``per_model`` is ``(M, B)``.
    """
    per = jax.vmap(lambda one: classification_reward(one, labels, **eq4))(logits)
    num_models = logits.shape[0]
    if aggregate == "mean":
        failed = 2 * per.failed.sum(0) > num_models
        reward = per.reward.mean(0)
    elif aggregate == "all":
        failed = per.failed.all(0)
        reward = jnp.where(failed, per.reward.min(0), -1.0)
    elif aggregate == "any":
        failed = per.failed.any(0)
        reward = jnp.where(failed, jnp.where(per.failed, per.reward, -jnp.inf).max(0), -1.0)
    elif aggregate == "a_not_b":
        if a is None or b is None:
            raise ValueError("aggregate 'a_not_b' needs the rows a and b of the two models")
        failed = per.failed[a] & ~per.failed[b]
        reward = jnp.where(failed, per.reward[a], -1.0)
    else:
        raise ValueError(f"aggregate '{aggregate}' is not one of 'mean', 'all', 'any', 'a_not_b'")
    return ClassifierOutcome(reward, failed, per.predicted[0], per.score[0]), per


def micro_reward(macro_reward: jax.Array, steps: jax.Array, alpha: float = 5.0) -> jax.Array:
    """Eq. 5: ``R_micro = R_macro - alpha * steps``; ``steps`` ``(B,)`` counts moves so far in the episode (>= 1)."""
    return macro_reward - alpha * steps.astype(jnp.float32)
