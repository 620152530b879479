"""Table 1 live vs on its recording, side by side in one run: time per searcher and the same counts.

    .venv/bin/python benchmarks/recorded_vs_live.py [--config configs/digits.yaml]
        [--recorded recordings/digits.npz] [--seeds 1] [--iterations 50] [--num-envs 256] [--searchers NAME,...]

Every Table 1 searcher (``benchmarks/table1.py``'s rows) runs the same seeds and budget three
ways, each compiled first (compilation excluded):

* live        the loop of Table 1, every query a call to the audited model;
* recorded    the same loop with the model replaced by the recording's lookup;
* fused       the recorded loop as one compiled program over all seeds (``fadejax.engine.fused``),
              for the searchers whose vmapped arithmetic is bitwise that of the plain loop
              (random, ε-greedy, posterior); the others' fused runs may drift late (see
              ``fadejax/engine/fused.py``) and are left out here.

Prints per searcher the seconds of each, the speed-up of the fastest recorded form over live,
and whether live and recorded found the same failures seed by seed; then the whole table's
totals, with and without the searchers whose own computation dominates. The ratio a recording
can give a searcher is bounded by (model + searcher) / searcher: it removes the model's cost,
not the searcher's.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parent))

import numpy as np  # noqa: E402

from fadejax.engine.config import load_config, parse_config  # noqa: E402
from fadejax.engine.fused import run_fused  # noqa: E402
from fadejax.engine.recording import replay  # noqa: E402
from fadejax.engine.checkpoints import build_discovery  # noqa: E402
from fadejax.engine.build import build_task  # noqa: E402
from table1 import SEARCHERS, run_searcher, warm_up  # noqa: E402

#: kinds whose fused (vmapped) runs make the plain loop's queries bitwise (tests/test_fused.py)
FUSED_EXACT = {"random", "greedy", "posterior"}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--config", default="configs/digits.yaml")
    parser.add_argument("--recorded", default="recordings/digits.npz")
    parser.add_argument("--seeds", type=int, default=1)
    parser.add_argument("--iterations", type=int, default=50)
    parser.add_argument("--num-envs", type=int, default=256)
    parser.add_argument("--searchers", help="comma-separated Table 1 row names (default: all)")
    args = parser.parse_args()

    config = load_config(args.config, [f"run.num_envs={args.num_envs}", f"run.iterations={args.iterations}"])
    recorded = replay(config, args.recorded)
    live = build_task(config, progress=True)
    rows = [r for r in SEARCHERS if not args.searchers or r[0] in {n.strip() for n in args.searchers.split(",")}]
    seeds = list(range(args.seeds))
    print(f"{len(rows)} searchers x {len(seeds)} seeds x {args.iterations * args.num_envs} queries; live model: {live.info.get('architecture', live.kind)}")
    print(f"{'searcher':<22} {'live s':>8} {'recorded s':>11} {'fused s':>8} {'speed-up':>9}  same failures")
    table = []
    with tempfile.TemporaryDirectory() as tmp:
        for name, searcher in rows:
            searcher_config = parse_config({**config.model_dump(mode="json"), "searcher": searcher})
            times, counts = {}, {}
            for label, task in (("live", live), ("recorded", recorded)):
                discovery = build_discovery(searcher_config, task)
                warm_up(discovery)
                runs = [run_searcher(discovery, seed, args.iterations, Path(tmp))[0] for seed in seeds]
                times[label] = sum(r.seconds for r in runs)
                counts[label] = [int(r.failed.sum()) for r in runs]
            fused_s = float("nan")
            if searcher["kind"] in FUSED_EXACT:
                discovery = build_discovery(searcher_config, recorded)
                run_fused(discovery, seeds, args.iterations)  # compile
                began = time.perf_counter()
                result = run_fused(discovery, seeds, args.iterations)
                fused_s = time.perf_counter() - began
                assert result.total_failures.tolist() == counts["recorded"], (name, result.total_failures, counts["recorded"])
            best = np.nanmin([times["recorded"], fused_s])
            same = counts["live"] == counts["recorded"]
            table.append((name, times["live"], times["recorded"], fused_s, best, same))
            print(f"{name:<22} {times['live']:8.2f} {times['recorded']:11.3f} {fused_s:8.3f} {times['live'] / best:8.0f}x  "
                  f"{'yes' if same else 'NO: ' + str(counts)}", flush=True)

    live_total = sum(t[1] for t in table)
    best_total = sum(t[4] for t in table)
    print(f"\nwhole table: live {live_total:.1f} s, recorded {best_total:.2f} s: {live_total / best_total:.1f}x")
    heavy = [t for t in table if t[4] > 0.1 * t[1]]  # a searcher whose own work is over a tenth of its live time
    if heavy:
        rest_live = live_total - sum(t[1] for t in heavy)
        rest_best = best_total - sum(t[4] for t in heavy)
        print(f"without {', '.join(t[0] for t in heavy)} (their own computation is over a tenth of their live time): "
              f"live {rest_live:.1f} s, recorded {rest_best:.2f} s: {rest_live / max(rest_best, 1e-9):.0f}x")
    print(f"live and recorded found the same failures for {sum(t[5] for t in table)} of {len(table)} searchers, every seed")


if __name__ == "__main__":
    main()
