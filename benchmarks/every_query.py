"""Every query counts: the default searcher against the truth table's bounds, on the shipped recordings.

    .venv/bin/python benchmarks/every_query.py [--seeds 5] [--set FIELD=VALUE ...]

For each shipped recording (embedded default, second image audit: 12,800 queries; text
audit: 2,560), runs the config's searcher through the fused recorded loop (the same loop,
searcher and rewards as ``fadejax discover``) for every seed and prints, mean ± 95% CI:
distinct failing (sample, cell) pairs and their ratio to the *additive-known bound* (the
pairs a searcher knowing the best additive logistic model of the table would ask first),
the share of re-asked queries, recall@10 of the report's top 10, and the coverage of the
report's 95% intervals over the true top-10 cells. ``--set`` overrides config fields of
every audit (e.g. ``searcher.fresh_pairs=false``). Table 1 (``benchmarks/table1.py``)
scores every searcher the same way; this is the quick check of one setting.
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import numpy as np  # noqa: E402

from fadejax.analysis import estimates, metrics  # noqa: E402
from fadejax.engine.config import load_config  # noqa: E402
from fadejax.engine.fused import run_fused  # noqa: E402
from fadejax.engine.recording import replay  # noqa: E402
from fadejax.engine.checkpoints import build_discovery  # noqa: E402

AUDITS = [  # (name, config, recording, iterations, environments)
    ("embedded default", "configs/digits.yaml", "recordings/digits.npz", 50, 256),
    ("second image audit", "configs/digits_lenet.yaml", "recordings/digits_lenet.npz", 50, 256),
    ("text audit", "configs/summarize.yaml", "recordings/summarize.npz", 40, 64),
]


def score(task, samples: np.ndarray, cells: np.ndarray, failed: np.ndarray, drawn: np.ndarray | None) -> dict[str, float]:
    table = task.recording.failed
    truth = table.mean(axis=0)
    n, a = table.shape
    est = estimates.cell_estimates(samples, cells, failed, n, task.space.sizes, drawn=drawn)
    lower, upper = np.full(a, np.nan), np.full(a, np.nan)
    lower[est.cells], upper[est.cells] = est.lower, est.upper
    return {
        "distinct": metrics.distinct_failing_pairs(samples, cells, failed, a),
        "re-asked": metrics.reasked_share(samples, cells, a),
        "recall@10": metrics.recall_at_k(est.dense(a), truth, min(10, a)),
        "coverage": metrics.interval_coverage(lower, upper, truth, min(10, a)),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, default=5)
    parser.add_argument("--set", dest="overrides", action="append", default=[], metavar="FIELD=VALUE")
    parser.add_argument("--audit", nargs=3, action="append", metavar=("NAME", "CONFIG", "RECORDING"),
                        help="score this audit instead of the shipped ones (12,800 queries; repeatable), e.g. the held-out "
                             "configs in benchmarks/heldout/ recorded with fadejax landscape --record")
    args = parser.parse_args()
    audits = [(name, config, recording, 50, 256) for name, config, recording in args.audit] if args.audit else AUDITS
    for name, config_path, recording, iterations, envs in audits:
        config = load_config(ROOT / config_path, [f"recording={ROOT / recording}", f"run.iterations={iterations}",
                                                  f"run.num_envs={envs}", *args.overrides])
        task = replay(config, config.recording)
        result = run_fused(build_discovery(config, task), list(range(args.seeds)), iterations, keep_queries=True)
        rows = [score(task, *result.queries(i), result.drawn_queries(i)) for i in range(args.seeds)]
        budget = iterations * envs
        bound = int(task.recording.failed.ravel()[metrics.additive_known_order(task.recording.failed)[:budget]].sum())
        cells = {k: metrics.mean_ci([r[k] for r in rows]) for k in rows[0]}
        text = ", ".join(f"{k} {m:.3f} ± {h:.3f}" if k != "distinct" else f"{k} {m:.0f} ± {h:.0f}" for k, (m, h) in cells.items())
        print(f"{name} ({budget} queries, {args.seeds} seeds): {text}; additive-known bound {bound} "
              f"(ratio {cells['distinct'][0] / bound:.3f}); oracle {min(budget, int(task.recording.failed.sum()))}")


if __name__ == "__main__":
    main()
