"""Pre-flight: a model and data that do not fit are refused before any loop or write, in
one ``error:`` line naming the config field to change, with exit 2; ``data.channels``
converts a folder of mixed images for a one-channel model, and run.json says so."""

import json

import pytest
import yaml

from fadejax.cli import EXIT_BAD_INPUT, main
from tiny_classifier import TinyGrey, TinyNormalised, TinyRGB, save_seeded

TINY = ["--set", "run.iterations=2", "--set", "run.num_envs=8", "--set", "run.tensorboard=false", "--quiet"]


def _config(tmp_path, mixed_folder, model_class: str, weights, **model):
    path = tmp_path / "config.yaml"
    path.write_text(yaml.safe_dump({
        "name": "preflight",
        "data": {"source": "folder", "path": str(mixed_folder), "image_size": 16},
        "model": {"source": "file", "architecture": f"tiny_classifier:{model_class}", "weights": str(weights), **model},
        "space": {"axes": [{"name": "darkness", "values": [0.0, 0.5]}, {"name": "blur", "values": [0.0, 1.0]}]},
    }))
    return path


def _refused(capsys, argv, out) -> str:
    capsys.readouterr()
    assert main(argv) == EXIT_BAD_INPUT
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("error: ")
    assert not out.exists()  # nothing written
    return err[0]


def test_a_grey_model_on_rgb_folder_images_is_refused_naming_data_channels_then_runs_with_it(tmp_path, mixed_folder, capsys):
    weights = save_seeded(TinyGrey(3, 16), tmp_path / "grey.safetensors")
    config = _config(tmp_path, mixed_folder, "TinyGrey", weights, refuse_chance=False)
    out = tmp_path / "run"
    line = _refused(capsys, ["discover", "--config", str(config), "--out", str(out), *TINY], out)
    assert "data.channels" in line and "takes 1 channel" in line and "have 3" in line and "set data.channels: 1" in line
    assert main(["discover", "--config", str(config), "--out", str(out), "--set", "data.channels=1", *TINY]) == 0
    status = json.loads((out / "run.json").read_text())
    assert status["model"]["channel_conversion"].startswith("RGB -> grey by luminance")
    # landscape takes the same check, before computing anything
    line = _refused(capsys, ["landscape", "--config", str(config), "--out", str(tmp_path / "truth")], tmp_path / "truth")
    assert "set data.channels: 1" in line


def test_an_rgb_model_takes_grey_data_converted_to_three_channels(tmp_path, mixed_folder):
    weights = save_seeded(TinyRGB(3, 16), tmp_path / "rgb.safetensors")
    config = _config(tmp_path, mixed_folder, "TinyRGB", weights, refuse_chance=False)
    assert main(["discover", "--config", str(config), "--out", str(tmp_path / "run"), "--set", "data.channels=1", *TINY]) == EXIT_BAD_INPUT
    assert main(["discover", "--config", str(config), "--out", str(tmp_path / "run"), "--set", "data.channels=3", *TINY]) == 0
    assert "channel_conversion" not in json.loads((tmp_path / "run" / "run.json").read_text())["model"]  # folders are RGB already


def test_an_image_size_the_model_cannot_take_is_refused_naming_data_image_size(tmp_path, mixed_folder, capsys):
    weights = save_seeded(TinyRGB(3, 16), tmp_path / "rgb.safetensors")
    config = _config(tmp_path, mixed_folder, "TinyRGB", weights, refuse_chance=False)
    out = tmp_path / "run"
    line = _refused(capsys, ["discover", "--config", str(config), "--out", str(out), "--set", "data.image_size=24", *TINY], out)
    assert line.startswith("error: ") and "model: it could not answer a batch" in line and "(H, W, C) = (24, 24, 3)" in line
    assert "set data.image_size (now 24)" in line


def test_a_model_of_fewer_classes_than_the_data_is_refused_naming_model_num_classes(tmp_path, mixed_folder, capsys):
    weights = save_seeded(TinyRGB(2, 16), tmp_path / "two.safetensors")
    config = _config(tmp_path, mixed_folder, "TinyRGB", weights, architecture_kwargs={"num_classes": 2}, refuse_chance=False)
    out = tmp_path / "run"
    line = _refused(capsys, ["discover", "--config", str(config), "--out", str(out), *TINY], out)
    assert "model.num_classes" in line and "2 classes" in line and "3" in line


def test_a_model_at_chance_is_refused_unless_audited_on_purpose(tmp_path, mixed_folder, capsys):
    weights = save_seeded(TinyRGB(3, 16), tmp_path / "rgb.safetensors", seed=3)
    config = _config(tmp_path, mixed_folder, "TinyRGB", weights)
    out = tmp_path / "run"
    line = _refused(capsys, ["discover", "--config", str(config), "--out", str(out), *TINY], out)
    assert "no better than guessing among 3 classes" in line and "model.weights" in line and "model.refuse_chance: false" in line
    assert main(["discover", "--config", str(config), "--out", str(out), "--set", "model.refuse_chance=false", *TINY]) == 0


def test_a_normalisation_the_model_states_but_the_config_lacks_is_refused_naming_both_fields(tmp_path, mixed_folder, capsys):
    weights = save_seeded(TinyNormalised(3, 16), tmp_path / "norm.safetensors")
    config = _config(tmp_path, mixed_folder, "TinyNormalised", weights, refuse_chance=False)
    out = tmp_path / "run"
    line = _refused(capsys, ["discover", "--config", str(config), "--out", str(out), *TINY], out)
    assert "model.normalize_mean / normalize_std" in line and "mean [0.5, 0.4, 0.3] and std [0.25, 0.25, 0.2]" in line
    assert "set model.normalize_mean: [0.5, 0.4, 0.3] and normalize_std: [0.25, 0.25, 0.2]" in line
    assert main(["discover", "--config", str(config), "--out", str(out), "--set", "model.normalize_mean=[0.5, 0.4, 0.3]",
                 "--set", "model.normalize_std=[0.25, 0.25, 0.2]", *TINY]) == 0


def test_a_family_names_the_model_that_does_not_fit(tmp_path, mixed_folder, capsys):
    """In a family each model is checked on its own, and the refusal names it."""
    rgb = save_seeded(TinyRGB(3, 16), tmp_path / "rgb.safetensors")
    grey = save_seeded(TinyGrey(3, 16), tmp_path / "grey.safetensors")
    path = tmp_path / "family.yaml"
    models = [{"name": "colour", "source": "file", "architecture": "tiny_classifier:TinyRGB", "weights": str(rgb), "refuse_chance": False},
              {"name": "grey", "source": "file", "architecture": "tiny_classifier:TinyGrey", "weights": str(grey), "refuse_chance": False}]
    path.write_text(yaml.safe_dump({
        "name": "family", "data": {"source": "folder", "path": str(mixed_folder), "image_size": 16}, "models": models,
        "space": {"axes": [{"name": "darkness", "values": [0.0, 0.5]}]}}))
    out = tmp_path / "run"
    line = _refused(capsys, ["discover", "--config", str(path), "--out", str(out), *TINY], out)
    assert "the family's model 'grey'" in line and "takes 1 channel" in line
    models[1] = {**models[0], "name": "guess", "refuse_chance": True}  # the same guessing weights, not audited on purpose
    path.write_text(yaml.safe_dump({**yaml.safe_load(path.read_text()), "models": models}))
    line = _refused(capsys, ["discover", "--config", str(path), "--out", str(out), *TINY], out)
    assert line.startswith("error: models ('guess'): this model's clean held-out accuracy") and "models ('guess').refuse_chance: false" in line


def test_chance_bound_follows_the_binomial_tail():
    from fadejax.audits.image.preflight import chance_bound

    assert chance_bound(1000, 10) == pytest.approx(0.124, abs=0.003)  # 10% by guessing, up to ~12% by luck
    assert chance_bound(18, 3) > 0.5 and chance_bound(1000, 2) < 0.54
    assert chance_bound(10, 1) == 0.0
