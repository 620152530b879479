"""The second image audit: the embedded LeNet (bridges/digits_lenet.py) under shift x
occlusion x gamma (configs/digits_lenet.yaml).

The model is trained once per machine into the ordinary cache (like the default CNN in
conftest.py), so only the first run of this file pays for the training.
"""

from pathlib import Path

import pytest
import torch
import yaml

from bridges import digits_cnn
from bridges.digits_lenet import DigitsLeNet
from fadejax.audits.image.data import load_digits_split
from fadejax.cli import main
from fadejax.engine.config import load_config, parse_config
from fadejax.engine.build import build_task

CONFIG = Path(__file__).resolve().parents[1] / "configs" / "digits_lenet.yaml"


@pytest.fixture(scope="module")
def lenet_config():
    return load_config(CONFIG)


@pytest.fixture(scope="module")
def lenet_task(lenet_config):
    return build_task(lenet_config, progress=False)


def test_the_config_names_the_lenet_a_new_space_and_the_default_searcher(lenet_config):
    raw = yaml.safe_load(CONFIG.read_text())
    assert raw["name"] == CONFIG.stem == lenet_config.name
    assert "searcher" not in raw  # the engine's default searcher
    assert (lenet_config.model.source, lenet_config.model.architecture) == ("embedded", "digits_lenet")
    names = [axis.name for axis in lenet_config.space.axes]
    assert not {"rotation", "darkness", "blur"} & set(names)
    assert lenet_config.concept_space().num_actions == 125


def test_the_lenet_is_a_different_network():
    lenet = DigitsLeNet(image_size=28)
    assert any(isinstance(m, torch.nn.AvgPool2d) for m in lenet.modules())
    assert any(isinstance(m, torch.nn.Tanh) for m in lenet.modules())
    assert not any(isinstance(m, (torch.nn.MaxPool2d, torch.nn.ReLU)) for m in lenet.modules())
    assert lenet.features[7].in_features == 16 * 5 * 5  # LeNet-5's 400 features at 28x28
    assert lenet(torch.zeros(2, 1, 28, 28)).shape == (2, 10)
    with pytest.raises(ValueError, match="image_size >= 12"):
        DigitsLeNet(image_size=8)


def test_training_is_cached_by_recipe_and_architecture(tmp_path, monkeypatch):
    monkeypatch.setenv("FADEJAX_CACHE", str(tmp_path))
    train, held_out = load_digits_split(image_size=28)
    small = type(train)(train.images[:128], train.labels[:128], 10, "digits-train-128")
    recipe = {"epochs": 1, "learning_rate": 2e-3, "batch_size": 64, "seed": 0, "image_size": 28}
    first, info = digits_cnn.load_or_train(small, held_out, recipe, progress=False, architecture="digits_lenet")
    assert isinstance(first, DigitsLeNet)
    files = sorted(p.name for p in (tmp_path / "models").iterdir())
    assert len(files) == 2 and files[0].startswith("digits_lenet-") and files[0].endswith(".json")
    assert info["architecture"] == "digits_lenet" and Path(info["weights"]).is_file()

    def no_training(*args, **kwargs):
        raise AssertionError("the cached weights should have been reused")

    monkeypatch.setattr(digits_cnn, "train", no_training)
    again, info_again = digits_cnn.load_or_train(small, held_out, recipe, progress=False, architecture="digits_lenet")
    assert info_again == info and not again.training
    for key, value in first.state_dict().items():
        torch.testing.assert_close(again.state_dict()[key], value, rtol=0, atol=0)
    # Same recipe, another architecture: another cache entry; the default's key is unchanged.
    assert digits_cnn._cache_key(recipe, "digits_lenet") != digits_cnn._cache_key(recipe)
    assert digits_cnn._cache_key(recipe) == digits_cnn._cache_key(recipe, "digits_cnn")


def test_the_trained_lenet_is_accurate_on_clean_held_out_digits(lenet_task):
    info = lenet_task.info
    assert info["architecture"] == "digits_lenet" and Path(info["weights"]).name.startswith("digits_lenet-")
    assert info["clean_accuracy"] > 0.9 and info["held_out_accuracy"] > 0.9
    assert lenet_task.num_samples == 540


def test_an_unknown_embedded_architecture_lists_the_allowed_names(tmp_path, capsys):
    config = parse_config({"model": {"source": "embedded", "architecture": "lenet9"}})
    from bridges.weights import ModelLoadError

    with pytest.raises(ModelLoadError, match=r"'lenet9' is not an embedded model; the embedded ones are 'digits_cnn', 'digits_lenet'"):
        build_task(config, progress=False)
    code = main(["discover", "--config", str(CONFIG), "--out", str(tmp_path / "run"), "--quiet",
                 "--set", "model.architecture=lenet9"])
    err = capsys.readouterr().err
    assert code == 2 and "error:" in err and "'digits_cnn', 'digits_lenet'" in err


def test_discover_runs_end_to_end_on_a_tiny_budget(lenet_task, tmp_path, capsys):
    out = tmp_path / "run"
    code = main(["discover", "--config", str(CONFIG), "--out", str(out), "--quiet",
                 "--set", "run.iterations=2", "--set", "run.num_envs=32", "--set", "run.checkpoint_every=1"])
    assert code == 0, capsys.readouterr().err
    resolved = yaml.safe_load((out / "config.yaml").read_text())
    assert resolved["model"]["architecture"] == "digits_lenet" and resolved["data"]["image_size"] == 28
    assert resolved["searcher"]["kind"] == parse_config({}).searcher["kind"]  # the default
    status = yaml.safe_load((out / "run.json").read_text())
    assert status["status"] == "complete"
    printed = capsys.readouterr().out
    assert "2 iterations, 64 queries" in printed and "shift_x=" in printed
