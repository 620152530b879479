"""Hugging Face image classifiers (``AutoModelForImageClassification``) as audited models.

The model's ``AutoImageProcessor`` says how it wants its input: resized (to a height and
width, or its shortest edge, possibly then centre-cropped), rescaled and normalised.
fadejax perturbs images at the data's resolution, so :class:`ProcessorTransform` applies
those steps to the perturbed batch in torch, on the model's device, instead of the
processor's own per-image PIL path. It matches the processor's output to within the
rounding of the processor's 8-bit PIL resize (see ``tests/test_hf_classifier.py``).

Loading never downloads: ``local_files_only=True`` and ``HF_HUB_OFFLINE=1``; the model is
a local directory or a model id already in the Hugging Face cache.
"""

from __future__ import annotations

import os
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from bridges.weights import ModelLoadError, local_pretrained

#: PIL resample codes the processors use -> torch interpolation modes
_RESAMPLE = {0: "nearest", 2: "bilinear", 3: "bicubic"}
#: processor settings the transform reproduces; another one switched on is refused
_HANDLED = {"do_resize", "size", "resample", "do_rescale", "rescale_factor", "do_normalize", "image_mean", "image_std",
            "crop_pct", "do_center_crop", "crop_size", "do_convert_rgb"}


def _get(processor: Any, name: str, default: Any = None) -> Any:
    return getattr(processor, name, default)


class ProcessorTransform(nn.Module):
    """An image processor's resize, crop and normalisation as one batched torch step.

    Input ``(B, C, H, W)`` float in [0, 1] (the engine's images; C = 1 is repeated to the
    3 channels RGB models expect); output the model's ``pixel_values``. Supported: ``size``
    as ``{height, width}`` or ``{shortest_edge}`` (with ConvNeXt's ``crop_pct``: resize to
    ``shortest_edge / crop_pct``, then centre-crop), ``do_center_crop`` with ``crop_size``,
    ``resample`` nearest / bilinear / bicubic (antialiased, as PIL), ``image_mean`` and
    ``image_std``.
    """

    def __init__(self, processor: Any):
        super().__init__()
        unknown = sorted(k for k, v in vars(processor).items() if k.startswith("do_") and v and k not in _HANDLED)
        if unknown:
            raise ModelLoadError(f"the model's image processor ({type(processor).__name__}) also asks for {unknown}, which fadejax does not apply; "
                                 f"supported: resize, centre crop, rescale, normalise")
        self.resize = bool(_get(processor, "do_resize", False))
        self.size = dict(_get(processor, "size", None) or {})
        self.crop_pct = _get(processor, "crop_pct", None)
        crop = _get(processor, "crop_size", None) if _get(processor, "do_center_crop", False) else None
        self.crop = (int(crop["height"]), int(crop["width"])) if crop else None
        resample = int(_get(processor, "resample", 2) or 2)
        if resample not in _RESAMPLE:
            raise ModelLoadError(f"the model's image processor resamples with PIL code {resample}; fadejax supports {sorted(_RESAMPLE)}")
        self.mode = _RESAMPLE[resample]
        normalize = bool(_get(processor, "do_normalize", False))
        mean = _get(processor, "image_mean", None) if normalize else None
        std = _get(processor, "image_std", None) if normalize else None
        self.register_buffer("mean", torch.tensor(mean if mean is not None else [0.0], dtype=torch.float32).view(1, -1, 1, 1))
        self.register_buffer("std", torch.tensor(std if std is not None else [1.0], dtype=torch.float32).view(1, -1, 1, 1))

    def _resized(self, x: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
        if tuple(x.shape[-2:]) == size:
            return x
        kwargs = {} if self.mode == "nearest" else {"align_corners": False, "antialias": True}  # antialias: PIL's filters
        return F.interpolate(x, size=size, mode=self.mode, **kwargs).clamp(0.0, 1.0)  # PIL clips a bicubic's overshoot

    @staticmethod
    def _center_crop(x: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
        h, w = x.shape[-2:]
        top, left = max((h - size[0]) // 2, 0), max((w - size[1]) // 2, 0)
        return x[..., top : top + size[0], left : left + size[1]]

    def target_size(self, height: int, width: int) -> tuple[int, int]:
        """The ``(height, width)`` the resize step produces for an input of this size."""
        if "height" in self.size and "width" in self.size:
            return int(self.size["height"]), int(self.size["width"])
        edge = int(self.size["shortest_edge"])
        if self.crop_pct is not None and edge < 384:  # ConvNeXt: resize, then crop to the edge
            edge = int(edge / self.crop_pct)
        short, long = (height, width) if height <= width else (width, height)
        other = int(edge * long / short)
        return (edge, other) if height <= width else (other, edge)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.shape[1] == 1:
            x = x.expand(-1, 3, -1, -1)
        x = x.clamp(0.0, 1.0)
        if self.resize and self.size:
            if "shortest_edge" in self.size and self.crop_pct is not None and int(self.size["shortest_edge"]) >= 384:
                edge = int(self.size["shortest_edge"])
                x = self._resized(x, (edge, edge))  # ConvNeXt at 384 and above: warp, no crop
            else:
                x = self._resized(x, self.target_size(*x.shape[-2:]))
                if "shortest_edge" in self.size and self.crop_pct is not None:
                    edge = int(self.size["shortest_edge"])
                    x = self._center_crop(x, (edge, edge))
        if self.crop is not None:
            x = self._center_crop(x, self.crop)
        return (x - self.mean) / self.std


class HFImageClassifier(nn.Module):
    """``(B, C, H, W)`` images in [0, 1] -> ``(B, num_labels)`` logits of a Hugging Face
    image classifier, its processor's steps applied first (:class:`ProcessorTransform`)."""

    #: grey images are repeated to the 3 channels the model takes (:class:`ProcessorTransform`)
    adapts_channels = True

    def __init__(self, model: nn.Module, transform: ProcessorTransform):
        super().__init__()
        self.model = model
        self.transform = transform

    @property
    def label_names(self) -> list[str]:
        """The model's class names, by index (``config.id2label``)."""
        id2label = getattr(self.model.config, "id2label", None) or {}
        return [str(id2label.get(i, id2label.get(str(i), i))) for i in range(int(self.model.config.num_labels))]

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.model(pixel_values=self.transform(x)).logits


def load_hf_image_classifier(name_or_path: str) -> HFImageClassifier:
    """The classifier and processor at ``name_or_path`` (a local directory or a model id in
    the Hugging Face cache), offline; :class:`ModelLoadError` names what is missing."""
    os.environ["HF_HUB_OFFLINE"] = "1"  # the libraries' own probes must not reach the Hub either
    try:
        from transformers import AutoImageProcessor, AutoModelForImageClassification
    except ImportError as exc:
        raise ModelLoadError(f"model.source 'huggingface' needs transformers (pip install 'fadejax[text]'): {exc}") from None
    try:
        local = local_pretrained(name_or_path)
        model = AutoModelForImageClassification.from_pretrained(local, local_files_only=True)
        processor = AutoImageProcessor.from_pretrained(local, local_files_only=True)
    except (OSError, ValueError) as exc:
        first = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        raise ModelLoadError(
            f"model '{name_or_path}' is neither a local directory nor a model in the local Hugging Face cache with an image "
            f"classifier and its image processor (fadejax never downloads; fill the cache first): {first}"
        ) from None
    return HFImageClassifier(model.eval(), ProcessorTransform(processor))


class LocalHFImageClassifier(HFImageClassifier):
    """:class:`HFImageClassifier` built from ``path`` (a local directory or a model id in the
    Hugging Face cache), as a class ``model.source: file`` can name
    (``architecture: bridges.hf_classifier:LocalHFImageClassifier``, ``architecture_kwargs:
    {path: ...}``), so that restructure can retrain its final layer; ``weights`` is then its
    state dict saved as safetensors (the same model's, or a fine-tuned one). Its processor's
    resizing and normalisation are part of the module."""

    def __init__(self, path: str):
        loaded = load_hf_image_classifier(path)
        super().__init__(loaded.model, loaded.transform)

