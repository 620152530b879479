"""Reading a run's records: columns (records.arrow), Arrow's JSON parser and line by line, side by side.

    .venv/bin/python benchmarks/records_read.py [--iterations 200] [--num-envs 2048] [--repeat 3]

Writes a run's records with the engine's writers, once as columns (``records.arrow``) and
once as JSON lines (``records.jsonl``) (a classifier audit's columns on
the embedded default's 125-cell space, as ``benchmarks/records_speed.py`` does; 200
iterations of 2,048 queries: 409,600 records, about 110 MB), then times the three readers
that read every record, each with its Arrow path (``fadejax.engine.store.record_columns``) and with it
switched off (``json.loads`` on each line, the reference): ``summarize``'s statistics and
examples, ``compare``'s queries and ``cell_statistics`` (top cells, ``restructure``).
The three alternate; the best of ``--repeat`` runs of each is printed in seconds, with the
ratios and whether all gave the same arrays and examples. Last, the columnar file against
the same table as Parquet (written when a run completes, if that read faster): sizes, and
the seconds to read the columns the readers use.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parent))

import numpy as np  # noqa: E402

import fadejax.engine.store.records as records  # noqa: E402
from fadejax.stages import compare, summarize  # noqa: E402
from fadejax.engine.config import parse_config  # noqa: E402
from records_speed import NAMES, outcome  # noqa: E402
import pyarrow.parquet as pq  # noqa: E402

from fadejax.engine.store.arrow_records import read_arrow_records  # noqa: E402

READERS = {
    "summarize": (summarize, "_read_records", lambda run: (run, 125, 5)),
    "compare": (compare, "_queries_of", lambda run: (run,)),
    "cell_statistics": (records, "cell_statistics", lambda run: (records.records_path(run),)),
}


def same(a, b) -> bool:
    if isinstance(a, np.ndarray):
        return a.dtype == b.dtype and np.array_equal(a, b)
    if isinstance(a, (tuple, list)):
        return len(a) == len(b) and all(same(x, y) for x, y in zip(a, b))
    if isinstance(a, dict):
        return list(a) == list(b) and all(same(a[k], b[k]) for k in a)
    return a == b


def timed(module, function: str, args: tuple, arrow: bool) -> tuple[float, object]:
    original = module.read_columns
    if not arrow:
        module.read_columns = lambda *_: None
    try:
        began = time.perf_counter()
        result = getattr(module, function)(*args)
        return time.perf_counter() - began, result
    finally:
        module.read_columns = original


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--iterations", type=int, default=200)
    parser.add_argument("--num-envs", type=int, default=2048)
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    space = parse_config({}).concept_space()
    rng = np.random.default_rng(0)
    with tempfile.TemporaryDirectory() as tmp:
        run, columnar = Path(tmp) / "lines", Path(tmp) / "columns"
        run.mkdir()
        columnar.mkdir()
        writer = records.RecordWriter(run / records.RECORDS_FILE, space, "macro", names=NAMES)
        columns = records.ArrowRecordWriter(columnar / records.ARROW_RECORDS_FILE, space, "macro", names=NAMES)
        for iteration in range(args.iterations):
            out = outcome(args.num_envs, rng)
            writer.write(iteration, out)
            columns.write(iteration, out)
        writer.close()
        columns.close()
        size = (run / records.RECORDS_FILE).stat().st_size
        arrow_size = (columnar / records.ARROW_RECORDS_FILE).stat().st_size
        print(f"{args.iterations * args.num_envs:,} records, {size / 1e6:.0f} MB as JSON lines, {arrow_size / 1e6:.1f} MB as columns")
        print(f"{'reader':>16} {'columns s':>10} {'json arrow s':>13} {'line by line s':>15} {'json arrow / columns':>21} {'lines / columns':>16}  same")
        for name, (module, function, arguments) in READERS.items():
            direct, fast, slow, agree = [], [], [], True
            for _ in range(args.repeat):
                _cold()
                seconds, c = timed(module, function, arguments(columnar), arrow=True)
                direct.append(seconds)
                seconds, a = timed(module, function, arguments(run), arrow=True)
                fast.append(seconds)
                seconds, b = timed(module, function, arguments(run), arrow=False)
                slow.append(seconds)
                agree = agree and same(a, b) and same(a, c)
            print(f"{name:>16} {min(direct):>10.2f} {min(fast):>13.2f} {min(slow):>15.2f} {min(fast) / min(direct):>21.1f} "
                  f"{min(slow) / min(direct):>16.1f}  {agree}")
        parquet = Path(tmp) / "records.parquet"
        table = read_arrow_records(columnar / records.ARROW_RECORDS_FILE).table
        pq.write_table(table, parquet)
        wanted = ["iteration", "sample", "cell", "failed"]
        ipc_s, parquet_s = [], []
        for _ in range(args.repeat):
            _cold()
            began = time.perf_counter()
            read_arrow_records(columnar / records.ARROW_RECORDS_FILE).table.select(wanted)
            ipc_s.append(time.perf_counter() - began)
            began = time.perf_counter()
            pq.read_table(parquet, columns=wanted)
            parquet_s.append(time.perf_counter() - began)
        print(f"Parquet: {parquet.stat().st_size / 1e6:.1f} MB; reading {', '.join(wanted)}: columns (validated) {min(ipc_s):.3f} s, "
              f"Parquet {min(parquet_s):.3f} s")


def _cold() -> None:
    """Forget the columnar reader's cached file, so each timing reads it."""
    from fadejax.engine.store.arrow_records import _read_cached

    _read_cached.cache_clear()


if __name__ == "__main__":
    main()
