"""CLIP scores of generated images: the eq. 9 reward, invalid images, zero-shot attributes.

Eq. 9 (§2.3.3): ``R = 100 · (1 − cos(e_prompt, e_image))`` with CLIP's projected text
embedding of the prompt and image embedding of the generated image — 0 when the image
matches the prompt perfectly, up to 200 when opposite; a high value is a failure. An
invalid image (the safety checker's black blank, a NaN decode, any near-constant
picture) scores −1, as the paper's eq. 8 does for a human-marked invalid image.

Invalid means: the standard deviation of all the image's pixel values (every channel,
0..255 scale) is below :data:`INVALID_STD` = 2.0 grey levels. A black or single-colour
image has 0; a real photograph or any SD output that shows something has tens.

Zero-shot attributes (the paper's gender count behind the 1.65 -> 1.16 male-to-female
ratio): softmax over ``logit_scale · cos(image, attribute prompt)``, CLIP's own zero-shot
classifier, and :func:`bias_ratio` on those probabilities.
"""

from __future__ import annotations

import math
from typing import Any, Mapping, Sequence

import numpy as np
import torch

from bridges.weights import ModelLoadError, local_pretrained

INVALID_STD = 2.0  # grey levels (0..255); below it an image carries no picture


class ScoringError(ValueError):
    """Images or texts handed to the CLIP scorer are malformed."""


def _features(output: Any) -> torch.Tensor:
    """Projected features from ``get_*_features``: a tensor (transformers 4) or an output's ``pooler_output`` (5)."""
    return output if isinstance(output, torch.Tensor) else output.pooler_output


def _check_images(images: np.ndarray) -> np.ndarray:
    images = np.asarray(images)
    if images.dtype != np.uint8 or images.ndim != 4 or images.shape[-1] != 3 or len(images) == 0:
        raise ScoringError(f"images must be uint8 (B, H, W, 3) with B >= 1, got {images.dtype} {images.shape}")
    return images


def invalid(images: np.ndarray) -> np.ndarray:
    """bool ``(B,)``: the image is blank — pixel standard deviation below :data:`INVALID_STD` grey levels."""
    images = _check_images(images)
    return images.reshape(len(images), -1).astype(np.float32).std(axis=1) < INVALID_STD


class ClipScorer:
    """A ``transformers`` CLIP model and its processor, scoring in batches.

    Args:
      model: a ``CLIPModel`` (put in eval mode and moved to ``device`` here).
      processor: a ``CLIPProcessor`` (or anything with ``tokenizer`` and ``image_processor``).
      device: torch device, e.g. ``"cpu"`` or ``"cuda:0"``.
      batch_size: texts or images per forward pass.
    """

    def __init__(self, model: Any, processor: Any, device: str = "cpu", batch_size: int = 32):
        self.device = torch.device(device)
        self.model = model.to(self.device).eval()
        self.tokenizer, self.image_processor = processor.tokenizer, processor.image_processor
        self.batch_size = batch_size
        self.max_tokens = min(int(getattr(self.tokenizer, "model_max_length", 77)), int(model.config.text_config.max_position_embeddings))

    @torch.inference_mode()
    def text_embeddings(self, texts: Sequence[str]) -> np.ndarray:
        """L2-normalised CLIP text embeddings, float32 ``(B, D)``; texts longer than CLIP's context are truncated."""
        texts = [texts] if isinstance(texts, str) else list(texts)
        if not texts or not all(isinstance(t, str) for t in texts):
            raise ScoringError("text_embeddings takes a non-empty list of strings")
        out = []
        for start in range(0, len(texts), self.batch_size):
            tokens = self.tokenizer(texts[start : start + self.batch_size], padding=True, truncation=True,
                                    max_length=self.max_tokens, return_tensors="pt").to(self.device)
            out.append(_features(self.model.get_text_features(input_ids=tokens["input_ids"], attention_mask=tokens["attention_mask"])))
        return self._normalised(out)

    @torch.inference_mode()
    def image_embeddings(self, images: np.ndarray) -> np.ndarray:
        """L2-normalised CLIP image embeddings of uint8 ``(B, H, W, 3)`` images, float32 ``(B, D)``."""
        images = _check_images(images)
        out = []
        for start in range(0, len(images), self.batch_size):
            pixels = self.image_processor(images=list(images[start : start + self.batch_size]), return_tensors="pt")["pixel_values"]
            out.append(_features(self.model.get_image_features(pixel_values=pixels.to(self.device, self.model.dtype))))
        return self._normalised(out)

    @staticmethod
    def _normalised(chunks: list[torch.Tensor]) -> np.ndarray:
        features = torch.cat(chunks).float()
        return torch.nn.functional.normalize(features, dim=-1).cpu().numpy()

    def reward(self, prompts: Sequence[str], images: np.ndarray) -> np.ndarray:
        """Eq. 9 per query, float32 ``(B,)``: ``100 · (1 − cos)``, or −1 for an invalid image."""
        images = _check_images(images)
        if len(prompts) != len(images):
            raise ScoringError(f"got {len(prompts)} prompts and {len(images)} images; give one prompt per image")
        cosine = np.sum(self.text_embeddings(prompts) * self.image_embeddings(images), axis=1)
        return np.where(invalid(images), -1.0, 100.0 * (1.0 - cosine)).astype(np.float32)

    invalid = staticmethod(invalid)

    def zero_shot(self, images: np.ndarray, attribute_prompts: Mapping[str, str]) -> np.ndarray:
        """Probabilities over the attributes, float32 ``(B, K)`` in ``attribute_prompts``' order; rows sum to 1.

        Softmax of ``logit_scale.exp() · cos(image, attribute prompt)`` (CLIP's zero-shot classifier).
        """
        if len(attribute_prompts) < 2:
            raise ScoringError(f"zero_shot needs at least two attribute prompts, got {dict(attribute_prompts)}")
        scale = float(self.model.logit_scale.detach().exp())
        logits = scale * self.image_embeddings(images) @ self.text_embeddings(list(attribute_prompts.values())).T
        return torch.softmax(torch.from_numpy(logits), dim=-1).numpy().astype(np.float32)


def bias_ratio(probs: np.ndarray, numerator: str = "male", denominator: str = "female",
               labels: Sequence[str] = ("male", "female"), valid: np.ndarray | None = None) -> float:
    """Images assigned to ``numerator`` over images assigned to ``denominator`` (the paper's 1.65 -> 1.16).

    ``probs``: ``(B, K)`` from :meth:`ClipScorer.zero_shot`, columns named by ``labels``
    (the attribute prompts' keys, in order). An image is assigned to a label when that
    label's probability is strictly the largest; an image whose top probability is shared
    (a tie) is ambiguous and counts for neither. ``valid`` (bool ``(B,)``, optional) drops
    invalid images first. With no ``denominator`` image the ratio is ``inf`` if any image
    is ``numerator``, and ``nan`` if there are none of either.
    """
    probs = np.asarray(probs, dtype=np.float64)
    labels = list(labels)
    if probs.ndim != 2 or probs.shape[1] != len(labels):
        raise ScoringError(f"probs must be (B, {len(labels)}) for labels {labels}, got shape {probs.shape}")
    for name in (numerator, denominator):
        if name not in labels:
            raise ScoringError(f"'{name}' is not one of the labels {labels}")
    if valid is not None:
        probs = probs[np.asarray(valid, dtype=bool)]
    top = probs.max(axis=1, keepdims=True)
    unique_top = (probs == top).sum(axis=1) == 1
    winner = np.where(unique_top, probs.argmax(axis=1), -1)
    num = int(np.sum(winner == labels.index(numerator)))
    den = int(np.sum(winner == labels.index(denominator)))
    if den == 0:
        return math.inf if num > 0 else math.nan
    return num / den


def load_clip(path: str, device: str = "cpu", batch_size: int = 32) -> ClipScorer:
    """A :class:`ClipScorer` from a local directory or an already-filled Hugging Face cache (never downloads)."""
    from transformers import CLIPModel, CLIPProcessor

    try:
        local = local_pretrained(path)
        model = CLIPModel.from_pretrained(local, local_files_only=True)
        processor = CLIPProcessor.from_pretrained(local, local_files_only=True)
    except (OSError, ValueError) as exc:
        raise ModelLoadError(f"CLIP model '{path}' could not be loaded (a local directory or a cached model; nothing is downloaded): {exc}") from None
    try:
        return ClipScorer(model, processor, device, batch_size)
    except (RuntimeError, AssertionError) as exc:
        raise ModelLoadError(f"device '{device}' cannot be used for CLIP here: {exc}") from None
