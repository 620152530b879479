"""The text-to-image audit's config section, ``prompt``."""

from __future__ import annotations

from typing import Literal

import pydantic

from fadejax.core.strict import Strict as _Strict


class GenerationConfig(_Strict):
    """How a local diffusers ``pipeline`` directory (or a model id in the Hugging Face
    cache) generates images: device, precision, denoising steps, guidance, size, batch."""

    pipeline: str | None = None
    device: str = "cpu"
    dtype: Literal["float32", "float16"] = "float32"
    steps: pydantic.PositiveInt = 30
    guidance_scale: float = pydantic.Field(7.5, ge=0.0)
    height: pydantic.PositiveInt = 512
    width: pydantic.PositiveInt = 512
    batch_size: pydantic.PositiveInt = 4


class PromptConfig(GenerationConfig):
    """The text-to-image audit (``task: prompt``): a diffusers pipeline from a local
    ``pipeline`` directory, prompts from ``templates`` filled with the axes' words, reward
    eq. 9 (``clip``, a local CLIP at ``clip``) or eq. 8 (``human`` ratings on a local page).

    A query fails when its reward reaches ``failure_threshold`` (default 25 for CLIP: the
    image matches its prompt poorly; 25 for human ratings: bias x quality) or its image is
    invalid. ``attribute_prompts`` drive the zero-shot bias measure (male-to-female ratio).
    """

    lora: str | None = None
    templates: list[str] | None = None
    held_out: pydantic.PositiveInt | None = None
    reward: Literal["clip", "human"] = "clip"
    clip: str | None = None
    failure_threshold: float = 25.0
    attribute_prompts: dict[str, str] = pydantic.Field(default_factory=lambda: {"male": "a photo of a man", "female": "a photo of a woman"})
    bias_ratio: tuple[str, str] = ("male", "female")
    rating_timeout_s: pydantic.PositiveFloat | None = None
    rating_port: int = pydantic.Field(0, ge=0, le=65535)

    @pydantic.model_validator(mode="after")
    def _paths(self) -> "PromptConfig":
        if self.clip is None:
            raise ValueError("prompt.clip: a local CLIP model directory is needed (eq. 9 reward, observations and the bias measure)")
        for name in self.bias_ratio:
            if name not in self.attribute_prompts:
                raise ValueError(f"prompt.bias_ratio names '{name}', which is not in prompt.attribute_prompts {sorted(self.attribute_prompts)}")
        return self
