import numpy as np
import pytest

from fadejax.analysis import metrics


def test_counts_and_entropy_by_hand():
    assert metrics.failures_found(np.array([True, False, True, True])) == 3
    assert metrics.failure_entropy(np.array([2, 2, 2]), 4) == 0.0
    assert metrics.failure_entropy(np.array([0, 1, 2, 3]), 4) == pytest.approx(np.log(4))
    assert metrics.failure_entropy(np.array([0, 0, 1, 1]), 4) == pytest.approx(np.log(2))
    assert metrics.failure_entropy(np.array([], np.int64), 4) == 0.0


def test_recall_at_k_counts_ties_at_the_kth_true_value():
    truth = np.array([0.9, 0.5, 0.5, 0.1, 0.0])
    # True top-2 = {0} plus both cells tied at the 2nd value {1, 2}.
    assert metrics.recall_at_k(np.array([1.0, 0.0, 0.8, 0.0, 0.0]), truth, k=2) == 1.0
    assert metrics.recall_at_k(np.array([1.0, 0.0, 0.0, 0.9, 0.0]), truth, k=2) == 0.5
    assert metrics.recall_at_k(np.array([0.0, 0.0, 0.0, 0.9, 1.0]), truth, k=2) == 0.0
    with pytest.raises(ValueError, match="k=6"):
        metrics.recall_at_k(truth, truth, k=6)


def test_spearman_by_hand():
    truth = np.array([0.1, 0.2, 0.3, 0.4])
    assert metrics.spearman(np.array([1, 2, 3, 4]), truth) == pytest.approx(1.0)
    assert metrics.spearman(np.array([4, 3, 2, 1]), truth) == pytest.approx(-1.0)
    # d = rank differences (0, 0, 1, -1): rho = 1 - 6 * 2 / (4 * 15) = 0.8
    assert metrics.spearman(np.array([1, 2, 4, 3]), truth) == pytest.approx(0.8)
    assert np.isnan(metrics.spearman(np.zeros(4), truth))


def test_wasserstein_on_a_line_by_hand():
    # 1-D grid of 3 cells; truth all on cell 2; failures: half on 0, half on 2 -> move 0.5 mass by 2.
    truth = np.array([0.0, 0.0, 1.0])
    assert metrics.wasserstein_to_truth(np.array([0, 2]), truth, (3,)) == pytest.approx(1.0)
    assert metrics.wasserstein_to_truth(np.array([2, 2, 2]), truth, (3,)) == pytest.approx(0.0)
    # 2-D grid 2x2: failures on (0,0); truth on (1,1): distance sqrt(2).
    assert metrics.wasserstein_to_truth(np.array([0]), np.array([0, 0, 0, 0.5]), (2, 2)) == pytest.approx(np.sqrt(2))
