"""The honest end-to-end check on the embedded default, scored against the exhaustive truth.

Criterion: after a short discovery run with the default searcher (20 iterations x 256
queries = 5,120 queries, 8% of the 67,500 an exhaustive sweep costs), its greedy choice for
every held-out sample is taken, and
  (a) at least half of those choices lie in the true top-10% cells (the 13 worst of 125;
      any cell as bad as the 13th counts), and
  (b) the mean true failure rate of the chosen cells is at least twice the landscape mean.
A uniformly random searcher puts ~10% of its choices in the top 10% and matches the
landscape mean, so it fails both; the test checks that too.
"""

import numpy as np

from fadejax.engine.config import parse_config
from fadejax.engine.ground_truth import landscape_statistics
from fadejax.stages.discover import discover
from fadejax.engine.checkpoints import build_discovery, load_latest_state


def _top_cells(rates: np.ndarray, share: float = 0.10) -> np.ndarray:
    k = int(round(share * rates.size))
    threshold = np.sort(rates)[::-1][k - 1]
    return np.flatnonzero(rates >= threshold)


def _criterion(choices: np.ndarray, rates: np.ndarray) -> tuple[float, float, bool]:
    in_top = float(np.isin(choices, _top_cells(rates)).mean())
    lift = float(rates[choices].mean() / rates.mean())
    return in_top, lift, in_top >= 0.5 and lift >= 2.0


def test_the_embedded_default_fails_somewhere_but_not_everywhere(ground_truth, digits_task):
    stats = landscape_statistics(ground_truth, digits_task.space)
    assert digits_task.info["clean_accuracy"] > 0.95  # a good model on clean held-out digits
    # The CNN is trained on the machine that runs this, and CPUs with different float kernels
    # train slightly different models (measured: mean 21% on an Intel Xeon, 32% on an AMD EPYC),
    # so the bounds state the property, not one machine's numbers.
    assert stats["mean_failure_rate"] <= 0.40  # most of the landscape works
    assert stats["worst_failure_rate"] >= 0.75  # the worst cells fail most of the time
    assert stats["worst_failure_rate"] >= 2 * stats["mean_failure_rate"]  # failures are concentrated
    assert 0.02 <= stats["share_of_cells_above_50pct"] <= 0.35


def test_short_discovery_concentrates_greedy_choices_on_the_truly_worst_cells(tmp_path, digits_task, ground_truth):
    config = parse_config({"run": {"iterations": 20}})
    discover(config, tmp_path / "run", oracle=digits_task.oracle, progress=False)
    # Rebuild the trained searcher from the run's final checkpoint and ask it greedily.
    discovery = build_discovery(config, digits_task)
    state = load_latest_state(tmp_path / "run", discovery)
    choices = np.asarray(discovery.searcher.greedy(state.searcher, digits_task.observations))
    in_top, lift, passed = _criterion(choices, ground_truth)
    print(f"greedy choices in the true top 10%: {in_top:.0%}; mean true failure rate {lift:.2f}x the landscape mean")
    assert passed, f"only {in_top:.0%} of greedy choices in the true top 10% (lift {lift:.2f}x)"

    random_choices = np.random.default_rng(0).integers(0, ground_truth.size, size=choices.size)
    r_in_top, r_lift, r_passed = _criterion(random_choices, ground_truth)
    assert not r_passed, f"a random searcher met the criterion ({r_in_top:.0%}, {r_lift:.2f}x)"
