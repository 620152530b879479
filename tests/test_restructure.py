"""`fadejax restructure`: the shift report's numbers match a direct evaluation of both models."""

import dataclasses
import json

import jax
import jax.numpy as jnp
import numpy as np
import pytest
import torch
from safetensors.torch import load_file

from bridges.digits_cnn import DigitsCNN
from fadejax.audits.image.data import load_digits_split
from fadejax.cli import EXIT_BAD_INPUT, main
from fadejax.engine.config import parse_config
from fadejax.core.perturbations import compose
from fadejax.stages.discover import discover

# A 2 x 2 x 2 corner of the default space keeps the two exhaustive landscapes cheap.
AXES = [{"name": "rotation", "values": [-20, 0]}, {"name": "darkness", "values": [0.0, 0.7]}, {"name": "blur", "values": [0.0, 3.0]}]
# The run only has to exist (modes are chosen by --modes): a random searcher, a small budget.
# Audited on the first LIMIT held-out digits (the landscapes and direct evaluations cost a
# model call per digit and cell).
LIMIT = 180
CONFIG = {"data": {"limit": LIMIT}, "space": {"axes": AXES}, "searcher": {"kind": "random"}, "run": {"iterations": 4, "num_envs": 32}}
MODE = 3  # rotation -20, darkness 0.7, blur 3: the embedded model's worst cell


@pytest.fixture(scope="module")
def shifted(tmp_path_factory, digits_task):
    root = tmp_path_factory.mktemp("restructure")
    discover(parse_config(CONFIG), root / "run", oracle=digits_task.oracle, progress=False)
    assert parse_config(CONFIG).concept_space().describe(MODE) == {"rotation": -20.0, "darkness": 0.7, "blur": 3.0}
    assert main(["restructure", str(root / "run"), "--modes", str(MODE), "--epochs", "2", "--out", str(root / "out")]) == 0
    return root, json.loads((root / "out" / "shift_report.json").read_text())


def _direct_rates(weights: str, cells: list[int]) -> tuple[float, list[float]]:
    """Clean accuracy and per-cell failure rates on the audited held-out digits, straight through torch."""
    _, held = load_digits_split()
    held = dataclasses.replace(held, images=held.images[:LIMIT], labels=held.labels[:LIMIT])
    model = DigitsCNN()
    model.load_state_dict(load_file(weights))
    model.eval()
    space = parse_config(CONFIG).concept_space()
    perturb = compose(["rotation", "darkness", "blur"], [a.values for a in space.axes])

    def predict(images):
        with torch.inference_mode():
            return model(torch.from_numpy(np.ascontiguousarray(np.asarray(images).transpose(0, 3, 1, 2)))).argmax(-1).numpy()

    clean = float((predict(held.images) == held.labels).mean())
    rates = []
    for cell in cells:
        values = jnp.broadcast_to(space.decode(jnp.int32(cell)), (len(held), 3))
        rates.append(float((predict(perturb(jnp.asarray(held.images), values, jax.random.PRNGKey(0))) != held.labels).mean()))
    return clean, rates


def test_shift_report_matches_a_direct_evaluation_of_both_models(shifted, digits_task):
    root, report = shifted
    before_clean, (before,) = _direct_rates(digits_task.info["weights"], [MODE])
    after_clean, (after,) = _direct_rates(report["fine_tune"]["model"], [MODE])
    mode = report["modes"][0]
    assert mode["cell"] == MODE
    assert mode["held_out_failure_rate_before"] == pytest.approx(before)
    assert mode["held_out_failure_rate_after"] == pytest.approx(after)
    assert report["clean_held_out_accuracy_before"] == pytest.approx(before_clean)
    assert report["clean_held_out_accuracy_after"] == pytest.approx(after_clean)
    assert mode["reduced"] == (after < before) and after < before  # the chosen mode is faded
    assert abs(after_clean - before_clean) <= 0.02  # stated tolerance: clean accuracy moves by at most 2 points
    assert len(mode["wasserstein_by_radius"]) == 3 and all(w >= 0 for w in mode["wasserstein_by_radius"])


def test_fine_tuning_saw_only_the_training_split_and_the_rediscovery_is_linked(shifted):
    root, report = shifted
    train, _ = load_digits_split()
    with np.load(root / "out" / "finetune" / "failures.npz") as data:
        assert data["images"].shape[0] == len(train) and np.array_equal(data["labels"], train.labels)
    status = json.loads((root / "out" / "rediscovery" / "run.json").read_text())
    assert status["status"] == "complete" and status["restructured_from"] == str(root / "run")
    assert "held-out split it never saw" in (root / "out" / "shift_report.md").read_text()


def test_restructure_needs_modes(tmp_path, shifted, capsys):
    root, _ = shifted
    assert main(["restructure", str(root / "run")]) == EXIT_BAD_INPUT
    assert "choose the modes to fade" in capsys.readouterr().err
    assert main(["restructure", str(root / "run"), "--modes", str(MODE), "--train-articles", "5", "--out", str(root / "x")]) == EXIT_BAD_INPUT
    assert "--train-articles applies to ['text'] runs; this run's task is 'image'" in capsys.readouterr().err
    assert not (root / "x").exists()


def test_a_finished_restructure_is_reused_and_other_modes_are_refused(shifted, capsys):
    root, report = shifted
    assert main(["restructure", str(root / "run"), "--modes", str(MODE), "--epochs", "2", "--out", str(root / "out")]) == 0
    assert "already holds this restructure" in capsys.readouterr().out
    assert json.loads((root / "out" / "shift_report.json").read_text()) == report
    assert main(["restructure", str(root / "run"), "--modes", "0", "--epochs", "2", "--out", str(root / "out")]) == EXIT_BAD_INPUT
    assert "other modes or settings" in capsys.readouterr().err
    assert (root / "out" / "landscapes_before_after.png").stat().st_size > 0


def test_a_restructure_written_before_an_option_existed_is_still_reused(shifted, capsys):
    root, report = shifted
    path = root / "out" / "shift_report.json"
    older = {**report, "request": {k: v for k, v in report["request"].items() if k != "model"}}  # before --model existed
    path.write_text(json.dumps(older))
    try:
        assert main(["restructure", str(root / "run"), "--modes", str(MODE), "--epochs", "2", "--out", str(root / "out")]) == 0
        assert "already holds this restructure" in capsys.readouterr().out
        assert main(["restructure", str(root / "run"), "--modes", str(MODE), "--epochs", "3", "--out", str(root / "out")]) == EXIT_BAD_INPUT
        assert "other modes or settings" in capsys.readouterr().err  # a setting that differs still differs
    finally:
        path.write_text(json.dumps(report))
