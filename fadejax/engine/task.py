"""Audit tasks: what a query is, how the audited model answers it and what that earns.

:class:`AuditTask` is the interface the discovery loop needs. Each audit
(:mod:`fadejax.audits`) builds its own; :func:`fadejax.engine.build.build_task` asks the
config's audit, or replays a recording in its place.
"""

from __future__ import annotations

from typing import Any, Protocol

import jax

from fadejax.core.spaces import ConceptSpace


class AuditTask(Protocol):
    """What the discovery loop needs from an audit.

    Attributes:
      space: the concept space.
      observations: ``(N, D)`` float32 on device: what the searcher sees of each sample.
      num_samples: ``N``.
      info: facts for reports (model path, clean score, ...).
      kind: the name of the audit that built it (``"recorded"`` for a replayed recording).
      landscape_refusal: optional; if set, why no exhaustive landscape is computed for it.
      deterministic: a (sample, cell) pair asked twice is answered the same (image
        perturbations that draw nothing per query, recordings, seeded text edits); False
        where each query draws anew (noise, a diffusion seed per query). On a deterministic
        audit a re-asked pair teaches nothing, so the default searchers never re-ask one.
    """

    space: ConceptSpace
    observations: jax.Array
    info: dict[str, Any]
    kind: str
    deterministic: bool

    @property
    def num_samples(self) -> int: ...

    def prepare(self, sample: jax.Array, values: jax.Array, key: jax.Array) -> Any:
        """Jittable, inside the loop's proposal step: the device-side inputs of the ``B``
        queries (e.g. perturbed images ``(B, H, W, C)``), or ``None`` for host-side tasks.
        ``sample`` ``(B,)`` int32 rows, ``values`` ``(B, num_axes)`` from ``space.values_of_cell``."""

    def evaluate(self, inputs: Any, pending: dict[str, jax.Array]) -> tuple[dict[str, Any], dict[str, Any]]:
        """Run the audited model once on the ``B`` queries and score them.

        ``pending`` holds ``sample``, ``cell`` ``(B, num_axes)``, ``values``, ``steps``,
        ``iteration`` and ``k_perturb``. Returns ``(core, fields)``: ``core`` has ``reward`` (the macroscopic
        reward), ``failed`` and optionally ``micro_base`` (the term the microscopic reward
        subtracts ``alpha * steps`` from, if not ``reward``), each ``(B,)``; ``fields`` are
        the task's per-query record fields (arrays or lists of length ``B``), in record order.
        """

    def replicate(self, sharding: Any) -> None:
        """Place the task's device arrays with ``sharding`` (one copy per device)."""


class Oracle(Protocol):
    """An audited classifier: ``(B, H, W, C)`` images in [0, 1] -> ``(B, num_classes)`` logits."""

    num_classes: int

    def __call__(self, images: jax.Array) -> jax.Array: ...


def is_deterministic(task: AuditTask) -> bool:
    """``task.deterministic``; a third party's task that does not say is taken as drawing anew per query."""
    return bool(getattr(task, "deterministic", False))
