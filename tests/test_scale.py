"""Million-action spaces: the factored head searches them, summaries stay views, modes are re-evaluated."""


import numpy as np
import pytest

from fadejax.engine.config import load_config
from fadejax.engine.ground_truth import LandscapeTooLarge, failure_landscape
from fadejax.core.landscapes import top_k_separable
from fadejax.stages.discover import discover
from fadejax.stages.summarize import load_summary
from fadejax.engine.store.records import read_records, records_path

OVERRIDES = ["data.limit=60", "searcher.hidden_sizes=[32]", "searcher.batch_size=64", "searcher.min_replay=64",
             "run.iterations=4", "run.num_envs=64", "run.checkpoint_every=2"]


@pytest.fixture(scope="module")
def million_task(digits_task):
    from fadejax.engine.build import build_task

    return build_task(load_config("configs/digits_million.yaml", OVERRIDES), oracle=digits_task.oracle, progress=False)


@pytest.fixture(scope="module")
def million_run(tmp_path_factory, digits_task):
    config = load_config("configs/digits_million.yaml", OVERRIDES)
    assert config.concept_space().num_actions == 10**6
    out = tmp_path_factory.mktemp("million") / "run"
    summary = discover(config, out, oracle=digits_task.oracle, progress=False)
    return config, out, summary


def test_a_million_action_run_records_every_query(million_run):
    config, out, summary = million_run
    records = list(read_records(records_path(out)))
    assert summary.queries == len(records) == 4 * 64
    space = config.concept_space()
    for r in records[:20]:  # records name cells of the full space and decode to their concepts
        assert 0 <= r["cell"] < 10**6 and r["concepts"] == space.describe(r["cell"])


def test_a_million_action_summary_is_a_view_with_re_evaluated_modes(million_run, million_task):
    config, out, _ = million_run
    summary = load_summary(out, keep=[0, 1, 2], fixed={5: 0}, top=3, task=million_task)
    assert summary.view_visits.shape == (10, 10, 10) and summary.pooled == 100  # axes 3, 4 pooled; noise sliced
    assert summary.view_policy_mean.shape == (10, 10, 10)
    # P(view point | s) with the noise axis fixed: the mass of that slice, at most 1
    assert 0 < summary.view_policy_mean.sum() <= 1 + 1e-5
    assert len(summary.policy_modes) == 3
    scores = [m["mean_score"] for m in summary.policy_modes]
    assert scores == sorted(scores, reverse=True)
    for mode in summary.modes + summary.policy_modes:  # each reported mode re-evaluated on all held-out digits
        assert 0.0 <= mode["true_rate"] <= 1.0 and len(mode["concepts"]) == 6
        assert mode["true_rate"] * 60 == pytest.approx(round(mode["true_rate"] * 60))  # a share of the 60 audited digits


def test_the_exhaustive_landscape_refuses_a_million_actions_with_a_reason(million_task):
    with pytest.raises(LandscapeTooLarge, match="summarize instead"):
        failure_landscape(million_task)


@pytest.mark.parametrize("sizes", [(4,), (3, 5), (2, 3, 4), (5, 1, 6, 2)])
def test_top_k_of_a_separable_score_matches_brute_force(sizes):
    rng = np.random.default_rng(sum(sizes))
    terms = [rng.normal(size=n) for n in sizes]
    total = sum(np.meshgrid(*terms, indexing="ij")).ravel()
    k = min(7, total.size)
    cells, scores = top_k_separable(terms, k)
    np.testing.assert_allclose(scores, np.sort(total)[::-1][:k])
    np.testing.assert_array_equal(np.ravel_multi_index(cells.T, sizes), np.argsort(-total, kind="stable")[:k])
