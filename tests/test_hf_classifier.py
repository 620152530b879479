"""Hugging Face image classifiers as audited models: tiny ViT, ResNet and ConvNeXt built
from configs here and saved with ``save_pretrained`` (nothing is downloaded), their
processors' steps applied to the perturbed batch, offline loading."""

import json

import numpy as np
import pytest
import torch
import yaml
from PIL import Image

from bridges.hf_classifier import ProcessorTransform, load_hf_image_classifier
from fadejax.cli import main
from fadejax.engine.config import ConfigError, parse_config
from readme import ROOT
from fadejax.engine.store.records import read_records, records_path

NAMES = ["zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine"]
#: differences allowed between our batched transform and the processor's own output, in
#: normalised units (std 0.5: 1/255 of a pixel is 0.008): PIL resamples 8-bit images in
#: two passes, rounding and clipping between them, which on random-noise images (the
#: worst case) leaves up to ~12/255 at a few pixels of a bicubic upscale
TOLERANCE_MAX, TOLERANCE_MEAN = 0.1, 0.01


def _save(root, kind: str):
    from transformers import (ConvNextConfig, ConvNextForImageClassification, ConvNextImageProcessor, ResNetConfig,
                              ResNetForImageClassification, ViTConfig, ViTForImageClassification, ViTImageProcessor)

    torch.manual_seed(0)
    labels = {"id2label": dict(enumerate(NAMES)), "label2id": {n: i for i, n in enumerate(NAMES)}, "num_labels": 10}
    if kind == "vit":
        model = ViTForImageClassification(ViTConfig(image_size=32, patch_size=8, hidden_size=16, num_hidden_layers=1,
                                                    num_attention_heads=2, intermediate_size=32, **labels))
        processor = ViTImageProcessor(size={"height": 32, "width": 32})
    elif kind == "resnet":
        model = ResNetForImageClassification(ResNetConfig(embedding_size=8, hidden_sizes=[8, 16], depths=[1, 1], **labels))
        processor = ConvNextImageProcessor(size={"shortest_edge": 32}, crop_pct=0.875, resample=2)
    else:
        model = ConvNextForImageClassification(ConvNextConfig(num_stages=2, hidden_sizes=[8, 16], depths=[1, 1], **labels))
        processor = ConvNextImageProcessor(size={"shortest_edge": 32}, crop_pct=0.875)
    path = root / kind
    model.save_pretrained(path)
    processor.save_pretrained(path)
    return path


@pytest.fixture(scope="module")
def models(tmp_path_factory):
    root = tmp_path_factory.mktemp("hf")
    return {kind: _save(root, kind) for kind in ("vit", "resnet", "convnext")}


@pytest.mark.parametrize("kind", ["vit", "resnet", "convnext"])
def test_the_batched_transform_matches_the_image_processor(models, kind):
    from transformers import AutoImageProcessor

    processor = AutoImageProcessor.from_pretrained(models[kind], local_files_only=True)
    rng = np.random.default_rng(1)
    images = (rng.random((4, 24, 28, 3)) * 255).astype(np.uint8)  # not square: the shortest edge matters
    expected = processor(images=[Image.fromarray(x) for x in images], return_tensors="pt")["pixel_values"]
    ours = ProcessorTransform(processor)(torch.tensor(images).permute(0, 3, 1, 2).float() / 255.0)
    assert ours.shape == expected.shape
    difference = (ours - expected).abs()
    assert float(difference.max()) <= TOLERANCE_MAX and float(difference.mean()) <= TOLERANCE_MEAN


# ResNet shares ConvNeXt's processor; its forward pass is checked below. The ViT is audited
# through the GPU example config (the last test).
@pytest.mark.parametrize("kind", ["convnext"])
def test_each_model_is_audited_from_its_directory_offline(models, kind, tmp_path, capsys):
    config = {"name": f"hf-{kind}", "data": {"limit": 24},
              "model": {"source": "huggingface", "architecture": str(models[kind]), "refuse_chance": False},  # random weights, on purpose
              "searcher": {"kind": "random"}, "run": {"iterations": 2, "num_envs": 8}}
    path = tmp_path / "config.yaml"
    path.write_text(yaml.safe_dump(config))
    assert main(["discover", "--config", str(path), "--out", str(tmp_path / "run"), "--quiet"]) == 0, capsys.readouterr().err
    model = json.loads((tmp_path / "run" / "run.json").read_text())["model"]
    assert model["label_names"] == NAMES and 0.0 <= model["clean_accuracy"] <= 1.0
    classifier = load_hf_image_classifier(str(models[kind]))
    digits = torch.rand(3, 1, 32, 32)  # one channel: repeated to the three the model expects
    assert classifier(digits).shape == (3, 10)


def test_the_resnet_loads_offline_and_classifies_one_channel_digits(models):
    classifier = load_hf_image_classifier(str(models["resnet"]))
    assert classifier.label_names == NAMES and classifier(torch.rand(3, 1, 32, 32)).shape == (3, 10)


def test_a_model_that_would_need_a_download_is_refused(tmp_path, capsys):
    config = {"data": {"limit": 24}, "model": {"source": "huggingface", "architecture": "fadejax-tests/not-in-any-cache"},
              "run": {"iterations": 2, "num_envs": 8}}
    path = tmp_path / "config.yaml"
    path.write_text(yaml.safe_dump(config))
    assert main(["discover", "--config", str(path), "--out", str(tmp_path / "run"), "--quiet"]) == 2
    err = capsys.readouterr().err
    assert "fadejax-tests/not-in-any-cache" in err and "never downloads" in err and len(err.strip().splitlines()) == 1
    assert not (tmp_path / "run").exists()


def test_weights_or_normalisation_beside_a_hugging_face_model_are_refused():
    with pytest.raises(ConfigError, match="huggingface"):
        parse_config({"model": {"source": "huggingface", "architecture": "x", "normalize_mean": [0.5]}})


def test_an_image_folder_is_audited_with_its_classes_mapped_onto_the_models(models, tmp_path, capsys):
    root = tmp_path / "digits"
    for name in ("seven", "two"):  # folder order (seven, two) is not the model's (two = 2, seven = 7)
        (root / name).mkdir(parents=True)
        for i in range(4):
            Image.fromarray(np.full((20, 20, 3), 40 * i, np.uint8)).save(root / name / f"{i}.png")
    (root / "two" / "broken.jpg").write_bytes(b"not a jpeg")
    config = {"name": "hf-folder", "data": {"source": "folder", "path": str(root), "skip_unreadable": True},
              "model": {"source": "huggingface", "architecture": str(models["vit"]), "refuse_chance": False},  # a random ViT, on purpose
              "searcher": {"kind": "random"},
              "run": {"iterations": 2, "num_envs": 8}}
    path = tmp_path / "config.yaml"
    path.write_text(yaml.safe_dump(config))
    assert main(["discover", "--config", str(path), "--out", str(tmp_path / "run")]) == 0, capsys.readouterr().err
    assert "1 unreadable images left out" in capsys.readouterr().out
    records = list(read_records(records_path(tmp_path / "run")))
    assert {r["label"] for r in records} <= {2, 7}
    assert all(r["label_name"] == NAMES[r["label"]] and r["predicted_name"] == NAMES[r["predicted"]] for r in records)
    (root / "eleven").mkdir()
    Image.fromarray(np.zeros((20, 20, 3), np.uint8)).save(root / "eleven" / "0.png")
    assert main(["discover", "--config", str(path), "--out", str(tmp_path / "run2"), "--quiet"]) == 2
    err = capsys.readouterr().err
    assert "['eleven'] are not classes of the model" in err and len(err.strip().splitlines()) == 1


def test_the_gpu_example_config_runs_with_a_tiny_vit_on_an_imagenet_style_folder(models, tmp_path, capsys):
    root = tmp_path / "val"
    for i in range(10):  # WordNet-id folders, sorted: folder i is class i
        (root / f"n0{i}000000").mkdir(parents=True)
        for j in range(2):
            Image.fromarray(np.full((40, 30, 3), 20 * i + j, np.uint8)).save(root / f"n0{i}000000" / f"ILSVRC2012_val_{j}.JPEG")
    overrides = [f"data.path={root}", f"model.architecture={models['vit']}", "model.device=cpu", "data.image_size=32",
                 "run.iterations=2", "run.num_envs=8", "model.refuse_chance=false"]  # a random ViT, on purpose
    argv = ["discover", "--config", str(ROOT / "configs" / "imagenet_vit.yaml"), "--out", str(tmp_path / "run"), "--quiet"]
    assert main(argv + [a for o in overrides for a in ("--set", o)]) == 0, capsys.readouterr().err
    records = list(read_records(records_path(tmp_path / "run")))
    assert len(records) == 16 and all(r["label_name"] == NAMES[r["label"]] for r in records)
    stored = yaml.safe_load((tmp_path / "run" / "config.yaml").read_text())
    assert stored["data"]["class_map"] == "index" and stored["model"]["source"] == "huggingface"
    model = json.loads((tmp_path / "run" / "run.json").read_text())["model"]  # audited offline from its directory
    assert model["label_names"] == NAMES and 0.0 <= model["clean_accuracy"] <= 1.0
    classifier = load_hf_image_classifier(str(models["vit"]))
    assert classifier(torch.rand(3, 1, 32, 32)).shape == (3, 10)  # one channel: repeated to the three the model expects


def test_a_model_id_already_in_the_hugging_face_cache_is_loaded_from_it(models, tmp_path, monkeypatch):
    import shutil

    import huggingface_hub.constants

    repo = tmp_path / "hub" / "models--tiny--vit"  # the cache's own layout: snapshots by revision, refs/main names one
    shutil.copytree(models["vit"], repo / "snapshots" / "abc123")
    (repo / "refs").mkdir()
    (repo / "refs" / "main").write_text("abc123")
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_CACHE", str(tmp_path / "hub"))
    classifier = load_hf_image_classifier("tiny/vit")
    assert classifier.label_names == NAMES and classifier(torch.rand(2, 3, 32, 32)).shape == (2, 10)


def test_a_hugging_face_classifier_as_a_file_model_names_its_classes_and_answers_the_same(models, tmp_path):
    """LocalHFImageClassifier: what restructure can retrain (a class and its weights), with
    the processor's steps inside and the model's class names given to the audit."""
    from safetensors.torch import save_file

    from bridges.finetune_classifier import final_linear
    from bridges.hf_classifier import LocalHFImageClassifier
    from bridges.loading import build_classifier_oracle
    from fadejax.audits.image.config import DataConfig, ModelConfig
    from fadejax.audits.image.data import ImageDataset

    module = LocalHFImageClassifier(str(models["resnet"]))
    save_file({k: v.contiguous() for k, v in module.state_dict().items()}, str(tmp_path / "resnet.safetensors"))
    section = ModelConfig(source="file", architecture="bridges.hf_classifier:LocalHFImageClassifier",
                          architecture_kwargs={"path": str(models["resnet"])}, weights=str(tmp_path / "resnet.safetensors"))
    held_out = ImageDataset(np.zeros((2, 32, 32, 3), np.float32), np.zeros(2, np.int64), 10, "blank")
    oracle, info = build_classifier_oracle(section, None, held_out, DataConfig(), progress=False)
    assert info["label_names"] == NAMES
    images = np.random.default_rng(0).random((3, 32, 32, 3)).astype(np.float32)
    expected = load_hf_image_classifier(str(models["resnet"]))(torch.from_numpy(images).permute(0, 3, 1, 2))
    np.testing.assert_allclose(np.asarray(oracle(images)), expected.detach().numpy(), rtol=1e-4, atol=1e-5)
    assert final_linear(module) is module.model.classifier[-1]  # the head the fine-tuner retrains


def test_init_writes_a_config_for_a_hugging_face_model_and_a_datasets_directory_that_runs(models, tmp_path):
    """``fadejax init`` on a tiny ViT saved in its directory and a ``datasets`` directory:
    the written config runs as written (the random ViT guesses: audited on purpose)."""
    import datasets

    rows = {"image": [Image.fromarray(np.full((20, 20, 3), 30 * i, np.uint8)) for i in range(8)], "label": [i % 2 for i in range(8)]}
    features = datasets.Features({"image": datasets.Image(), "label": datasets.ClassLabel(names=["two", "seven"])})
    datasets.Dataset.from_dict(rows, features=features).save_to_disk(str(tmp_path / "saved"))
    out = tmp_path / "vit.yaml"
    assert main(["init", "--model", f"huggingface:{models['vit']}", "--data", str(tmp_path / "saved"), "--out", str(out),
                 "--minutes", "0.2", "--set", "model.refuse_chance=false", "--set", "run.num_envs=8", "--quiet"]) == 0
    written = yaml.safe_load(out.read_text())
    assert written["model"]["source"] == "huggingface" and written["data"]["source"] == "hf_dataset"
    assert main(["discover", "--config", str(out), "--out", str(tmp_path / "run"), "--set", "run.iterations=2", "--quiet"]) == 0


def test_a_random_vit_is_refused_at_chance_before_anything_is_written(models, tmp_path, capsys):
    """The pre-flight on a Hugging Face model: a randomly initialised ViT answers the
    held-out digits no better than guessing among its 10 classes, and is refused in one
    line naming model.refuse_chance, with nothing written."""
    config = {"name": "hf-chance", "data": {"source": "digits", "limit": 60},
              "model": {"source": "huggingface", "architecture": str(models["vit"])}, "run": {"iterations": 2, "num_envs": 8}}
    path = tmp_path / "config.yaml"
    path.write_text(yaml.safe_dump(config))
    capsys.readouterr()
    assert main(["discover", "--config", str(path), "--out", str(tmp_path / "run"), "--quiet"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "no better than guessing among 10 classes" in err[0] and "model.refuse_chance: false" in err[0]
    assert not (tmp_path / "run").exists()
