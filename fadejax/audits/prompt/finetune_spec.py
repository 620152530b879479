"""The LoRA fine-tune spec for a text-to-image pipeline (the paper's §4.3 / Appendix D.3).

Validated in the engine's process without torch: the pipeline directory and the image
folder must exist, every image must have a caption, and the hyper-parameters must be in
range, before any work starts. The runner is :mod:`bridges.finetune_lora`.

The image folder holds the user's small, balanced, high-quality set (the paper used
DALL·E 3 images with male and female terms in the prompts), in either layout:

* ``metadata.jsonl``: one JSON object per line, ``{"file_name": "0001.png", "text": "..."}``
  (the layout of ``diffusers``' text-to-image examples / ``datasets``' imagefolder);
* no ``metadata.jsonl``: image files, each with a caption in a same-named ``.txt`` file
  (``0001.png`` + ``0001.txt``).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Literal

import pydantic

from fadejax.core.captions import CaptionError, captioned_images

PIPELINE_COMPONENTS = ("unet", "vae", "text_encoder", "tokenizer", "scheduler")


class _Strict(pydantic.BaseModel):
    model_config = pydantic.ConfigDict(extra="forbid", frozen=True)


class LoraHyper(_Strict):
    """The paper's settings (Appendix D.3): AdamW lr 1e-4, cosine schedule, batch 2, 4 epochs, fp16.

    ``rank``/``alpha``: LoRA rank r and scale alpha (the update is (alpha / r) · B A).
    ``mixed_precision``: ``"auto"`` is ``"fp16"`` on a GPU and ``"no"`` on the CPU.
    ``repeats``: passes over each image per epoch (the paper's kohya run used 100).
    ``device``: ``"auto"`` picks ``cuda`` when torch sees one.
    """

    rank: pydantic.PositiveInt = 4
    alpha: pydantic.PositiveFloat = 4.0
    learning_rate: pydantic.PositiveFloat = 1e-4
    optimizer: Literal["adamw"] = "adamw"
    weight_decay: float = pydantic.Field(1e-2, ge=0.0)
    lr_schedule: Literal["cosine", "constant", "linear"] = "cosine"
    warmup_steps: int = pydantic.Field(0, ge=0)
    batch_size: pydantic.PositiveInt = 2
    epochs: pydantic.PositiveInt = 4
    repeats: pydantic.PositiveInt = 1
    resolution: int = pydantic.Field(512, ge=8, multiple_of=8)
    mixed_precision: Literal["auto", "no", "fp16"] = "auto"
    max_grad_norm: pydantic.PositiveFloat = 1.0
    device: str = pydantic.Field("auto", pattern=r"^(auto|cpu|mps|cuda(:\d+)?)$")
    seed: int = 0

    @pydantic.model_validator(mode="after")
    def _fp16_needs_gpu(self) -> "LoraHyper":
        if self.mixed_precision == "fp16" and self.device == "cpu":
            raise ValueError("mixed_precision 'fp16' needs a GPU; use 'no' (or 'auto') with device 'cpu'")
        return self


class LoraSpec(_Strict):
    """Fine-tune a text-to-image pipeline's UNet with a LoRA adapter on captioned images.

    ``pipeline``: a local ``diffusers`` pipeline directory (with ``model_index.json``).
    ``data_dir``: the captioned images (see the module docstring for the two layouts).
    ``output_dir``: checkpoints, ``pytorch_lora_weights.safetensors`` and ``metrics.json``.
    """

    kind: Literal["lora"] = "lora"
    pipeline: str
    data_dir: str
    output_dir: str
    hyper: LoraHyper = pydantic.Field(default_factory=LoraHyper)

    @pydantic.field_validator("pipeline")
    @classmethod
    def _pipeline_dir(cls, value: str) -> str:
        index = Path(value) / "model_index.json"
        if not index.is_file():
            raise ValueError(f"'{value}' is not a local diffusers pipeline directory (no model_index.json)")
        try:
            components = json.loads(index.read_text())
        except (OSError, json.JSONDecodeError) as exc:
            raise ValueError(f"'{index}' cannot be read: {exc}") from None
        missing = [c for c in PIPELINE_COMPONENTS if not isinstance(components, dict) or c not in components]
        if missing:
            raise ValueError(f"'{value}' is not a UNet text-to-image pipeline: model_index.json has no {', '.join(missing)}")
        return value

    @pydantic.field_validator("data_dir")
    @classmethod
    def _captions(cls, value: str) -> str:
        try:
            captioned_images(value)
        except CaptionError as exc:
            raise ValueError(str(exc)) from None
        return value
