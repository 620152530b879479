"""Files someone else wrote, fuzzed: a run directory's config, its records, a modes.json, a
ground-truth file and a recording each give a correct result or one clear error, never a
traceback, and reading never writes."""

import json
from pathlib import Path

import numpy as np
import pytest
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from fadejax.engine.config import parse_config
from fadejax.engine.ground_truth import GroundTruthError, landscape_key, read_ground_truth
from fadejax.engine.recording import RecordingError, load_recording
from fadejax.engine.store.records import RecordsError, cell_statistics, top_observed_cells
from fadejax.stages.summarize import SummarizeError, _read_records, read_modes_file, read_run_config

FUZZ = settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
CONFIG = parse_config({})
NUM_ACTIONS = CONFIG.concept_space().num_actions

json_values = st.recursive(
    st.none() | st.booleans() | st.integers(min_value=-(2**70), max_value=2**70) | st.floats(allow_nan=True, allow_infinity=True) | st.text(max_size=12),
    lambda children: st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=8), children, max_size=4),
    max_leaves=12,
)
VALID_RECORD = {"iteration": 0, "env": 0, "sample": 3, "action": 7, "cell": 7, "concepts": {}, "reward": 0.5, "failed": True}


def _record_lines():
    """A valid record, a mutated one, or arbitrary bytes, as one line."""
    mutated = st.builds(lambda key, value: json.dumps({**VALID_RECORD, key: value}, allow_nan=True).encode(),
                        st.sampled_from(sorted(VALID_RECORD)), json_values)
    return st.one_of(st.just(json.dumps(VALID_RECORD).encode()), mutated, st.binary(max_size=40).filter(lambda b: b"\n" not in b))


def _snapshot(directory: Path) -> dict:
    return {p.name: p.read_bytes() for p in sorted(directory.iterdir())}


@FUZZ
@given(lines=st.lists(_record_lines(), min_size=1, max_size=6), cut=st.booleans())
def test_records_files_read_or_name_the_bad_line(tmp_path_factory, lines, cut):
    run = tmp_path_factory.mktemp("run")
    data = b"\n".join(lines) + (b"" if cut else b"\n")
    (run / "records.jsonl").write_bytes(data)
    before = _snapshot(run)
    for read in (lambda: _read_records(run, NUM_ACTIONS, 3), lambda: cell_statistics(run / "records.jsonl"),
                 lambda: top_observed_cells(run / "records.jsonl", 3)):
        try:
            read()
        except (SummarizeError, RecordsError) as error:
            assert "records.jsonl" in str(error)
    assert _snapshot(run) == before


@FUZZ
@given(document=json_values | st.builds(lambda modes: {"modes": modes}, json_values))
def test_a_modes_file_gives_its_cells_or_one_clear_error(tmp_path_factory, document):
    path = tmp_path_factory.mktemp("modes") / "modes.json"
    path.write_text(json.dumps(document, allow_nan=True))
    try:
        cells = read_modes_file(path, CONFIG)
    except SummarizeError as error:
        assert "modes" in str(error)
    else:
        assert all(0 <= c < NUM_ACTIONS for c in cells)
        assert cells == [m["cell"] for m in document["modes"]]


@FUZZ
@given(raw=st.binary(max_size=64))
def test_a_modes_file_of_any_bytes_is_refused_clearly(tmp_path_factory, raw):
    path = tmp_path_factory.mktemp("modes") / "modes.json"
    path.write_bytes(raw)
    try:
        read_modes_file(path, CONFIG)
    except SummarizeError as error:
        assert "--modes-file" in str(error)


KEY = landscape_key(CONFIG)


@FUZZ
@given(document=json_values | st.fixed_dictionaries(
    {"key": st.just(KEY) | st.text(max_size=4), "statistics": json_values, "failure_rates": json_values | st.lists(st.floats(), min_size=NUM_ACTIONS, max_size=NUM_ACTIONS)}))
def test_a_ground_truth_file_gives_its_rates_or_one_clear_error(tmp_path_factory, document):
    path = tmp_path_factory.mktemp("truth") / "ground_truth.json"
    path.write_text(json.dumps(document, allow_nan=True))
    try:
        stored = read_ground_truth(path, KEY, NUM_ACTIONS)
    except GroundTruthError as error:
        assert "ground_truth.json" in str(error)
    else:
        if stored is not None:
            rates, _ = stored
            assert rates.shape == (NUM_ACTIONS,) and np.all((rates >= 0) & (rates <= 1))


@FUZZ
@given(raw=st.binary(max_size=200))
def test_a_recording_of_any_bytes_is_refused_clearly(tmp_path_factory, raw):
    path = tmp_path_factory.mktemp("rec") / "recording.npz"
    path.write_bytes(raw)
    with pytest.raises(RecordingError, match="recording"):
        load_recording(path)


@FUZZ
@given(arrays=st.dictionaries(st.sampled_from(["failed", "reward", "observations", "meta", "micro_base", "other"]),
                              st.sampled_from([np.zeros(3), np.ones((2, 125), bool), np.array("x"), np.array(["{}"]), np.zeros((0,))]), max_size=5))
def test_a_recording_with_wrong_arrays_is_refused_clearly(tmp_path_factory, arrays):
    path = tmp_path_factory.mktemp("rec") / "recording.npz"
    np.savez(path, **arrays)
    with pytest.raises(RecordingError, match="recording"):
        load_recording(path)


@FUZZ
@given(document=st.dictionaries(st.sampled_from(["task", "name", "mode", "model", "space", "searcher", "run", "data", "text"]), json_values, max_size=5)
       | json_values)
def test_a_run_directorys_config_opens_or_is_refused_in_one_clear_error(tmp_path_factory, document):
    run = tmp_path_factory.mktemp("run")
    (run / "config.yaml").write_text(yaml.safe_dump(json.loads(json.dumps(document, allow_nan=True)), allow_unicode=True))
    before = _snapshot(run)
    try:
        config = read_run_config(run)  # never trusted here: a task or class by import path is refused, not imported
    except SummarizeError as error:
        assert str(run) in str(error) or "config" in str(error)
    else:
        assert config.concept_space().num_actions >= 1
    assert _snapshot(run) == before


@FUZZ
@given(raw=st.binary(max_size=120))
def test_a_run_directorys_config_of_any_bytes_is_refused_clearly(tmp_path_factory, raw):
    run = tmp_path_factory.mktemp("run")
    (run / "config.yaml").write_bytes(raw)
    try:
        read_run_config(run)
    except SummarizeError as error:
        assert "config" in str(error) or str(run) in str(error)
