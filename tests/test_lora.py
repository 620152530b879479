"""LoRA fine-tuning of the tiny pipeline through the fine-tuner interface: only the adapter
trains, the saved adapter loads and changes generation, a fine-tune stopped after an epoch
and launched again resumes to the same adapter, and a bad spec fails before any work."""

import hashlib
import json
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image
from safetensors.torch import load_file

from fadejax.core.captions import captioned_images
from fadejax.stages.finetune import FineTuneError, launch, validate_spec
from tiny_diffusion import make_tiny_pipeline

HYPER = {"resolution": 16, "epochs": 3, "repeats": 2, "learning_rate": 1e-2, "device": "cpu"}  # 4 steps an epoch
SETTINGS = dict(steps=3, height=16, width=16)
PROMPT = "Create an image of a distinctive artist sketching a floor plan in a research center."


@pytest.fixture(scope="module")
def env():
    """One torch thread here and in the fine-tuning processes: tiny models fight less on a busy machine."""
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("OMP_NUM_THREADS", "1")
        before = torch.get_num_threads()
        torch.set_num_threads(1)
        yield
        torch.set_num_threads(before)


def _digest(folder: Path) -> dict[str, str]:
    return {str(p.relative_to(folder)): hashlib.sha256(p.read_bytes()).hexdigest() for p in sorted(folder.rglob("*")) if p.is_file()}


@pytest.fixture(scope="module")
def setup(tmp_path_factory, env):
    root = tmp_path_factory.mktemp("lora")
    pipeline = make_tiny_pipeline(root / "pipeline")
    data = root / "images"
    data.mkdir()
    rng = np.random.default_rng(0)
    for i, caption in enumerate(["a woman scientist", "a man scientist", "a woman artist", "a man artist"]):
        Image.fromarray(rng.integers(0, 256, (24, 24, 3), dtype=np.uint8)).save(data / f"{i:02d}.png")
        (data / f"{i:02d}.txt").write_text(caption)
    return root, pipeline, data


def _spec(pipeline, data, out, **hyper):
    return {"kind": "lora", "pipeline": str(pipeline), "data_dir": str(data), "output_dir": str(out), "hyper": {**HYPER, **hyper}}


@pytest.fixture(scope="module")
def trained(setup):
    """A fine-tune stopped after its first epoch's checkpoint (as if killed there), then relaunched
    through ``launch``, and a reference run of the same spec straight through (in this process)."""
    from bridges.finetune_lora import run

    root, pipeline, data = setup
    before = _digest(pipeline)
    reference = run(validate_spec(_spec(pipeline, data, root / "whole")))
    spec = validate_spec(_spec(pipeline, data, root / "trained"))
    stopped = run(spec, stop_after_epoch=1)
    assert stopped["adapter"] is None and len(stopped["loss_per_epoch"]) == 1
    assert torch.load(root / "trained" / "checkpoint.pt", weights_only=True)["epoch"] == 1
    assert not (root / "trained" / "metrics.json").exists() and not (root / "trained" / "pytorch_lora_weights.safetensors").exists()
    metrics = launch(spec, quiet=True)
    return metrics, before, reference


def test_training_changes_only_the_adapter(setup, trained):
    from bridges.diffusion import load_pipeline

    root, pipeline_dir, _ = setup
    metrics, before, _ = trained
    assert metrics["epochs"] == 3 and len(metrics["loss_per_epoch"]) == 3 and metrics["steps"] == 12
    assert metrics["adapter"] == str(root / "trained" / "pytorch_lora_weights.safetensors")
    assert _digest(pipeline_dir) == before  # the base pipeline on disk is untouched

    adapter = load_file(metrics["adapter"])
    assert adapter and all(".lora." in k and k.startswith("unet.") for k in adapter)
    assert all(k.split(".lora.")[0].endswith(("to_q", "to_k", "to_v", "to_out.0")) for k in adapter)
    assert all(4 in v.shape for v in adapter.values())  # rank 4

    plain = load_pipeline(str(pipeline_dir)).unet.state_dict()
    adapted = load_pipeline(str(pipeline_dir), lora=metrics["adapter"]).unet.state_dict()
    lora_keys = {k for k in adapted if "lora_" in k}
    assert len(lora_keys) == len(adapter)
    base = {k.replace(".base_layer", ""): v for k, v in adapted.items() if k not in lora_keys}
    assert base.keys() == plain.keys()
    for key, value in plain.items():
        torch.testing.assert_close(base[key], value, rtol=0, atol=0)
    assert any(adapted[k].abs().max() > 0 for k in lora_keys if "lora_B" in k)  # B starts at zero; it trained


def test_only_adapter_parameters_are_trainable(setup):
    from bridges.finetune_lora import add_lora, load_components

    unet = load_components(str(setup[1])).unet
    params = add_lora(unet, rank=4, alpha=4.0)
    trainable = [n for n, p in unet.named_parameters() if p.requires_grad]
    assert len(params) == len(trainable) > 0
    assert all("lora_A" in n or "lora_B" in n for n in trainable)


def test_the_adapter_loads_into_a_fresh_pipeline_and_changes_its_output(setup, trained):
    from bridges.diffusion import load_diffusion

    root, pipeline_dir, _ = setup
    metrics, _, _ = trained
    plain = load_diffusion(str(pipeline_dir), **SETTINGS).generate([PROMPT, PROMPT], [7, 8])
    from_file = load_diffusion(str(pipeline_dir), lora=metrics["adapter"], **SETTINGS).generate([PROMPT, PROMPT], [7, 8])
    from_dir = load_diffusion(str(pipeline_dir), lora=str(root / "trained"), **SETTINGS).generate([PROMPT, PROMPT], [7, 8])
    assert np.abs(from_file.astype(int) - plain).mean() > 1
    np.testing.assert_array_equal(from_file, from_dir)


def test_a_stopped_fine_tune_resumes_to_the_same_adapter(trained):
    resumed, _, reference = trained
    assert resumed["loss_per_epoch"] == reference["loss_per_epoch"]  # epoch 1's loss comes from the checkpoint
    whole, again = load_file(reference["adapter"]), load_file(resumed["adapter"])
    assert whole.keys() == again.keys()
    for key in whole:
        torch.testing.assert_close(again[key], whole[key], rtol=0, atol=0)


def test_both_caption_layouts_are_read(tmp_path):
    Image.new("RGB", (8, 8)).save(tmp_path / "b.png")
    Image.new("RGB", (8, 8)).save(tmp_path / "a.jpg")
    (tmp_path / "a.txt").write_text("first caption\n")
    (tmp_path / "b.txt").write_text("second caption")
    assert [(p.name, t) for p, t in captioned_images(tmp_path)] == [("a.jpg", "first caption"), ("b.png", "second caption")]
    rows = [{"file_name": "b.png", "text": "from metadata"}, {"file_name": "a.jpg", "text": "also"}]
    (tmp_path / "metadata.jsonl").write_text("\n".join(json.dumps(r) for r in rows) + "\n")
    assert [(p.name, t) for p, t in captioned_images(tmp_path)] == [("b.png", "from metadata"), ("a.jpg", "also")]


def _caption_missing(data: Path, tmp: Path) -> Path:
    folder = tmp / "partly_captioned"
    folder.mkdir()
    for image in sorted(data.glob("*.png")):
        (folder / image.name).write_bytes(image.read_bytes())
    for caption in sorted(data.glob("*.txt"))[:-1]:
        (folder / caption.name).write_text(caption.read_text())
    return folder


def _metadata_without_text(data: Path, tmp: Path) -> Path:
    folder = tmp / "metadata"
    folder.mkdir()
    (folder / "00.png").write_bytes((data / "00.png").read_bytes())
    (folder / "metadata.jsonl").write_text(json.dumps({"file_name": "00.png"}) + "\n")
    return folder


@pytest.mark.parametrize(
    "change, message",
    [
        (lambda p, d, t: {"data_dir": str(t / "nowhere")}, "data_dir: '{t}/nowhere' is not a directory"),
        (lambda p, d, t: {"data_dir": str(_caption_missing(d, t))}, "data_dir: image '03.png' has no caption: '03.txt' is missing"),
        (lambda p, d, t: {"data_dir": str(_metadata_without_text(d, t))}, "data_dir: '{t}/metadata/metadata.jsonl' line 1: the caption"),
        (lambda p, d, t: {"data_dir": str(t)}, "data_dir: '{t}' has neither a metadata.jsonl nor image files"),
        (lambda p, d, t: {"pipeline": str(d)}, "pipeline: '{d}' is not a local diffusers pipeline directory"),
        (lambda p, d, t: {"hyper": {"mixed_precision": "fp16", "device": "cpu"}}, "hyper: mixed_precision 'fp16' needs a GPU"),
        (lambda p, d, t: {"hyper": {"resolution": 500}}, "hyper.resolution: Input should be a multiple of 8"),
        (lambda p, d, t: {"hyper": {"device": "tpu"}}, "hyper.device: String should match pattern"),
        (lambda p, d, t: {"hyper": {"optimizer": "sgd"}}, "hyper.optimizer: Input should be 'adamw'"),
        (lambda p, d, t: {"rank": 8}, "rank: Extra inputs are not permitted"),
    ],
)
def test_a_bad_spec_fails_clearly_before_any_work(setup, tmp_path, change, message):
    _, pipeline, data = setup
    spec = {**_spec(pipeline, data, tmp_path / "never"), **change(pipeline, data, tmp_path)}
    with pytest.raises(FineTuneError) as info:
        launch(spec, quiet=True)
    assert message.format(t=tmp_path, d=data) in str(info.value)
    assert not (tmp_path / "never").exists()
