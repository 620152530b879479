"""The recordings shipped in ``recordings/`` replay the shipped configs they were made
from, so Table 1 on a recording gives the same figures on every machine."""

from pathlib import Path

import numpy as np
import pytest

from fadejax.engine.config import load_config
from fadejax.engine.ground_truth import landscape_key
from fadejax.engine.recording import load_recording

ROOT = Path(__file__).resolve().parents[1]
SHIPPED = {"digits.npz": "configs/digits.yaml", "digits_lenet.npz": "configs/digits_lenet.yaml", "summarize.npz": "configs/summarize.yaml"}


@pytest.mark.parametrize("name", sorted(SHIPPED))
def test_each_shipped_recording_fits_its_config_and_holds_a_landscape(name):
    config = load_config(ROOT / SHIPPED[name])
    recording = load_recording(ROOT / "recordings" / name, expect_key=landscape_key(config))
    assert recording.num_actions == config.concept_space().num_actions
    assert recording.observations.shape[0] == recording.num_samples
    rates = recording.failure_rates()
    assert 0.0 < rates.mean() < 0.5 and rates.max() > 0.5  # models that fail somewhere, not everywhere
    assert np.isfinite(recording.reward).all()


def test_the_micro_config_replays_the_default_recording():
    config = load_config(ROOT / "configs/digits_micro.yaml")
    load_recording(ROOT / "recordings/digits.npz", expect_key=landscape_key(config))
