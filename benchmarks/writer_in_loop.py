"""What the record writer costs inside the discovery loop, piece by piece, side by side.

    .venv/bin/python benchmarks/writer_in_loop.py [--config configs/digits_lenet.yaml] [--num-envs 256]
        [--searcher random] [--rounds 7]

The same discovery loop (:func:`fadejax.stages.discover.iterate`, no learning log) runs with four
writers in turn, each round once each, then the audited model alone on the round's inputs:

* ``none``: no records at all (the loop's own ceiling);
* ``thread, discarding``: the background writer's thread and queue, each iteration dropped
  unread (what handing over to a thread costs);
* ``thread, fetching``: the thread copies each iteration's columns to the host and writes
  nothing (what the fetch costs);
* ``writer``: :class:`fadejax.engine.store.records.BackgroundRecordWriter` as discovery uses it (fetch,
  format, write).

Prints each one's median queries per second and its ratio to the model alone. On a CPU the
differences between rows are what the records cost the loop on the cores the model uses.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parent))

import jax  # noqa: E402

from fadejax.engine.store.records import BackgroundRecordWriter, RecordWriter  # noqa: E402
from fadejax.stages.discover import iterate
from fadejax.engine.checkpoints import build_discovery  # noqa: E402
from fadejax.searchers import REGISTRY as SEARCHERS  # noqa: E402
from fadejax.engine.build import build_task  # noqa: E402
from throughput import load  # noqa: E402


class NoRecords:
    """A writer that takes every iteration and does nothing."""

    def write(self, *args, **kwargs) -> None:
        pass

    def drain(self) -> None:
        pass

    def close(self) -> None:
        pass


class FetchOnly(RecordWriter):
    """Fetches (the background writer does that before this is called) and writes nothing."""

    def write_many(self, iterations) -> None:
        pass


class Discarding(BackgroundRecordWriter):
    """The background thread and queue, every iteration dropped unread."""

    def _hold(self, *args) -> None:
        pass


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--config", default="configs/digits_lenet.yaml")
    parser.add_argument("--num-envs", type=int, default=256)
    parser.add_argument("--searcher", choices=sorted(SEARCHERS), default="random",
                        help="replace the config's searcher by this one's defaults (random: the loop without a learner's cost)")
    parser.add_argument("--queries-per-round", type=int, default=16384)
    parser.add_argument("--rounds", type=int, default=7)
    args = parser.parse_args()

    iterations = max(4, args.queries_per_round // args.num_envs)
    config = load(args.config, args.searcher, [f"run.num_envs={args.num_envs}", f"run.iterations={iterations * (4 * args.rounds + 8)}"])
    task = build_task(config, progress=False)
    owner, attribute = config.audit.audited_model(task)
    model = getattr(owner, attribute)
    captured: list = []

    def recording_model(batch):
        captured.append(batch)
        return model(batch)

    setattr(owner, attribute, recording_model)
    discovery = build_discovery(config, task)
    state = discovery.init(config.run.seed)
    with tempfile.TemporaryDirectory() as tmp:
        def writer(cls, name):
            return cls(Path(tmp) / name, task.space, config.mode, names=getattr(task, "record_names", None))

        writers = {
            "none": NoRecords(),
            "thread, discarding": Discarding(writer(RecordWriter, "discarded.jsonl")),
            "thread, fetching": BackgroundRecordWriter(writer(FetchOnly, "fetched.jsonl")),
            "writer": BackgroundRecordWriter(writer(RecordWriter, "records.jsonl")),
        }

        def loop(state, records):
            stop = int(state.iteration) + iterations
            began = time.perf_counter()
            for _, state, _ in iterate(discovery, state, records, stop):
                pass
            jax.block_until_ready(state)
            records.drain()
            return state, iterations * args.num_envs / (time.perf_counter() - began)

        for records in writers.values():  # warm-up: compiles, fills the searcher's buffers
            state, _ = loop(state, records)
        rates: dict[str, list[float]] = {name: [] for name in [*writers, "model alone"]}
        for _ in range(args.rounds):
            captured.clear()
            for name, records in writers.items():
                state, rate = loop(state, records)
                rates[name].append(rate)
            began = time.perf_counter()
            for batch in captured[: iterations]:
                jax.block_until_ready(model(batch))
            rates["model alone"].append(iterations * args.num_envs / (time.perf_counter() - began))
        for records in writers.values():
            records.close()
    ceiling = statistics.median(rates["model alone"])
    print(f"{config.name}, searcher {config.searcher['kind']}, {args.num_envs} queries per iteration, "
          f"{iterations} iterations per round, median of {args.rounds} rounds")
    print(f"{'writer':<20} {'queries/s':>10} {'/ model alone':>14}")
    for name, values in rates.items():
        print(f"{name:<20} {statistics.median(values):>10.0f} {statistics.median(values) / ceiling:>14.2f}")


if __name__ == "__main__":
    main()
