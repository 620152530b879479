"""Loading audited models from local files without executing pickled code."""

from __future__ import annotations

import importlib
import os
from pathlib import Path
from typing import Any

import torch
from torch import nn


class ModelLoadError(ValueError):
    """A model file or architecture could not be loaded; the message names which and why."""


def load_state_dict(path: str | Path) -> dict[str, torch.Tensor]:
    """Read weights from ``.safetensors`` or a ``.pt``/``.pth``/``.bin`` state dict (``weights_only=True``)."""
    path = Path(path)
    if not path.is_file():
        raise ModelLoadError(f"model weights file '{path}' does not exist")
    try:
        if path.suffix == ".safetensors":
            from safetensors.torch import load_file

            return load_file(str(path))
        if path.suffix in (".pt", ".pth", ".bin"):
            state = torch.load(path, map_location="cpu", weights_only=True)
        else:
            raise ModelLoadError(f"model weights file '{path}': suffix '{path.suffix}' is not one of .safetensors, .pt, .pth, .bin")
    except ModelLoadError:
        raise
    except Exception as exc:
        raise ModelLoadError(f"model weights file '{path}' could not be read: {exc}") from None
    if isinstance(state, dict) and "state_dict" in state and isinstance(state["state_dict"], dict):
        state = state["state_dict"]
    if not isinstance(state, dict) or not all(isinstance(v, torch.Tensor) for v in state.values()):
        raise ModelLoadError(f"model weights file '{path}' does not hold a state dict of tensors")
    return state


def load_into(model: nn.Module, path: str | Path) -> nn.Module:
    """Load a weights file into ``model`` strictly; mismatched keys or shapes name the file."""
    state = load_state_dict(path)
    try:
        model.load_state_dict(state, strict=True)
    except RuntimeError as exc:
        first = str(exc).splitlines()[:4]
        raise ModelLoadError(f"model weights file '{path}' does not fit the architecture: {' '.join(first)}") from None
    return model.eval()


def build_from_import_path(architecture: str, kwargs: dict[str, Any]) -> nn.Module:
    """Instantiate ``'package.module:Class'`` with ``kwargs``; the class must be a
    ``torch.nn.Module`` subclass (checked before anything is called)."""
    module_name, _, attr = architecture.partition(":")
    try:
        factory = getattr(importlib.import_module(module_name), attr)
    except (ImportError, AttributeError) as exc:
        raise ModelLoadError(f"model.architecture '{architecture}' cannot be imported: {exc}") from None
    if not (isinstance(factory, type) and issubclass(factory, nn.Module)):
        what = f"class {factory.__name__}" if isinstance(factory, type) else type(factory).__name__
        raise ModelLoadError(
            f"model.architecture '{architecture}' is a {what}, not a torch.nn.Module subclass; "
            "name the model's class (it is built with architecture_kwargs, then its weights are loaded)"
        )
    try:
        return factory(**kwargs)
    except TypeError as exc:
        raise ModelLoadError(f"model.architecture '{architecture}' rejected architecture_kwargs {kwargs}: {exc}") from None


def build_vision_model(source: str, name: str, weights: str | None, kwargs: dict[str, Any]) -> nn.Module:
    """A torchvision or timm model (optional ``vision`` extra), weights from a local file or an
    already-filled cache only: nothing is downloaded.

    With ``weights`` unset, torchvision's default weights must already sit in torch's hub
    cache (``torch.hub.get_dir()/checkpoints``), and timm's in the Hugging Face cache
    (read with ``HF_HUB_OFFLINE=1``).
    """
    try:
        if source == "torchvision":
            import torchvision

            model = torchvision.models.get_model(name, weights=None, **kwargs)
            if weights is None:
                default = torchvision.models.get_model_weights(name).DEFAULT
                cached = Path(torch.hub.get_dir()) / "checkpoints" / Path(default.url).name
                if not cached.is_file():
                    raise ModelLoadError(
                        f"torchvision '{name}' default weights are not in the local cache ({cached}); "
                        "set model.weights to a local file (fadejax never downloads)"
                    )
                weights = str(cached)
                preset = default.transforms()  # the inputs these weights were trained on
                model.normalize_mean, model.normalize_std = list(preset.mean), list(preset.std)
        else:
            os.environ["HF_HUB_OFFLINE"] = "1"  # timm reads its cache and never reaches the hub
            import timm

            model = timm.create_model(name, pretrained=weights is None, **kwargs)
            if weights is None:  # timm's pretrained config says what its weights were trained on
                config = getattr(model, "pretrained_cfg", None) or {}
                if "mean" in config and "std" in config:
                    model.normalize_mean, model.normalize_std = list(config["mean"]), list(config["std"])
    except ModelLoadError:
        raise
    except ImportError as exc:
        raise ModelLoadError(
            f"model.source '{source}' needs the optional extra: pip install 'fadejax[vision]' with a torch build that "
            f"matches it ({exc})"
        ) from None
    except Exception as exc:
        raise ModelLoadError(f"model '{source}:{name}' could not be built offline: {exc}") from None
    if weights:
        load_into(model, weights)
    return model.eval()


def local_pretrained(name_or_path: str) -> str:
    """A Hugging Face model's local directory: ``name_or_path`` itself if it is one, else the
    snapshot of that model id in the local Hugging Face cache, found without the network;
    ``OSError`` if it is neither. Loaders pass the result to ``from_pretrained``: given an
    id, ``from_pretrained`` probes the Hub for optional files (e.g. a PEFT adapter) even
    with ``local_files_only`` when the hub library was imported before ``HF_HUB_OFFLINE``
    was set, and waits on the network to fail."""
    if os.path.isdir(os.path.expanduser(name_or_path)):
        return os.path.expanduser(name_or_path)
    from huggingface_hub import snapshot_download
    from huggingface_hub.errors import HFValidationError, LocalEntryNotFoundError

    try:
        return snapshot_download(name_or_path, local_files_only=True)
    except (LocalEntryNotFoundError, HFValidationError) as exc:
        raise OSError(f"'{name_or_path}' is neither a local directory nor in the local Hugging Face cache ({type(exc).__name__})") from None
