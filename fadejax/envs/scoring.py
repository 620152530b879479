"""What an agent found on a recorded environment, scored as Table 1 scores fadejax's searchers.

Two ways in, one scoring:

* :func:`score_ledger` — from an environment's ledger (``RecordedState.asked`` of every
  vectorised environment, ``ledger=True``): the pairs an agent asked while it learned;
* :func:`score_queries` — from a sequence of queries (a fadejax run's records).

Columns (``benchmarks/table1.py`` defines them the same way):

* ``distinct``   distinct failing (sample, cell) pairs found: the headline;
* ``re-asked``   share of the queries that asked a pair already asked;
* ``recall@10``  share of the report's 10 top-ranked cells that are truly top-10, the report
                 ranking the distinct answers by :func:`fadejax.analysis.estimates.cell_estimates`;
* ``count``      failing queries, re-asks included (the paper's count);
* ``queries``    how many queries the agent made.

The report's intervals (Table 1's ``coverage``) are not scored: an agent reports no intervals.
"""

from __future__ import annotations

import numpy as np

from fadejax.analysis import estimates


def score_ledger(asked: np.ndarray, queries: int, failing_queries: int, truth: np.ndarray, sizes: tuple[int, ...]) -> dict[str, float]:
    """Score the pairs an agent asked.

    Args:
      asked: ``(N, C)`` bool, or ``(E, N, C)`` for ``E`` environments (their union counts).
      queries: queries made in all (re-asks included).
      failing_queries: failing answers among them.
      truth: ``(N, C)`` bool, every recorded answer.
      sizes: the concept space's axis sizes (cell order).
    """
    asked = np.asarray(asked, bool)
    if asked.ndim == 3:
        asked = asked.any(axis=0)
    if asked.shape != truth.shape:
        raise ValueError(f"the ledger is {asked.shape}, the truth {truth.shape}: not the same environment")
    samples, cells = np.nonzero(asked)
    failed = truth[samples, cells]
    recall, _ = estimates.report_recall(samples, cells, failed, truth.mean(axis=0), sizes, truth.shape[0])
    return {"queries": float(queries), "distinct": float(failed.sum()),
            "re-asked": float(1.0 - samples.size / queries) if queries else 0.0,
            "recall@10": float(recall), "count": float(failing_queries)}


def score_queries(samples: np.ndarray, cells: np.ndarray, truth: np.ndarray, sizes: tuple[int, ...]) -> dict[str, float]:
    """Score a sequence of ``Q`` queries (``samples``, ``cells`` ``(Q,)`` int), each answered by ``truth``."""
    samples, cells = np.asarray(samples, np.int64), np.asarray(cells, np.int64)
    asked = np.zeros(truth.shape, bool)
    asked[samples, cells] = True
    return score_ledger(asked, int(samples.size), int(truth[samples, cells].sum()), truth, sizes)
