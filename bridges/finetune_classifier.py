"""Fine-tune a classifier's final linear layer (the paper's stage 3 for image classifiers),
or with ``hyper.scope: full`` every parameter.

With the head's scope every other parameter is frozen. SGD with the spec's learning rate and momentum over
``epochs`` passes of the failure data (and, if given, the clean data, weighted
``L_clean + lambda * L_failure``). A checkpoint (head, optimiser, epoch, RNG) is written
after every epoch, so a killed process resumes at the next epoch with the same result.
Writes ``model.safetensors`` (the whole fine-tuned model) and ``metrics.json``.

The frozen layers (in eval mode) map each image to the same head input every epoch, so
where the head's output is the model's output (checked on the data before training) those
inputs are computed once and the epochs train the head alone — the same updates as
running the whole model each step, a fraction of the time. A model whose head is followed
by other layers, or one fine-tuned whole, is run whole every step.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np
import torch
from safetensors.torch import save_file
from torch import nn
from tqdm import tqdm

from bridges.weights import build_from_import_path, load_into


def _load_npz(path: str) -> tuple[torch.Tensor, torch.Tensor]:
    with np.load(path, allow_pickle=False) as archive:
        images = archive["images"].astype(np.float32)
        labels = archive["labels"].astype(np.int64)
    return torch.from_numpy(np.ascontiguousarray(images.transpose(0, 3, 1, 2))), torch.from_numpy(labels)


def final_linear(model: nn.Module) -> nn.Linear:
    linears = [m for m in model.modules() if isinstance(m, nn.Linear)]
    if not linears:
        raise ValueError("the model has no nn.Linear layer to fine-tune")
    return linears[-1]


def _head_inputs(model: nn.Module, head: nn.Linear, images: torch.Tensor, batch: int = 256) -> torch.Tensor | None:
    """What ``head`` receives for each image, ``(N, in_features)``, if the head's output is
    the model's output; ``None`` if the model transforms it further (then train end to end)."""
    captured: list[torch.Tensor] = []
    hook = head.register_forward_hook(lambda module, inputs, output: captured.append(inputs[0].detach()))
    try:
        outputs = []
        with torch.inference_mode():
            for start in range(0, len(images), batch):
                outputs.append(model(images[start : start + batch]))
    finally:
        hook.remove()
    if len(captured) != len(outputs):  # the head ran more or less than once per call
        return None
    features = torch.cat(captured)
    with torch.inference_mode():
        if features.shape[0] != len(images) or not torch.allclose(head(features), torch.cat(outputs), rtol=1e-5, atol=1e-6):
            return None
    return features.clone()  # a normal tensor (not an inference one): the head trains on it


def _accuracy(forward: nn.Module, x: torch.Tensor, y: torch.Tensor, batch: int = 512) -> float:
    """Share of ``x`` ``(N, ...)`` that ``forward`` answers as ``y`` ``(N,)``, in batches (bounded memory)."""
    with torch.inference_mode():
        hits = sum(int((forward(x[i : i + batch]).argmax(-1) == y[i : i + batch]).sum()) for i in range(0, len(y), batch))
    return hits / max(len(y), 1)


def run(spec) -> dict:
    out = Path(spec.output_dir)
    h = spec.hyper
    torch.manual_seed(h.seed)
    model = load_into(build_from_import_path(spec.architecture, spec.architecture_kwargs), spec.weights)
    whole = h.scope == "full"
    for p in model.parameters():
        p.requires_grad_(whole)
    head = final_linear(model)
    for p in head.parameters():
        p.requires_grad_(True)
    trained = model if whole else head
    optimizer = torch.optim.SGD(trained.parameters(), lr=h.learning_rate, momentum=h.momentum, weight_decay=h.weight_decay)
    generator = torch.Generator().manual_seed(h.seed)
    fail_x, fail_y = _load_npz(spec.failure_data)
    clean = _load_npz(spec.clean_data) if spec.clean_data else None
    if spec.normalize_mean is not None or spec.normalize_std is not None:  # as the audit's oracle feeds the model
        mean = torch.tensor(spec.normalize_mean or [0.0], dtype=torch.float32).view(1, -1, 1, 1)
        std = torch.tensor(spec.normalize_std or [1.0], dtype=torch.float32).view(1, -1, 1, 1)
        fail_x = (fail_x - mean) / std
        clean = ((clean[0] - mean) / std, clean[1]) if clean else None

    checkpoint = out / "checkpoint.pt"
    start, history = 0, []
    if checkpoint.is_file():
        state = torch.load(checkpoint, weights_only=True)
        trained.load_state_dict(state["head"])  # the trained part: the head, or the whole model
        optimizer.load_state_dict(state["optimizer"])
        generator.set_state(state["generator"])
        start, history = int(state["epoch"]), json.loads(state["history"])
        print(f"resuming fine-tune at epoch {start + 1}/{h.epochs}", flush=True)

    model.eval()  # frozen layers keep inference behaviour (no dropout / batch-norm updates)
    # L2-SP's anchor: the weights before the fine-tune, read from the file (a resume anchors to the same ones)
    original = load_into(build_from_import_path(spec.architecture, spec.architecture_kwargs), spec.weights) if h.anchor else None
    fail_in = None if whole else _head_inputs(model, head, fail_x)
    clean_in = _head_inputs(model, head, clean[0]) if clean and fail_in is not None else None
    if fail_in is not None and (clean is None or clean_in is not None):
        forward, fail_x = head, fail_in
        clean = (clean_in, clean[1]) if clean else None
    else:
        forward = model
    anchors = []
    if h.anchor:
        start_from = original if whole else final_linear(original)
        anchors = [(p, q.detach()) for p, q in zip(trained.parameters(), start_from.parameters())]
    for epoch in range(start, h.epochs):
        order = torch.randperm(len(fail_y), generator=generator)
        clean_order = torch.randperm(len(clean[1]), generator=generator) if clean else None
        total = 0.0
        steps = range(0, len(fail_y), h.batch_size)
        for i, s in enumerate(tqdm(steps, desc=f"fine-tune epoch {epoch + 1}/{h.epochs}", unit="batch", leave=False)):
            batch = order[s : s + h.batch_size]
            loss_failure = nn.functional.cross_entropy(forward(fail_x[batch]), fail_y[batch])
            if clean:
                cb = clean_order[(i * h.batch_size) % len(clean_order) :][: h.batch_size]
                loss = nn.functional.cross_entropy(forward(clean[0][cb]), clean[1][cb]) + h.failure_weight * loss_failure
            else:
                loss = loss_failure
            if anchors:
                loss = loss + h.anchor * sum(torch.sum((p - q) ** 2) for p, q in anchors)
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
            total += float(loss.detach()) * len(batch)
        history.append(total / len(fail_y))
        print(f"fine-tune epoch {epoch + 1}/{h.epochs}: loss {history[-1]:.4f}", flush=True)
        tmp = checkpoint.with_suffix(".tmp")
        torch.save({"head": trained.state_dict(), "optimizer": optimizer.state_dict(), "generator": generator.get_state(),
                    "epoch": epoch + 1, "history": json.dumps(history)}, tmp)
        os.replace(tmp, checkpoint)

    fail_acc = _accuracy(forward, fail_x, fail_y)
    clean_acc = _accuracy(forward, *clean) if clean else None
    save_file({k: v.contiguous() for k, v in model.state_dict().items()}, str(out / "model.safetensors"))
    metrics = {"epochs": h.epochs, "scope": h.scope, "anchor": h.anchor, "examples": {"failure": len(fail_y), "clean": len(clean[1]) if clean else 0},
               "loss_per_epoch": history, "train_failure_accuracy": fail_acc, "train_clean_accuracy": clean_acc,
               "model": str(out / "model.safetensors")}
    (out / "metrics.json").write_text(json.dumps(metrics, indent=2))
    return metrics
