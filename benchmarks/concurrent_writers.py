"""Two, four and eight writers started at once on one run directory: how many ran, how many
were refused and how, and whether the finished records equal a lone run's (issue: one writer
per run directory). Real processes, the shipped recording (no model).

    .venv/bin/python benchmarks/concurrent_writers.py [--writers 2 4 8] [--iterations 300]
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from fadejax.engine.store.records import read_records, records_path  # noqa: E402


def argv(out: Path, iterations: int, envs: int) -> list[str]:
    return [sys.executable, "-m", "fadejax.cli", "discover", "--config", "configs/digits.yaml", "--out", str(out), "--quiet",
            "--set", "recording=recordings/digits.npz", "--set", f"run.iterations={iterations}", "--set", f"run.num_envs={envs}"]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--writers", type=int, nargs="+", default=[2, 4, 8])
    parser.add_argument("--iterations", type=int, default=300)
    parser.add_argument("--envs", type=int, default=64)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as scratch:
        lone = Path(scratch) / "lone"
        subprocess.run(argv(lone, args.iterations, args.envs), cwd=ROOT, check=True, capture_output=True)
        reference = records_path(lone).read_bytes()
        print("| writers | ran (exit 0) | refused naming the holder | refused: run already complete | other | rows | distinct (iteration, env) | equal to a lone run | seconds |")
        print("|---|---|---|---|---|---|---|---|---|")
        for count in args.writers:
            out = Path(scratch) / f"run{count}"
            began = time.perf_counter()
            processes = [subprocess.Popen(argv(out, args.iterations, args.envs), cwd=ROOT, stdout=subprocess.DEVNULL,
                                          stderr=subprocess.PIPE, text=True) for _ in range(count)]
            outcomes = Counter()
            for process in processes:
                _, err = process.communicate()
                if process.returncode == 0:
                    outcomes["ran"] += 1
                elif process.returncode == 2 and "is being written by process" in err:
                    outcomes["holder"] += 1
                elif process.returncode == 2 and "already holds this run" in err:
                    outcomes["complete"] += 1
                else:
                    outcomes["other"] += 1
            seconds = time.perf_counter() - began
            rows = [(r["iteration"], r["env"]) for r in read_records(records_path(out))]
            same = records_path(out).read_bytes() == reference
            print(f"| {count} | {outcomes['ran']} | {outcomes['holder']} | {outcomes['complete']} | {outcomes['other']} | {len(rows)} "
                  f"| {len(set(rows))} | {'yes' if same else 'NO'} | {seconds:.1f} |")


if __name__ == "__main__":
    main()
