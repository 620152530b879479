"""The torch side: classifier oracle, DLPack hand-over, safe weight loading."""

import pickle

import jax.numpy as jnp
import numpy as np
import pytest
import torch
from safetensors.torch import save_file
from torch import nn

from bridges.classifier import ClassifierOracle, OracleError
from bridges.weights import ModelLoadError, build_from_import_path, load_into, load_state_dict


class TinyNet(nn.Module):
    def __init__(self, num_classes: int = 3):
        super().__init__()
        self.body = nn.Sequential(nn.Flatten(), nn.Linear(2 * 4 * 4, 6), nn.ReLU())
        self.head = nn.Linear(6, num_classes)

    def forward(self, x):
        return self.head(self.body(x))


class NaNNet(TinyNet):
    def forward(self, x):
        return super().forward(x) * float("nan")


@pytest.fixture
def images():
    return jnp.asarray(np.random.default_rng(0).random((5, 4, 4, 2), dtype=np.float32))


def test_oracle_returns_the_models_logits_for_nhwc_jax_images(images):
    torch.manual_seed(0)
    model = TinyNet()
    oracle = ClassifierOracle(model, num_classes=3)
    logits = oracle(images)
    expected = model(torch.from_numpy(np.asarray(images)).permute(0, 3, 1, 2)).detach().numpy()
    assert logits.shape == (5, 3) and logits.dtype == jnp.float32
    np.testing.assert_allclose(np.asarray(logits), expected, rtol=1e-6, atol=1e-6)


def test_oracle_normalises_inputs_per_channel(images):
    torch.manual_seed(0)
    model = TinyNet()
    oracle = ClassifierOracle(model, 3, mean=[0.5, 0.2], std=[0.25, 2.0])
    x = (torch.from_numpy(np.asarray(images)).permute(0, 3, 1, 2) - torch.tensor([0.5, 0.2]).view(1, 2, 1, 1)) / torch.tensor([0.25, 2.0]).view(1, 2, 1, 1)
    np.testing.assert_allclose(np.asarray(oracle(images)), model(x).detach().numpy(), rtol=1e-5, atol=1e-6)


def test_penultimate_features_are_the_input_of_the_last_linear_layer(images):
    torch.manual_seed(0)
    model = TinyNet()
    feats = ClassifierOracle(model, 3).features(images)
    expected = model.body(torch.from_numpy(np.asarray(images)).permute(0, 3, 1, 2)).detach().numpy()
    np.testing.assert_allclose(np.asarray(feats), expected, rtol=1e-6, atol=1e-6)


def test_wrong_class_count_and_non_finite_outputs_are_errors(images):
    with pytest.raises(OracleError, match="returned 3 classes; the data set has 10"):
        ClassifierOracle(TinyNet(), num_classes=10)(images)
    with pytest.raises(OracleError, match="NaN or Inf"):
        ClassifierOracle(NaNNet(), num_classes=3)(images)


def test_weights_load_from_safetensors_and_weights_only_torch_files(tmp_path):
    torch.manual_seed(1)
    source = TinyNet()
    save_file(source.state_dict(), str(tmp_path / "w.safetensors"))
    torch.save(source.state_dict(), tmp_path / "w.pt")
    for name in ("w.safetensors", "w.pt"):
        target = load_into(TinyNet(), tmp_path / name)
        for key, value in source.state_dict().items():
            torch.testing.assert_close(target.state_dict()[key], value)


class Evil:
    def __reduce__(self):
        return (print, ("pickled code ran",))


def test_pickled_code_is_never_executed_and_bad_files_name_themselves(tmp_path, capsys):
    evil = tmp_path / "evil.pt"
    with open(evil, "wb") as f:
        pickle.dump({"weight": Evil()}, f)
    with pytest.raises(ModelLoadError, match="evil.pt' could not be read"):
        load_state_dict(evil)
    assert "pickled code ran" not in capsys.readouterr().out
    garbage = tmp_path / "garbage.safetensors"
    garbage.write_bytes(b"not a model")
    with pytest.raises(ModelLoadError, match="garbage.safetensors' could not be read"):
        load_state_dict(garbage)
    with pytest.raises(ModelLoadError, match="does not exist"):
        load_state_dict(tmp_path / "missing.pt")
    with pytest.raises(ModelLoadError, match="suffix '.onnx'"):
        (tmp_path / "m.onnx").write_bytes(b"x")
        load_state_dict(tmp_path / "m.onnx")


def test_weights_that_do_not_fit_the_architecture_are_reported(tmp_path):
    save_file(TinyNet(num_classes=4).state_dict(), str(tmp_path / "four.safetensors"))
    with pytest.raises(ModelLoadError, match="does not fit the architecture"):
        load_into(TinyNet(num_classes=3), tmp_path / "four.safetensors")


def test_architectures_are_built_from_import_paths():
    model = build_from_import_path("bridges.digits_cnn:DigitsCNN", {"image_size": 16})
    assert model(torch.zeros(2, 1, 16, 16)).shape == (2, 10)
    with pytest.raises(ModelLoadError, match="cannot be imported"):
        build_from_import_path("bridges.digits_cnn:Nope", {})
    with pytest.raises(ModelLoadError, match="rejected architecture_kwargs"):
        build_from_import_path("bridges.digits_cnn:DigitsCNN", {"depth": 3})


def test_importing_any_fadejax_module_does_not_import_torch():
    """Every module of fadejax, audits included, imports without torch or its libraries:
    they load only when a run needs a model (import-linter checks that no fadejax module
    imports them itself; this checks that none does at import time through a bridge)."""
    import subprocess
    import sys

    code = ("import importlib, pkgutil, sys, fadejax\n"
            "names = [m.name for m in pkgutil.walk_packages(fadejax.__path__, 'fadejax.') if m.name != 'fadejax.moved']\n"
            "[importlib.import_module(n) for n in names]\n"
            "print(len(names), sorted(m for m in ('torch', 'transformers', 'diffusers', 'peft', 'torchvision') if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    count, loaded = out.stdout.strip().split(" ", 1)
    assert int(count) > 90 and loaded == "[]"


def test_vision_sources_without_the_optional_extra_explain_how_to_get_it():
    import importlib.util

    if importlib.util.find_spec("torchvision") is not None:
        pytest.skip("torchvision is installed here; this checks the message shown without it")
    from bridges.weights import build_vision_model

    with pytest.raises(ModelLoadError, match=r"fadejax\[vision\]"):
        build_vision_model("torchvision", "resnet18", None, {})


def test_feature_observations_are_the_standardised_penultimate_activations(digits_task):
    from fadejax.audits.image.task import feature_observations

    feats = np.asarray(feature_observations(digits_task.oracle, digits_task.images))
    assert feats.shape == (digits_task.num_samples, 128)
    np.testing.assert_allclose(feats.mean(0), 0.0, atol=1e-4)
    assert np.all((feats.std(0) < 1.01))
