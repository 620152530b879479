"""LoRA fine-tuning of a text-to-image pipeline's UNet (the paper's stage 3 for generation).

The standard ``diffusers`` text-to-image LoRA recipe, written compactly: the VAE, the text
encoder and the UNet are frozen; a peft ``LoraConfig(r, lora_alpha, target_modules=
["to_k", "to_q", "to_v", "to_out.0"])`` adapter is added to the UNet's attention layers
(``unet.add_adapter``) and is all that trains. Each step encodes images to latents,
adds noise at random timesteps with a DDPM scheduler built from the pipeline's scheduler
config, predicts the noise (or v, per the scheduler's ``prediction_type``) and minimises
the MSE, with AdamW and ``diffusers.optimization.get_scheduler`` (cosine by default);
fp16 autocast with loss scaling on a GPU, the LoRA weights kept in float32.

Because nothing but the adapter trains and there is no augmentation, each image's latent
distribution (the VAE encoder's mean and std) and each caption's text-encoder states are
computed once at the start, and every step samples its latent from that distribution —
the same computation as encoding every step, without repeating the frozen encoders.

All randomness (data order, latent samples, noise, timesteps) comes from one seeded CPU
``torch.Generator``. After every epoch a checkpoint (adapter, optimiser, lr schedule,
loss scaler, generator state, epoch, losses) replaces ``checkpoint.pt``, so a killed
process launched again resumes at the next epoch and ends with the same adapter.
The final adapter is written by the pipeline class's ``save_lora_weights`` as
``output_dir/pytorch_lora_weights.safetensors`` (diffusers key format, with the LoRA
config as metadata), which ``pipeline.load_lora_weights`` / ``bridges.diffusion.load_diffusion(lora=...)``
load; ``metrics.json`` reports the losses.
"""

from __future__ import annotations

import json
import math
import os
from pathlib import Path
from typing import Any

import numpy as np
import torch
from PIL import Image, ImageOps
from tqdm import tqdm

from fadejax.core.captions import captioned_images

TARGET_MODULES = ["to_k", "to_q", "to_v", "to_out.0"]
ADAPTER_FILE = "pytorch_lora_weights.safetensors"


def _device_and_precision(hyper) -> tuple[torch.device, str]:
    device = torch.device("cuda" if hyper.device == "auto" and torch.cuda.is_available() else ("cpu" if hyper.device == "auto" else hyper.device))
    if device.type == "cuda" and not torch.cuda.is_available():
        raise ValueError(f"hyper.device '{hyper.device}' cannot be used: this torch has no CUDA device")
    precision = ("fp16" if device.type == "cuda" else "no") if hyper.mixed_precision == "auto" else hyper.mixed_precision
    if precision == "fp16" and device.type != "cuda":
        raise ValueError(f"mixed_precision 'fp16' needs a CUDA device, not '{device}'; use 'no' or 'auto'")
    return device, precision


def load_components(pipeline_dir: str, torch_dtype: torch.dtype = torch.float32) -> Any:
    """The pipeline (without its safety checker); it must have ``unet``, ``vae``, ``text_encoder``, ``tokenizer``."""
    from diffusers import DiffusionPipeline

    from bridges.quiet import apply_to_diffusers

    apply_to_diffusers()

    from bridges.diffusion import dtype_kwargs

    index = json.loads((Path(pipeline_dir) / "model_index.json").read_text())
    extra = {"safety_checker": None} if "safety_checker" in index else {}
    pipeline = DiffusionPipeline.from_pretrained(pipeline_dir, local_files_only=True, **extra, **dtype_kwargs(torch_dtype))
    missing = [c for c in ("unet", "vae", "text_encoder", "tokenizer") if getattr(pipeline, c, None) is None]
    if missing or not hasattr(pipeline, "save_lora_weights"):
        raise ValueError(f"{type(pipeline).__name__} at '{pipeline_dir}' is not a UNet text-to-image pipeline with LoRA support"
                         + (f" (missing: {', '.join(missing)})" if missing else ""))
    return pipeline


def add_lora(unet: torch.nn.Module, rank: int, alpha: float) -> list[torch.nn.Parameter]:
    """Freeze ``unet`` and add the LoRA adapter; returns the trainable (adapter) parameters."""
    from peft import LoraConfig

    unet.requires_grad_(False)
    unet.add_adapter(LoraConfig(r=rank, lora_alpha=alpha, init_lora_weights="gaussian", target_modules=TARGET_MODULES))
    params = [p for p in unet.parameters() if p.requires_grad]
    for p in params:  # the frozen weights may be fp16; the trained ones stay fp32
        p.data = p.data.float()
    return params


def _adapter_state(unet: torch.nn.Module) -> dict[str, torch.Tensor]:
    return {k: v.detach().cpu().clone() for k, v in unet.state_dict().items() if "lora_" in k}


def _load_image(path: Path, resolution: int) -> torch.Tensor:
    with Image.open(path) as image:
        image = ImageOps.fit(image.convert("RGB"), (resolution, resolution), method=Image.Resampling.BILINEAR)
    pixels = torch.from_numpy(np.asarray(image, dtype=np.float32) / 127.5 - 1.0)
    return pixels.permute(2, 0, 1)


@torch.no_grad()
def encode_data(pipeline: Any, pairs: list[tuple[Path, str]], resolution: int, device: torch.device, dtype: torch.dtype,
                chunk: int = 8) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """``(latent mean, latent std, text states)`` of every image and caption, float32 on ``device``."""
    means, stds, texts = [], [], []
    for start in range(0, len(pairs), chunk):
        part = pairs[start : start + chunk]
        pixels = torch.stack([_load_image(path, resolution) for path, _ in part]).to(device, dtype)
        dist = pipeline.vae.encode(pixels).latent_dist
        means.append(dist.mean.float())
        stds.append(dist.std.float())
        tok = pipeline.tokenizer([caption for _, caption in part], max_length=pipeline.tokenizer.model_max_length,
                                 padding="max_length", truncation=True, return_tensors="pt")
        texts.append(pipeline.text_encoder(tok.input_ids.to(device))[0].float())
    return torch.cat(means), torch.cat(stds), torch.cat(texts)


def run(spec, *, stop_after_epoch: int | None = None) -> dict:
    """Train (or resume) the adapter of ``spec`` (a :class:`fadejax.audits.prompt.finetune_spec.LoraSpec`); return the metrics.

    ``stop_after_epoch``: return right after that epoch's checkpoint, as if the process had
    been killed there (for tests of resuming); no adapter or metrics are written then.
    """
    from diffusers import DDPMScheduler
    from diffusers.optimization import get_scheduler
    from diffusers.utils import convert_state_dict_to_diffusers
    from peft.utils import get_peft_model_state_dict

    h = spec.hyper
    out = Path(spec.output_dir)
    out.mkdir(parents=True, exist_ok=True)
    device, precision = _device_and_precision(h)
    weight_dtype = torch.float16 if precision == "fp16" else torch.float32

    pipeline = load_components(spec.pipeline, weight_dtype)
    unet, vae, text_encoder = pipeline.unet, pipeline.vae, pipeline.text_encoder
    vae.requires_grad_(False)
    text_encoder.requires_grad_(False)
    for module in (unet, vae, text_encoder):
        module.to(device)
    noise_scheduler = DDPMScheduler.from_config(pipeline.scheduler.config)
    torch.manual_seed(h.seed)  # the adapter's initial A matrices
    params = add_lora(unet, h.rank, h.alpha)

    pairs = captioned_images(spec.data_dir)
    vae.eval()
    text_encoder.eval()
    mean, std, states = encode_data(pipeline, pairs, h.resolution, device, weight_dtype)
    scaling, shift = vae.config.scaling_factor, getattr(vae.config, "shift_factor", None) or 0.0

    samples = len(pairs) * h.repeats
    steps_per_epoch = math.ceil(samples / h.batch_size)
    optimizer = torch.optim.AdamW(params, lr=h.learning_rate, weight_decay=h.weight_decay)
    lr_schedule = get_scheduler(h.lr_schedule, optimizer=optimizer, num_warmup_steps=h.warmup_steps,
                                num_training_steps=h.epochs * steps_per_epoch)
    scaler = torch.amp.GradScaler("cuda") if precision == "fp16" else None
    generator = torch.Generator("cpu").manual_seed(h.seed)

    checkpoint = out / "checkpoint.pt"
    start, history = 0, []
    if checkpoint.is_file():
        state = torch.load(checkpoint, map_location="cpu", weights_only=True)
        result = unet.load_state_dict(state["adapter"], strict=False)
        if result.unexpected_keys or any("lora_" in k for k in result.missing_keys):
            raise ValueError(f"'{checkpoint}' holds a different adapter; choose another output_dir")
        optimizer.load_state_dict(state["optimizer"])
        lr_schedule.load_state_dict(state["lr_schedule"])
        if scaler is not None and state.get("scaler"):
            scaler.load_state_dict(state["scaler"])
        generator.set_state(state["generator"])
        start, history = int(state["epoch"]), list(state["history"])
        print(f"resuming LoRA fine-tune at epoch {start + 1}/{h.epochs}", flush=True)

    def noise(shape: tuple[int, ...]) -> torch.Tensor:
        return torch.randn(shape, generator=generator).to(device)

    unet.train()
    for epoch in range(start, h.epochs):
        order = torch.randperm(samples, generator=generator) % len(pairs)
        total = 0.0
        for step in tqdm(range(steps_per_epoch), desc=f"LoRA epoch {epoch + 1}/{h.epochs}", unit="step", leave=False):
            batch = order[step * h.batch_size : (step + 1) * h.batch_size].to(device)
            latents = (mean[batch] + std[batch] * noise(tuple(mean[batch].shape)) - shift) * scaling
            eps = noise(tuple(latents.shape))
            timesteps = torch.randint(0, noise_scheduler.config.num_train_timesteps, (len(batch),), generator=generator).to(device)
            noisy = noise_scheduler.add_noise(latents, eps, timesteps)
            if noise_scheduler.config.prediction_type == "epsilon":
                target = eps
            elif noise_scheduler.config.prediction_type == "v_prediction":
                target = noise_scheduler.get_velocity(latents, eps, timesteps)
            else:
                raise ValueError(f"unsupported prediction_type '{noise_scheduler.config.prediction_type}'")
            with torch.autocast(device.type, dtype=torch.float16, enabled=precision == "fp16"):
                prediction = unet(noisy.to(weight_dtype), timesteps, states[batch].to(weight_dtype)).sample
            loss = torch.nn.functional.mse_loss(prediction.float(), target.float())
            if scaler is not None:
                scaler.scale(loss).backward()
                scaler.unscale_(optimizer)
                torch.nn.utils.clip_grad_norm_(params, h.max_grad_norm)
                scaler.step(optimizer)
                scaler.update()
            else:
                loss.backward()
                torch.nn.utils.clip_grad_norm_(params, h.max_grad_norm)
                optimizer.step()
            lr_schedule.step()
            optimizer.zero_grad(set_to_none=True)
            total += float(loss.detach()) * len(batch)
        history.append(total / samples)
        print(f"LoRA epoch {epoch + 1}/{h.epochs}: loss {history[-1]:.5f}", flush=True)
        tmp = checkpoint.with_suffix(".tmp")
        torch.save({"adapter": _adapter_state(unet), "optimizer": optimizer.state_dict(), "lr_schedule": lr_schedule.state_dict(),
                    "scaler": scaler.state_dict() if scaler is not None else {}, "generator": generator.get_state(),
                    "epoch": epoch + 1, "history": history}, tmp)
        os.replace(tmp, checkpoint)
        if stop_after_epoch is not None and epoch + 1 >= stop_after_epoch and epoch + 1 < h.epochs:
            return {"epochs": epoch + 1, "loss_per_epoch": history, "adapter": None}

    lora_layers = convert_state_dict_to_diffusers(get_peft_model_state_dict(unet))
    type(pipeline).save_lora_weights(out, unet_lora_layers=lora_layers, safe_serialization=True,
                                     unet_lora_adapter_metadata=unet.peft_config["default"].to_dict())
    metrics = {"epochs": h.epochs, "loss_per_epoch": history, "adapter": str(out / ADAPTER_FILE), "images": len(pairs),
               "steps": h.epochs * steps_per_epoch, "device": str(device), "mixed_precision": precision}
    (out / "metrics.json").write_text(json.dumps(metrics, indent=2))
    return metrics
