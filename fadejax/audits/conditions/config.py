"""The generated-conditions audit's config section, ``conditions``."""

from __future__ import annotations

import pydantic

from fadejax.audits.prompt.config import GenerationConfig


class ConditionsConfig(GenerationConfig):
    """A classifier audited on images a diffusion model generates of its classes under
    conditions named in words (Chegini & Feizi's CLIP-aided debugging).

    The concept space has two word axes, ``class`` (words for the classifier's classes) and
    ``condition`` (e.g. backgrounds: "in the snow", "on a beach"), and may have further
    word axes (e.g. ``style``: "a painting", "a sketch"). A query fills one of
    ``templates`` (the samples; the paper's is ``a photo of a {class} {condition}``; each
    uses every axis) with a cell's words, generates the image with the local diffusers ``pipeline`` (one seed per
    query, recorded), checks with the local ``clip`` that the class is visible (the
    intended class among the ``visible_top_k`` most probable of ``class_prompt`` over every
    class word; otherwise the query is invalid, never a failure) and asks the audited
    classifier (the ``model`` section, or a family under ``models``) at ``image_size``.

    ``class_index`` maps each class word to the classifier's label (default: the word
    matched, case-insensitively, to the model's or data's class names, or to one of a
    name's comma-separated aliases). ``vocabulary`` lists each class's candidate
    conditions for ``fadejax describe`` (a mapping, or the path of a YAML or JSON file
    holding one; default: every condition word for every class),
    which names the condition of each of the classifier's real held-out failures with
    CLIP (by ``describe_template``, default the first template; it uses ``{class}`` and
    ``{condition}`` only) and splits them into a debug seed and a debug held-out set.
    """

    clip: str | None = None
    templates: list[str] = pydantic.Field(default_factory=lambda: ["a photo of a {class} {condition}"], min_length=1)
    class_prompt: str = "a photo of a {class}"
    visible_top_k: pydantic.PositiveInt = 1
    class_index: dict[str, int] | None = None
    image_size: pydantic.PositiveInt | None = None
    vocabulary: dict[str, list[str]] | str | None = None
    describe_template: str | None = None
    #: the classifier's training images (a folder of class folders or an .npz) for the
    #: L_original term when ``fadejax restructure`` retrains its final layer
    train_data: str | None = None
    debug_seed_fraction: float = pydantic.Field(0.5, gt=0.0, lt=1.0)
    debug_split_seed: int = 0

    @pydantic.model_validator(mode="after")
    def _paths(self) -> "ConditionsConfig":
        if self.pipeline is None:
            raise ValueError("conditions.pipeline: a local diffusers pipeline directory is needed (it generates every query's image)")
        if self.clip is None:
            raise ValueError("conditions.clip: a local CLIP model directory is needed (visibility checks, observations, describe)")
        return self
