"""``fadejax init`` for the image audit: a starter config from a model and a data path.

Models: ``embedded`` (the digits CNN), ``file:package.module:Class`` (with ``--weights``),
``huggingface:DIR_OR_CACHED_ID``, ``torchvision:NAME`` / ``timm:NAME`` (with
``--weights``). Data: a folder of class sub-folders, a ``datasets`` directory written by
``save_to_disk``, or an ``.npz`` with ``images`` and ``labels``; ``digits`` for the
embedded data.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from fadejax.audits.image.data import DataError

MODEL_KINDS = ("embedded", "file", "huggingface", "torchvision", "timm")


def model_section(model: str, weights: str | None) -> dict[str, Any]:
    """The ``model`` section of ``KIND[:NAME]``; :class:`DataError` naming what is allowed."""
    kind, _, name = model.partition(":")
    if kind not in MODEL_KINDS:
        raise DataError(f"--model '{model}': the kind must be one of {', '.join(MODEL_KINDS)} "
                        "(e.g. file:my_pkg.nets:LeNet, huggingface:./my-vit, torchvision:resnet18, embedded)")
    if kind == "embedded":
        return {"source": "embedded"}
    if not name:
        raise DataError(f"--model '{model}': name the model after '{kind}:'")
    if kind == "file" and not weights:
        raise DataError(f"--model '{model}' needs --weights (a .safetensors or .pt/.pth state dict)")
    section: dict[str, Any] = {"source": kind, "architecture": name}
    if weights:
        section["weights"] = str(weights)
    return section


def data_section(data: str) -> dict[str, Any]:
    """The ``data`` section for a path (or ``digits``); :class:`DataError` if it is none of the known kinds."""
    if data == "digits":
        return {"source": "digits"}
    path = Path(data)
    if path.is_file() and path.suffix == ".npz":
        return {"source": "npz", "path": str(path)}
    if path.is_dir() and any((path / marker).is_file() for marker in ("dataset_info.json", "dataset_dict.json", "state.json")):
        section: dict[str, Any] = {"source": "hf_dataset", "path": str(path)}
        if (path / "dataset_dict.json").is_file():
            import json

            splits = json.loads((path / "dataset_dict.json").read_text()).get("splits", [])
            section["split"] = "test" if "test" in splits else "validation" if "validation" in splits else (splits or [None])[0]
        return section
    if path.is_dir() and any(p.is_dir() for p in path.iterdir()):
        return {"source": "folder", "path": str(path), "skip_unreadable": True}
    raise DataError(f"--data '{data}' is neither a folder of class sub-folders, a 'datasets' directory (save_to_disk) "
                    "nor an .npz file with 'images' and 'labels' (or 'digits' for the embedded data)")


COMMENTS = {
    "data": "held-out samples the model is audited on; data.limit audits only the first N (a quicker look)",
    "model": "the audited classifier; model.device: cuda to run it on a GPU",
    "space": "the concepts combined into each query: each axis a perturbation and its strengths (docs/configuration.md)",
    "run": "run.iterations x run.num_envs queries; sized by fadejax init to the time asked",
}
