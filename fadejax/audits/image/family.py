"""Model families: several classifiers audited on the very same queries.

:class:`FamilyOracle` calls each member once per batch (one batched call per model) and
stacks their logits, so the loop, the throughput benchmark and the ground truth see one
audited model whose answer is ``(M, B, num_classes)``; :func:`fadejax.core.rewards.family_reward`
scores it per model and aggregates.
"""

from __future__ import annotations

from typing import Any

import jax
import jax.numpy as jnp

from fadejax.engine.task import Oracle


class FamilyError(ValueError):
    """The models of a family cannot be audited together (e.g. different classes)."""


class FamilyOracle:
    """``images (B, H, W, C) -> logits (M, B, num_classes)``: member ``m``'s logits in row ``m``.

    Args:
      members: model name -> its oracle, in the config's order; all with the same
        ``num_classes``.
    """

    def __init__(self, members: dict[str, Oracle]):
        classes = {name: int(o.num_classes) for name, o in members.items()}
        if len(set(classes.values())) > 1:
            raise FamilyError(f"the models of a family must share their classes; they have {classes} classes")
        self.members = dict(members)
        self.names = list(members)
        self.num_classes = next(iter(classes.values()))

    def __call__(self, images: jax.Array) -> jax.Array:
        return jnp.stack([oracle(images) for oracle in self.members.values()])

    def features(self, images: jax.Array) -> jax.Array:
        """The first model's penultimate features ``(B, F)`` (``observation.kind: features``)."""
        first: Any = self.members[self.names[0]]
        return first.features(images)


def check_same_classes(label_names: dict[str, list[str] | None]) -> list[str] | None:
    """The family's class names: the members' names if they agree (or only some have
    names); :class:`FamilyError` naming the first pair of models that disagree."""
    named = {m: n for m, n in label_names.items() if n is not None}
    if not named:
        return None
    first, names = next(iter(named.items()))
    for model, other in named.items():
        if [n.strip().lower() for n in other] != [n.strip().lower() for n in names]:
            differ = next((i for i, (x, y) in enumerate(zip(names, other)) if x.strip().lower() != y.strip().lower()), min(len(names), len(other)))
            raise FamilyError(f"models '{first}' and '{model}' name their classes differently (class {differ}: "
                              f"{names[differ] if differ < len(names) else '—'!r} vs {other[differ] if differ < len(other) else '—'!r}); "
                              "a family is audited on one set of classes")
    return names
