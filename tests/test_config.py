import pytest
import yaml

from fadejax.engine.config import ConfigError, load_config, parse_config


def test_an_empty_config_is_the_embedded_default():
    config = parse_config({})
    assert config.mode == "macro"
    assert config.concept_space().num_actions == 125
    assert config.searcher["kind"] == "posterior"  # the engine's default searcher (benchmarks/RESULTS.md)
    assert parse_config({"mode": "micro"}).searcher["kind"] == "posterior_walk"  # walks planned on the same model
    paper = parse_config({"searcher": {"kind": "dqn"}}).searcher_config()
    assert paper.epsilon_start == 1.0 and paper.epsilon_end == 0.6  # the paper's schedule, unless a preset says otherwise


def test_the_shipped_config_loads_and_resolves_every_field():
    config = load_config("configs/digits.yaml")
    resolved = yaml.safe_load(config.to_yaml())
    assert resolved["searcher"]["kind"] == "posterior" and "identify_fraction" in resolved["searcher"]
    assert parse_config(resolved) == config  # the resolved form round-trips


@pytest.mark.parametrize(
    "data, expected",
    [
        ({"run": {"iteratons": 5}}, "run.iteratons: unknown field; allowed here: ['checkpoint_every', 'devices', 'iterations', 'landscape_every', 'num_envs', 'pipeline', 'records', 'seed', 'tensorboard', 'wandb']"),
        ({"mode": "nano"}, "mode: Input should be 'macro' or 'micro'"),
        ({"space": {"axes": [{"name": "haze", "values": [0, 1]}]}}, "unknown perturbation 'haze'; registered:"),
        ({"space": {"axes": [{"name": "rotation", "values": [0, 200]}]}}, "rotation values [200.0] are outside the allowed range [-180.0, 180.0]"),
        ({"space": {"axes": [{"name": "blur", "values": [1.0]}]}}, "space.axes.0.values: List should have at least 2 items"),
        ({"space": {"axes": [{"name": "blur", "values": [1, 2]}, {"name": "blur", "values": [1, 3]}]}}, "repeated: ['blur']"),
        ({"searcher": {"kind": "ppo"}}, "unknown searcher kind 'ppo'; registered: ['bayes', 'bootstrapped', 'cem', 'dqn', 'greedy', 'posterior', 'posterior_walk', 'random', 'reinforce', 'thompson', 'threshold', 'ucb']"),
        ({"searcher": {"kind": "dqn", "learning_rte": 0.1}}, "searcher.learning_rte: unknown field for searcher 'dqn'; its fields: ['batch_size', "),
        ({"searcher": {"kind": "random", "identify_fraction": 0.3}}, "searcher.identify_fraction: unknown field for searcher 'random'; its fields: ['kind']"),
        ({"searcher": {"top_k": 5, "sample_candidates": 4, "sweeps": 2, "tpo": 1}}, "searcher.tpo: unknown field for searcher 'posterior'; its fields: ['axis_prior_std', "),
        ({"searcher": {"kind": "dqn", "learning_rate": -1}}, "learning_rate"),
        ({"run": {"num_envs": 0}}, "run.num_envs: Input should be greater than 0"),
        ({"mode": "micro", "micro": {"start": [0, 0, 9]}}, "micro start index 9 for axis 'blur' is outside 0..4"),
        ({"data": {"source": "npz"}}, "needs data.path"),
        ({"model": {"source": "file", "weights": "w.pt", "architecture": "Net"}}, "must be 'package.module:Class'"),
    ],
)
def test_wrong_fields_fail_at_load_time_naming_the_field_and_what_is_allowed(data, expected):
    with pytest.raises(ConfigError) as info:
        parse_config(data, source="x.yaml")
    assert expected in str(info.value)
    assert str(info.value).startswith("x.yaml")


def test_overrides_apply_dotted_paths(tmp_path):
    path = tmp_path / "c.yaml"
    path.write_text("name: small\nrun: {iterations: 10}\n")
    config = load_config(path, ["run.iterations=3", "searcher.kind=dqn", "searcher.hidden_sizes=[8, 8]", "mode=micro"])
    assert config.run.iterations == 3 and config.searcher["hidden_sizes"] == [8, 8] and config.mode == "micro"


def test_missing_and_malformed_files_are_reported(tmp_path):
    with pytest.raises(ConfigError, match="does not exist"):
        load_config(tmp_path / "nope.yaml")
    bad = tmp_path / "bad.yaml"
    bad.write_text("run: [unclosed\n")
    with pytest.raises(ConfigError, match="not valid YAML"):
        load_config(bad)
    listy = tmp_path / "list.yaml"
    listy.write_text("- 1\n- 2\n")
    with pytest.raises(ConfigError, match="must be a mapping"):
        load_config(listy)
