import json

import numpy as np
import yaml

from fadejax.audits.image.task import ClassificationTask
from fadejax.cli import main
from fadejax.engine.config import parse_config
from fadejax.engine.ground_truth import GROUND_TRUTH_FILE, load_or_compute
from fadejax.core.spaces import Axis, ConceptSpace
from fadejax.engine.store.record_fields import records_path


def test_exhaustive_landscape_counts_every_sample_under_every_action(digit_images):
    """A fake oracle that fails exactly when the image was darkened by more than half."""
    import jax.numpy as jnp

    from fadejax.core import perturbations
    from fadejax.engine.ground_truth import failure_landscape

    class Oracle:
        num_classes = 2

        def __call__(self, images):
            dark = images.reshape(images.shape[0], -1).max(axis=1) < 0.45  # darkened beyond 0.55
            return jnp.stack([jnp.where(dark, 0.0, 1.0), jnp.where(dark, 1.0, 0.0)], axis=1)

    images = jnp.asarray(digit_images / digit_images.reshape(8, -1).max(1)[:, None, None, None])  # max 1.0 each
    space = ConceptSpace([Axis("darkness", (0.0, 0.3, 0.6, 0.9)), Axis("blur", (0.0, 0.5, 1.0))])
    task = ClassificationTask(
        images=images, labels=jnp.zeros(8, jnp.int32), observations=jnp.zeros((8, 1)), space=space,
        perturb=perturbations.compose(["darkness", "blur"], [(0.0, 0.3, 0.6, 0.9), (0.0, 0.5, 1.0)]),
        oracle=Oracle(), info={},
    )
    rates = failure_landscape(task, batch_size=20)  # 2 actions per call, a padded last call
    expected = np.repeat([0.0, 0.0, 1.0, 1.0], 3)
    np.testing.assert_array_equal(rates, expected)


def test_landscape_is_saved_once_and_reused(tmp_path, digits_task):
    from fadejax.engine.ground_truth import failure_rates
    from fadejax.engine.build import build_task

    corner = parse_config({"space": {"axes": [{"name": "rotation", "values": [-20, 0]}, {"name": "darkness", "values": [0.0, 0.7]}]}})
    task = build_task(corner, oracle=digits_task.oracle, progress=False)
    calls = []

    def factory():
        calls.append(1)
        return task

    rates, stats, reused = load_or_compute(corner, tmp_path, factory, progress=False)
    assert not reused and calls == [1]
    np.testing.assert_allclose(rates, failure_rates(task, np.arange(4)))
    again, _, reused = load_or_compute(corner, tmp_path, factory, progress=False)
    assert reused and calls == [1]
    np.testing.assert_allclose(again, rates)
    changed = parse_config({"space": {"axes": [{"name": "rotation", "values": [0, 30]}]}})
    _, _, reused = load_or_compute(changed, tmp_path, lambda: __import__("fadejax.engine.build").engine.build.build_task(changed, progress=False), progress=False)
    assert not reused  # a different space is a different landscape


def test_landscape_command_writes_into_a_directory_discovery_can_then_use(tmp_path, capsys):
    config = tmp_path / "c.yaml"
    config.write_text(yaml.safe_dump({
        "name": "tiny",
        "space": {"axes": [{"name": "rotation", "values": [0, 45]}, {"name": "darkness", "values": [0.0, 0.8]}]},
        "searcher": {"kind": "dqn", "hidden_sizes": [16], "batch_size": 8, "min_replay": 8},
        "run": {"iterations": 2, "num_envs": 8},
    }))
    out = tmp_path / "run"
    assert main(["landscape", "--config", str(config), "--out", str(out), "--quiet"]) == 0
    stored = json.loads((out / GROUND_TRUTH_FILE).read_text())
    assert len(stored["failure_rates"]) == 4 and stored["statistics"]["held_out_samples"] == 540
    assert "4 actions x 540 held-out samples" in capsys.readouterr().out
    assert main(["discover", "--config", str(config), "--out", str(out), "--quiet"]) == 0
    assert records_path(out).is_file()


def test_landscape_record_into_another_runs_directory_is_refused_before_the_model_loads(tmp_path, capsys):
    """The directory is checked first: the config's model file does not exist, yet the
    refusal is about the directory (the model was never loaded), and nothing is written."""
    out = tmp_path / "other"
    out.mkdir()
    (out / "config.yaml").write_text(yaml.safe_dump(parse_config({"name": "other", "data": {"limit": 30}}).model_dump(mode="json")))
    config = tmp_path / "mine.yaml"
    config.write_text(yaml.safe_dump({"name": "mine", "model": {"source": "file", "architecture": "tiny_classifier:TinyRGB",
                                                                "weights": str(tmp_path / "absent.safetensors")}}))
    capsys.readouterr()
    assert main(["landscape", "--config", str(config), "--out", str(out), "--record", "--quiet"]) == 2
    err = capsys.readouterr().err
    assert "holds a run with different data, model or concept space" in err and "absent" not in err
    assert sorted(p.name for p in out.iterdir()) == ["config.yaml"]
