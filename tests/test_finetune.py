"""The fine-tuner: a separate process that changes only the final layer, resumes after kill -9,
and refuses a bad spec before doing any work."""

import json
from pathlib import Path
import signal
import subprocess
import sys
import time

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from safetensors.torch import load_file

from fadejax.audits.image.data import load_digits_split
from fadejax.stages.finetune import FineTuneError, launch, validate_spec
from fadejax.core.perturbations import compose


@pytest.fixture(scope="module")
def data(tmp_path_factory, digits_task):
    """Training-split digits darkened and blurred (a top failure mode), and the clean ones."""
    root = tmp_path_factory.mktemp("finetune")
    train, _ = load_digits_split()
    perturb = compose(["darkness", "blur"], [[0.0, 0.7], [0.0, 3.0]])
    values = jnp.broadcast_to(jnp.array([0.7, 3.0]), (len(train), 2))
    failing = np.asarray(perturb(jnp.asarray(train.images), values, jax.random.PRNGKey(0)))
    np.savez(root / "failures.npz", images=failing, labels=train.labels)
    np.savez(root / "clean.npz", images=train.images, labels=train.labels)
    # the kill test checks resumption, not learning: a fifth of the data keeps its three fine-tunes quick
    np.savez(root / "failures_small.npz", images=failing[::5], labels=train.labels[::5])
    np.savez(root / "clean_small.npz", images=train.images[::5], labels=train.labels[::5])
    return root, digits_task.info["weights"]


def torch_load_epoch(path) -> int:
    import torch

    return int(torch.load(path, weights_only=True)["epoch"])


def _spec(root, weights, out, small=False, **hyper):
    suffix = "_small" if small else ""
    return {
        "architecture": "bridges.digits_cnn:DigitsCNN", "weights": weights,
        "failure_data": str(root / f"failures{suffix}.npz"), "clean_data": str(root / f"clean{suffix}.npz"),
        "output_dir": str(out), "hyper": {"epochs": 3, **hyper},
    }


def test_only_the_final_layer_changes_and_the_failures_are_learned(data, tmp_path):
    root, weights = data
    metrics = launch(_spec(root, weights, tmp_path / "ft", learning_rate=0.01), quiet=True)
    before, after = load_file(weights), load_file(metrics["model"])
    changed = sorted(k for k in before if not np.array_equal(before[k].numpy(), after[k].numpy()))
    assert changed == ["head.bias", "head.weight"]
    assert metrics["loss_per_epoch"][-1] < metrics["loss_per_epoch"][0]
    assert json.loads((tmp_path / "ft" / "spec.json").read_text())["hyper"]["learning_rate"] == 0.01


EPOCHS_TO_KILL = 150


def test_a_killed_fine_tune_resumes_to_the_same_model(data, tmp_path):
    root, weights = data
    # The head trains on features computed once, so an epoch takes milliseconds: enough
    # epochs that the kill lands between the first checkpoint and the end.
    reference = launch(_spec(root, weights, tmp_path / "whole", small=True, epochs=EPOCHS_TO_KILL), quiet=True)
    spec = validate_spec(_spec(root, weights, tmp_path / "killed", small=True, epochs=EPOCHS_TO_KILL))
    (tmp_path / "killed").mkdir()
    spec_path = tmp_path / "killed" / "spec.json"
    spec_path.write_text(json.dumps(spec.model_dump(mode="json")))
    process = subprocess.Popen([sys.executable, "-m", "bridges.finetune", str(spec_path)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    checkpoint = tmp_path / "killed" / "checkpoint.pt"
    deadline = time.time() + 120
    while not checkpoint.exists() and time.time() < deadline and process.poll() is None:
        time.sleep(0.02)
    process.send_signal(signal.SIGKILL)
    process.wait()
    assert checkpoint.exists() and not (tmp_path / "killed" / "metrics.json").exists()
    killed_at = torch_load_epoch(checkpoint)
    assert 0 < killed_at < EPOCHS_TO_KILL  # killed mid-way
    resumed = launch(spec, quiet=True)
    whole, again = load_file(reference["model"]), load_file(resumed["model"])
    for key in whole:
        np.testing.assert_array_equal(whole[key].numpy(), again[key].numpy())
    assert resumed["loss_per_epoch"] == reference["loss_per_epoch"]


@pytest.mark.parametrize(
    "change, message",
    [
        ({"weights": "/nonexistent/model.safetensors"}, "weights '/nonexistent/model.safetensors' does not exist"),
        ({"hyper": {"learning_rate": -1.0}}, "hyper.learning_rate: Input should be greater than 0"),
        ({"hyper": {"momentum": 1.5}}, "hyper.momentum"),
        ({"optimiser": "adam"}, "optimiser: Extra inputs are not permitted"),
        ({"architecture": "DigitsCNN"}, "must be 'package.module:Class'"),
    ],
)
def test_a_bad_spec_fails_clearly_before_any_work(data, tmp_path, change, message):
    root, weights = data
    spec = {**_spec(root, weights, tmp_path / "never"), **change}
    with pytest.raises(FineTuneError) as info:
        launch(spec, quiet=True)
    assert message in str(info.value)
    assert not (tmp_path / "never").exists()


def test_a_models_input_normalisation_is_applied_to_both_training_sets(data, tmp_path):
    """With normalize_mean/std the fine-tuner feeds the model what the audit's oracle feeds
    it: the same head as fine-tuning on sets normalised beforehand."""
    root, weights = data
    mean, std = 0.25, 0.5
    for name in ("failures_small", "clean_small"):
        with np.load(root / f"{name}.npz") as archive:
            np.savez(tmp_path / f"{name}.npz", images=(archive["images"] - mean) / std, labels=archive["labels"])
    from bridges.finetune_classifier import run

    def tune(spec):  # the runner in this process (what launch runs in its own): the comparison, not the process, is tested
        spec = validate_spec(spec)
        Path(spec.output_dir).mkdir(parents=True)
        return run(spec)

    spec = _spec(root, weights, tmp_path / "normalised", small=True)
    normalised = tune({**spec, "normalize_mean": [mean], "normalize_std": [std]})
    beforehand = tune({**spec, "output_dir": str(tmp_path / "beforehand"), "failure_data": str(tmp_path / "failures_small.npz"),
                       "clean_data": str(tmp_path / "clean_small.npz")})
    a, b = (load_file(m["model"]) for m in (normalised, beforehand))
    np.testing.assert_allclose(a["head.weight"].numpy(), b["head.weight"].numpy(), rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(a["head.bias"].numpy(), b["head.bias"].numpy(), rtol=1e-5, atol=1e-6)


def test_an_anchor_keeps_the_fine_tuned_weights_near_the_original_and_its_clean_predictions_with_them(data, tmp_path):
    """``anchor`` (L2-SP) trades fading for staying where the model was: the anchored fine-tune
    moves the weights, and the clean predictions, less than the plain loss does."""
    import torch

    from bridges.finetune_classifier import run
    from bridges.weights import build_from_import_path, load_into

    root, weights = data

    def tune(name, **hyper):
        spec = validate_spec(_spec(root, weights, tmp_path / name, small=True, learning_rate=1e-3, scope="full", **hyper))
        Path(spec.output_dir).mkdir(parents=True)
        metrics = run(spec)
        assert metrics["anchor"] == hyper.get("anchor", 0.0)
        return metrics["model"]

    plain, anchored = tune("plain"), tune("anchored", anchor=100.0)
    with np.load(root / "clean_small.npz") as archive:
        images = torch.as_tensor(np.moveaxis(archive["images"], -1, 1), dtype=torch.float32)

    def predictions(path):
        model = load_into(build_from_import_path("bridges.digits_cnn:DigitsCNN", {}), path).eval()
        with torch.no_grad():
            return torch.softmax(model(images), -1)

    original = predictions(weights)
    drift = {name: float((predictions(path) - original).abs().sum(-1).mean()) for name, path in (("plain", plain), ("anchored", anchored))}
    before = load_file(weights)
    moved = {name: sum(float(((load_file(path)[k] - before[k]) ** 2).sum()) for k in before) for name, path in
             (("plain", plain), ("anchored", anchored))}
    assert moved["anchored"] < 0.5 * moved["plain"] and drift["anchored"] < drift["plain"], (moved, drift)
    with pytest.raises(FineTuneError, match="anchor"):
        launch(_spec(root, weights, tmp_path / "negative", small=True, anchor=-1.0), quiet=True)
