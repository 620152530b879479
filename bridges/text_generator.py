"""A local text-generation model that samples short continuations of a prompt.

Either kind of Hugging Face language model: a causal one (``AutoModelForCausalLM``, e.g.
GPT-2; it continues the prompt, and only the new tokens are returned) or an
encoder-decoder (``AutoModelForSeq2SeqLM``, e.g. Flan-T5; it answers the prompt). Models
load from a local directory or an already-filled Hugging Face cache; nothing is downloaded.
"""

from __future__ import annotations

from typing import Any

import torch

from bridges.weights import local_pretrained


class TextGeneratorError(ValueError):
    """The text-generation model cannot be loaded or used as asked."""


class TextGenerator:
    """Wraps a language ``model`` (put in eval mode here) and its ``tokenizer``."""

    def __init__(self, model: Any, tokenizer: Any, device: str = "cpu"):
        self.model, self.tokenizer, self.device = model.to(device).eval(), tokenizer, device
        self.encoder_decoder = bool(getattr(model.config, "is_encoder_decoder", False))

    @torch.no_grad()
    def sample(self, prompt: str, count: int, *, seed: int, max_new_tokens: int = 8, temperature: float = 1.0,
               top_p: float = 0.95) -> list[str]:
        """``count`` sampled continuations (causal) or answers (encoder-decoder) of ``prompt``,
        decoded without special tokens; the same ``seed`` gives the same texts."""
        if count < 1 or max_new_tokens < 1 or temperature <= 0 or not 0 < top_p <= 1:
            raise TextGeneratorError(f"count {count} and max_new_tokens {max_new_tokens} must be 1 or more, temperature "
                                     f"{temperature} above 0 and top_p {top_p} in (0, 1]")
        inputs = self.tokenizer([prompt], return_tensors="pt").to(self.device)
        pad = self.tokenizer.pad_token_id if self.tokenizer.pad_token_id is not None else self.tokenizer.eos_token_id
        torch.manual_seed(seed)
        out = self.model.generate(**inputs, do_sample=True, num_return_sequences=count, max_new_tokens=max_new_tokens,
                                  temperature=temperature, top_p=top_p, top_k=0, pad_token_id=pad)
        if not self.encoder_decoder:
            out = out[:, inputs["input_ids"].shape[1]:]  # the prompt's tokens come back first
        return [str(t) for t in self.tokenizer.batch_decode(out, skip_special_tokens=True)]


def load_text_generator(path: str, device: str = "cpu") -> TextGenerator:
    """A :class:`TextGenerator` from a local model directory (or a model id already in the
    local Hugging Face cache); :class:`TextGeneratorError` names what is missing."""
    from transformers import AutoConfig, AutoModelForCausalLM, AutoModelForSeq2SeqLM, AutoTokenizer

    try:
        local = local_pretrained(path)
        config = AutoConfig.from_pretrained(local, local_files_only=True)
        kind = AutoModelForSeq2SeqLM if getattr(config, "is_encoder_decoder", False) else AutoModelForCausalLM
        model = kind.from_pretrained(local, local_files_only=True)
        tokenizer = AutoTokenizer.from_pretrained(local, local_files_only=True)
    except (OSError, ValueError) as exc:
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise TextGeneratorError(f"text-generation model '{path}' could not be loaded (a local directory or a cached model id "
                                 f"with a causal or encoder-decoder language model and its tokenizer is needed): {first}") from None
    return TextGenerator(model, tokenizer, device)
