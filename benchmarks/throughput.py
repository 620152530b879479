"""Discovery throughput vs the audited model's own batched inference, side by side.

    .venv/bin/python benchmarks/throughput.py [--config configs/digits.yaml] [--iterations 40] [--rounds 5] [--num-envs 256]

Each round times (1) the engine: ``iterations`` full discovery iterations (sample + act +
perturb or edit + audited model + reward + DQN update + durable records), then (2) the
ceiling: the audited model alone on the very same inputs — the classifier on the same
perturbed images, or the summarizer's batched ``generate`` on the same edited texts
(``--config configs/summarize.yaml``). Rounds alternate so both see the same machine
load; the script prints every round's queries per second and the median ratio.
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

import jax  # noqa: E402

from fadejax.config import load_config  # noqa: E402
from fadejax.records import RecordWriter  # noqa: E402
from fadejax.run import build_discovery, iterate  # noqa: E402
from fadejax.task import build_task  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--config", default="configs/digits.yaml")
    parser.add_argument("--iterations", type=int, default=40, help="iterations per round")
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--num-envs", type=int, default=256)
    args = parser.parse_args()

    total = args.iterations * (args.rounds + 1)
    config = load_config(args.config, [f"run.num_envs={args.num_envs}", f"run.iterations={total}"])
    task = build_task(config, progress=False)
    captured: list = []
    where = config.audit.audited_model(task)
    if where is None:
        parser.error(f"the '{config.audit.name}' audit names no batched model call to time alone")
    owner, attribute = where
    model = getattr(owner, attribute)

    def recording_model(batch):
        captured.append(batch)  # keeps a reference only; the model-only pass reuses these batches
        return model(batch)

    setattr(owner, attribute, recording_model)
    discovery = build_discovery(config, task)
    state = discovery.init(config.run.seed)
    batch = config.run.num_envs

    with tempfile.TemporaryDirectory() as tmp:
        writer = RecordWriter(Path(tmp) / "records.jsonl", task.space, config.mode)
        # Warm-up round: compiles every jitted step and fills the replay buffer.
        for _, state, _ in iterate(discovery, state, writer, args.iterations):
            pass
        jax.block_until_ready(state)
        ratios = []
        print(f"{config.name} ({task.kind}), {batch} queries per iteration, {args.iterations} iterations per round")
        print(f"{'round':>5} {'engine q/s':>11} {'model-only q/s':>15} {'ratio':>7}")
        for round_index in range(args.rounds):
            captured.clear()
            stop = int(state.iteration) + args.iterations
            began = time.perf_counter()
            for _, state, _ in iterate(discovery, state, writer, stop):
                pass
            jax.block_until_ready(state)
            engine = args.iterations * batch / (time.perf_counter() - began)

            began = time.perf_counter()
            for batch_inputs in captured:
                jax.block_until_ready(model(batch_inputs))
            ceiling = args.iterations * batch / (time.perf_counter() - began)
            ratios.append(engine / ceiling)
            print(f"{round_index:>5} {engine:>11.0f} {ceiling:>15.0f} {engine / ceiling:>7.2f}")
        writer.close()
    print(f"median engine / model-only throughput: {statistics.median(ratios):.2f} (target >= 0.80)")


if __name__ == "__main__":
    main()
