"""Pre-flight: one batch through the data pipeline and the model before any loop,
fine-tune or write, so that a model and data that do not fit are refused in one line
naming the config field to change (a :class:`PreflightError`, exit 2), not deep inside
torch minutes later.

Checked, in order: the channels the model's first layer takes against the data's
(``data.channels``); an input normalisation the model states (a file model's class
attributes, a torchvision or timm model's pretrained weights) that the config lacks
(``model.normalize_mean``/``normalize_std``; a Hugging Face model applies its processor's
itself); one batch of clean held-out images through the model (its image
size, ``data.image_size``, and dtype); the number of classes it answers against the
data's (``model.num_classes``, ``data.class_map``); and, after the clean pass every run
makes anyway, an accuracy no better than chance (``model.weights``,
``model.normalize_mean``/``normalize_std``, ``data.class_map``; ``model.refuse_chance``).
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from fadejax.audits.image.data import DataError

#: images in the pre-flight batch
BATCH = 4
#: a model is at chance when so many correct answers would come from guessing with
#: probability above this (one-sided binomial tail)
CHANCE_TAIL = 0.01


class PreflightError(DataError):
    """The model and the data do not fit; the message names the field to change.

    ``fixes``: the ``(dotted field, value)`` settings that would make them fit, where they
    are known (``fadejax init`` applies them and checks again)."""

    def __init__(self, message: str, fixes: list[tuple[str, Any]] | None = None):
        super().__init__(message)
        self.fixes = list(fixes or [])


def _sources_channels(config: Any) -> str:
    d = config.data
    if d.channels is not None:
        return f"data.channels is {d.channels}"
    return {"folder": "folder images are read as RGB", "hf_dataset": "data set images are read as RGB",
            "npz": "the npz images have them", "digits": "the digits are grey", "colour_digits": "the colour digits are RGB"}.get(d.source, "as given")


def _rounded(values: list[float]) -> list[float]:
    return [round(v, 4) for v in values]


def check_one_batch(config: Any, oracle: Any, images: np.ndarray, num_classes: int, member: str | None = None) -> None:
    """Refuse what one clean batch shows: a channel count the model's first layer does not
    take, a normalisation the model states but the config lacks, a batch the model cannot
    answer, or answers over another number of classes.

    Args:
      images: ``(N, H, W, C)`` clean held-out images in [0, 1] (the first :data:`BATCH` are used).
      num_classes: the classes the data set has (its labels are below it).
      member: the family model checked (named in the message), or ``None`` for ``model``.
    """
    import jax.numpy as jnp

    model = "the model" if member is None else f"the family's model '{member}'"
    field = "model" if member is None else f"models ('{member}')"
    have = int(images.shape[-1])
    wanted = getattr(oracle, "input_channels", None)
    if wanted is not None and wanted[0] != have:
        channels, layer = wanted
        raise PreflightError(
            f"data.channels: the first layer of {model} ({layer or 'the input'}) takes "
            f"{channels} channel{'s' * (channels != 1)}, but the images have {have} ({_sources_channels(config)}); "
            f"set data.channels: {channels}", fixes=[("data.channels", channels)])
    stated = getattr(oracle, "stated_normalisation", None)
    if stated is not None and getattr(oracle, "mean", None) is None and getattr(oracle, "std", None) is None:
        mean, std = _rounded(stated[0]), _rounded(stated[1])
        raise PreflightError(
            f"{field}.normalize_mean / normalize_std: {model} says its inputs were normalised with mean {mean} and std {std}, "
            f"but the config normalises nothing; set {field}.normalize_mean: {mean} and normalize_std: {std}",
            fixes=[] if member else [("model.normalize_mean", mean), ("model.normalize_std", std)])
    batch = jnp.asarray(images[:BATCH])
    try:
        logits = np.asarray(oracle(batch))
    except Exception as exc:  # torch raises RuntimeError / ValueError on a shape it cannot take
        if type(exc).__name__ == "OracleError":  # the bridge's own check of the answers, already in words
            raise PreflightError(f"{field}.num_classes: {exc}") from None
        message = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise PreflightError(
            f"{field}: {'it' if member is None else model} could not answer a batch of {batch.shape[0]} clean held-out images of shape "
            f"(H, W, C) = {tuple(batch.shape[1:])}, float32 in [0, 1] ({type(exc).__name__}: {message}); "
            f"set data.image_size (now {config.data.image_size}) and data.channels to what the model takes") from None
    answered = int(logits.shape[-1])
    if answered < num_classes:
        raise PreflightError(
            f"{field}.num_classes: {model} answers {answered} classes but the data has {num_classes}; "
            f"use a model of this data's classes, or data.class_map: name to match them by name")


def chance_bound(num_samples: int, num_classes: int, tail: float = CHANCE_TAIL) -> float:
    """The accuracy below which ``num_samples`` answers are no better than guessing among
    ``num_classes`` (the one-sided binomial ``1 - tail`` quantile, as a share)."""
    from scipy.stats import binom

    if num_classes < 2 or num_samples < 1:
        return 0.0
    return float(binom.ppf(1.0 - tail, num_samples, 1.0 / num_classes)) / num_samples


def check_accuracy(refuse: bool, accuracy: float, num_samples: int, num_classes: int, member: str | None = None) -> None:
    """Refuse a clean held-out ``accuracy`` at chance, if ``refuse`` (the model's
    ``refuse_chance``); ``member``: the family model measured, named in the message."""
    bound = chance_bound(num_samples, num_classes)
    if refuse and accuracy <= bound and not math.isclose(bound, 0.0):
        field = "model" if member is None else f"models ('{member}')"
        whose = "its" if member is None else "this model's"
        raise PreflightError(
            f"{field}: {whose} clean held-out accuracy is {accuracy:.1%} on "
            f"{num_samples} images, no better than guessing among {num_classes} classes ({1 / num_classes:.1%}; up to "
            f"{bound:.1%} by luck). Check {field}.weights (loaded?), {field}.normalize_mean / normalize_std (the inputs it "
            f"was trained on) and data.class_map; set {field}.refuse_chance: false to audit such a model on purpose")
