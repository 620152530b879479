"""``fadejax init``: from your own model and data to a config that runs, without editing it.

A folder of mixed images (L, RGB, RGBA, P, CMYK) and a one-channel file model: init's
pre-flight finds the channel mismatch and sets data.channels itself; the written config
validates, says how long an iteration took, and a discovery runs from it as written
(with a 2-iteration budget). Also an npz with an RGB file model, a datasets directory,
and the refusals."""

import numpy as np
import pytest
import yaml

from fadejax.cli import EXIT_BAD_INPUT, main
from fadejax.engine.config import load_config
from tiny_classifier import TinyGrey, TinyRGB, save_seeded

RUN = ["--set", "run.iterations=2", "--set", "run.num_envs=8", "--set", "run.tensorboard=false", "--quiet"]
#: the seeded tiny models guess: audited on purpose
ON_PURPOSE = ["--set", "model.refuse_chance=false", "--set", "data.image_size=16", "--set", "run.num_envs=8", "--minutes", "0.5"]


def test_init_on_a_mixed_folder_and_a_grey_file_model_writes_a_config_that_runs(tmp_path, mixed_folder, capsys):
    weights = save_seeded(TinyGrey(3, 16), tmp_path / "grey.safetensors")
    out = tmp_path / "mine.yaml"
    assert main(["init", "--model", "file:tiny_classifier:TinyGrey", "--weights", str(weights), "--data", str(mixed_folder),
                 "--out", str(out), *ON_PURPOSE]) == 0
    printed = capsys.readouterr().out
    assert "data.channels: 1" in printed and f"run it with: fadejax discover --config {out}" in printed
    text = out.read_text()
    assert text.startswith("# Written by fadejax init") and "# Set by the pre-flight check: data.channels=1." in text
    config = load_config(out)
    assert config.data.source == "folder" and config.data.channels == 1 and config.model.source == "file"
    assert config.run.iterations >= 10 and [a.name for a in config.space.axes] == ["rotation", "darkness", "blur"]
    assert main(["discover", "--config", str(out), "--out", str(tmp_path / "run"), *RUN]) == 0
    # never overwrites
    capsys.readouterr()
    assert main(["init", "--model", "embedded", "--data", "digits", "--out", str(out)]) == EXIT_BAD_INPUT
    assert "never overwrites" in capsys.readouterr().err and load_config(out) == config


def test_init_on_an_npz_and_an_rgb_model(tmp_path):
    rng = np.random.default_rng(0)
    np.savez(tmp_path / "data.npz", images=rng.random((12, 16, 16, 3)).astype(np.float32), labels=np.arange(12) % 3)
    weights = save_seeded(TinyRGB(3, 16), tmp_path / "rgb.safetensors")
    out = tmp_path / "npz.yaml"
    assert main(["init", "--model", "file:tiny_classifier:TinyRGB", "--weights", str(weights), "--data", str(tmp_path / "data.npz"),
                 "--out", str(out), *ON_PURPOSE, "--quiet"]) == 0
    written = yaml.safe_load(out.read_text())
    assert written["data"] == {"source": "npz", "path": str(tmp_path / "data.npz"), "image_size": 16}
    assert main(["discover", "--config", str(out), "--out", str(tmp_path / "run"), *RUN]) == 0


def test_init_detects_a_datasets_directory(tmp_path):
    datasets = pytest.importorskip("datasets")
    from PIL import Image

    rows = {"image": [Image.fromarray(np.full((16, 16, 3), 40 * i, np.uint8)) for i in range(6)], "label": [i % 3 for i in range(6)]}
    features = datasets.Features({"image": datasets.Image(), "label": datasets.ClassLabel(names=["a", "b", "c"])})
    datasets.Dataset.from_dict(rows, features=features).save_to_disk(str(tmp_path / "saved"))
    from fadejax.audits.image.starter import data_section

    assert data_section(str(tmp_path / "saved")) == {"source": "hf_dataset", "path": str(tmp_path / "saved")}


def test_init_refuses_what_it_cannot_use_naming_what_is_allowed(tmp_path, capsys):
    for argv, says in [
        (["--model", "onnx:model.onnx", "--data", "digits"], "the kind must be one of embedded, file, huggingface"),
        (["--model", "file:tiny_classifier:TinyRGB", "--data", "digits"], "needs --weights"),
        (["--model", "embedded", "--data", str(tmp_path)], "is neither a folder of class sub-folders"),
        (["--model", "embedded", "--data", "digits", "--minutes", "0"], "--minutes must be in (0, 1440]"),
        (["--model", "embedded", "--data", "digits", "--task", "text"], "has no 'fadejax init'"),
    ]:
        capsys.readouterr()
        assert main(["init", *argv, "--out", str(tmp_path / "x.yaml")]) == EXIT_BAD_INPUT, argv
        err = capsys.readouterr().err.strip().splitlines()
        assert len(err) == 1 and says in err[0], err
        assert not (tmp_path / "x.yaml").exists()


def test_init_on_the_embedded_model_and_its_digits(tmp_path, capsys):
    out = tmp_path / "digits.yaml"
    assert main(["init", "--model", "embedded", "--data", "digits", "--out", str(out), "--minutes", "1", "--quiet"]) == 0
    config = load_config(out)
    assert config.model.source == "embedded" and config.data.source == "digits" and config.data.channels is None
    assert main(["discover", "--config", str(out), "--out", str(tmp_path / "run"), *RUN, "--set", "data.limit=24"]) == 0


def test_init_sets_the_normalisation_a_pretrained_timm_model_states(tmp_path, monkeypatch, capsys):
    """timm is not installable beside the CPU torch here (its torchvision wheels need CUDA's
    torch), so a module with timm's ``create_model`` stands in: a pretrained model's
    ``pretrained_cfg`` states its inputs' mean and std, the pre-flight finds the config
    lacks them, and init sets both."""
    (tmp_path / "timm.py").write_text(
        "from tiny_classifier import TinyRGB\n"
        "def create_model(name, pretrained=False, **kwargs):\n"
        "    model = TinyRGB(**kwargs)\n"
        "    model.pretrained_cfg = {'mean': (0.485, 0.456, 0.406), 'std': (0.229, 0.224, 0.225)}\n"
        "    return model\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.delitem(__import__("sys").modules, "timm", raising=False)
    rng = np.random.default_rng(0)
    np.savez(tmp_path / "data.npz", images=rng.random((12, 16, 16, 3)).astype(np.float32), labels=np.arange(12) % 3)
    out = tmp_path / "timm.yaml"
    assert main(["init", "--model", "timm:tiny", "--data", str(tmp_path / "data.npz"), "--out", str(out), *ON_PURPOSE,
                 "--set", "model.architecture_kwargs={num_classes: 3, image_size: 16}"]) == 0
    assert "says its inputs were normalised with mean [0.485, 0.456, 0.406]" in capsys.readouterr().out
    config = load_config(out)
    assert config.model.normalize_mean == [0.485, 0.456, 0.406] and config.model.normalize_std == [0.229, 0.224, 0.225]
    assert "# Set by the pre-flight check: model.normalize_mean=[0.485, 0.456, 0.406], model.normalize_std=" in out.read_text()
