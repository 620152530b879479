"""The classifier fine-tuner's spec (run by ``bridges.finetune_classifier``)."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal

import pydantic

from fadejax.core.strict import Strict as _Strict


class ClassifierHyper(_Strict):
    """The paper's defaults: final layer only, SGD lr 1e-3, momentum 0.9.

    ``scope``: ``head`` trains the final ``nn.Linear`` alone (the paper's), ``full`` every
    parameter (the model stays in eval mode: batch-norm statistics and dropout as audited)."""

    learning_rate: pydantic.PositiveFloat = 1e-3
    momentum: float = pydantic.Field(0.9, ge=0.0, lt=1.0)
    epochs: pydantic.PositiveInt = 5
    batch_size: pydantic.PositiveInt = 64
    failure_weight: float = pydantic.Field(0.5, ge=0.0)  # lambda in L = L_clean + lambda * L_failure
    weight_decay: float = pydantic.Field(0.0, ge=0.0)  # SGD's L2 penalty on the head (Chegini & Feizi: 5e-4)
    # L2-SP: weight of the squared distance of the trained weights from the ones before the fine-tune (0: off);
    # it holds clean accuracy at the price of fading less (benchmarks/RESULTS.md, "An anchor for the LeNet")
    anchor: float = pydantic.Field(0.0, ge=0.0)
    seed: int = 0
    scope: Literal["head", "full"] = "head"


class ClassifierSpec(_Strict):
    """Fine-tune a torch classifier's final ``nn.Linear`` on perturbed failures.

    ``failure_data``: a .npz with ``images`` (N, H, W, C) in [0, 1] and ``labels`` (N,):
    training-split samples perturbed under the chosen modes, with their true labels.
    ``clean_data`` (optional): unperturbed training samples; with it the loss is
    ``L_clean + failure_weight * L_failure`` (Chegini & Feizi's remedy), without it
    ``L_failure`` alone; ``hyper.anchor`` adds ``anchor * ||w - w_before||^2`` over the
    trained weights (L2-SP: the fine-tune stays near the model it started from). ``normalize_mean`` / ``normalize_std`` (per channel): the model's
    input normalisation, applied to both sets as the audit's oracle applies it.
    """

    kind: Literal["classifier"] = "classifier"
    architecture: str  # "package.module:Class"
    architecture_kwargs: dict[str, Any] = pydantic.Field(default_factory=dict)
    weights: str
    failure_data: str
    clean_data: str | None = None
    output_dir: str
    hyper: ClassifierHyper = pydantic.Field(default_factory=ClassifierHyper)
    normalize_mean: list[float] | None = None
    normalize_std: list[float] | None = None

    @pydantic.model_validator(mode="after")
    def _files_exist(self) -> "ClassifierSpec":
        for field in ("weights", "failure_data", "clean_data"):
            path = getattr(self, field)
            if path is not None and not Path(path).is_file():
                raise ValueError(f"{field} '{path}' does not exist")
        if ":" not in self.architecture:
            raise ValueError(f"architecture '{self.architecture}' must be 'package.module:Class'")
        return self
