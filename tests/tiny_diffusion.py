"""Tiny, randomly initialised Stable-Diffusion-shaped pipeline and CLIP model, built offline.

``make_tiny_pipeline(path)`` saves a ``StableDiffusionPipeline`` (UNet 8/16 channels, VAE
8/16 channels, 32-wide CLIP text encoder, DDIM scheduler, no safety checker) that makes
16x16 images; ``make_tiny_clip(path)`` saves a ``CLIPModel`` (32-wide text and vision
towers, 32x32 input, 16-d projection) with its ``CLIPProcessor``. Both are seeded, so
every build is identical, and both take about a second. The tokenizer is a real
``CLIPTokenizer`` over a byte-level character vocabulary (no merges), so every prompt
tokenizes without a download; its context is 128 tokens so the project's prompt
templates are never truncated.
"""

from __future__ import annotations

from pathlib import Path

MAX_TOKENS = 128  # characters + 2 specials; longer than any default template


def tiny_tokenizer():
    """A ``CLIPTokenizer`` whose vocabulary is the 256 byte-level characters, alone and word-final."""
    from tokenizers import pre_tokenizers
    from transformers import CLIPTokenizer

    vocab = {"<|startoftext|>": 0, "<|endoftext|>": 1}
    for char in sorted(pre_tokenizers.ByteLevel.alphabet()):
        vocab.setdefault(char, len(vocab))
        vocab.setdefault(char + "</w>", len(vocab))
    return CLIPTokenizer(vocab=vocab, merges=[], model_max_length=MAX_TOKENS)


def _text_config_kwargs(vocab_size: int) -> dict:
    return dict(
        vocab_size=vocab_size, hidden_size=32, intermediate_size=37, num_hidden_layers=2, num_attention_heads=4,
        max_position_embeddings=MAX_TOKENS, bos_token_id=0, eos_token_id=1, pad_token_id=1,
    )


def make_tiny_pipeline(path: str | Path, *, seed: int = 0) -> Path:
    """Save a tiny ``StableDiffusionPipeline`` (16x16 images) to ``path``; returns ``path``."""
    import torch
    from diffusers import AutoencoderKL, DDIMScheduler, StableDiffusionPipeline, UNet2DConditionModel
    from transformers import CLIPTextConfig, CLIPTextModel

    path = Path(path)
    tokenizer = tiny_tokenizer()
    torch.manual_seed(seed)
    unet = UNet2DConditionModel(
        sample_size=8, in_channels=4, out_channels=4, layers_per_block=1, block_out_channels=(8, 16),
        down_block_types=("CrossAttnDownBlock2D", "DownBlock2D"), up_block_types=("UpBlock2D", "CrossAttnUpBlock2D"),
        cross_attention_dim=32, attention_head_dim=4, norm_num_groups=4,
    )
    vae = AutoencoderKL(
        in_channels=3, out_channels=3, latent_channels=4, block_out_channels=(8, 16), layers_per_block=1,
        down_block_types=("DownEncoderBlock2D", "DownEncoderBlock2D"), up_block_types=("UpDecoderBlock2D", "UpDecoderBlock2D"),
        norm_num_groups=4, sample_size=16,
    )
    text_encoder = CLIPTextModel(CLIPTextConfig(**_text_config_kwargs(len(tokenizer))))
    scheduler = DDIMScheduler(beta_start=0.00085, beta_end=0.012, beta_schedule="scaled_linear", clip_sample=False,
                              set_alpha_to_one=False, steps_offset=1)
    pipeline = StableDiffusionPipeline(
        vae=vae, text_encoder=text_encoder, tokenizer=tokenizer, unet=unet, scheduler=scheduler,
        safety_checker=None, feature_extractor=None, requires_safety_checker=False,
    )
    pipeline.save_pretrained(path)
    return path


def make_tiny_clip(path: str | Path, *, seed: int = 0) -> Path:
    """Save a tiny ``CLIPModel`` and its ``CLIPProcessor`` (32x32 images) to ``path``; returns ``path``."""
    import torch
    from transformers import CLIPConfig, CLIPImageProcessorPil, CLIPModel, CLIPProcessor, CLIPTextConfig, CLIPVisionConfig

    path = Path(path)
    tokenizer = tiny_tokenizer()
    torch.manual_seed(seed)
    config = CLIPConfig(
        text_config=CLIPTextConfig(**_text_config_kwargs(len(tokenizer))).to_dict(),
        vision_config=CLIPVisionConfig(hidden_size=32, intermediate_size=37, num_hidden_layers=2, num_attention_heads=4,
                                       image_size=32, patch_size=8).to_dict(),
        projection_dim=16,
    )
    model = CLIPModel(config)
    processor = CLIPProcessor(
        image_processor=CLIPImageProcessorPil(size={"shortest_edge": 32}, crop_size={"height": 32, "width": 32}),
        tokenizer=tokenizer,
    )
    model.save_pretrained(path)
    processor.save_pretrained(path)
    return path
