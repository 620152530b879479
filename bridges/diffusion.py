"""The text-to-image oracle: batched, per-query-seeded calls of a ``diffusers`` pipeline.

One discovery iteration composes N prompts and calls :meth:`DiffusionOracle.generate`
once; the oracle cuts them into chunks of ``batch_size`` and makes ONE pipeline call per
chunk. Each query has its own seed and its own ``torch.Generator``, so image i depends
only on (prompt i, seed i, the settings) and a record can be regenerated alone: the
initial noise is drawn on the CPU, per query, whatever the batch or the device (a batch
of one and a batch of many differ only by float rounding in the batched kernels).

Safety checker: when the pipeline has one (Stable Diffusion v1-4 does) and it flags an
image, the pipeline returns that image all black. The oracle keeps the black image (the
CLIP scorer marks it invalid, reward −1, as eq. 8/9 ask) and reports the flag
(:meth:`DiffusionOracle.generate_with_flags`). A decode that produced NaN becomes black too.
"""

from __future__ import annotations

import inspect
from pathlib import Path
from typing import Any, Sequence

import numpy as np
import torch
from PIL import Image

from bridges.weights import ModelLoadError, local_pretrained

DTYPES = {"float32": torch.float32, "float16": torch.float16}


class GenerationError(ValueError):
    """A generation request (prompts, seeds, settings) is wrong."""


def dtype_kwargs(torch_dtype: torch.dtype) -> dict[str, torch.dtype]:
    """The ``from_pretrained`` keyword for a dtype: ``dtype`` where diffusers has deprecated ``torch_dtype`` (0.42+)."""
    from diffusers.utils import deprecation_utils

    return {"dtype": torch_dtype} if hasattr(deprecation_utils, "_resolve_dtype") else {"torch_dtype": torch_dtype}


def _torch_dtype(dtype: str, device: torch.device) -> torch.dtype:
    if dtype not in DTYPES:
        raise GenerationError(f"dtype '{dtype}' is not supported; use one of {sorted(DTYPES)}")
    if dtype == "float16" and device.type != "cuda":
        raise GenerationError(f"dtype 'float16' needs a CUDA device (the pipeline is on '{device}'); use dtype 'float32' here")
    return DTYPES[dtype]


class DiffusionOracle:
    """Wraps a ``diffusers`` text-to-image pipeline (Stable Diffusion v1-4 and kin).

    Args:
      pipeline: a loaded pipeline already on its device, callable with ``prompt=[...]``.
      steps: denoising steps per image (``num_inference_steps``).
      guidance_scale: classifier-free guidance weight.
      height, width: image size in pixels (multiples of the VAE's scale factor, 8 for SD).
      batch_size: queries per pipeline call (a memory knob; results do not depend on it).
      dtype: ``"float32"`` or ``"float16"`` (CUDA only); the pipeline is cast to it.
    """

    def __init__(self, pipeline: Any, *, steps: int = 30, guidance_scale: float = 7.5, height: int = 512, width: int = 512,
                 batch_size: int = 4, dtype: str = "float32"):
        for name, value in (("steps", steps), ("height", height), ("width", width), ("batch_size", batch_size)):
            if not isinstance(value, int) or value < 1:
                raise GenerationError(f"{name} must be a positive integer, got {value!r}")
        if "prompt" not in inspect.signature(pipeline.__call__).parameters:
            raise GenerationError(f"{type(pipeline).__name__} is not a text-to-image pipeline (its call takes no 'prompt')")
        self.device = torch.device(pipeline.device)
        torch_dtype = _torch_dtype(dtype, self.device)
        if pipeline.dtype != torch_dtype:
            pipeline = pipeline.to(dtype=torch_dtype)
        pipeline.set_progress_bar_config(disable=True)
        self.pipeline = pipeline
        self.steps, self.guidance_scale = steps, float(guidance_scale)
        self.height, self.width, self.batch_size, self.dtype = height, width, batch_size, dtype

    @property
    def settings(self) -> dict[str, Any]:
        """Everything besides (prompt, seed) an image depends on; store it with the records."""
        return {"steps": self.steps, "guidance_scale": self.guidance_scale, "height": self.height, "width": self.width,
                "dtype": self.dtype, "pipeline": type(self.pipeline).__name__, "scheduler": type(self.pipeline.scheduler).__name__}

    def generate_with_flags(self, prompts: Sequence[str], seeds: Sequence[int]) -> tuple[np.ndarray, np.ndarray]:
        """``(images, flagged)``: uint8 ``(B, height, width, 3)`` and bool ``(B,)`` (the safety checker blanked it)."""
        prompts, seeds = list(prompts), [int(s) for s in seeds]
        if not prompts:
            raise GenerationError("generate needs at least one prompt")
        if len(prompts) != len(seeds):
            raise GenerationError(f"got {len(prompts)} prompts and {len(seeds)} seeds; give one seed per prompt")
        if not all(isinstance(p, str) for p in prompts):
            raise GenerationError("every prompt must be a string")
        images, flags = [], []
        for start in range(0, len(prompts), self.batch_size):
            chunk = slice(start, start + self.batch_size)
            generators = [torch.Generator("cpu").manual_seed(seed) for seed in seeds[chunk]]
            with torch.inference_mode():
                out = self.pipeline(prompt=prompts[chunk], num_inference_steps=self.steps, guidance_scale=self.guidance_scale,
                                    height=self.height, width=self.width, generator=generators, output_type="np")
            batch = np.asarray(out.images, dtype=np.float32)
            images.append(np.round(np.clip(np.nan_to_num(batch, nan=0.0), 0.0, 1.0) * 255.0).astype(np.uint8))
            nsfw = getattr(out, "nsfw_content_detected", None) or [False] * len(batch)
            flags.append(np.array([bool(f) for f in nsfw]))
        return np.concatenate(images), np.concatenate(flags)

    def generate(self, prompts: Sequence[str], seeds: Sequence[int]) -> np.ndarray:
        """Images for ``prompts`` with per-query ``seeds``: uint8 ``(B, height, width, 3)``."""
        return self.generate_with_flags(prompts, seeds)[0]


def save_png(image: np.ndarray, path: str | Path) -> Path:
    """Write one uint8 ``(H, W, 3)`` image as a PNG (lossless, so the record keeps the exact pixels)."""
    image = np.asarray(image)
    if image.dtype != np.uint8 or image.ndim != 3 or image.shape[-1] != 3:
        raise GenerationError(f"save_png takes a uint8 (H, W, 3) image, got {image.dtype} {image.shape}")
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(image).save(path, format="PNG")
    return path


def _device(device: str) -> torch.device:
    try:
        dev = torch.device(device)
    except RuntimeError as exc:
        raise ModelLoadError(f"device '{device}' is not a torch device: {exc}") from None
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise ModelLoadError(f"device '{device}' cannot be used here: this torch has no CUDA device; use 'cpu'")
    return dev


def load_pipeline(path: str, device: str = "cpu", dtype: str = "float32", lora: str | None = None) -> Any:
    """A ``DiffusionPipeline`` from a local directory or an already-filled Hugging Face cache.

    Never downloads (``local_files_only=True``). ``lora``: a LoRA adapter saved by
    :mod:`bridges.finetune_lora` (its output directory or the ``.safetensors`` file),
    loaded into the UNet. :class:`ModelLoadError` names what is missing.
    """
    from diffusers import DiffusionPipeline

    from bridges.quiet import apply_to_diffusers

    apply_to_diffusers()

    dev = _device(device)
    torch_dtype = _torch_dtype(dtype, dev)
    if lora is not None and not Path(lora).expanduser().exists():
        raise ModelLoadError(f"LoRA adapter '{lora}' does not exist")
    local = Path(path).expanduser()
    if local.exists() and not (local / "model_index.json").is_file():
        raise ModelLoadError(f"diffusion pipeline '{path}' is not a diffusers pipeline directory (no model_index.json)")
    try:
        pipeline = DiffusionPipeline.from_pretrained(str(local) if local.exists() else local_pretrained(path), local_files_only=True,
                                                     **dtype_kwargs(torch_dtype))
    except (OSError, ValueError) as exc:
        where = "it is not a local directory and is not in the Hugging Face cache; nothing is downloaded" if not local.exists() else str(exc)
        raise ModelLoadError(f"diffusion pipeline '{path}' could not be loaded: {where}") from None
    if lora is not None:
        _load_lora(pipeline, lora)
    return pipeline.to(dev)


def _load_lora(pipeline: Any, lora: str) -> None:
    lora_path = Path(lora).expanduser()
    if not hasattr(pipeline, "load_lora_weights"):
        raise ModelLoadError(f"{type(pipeline).__name__} cannot load LoRA adapters")
    folder, name = (lora_path.parent, lora_path.name) if lora_path.is_file() else (lora_path, None)
    try:
        pipeline.load_lora_weights(str(folder), weight_name=name, local_files_only=True)
    except (OSError, ValueError, KeyError) as exc:
        raise ModelLoadError(f"LoRA adapter '{lora}' could not be loaded: {exc}") from None


def load_diffusion(path: str, device: str = "cpu", dtype: str = "float32", lora: str | None = None, **settings: Any) -> DiffusionOracle:
    """A :class:`DiffusionOracle` over the pipeline at ``path`` (see :func:`load_pipeline`).

    ``settings`` go to the oracle: ``steps``, ``guidance_scale``, ``height``, ``width``, ``batch_size``.
    """
    return DiffusionOracle(load_pipeline(path, device, dtype, lora), dtype=dtype, **settings)
