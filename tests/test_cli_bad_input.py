"""Every bad input: one clear message naming the field or file, exit status 2, no damage."""

import hashlib
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
import yaml
from safetensors.torch import save_file

from bridges.digits_cnn import DigitsCNN
from fadejax.cli import EXIT_BAD_INPUT, main
from fadejax.engine.store.record_fields import records_path

TINY_RUN = {"iterations": 2, "num_envs": 8, "checkpoint_every": 1}


def _tree_digest(path: Path) -> str:
    digest = hashlib.sha256()
    for file in sorted(p for p in path.rglob("*") if p.is_file()):
        digest.update(str(file.relative_to(path)).encode())
        digest.update(file.read_bytes())
    return digest.hexdigest()


@pytest.fixture(scope="module")
def existing_run(tmp_path_factory):
    """A finished run whose files must never change under bad input."""
    root = tmp_path_factory.mktemp("existing")
    config = root / "ok.yaml"
    config.write_text(yaml.safe_dump({"name": "ok", "searcher": {"kind": "dqn", "hidden_sizes": [16], "batch_size": 8, "min_replay": 8}, "run": TINY_RUN}))
    assert main(["discover", "--config", str(config), "--out", str(root / "run"), "--quiet"]) == 0
    return root / "run", config


def _write(tmp_path: Path, data: dict) -> Path:
    path = tmp_path / "bad.yaml"
    path.write_text(yaml.safe_dump(data))
    return path


def _expect_bad_input(capsys, argv, *fragments):
    assert main(argv) == EXIT_BAD_INPUT
    err = capsys.readouterr().err
    assert err.startswith("error: ")
    for fragment in fragments:
        assert fragment in err, err
    return err


@pytest.mark.parametrize(
    "data, fragments",
    [
        ({"run": {"iteratons": 3}}, ["run.iteratons: unknown field", "allowed here"]),
        ({"space": {"axes": [{"name": "haze", "values": [0, 1]}]}}, ["unknown perturbation 'haze'", "registered:"]),
        ({"space": {"axes": [{"name": "darkness", "values": [0.2, 1.4]}]}}, ["darkness values [1.4]", "[0.0, 1.0]"]),
    ],
    ids=["unknown field", "unknown perturbation", "value out of range"],
)
def test_bad_configs_never_touch_an_existing_run(capsys, tmp_path, existing_run, data, fragments):
    run_dir, _ = existing_run
    before = _tree_digest(run_dir)
    _expect_bad_input(capsys, ["discover", "--config", str(_write(tmp_path, data)), "--out", str(run_dir)], *fragments)
    assert _tree_digest(run_dir) == before


def test_an_output_dir_holding_another_run_is_refused_untouched(capsys, tmp_path, existing_run):
    run_dir, _ = existing_run
    before = _tree_digest(run_dir)
    other = _write(tmp_path, {"name": "ok", "run": {**TINY_RUN, "seed": 9}})
    _expect_bad_input(capsys, ["discover", "--config", str(other), "--out", str(run_dir), "--resume"], "holds another run", "run.seed")
    _expect_bad_input(capsys, ["discover", "--config", str(existing_run[1]), "--out", str(run_dir)], "already holds this run", "--resume")
    assert _tree_digest(run_dir) == before


def test_a_non_run_directory_is_refused(capsys, tmp_path, existing_run):
    (tmp_path / "stuff").mkdir()
    (tmp_path / "stuff" / "notes.txt").write_text("mine")
    _expect_bad_input(capsys, ["discover", "--config", str(existing_run[1]), "--out", str(tmp_path / "stuff")], "not empty and is not a fadejax run")
    assert (tmp_path / "stuff" / "notes.txt").read_text() == "mine"


def _file_model_config(tmp_path, weights: Path, data: dict | None = None, num_classes: int = 10) -> Path:
    return _write(tmp_path, {
        "data": data or {"source": "digits"},
        "model": {"source": "file", "architecture": "bridges.digits_cnn:DigitsCNN",
                  "architecture_kwargs": {"image_size": 32, "num_classes": num_classes}, "weights": str(weights)},
        "run": TINY_RUN,
    })


@pytest.mark.parametrize(
    "images, labels, fragment",
    [
        (np.zeros((0, 32, 32, 1), np.float32), np.zeros((0,), np.int64), "the data set is empty"),
        (np.zeros((4, 32, 32, 5), np.float32), np.zeros((4,), np.int64), "C = 1 or 3, got shape (4, 32, 32, 5)"),
        (np.zeros((4, 32, 32, 1), np.float32), np.zeros((3,), np.int64), "labels must be (4,)"),
        (np.full((4, 32, 32, 1), 7.0, np.float32), np.zeros((4,), np.int64), "in [0, 1]"),
    ],
    ids=["empty", "channels", "labels", "range"],
)
def test_empty_or_misshaped_datasets_are_refused_and_nothing_is_created(capsys, tmp_path, images, labels, fragment):
    data_path = tmp_path / "data.npz"
    np.savez(data_path, images=images, labels=labels)
    weights = tmp_path / "w.safetensors"
    save_file(DigitsCNN().state_dict(), str(weights))
    config = _file_model_config(tmp_path, weights, {"source": "npz", "path": str(data_path)})
    out = tmp_path / "new_run"
    _expect_bad_input(capsys, ["discover", "--config", str(config), "--out", str(out)], str(data_path), fragment)
    assert not out.exists()


def test_a_model_file_that_does_not_load_is_named(capsys, tmp_path):
    weights = tmp_path / "broken.safetensors"
    weights.write_bytes(b"\x00not safetensors")
    out = tmp_path / "new_run"
    _expect_bad_input(capsys, ["discover", "--config", str(_file_model_config(tmp_path, weights)), "--out", str(out)], "broken.safetensors' could not be read")
    assert not out.exists()


def test_a_model_with_the_wrong_number_of_classes_is_named(capsys, tmp_path):
    weights = tmp_path / "seven.safetensors"
    save_file(DigitsCNN(num_classes=7).state_dict(), str(weights))
    config = _file_model_config(tmp_path, weights, num_classes=7)
    _expect_bad_input(capsys, ["discover", "--config", str(config), "--out", str(tmp_path / "run")], "returned 7 classes; the data set has 10")


def test_the_installed_command_exits_non_zero_with_one_line(tmp_path):
    config = _write(tmp_path, {"mode": "sideways"})
    result = subprocess.run([sys.executable, "-m", "fadejax.cli", "discover", "--config", str(config)], capture_output=True, text=True)
    assert result.returncode == EXIT_BAD_INPUT
    assert result.stderr.startswith("error: ") and "mode: Input should be 'macro' or 'micro'" in result.stderr
    assert "Traceback" not in result.stderr


def test_a_cuda_device_on_a_cpu_only_torch_is_a_clear_error(capsys, tmp_path):
    if __import__("torch").cuda.is_available():
        pytest.skip("this machine has CUDA")
    config = _write(tmp_path, {"model": {"device": "cuda:0"}, "run": TINY_RUN})
    _expect_bad_input(capsys, ["discover", "--config", str(config), "--out", str(tmp_path / "run")], "model.device 'cuda:0' cannot be used here")
    assert not (tmp_path / "run").exists()


def test_a_landscape_is_not_written_into_a_run_of_another_space(capsys, tmp_path, existing_run):
    run_dir, _ = existing_run
    before = _tree_digest(run_dir)
    other = _write(tmp_path, {"space": {"axes": [{"name": "rotation", "values": [0, 45]}]}})
    _expect_bad_input(capsys, ["landscape", "--config", str(other), "--out", str(run_dir)], "different data, model or concept space")
    assert _tree_digest(run_dir) == before


def test_records_shortened_behind_fadejax_are_refused_on_resume(capsys, tmp_path, existing_run):
    import shutil

    _, config = existing_run
    copy = tmp_path / "copy"
    shutil.copytree(existing_run[0], copy)
    (copy / "run.json").write_text('{"status": "running"}')
    records_path(copy).unlink()  # the complete run's compacted records, replaced by a stream cut to nothing
    (copy / "records.arrow").write_bytes(b"")
    _expect_bad_input(capsys, ["discover", "--config", str(config), "--out", str(copy), "--resume"], "records were shortened outside fadejax")


@pytest.mark.parametrize("recording, fragments", [
    ("recordings/digits.npz", ["made for other data, model or concept space", "fadejax landscape --record"]),
    ("recordings/missing.npz", ["recordings/missing.npz' does not exist"]),
], ids=["another audit's recording", "no such file"])
def test_a_recording_that_does_not_fit_the_config_is_refused_and_nothing_is_created(capsys, tmp_path, recording, fragments):
    root = Path(__file__).resolve().parents[1]
    config = root / "configs" / "digits_lenet.yaml"
    out = tmp_path / "run"
    _expect_bad_input(capsys, ["discover", "--config", str(config), "--set", f"recording={root / recording}", "--out", str(out), "--quiet"], *fragments)
    assert not out.exists()
