"""Discovery throughput vs the audited model's own batched inference, side by side.

    .venv/bin/python benchmarks/throughput.py [--model both|default|light] [--num-envs 256 2048]
        [--queries-per-round 16384] [--rounds 5] [--config FILE] [--searcher KIND] [--pipeline] [--set FIELD=VALUE ...]

For each audited model and batch size, each round times (1) the engine: full discovery
iterations (sample + act + perturb or edit + audited model + reward + searcher update +
durable records + learning curves: ``metrics.jsonl``, TensorBoard events and landscape
images, as ``fadejax discover`` runs them, less checkpoints), (2) the same without the
learning curves (records only: what logging costs), then (3) the ceiling: the audited
model alone on the very same inputs as (1). Rounds alternate so all see the same machine
load, each from the same fresh state (a state that has asked most of a deterministic
audit's grid has its re-asks served from its answers, without the model); the script
prints every round's queries per second and the median ratios. With
``--pipeline`` each round also times (4) the engine pipelined (``run.pipeline``: iteration
t+1 proposed and perturbed while the model answers t) on the same machine load.

Models: ``default`` is the embedded default (``configs/digits.yaml``: the digits CNN at
32x32, ~50 MFLOP per query); ``light`` is the LeNet-5-style network of
``configs/digits_lenet.yaml`` (28x28, ~0.4 MFLOP per query), light enough that the
engine's own cost shows. ``--config`` times any other config instead (e.g. the
summarizer, ``configs/summarize.yaml``, whose ceiling is its batched ``generate``; a
model family, ``configs/digits_family.yaml``, whose ceiling is one batched call of each
of its models on the same inputs).

After the rounds, a stage split: a few more iterations with a wait after every stage,
so each stage's own time shows (propose: sample selection, action and perturbation on
the device; model: the audited model's call and reward; settle: scoring and the
searcher's update; fetch: the iteration's record columns from the device to the host;
records: writing its records, in the config's ``run.records`` format; discovery does the last two on a
background thread). Their sum exceeds an engine iteration by what
the engine overlaps.

``--set`` changes config fields for every case, e.g. ``--set model.device=cuda`` to time
the audited model on a GPU (JAX then runs the engine on its default device, the GPU
when a CUDA build of jaxlib is installed).
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
import yaml  # noqa: E402

from fadejax.engine.config import load_config, parse_config, set_dotted  # noqa: E402
from fadejax.engine.store.records import BackgroundRecordWriter, RecordWriter, open_record_writer  # noqa: E402
from fadejax.engine.store.learning_log import LearningLog  # noqa: E402
from fadejax.stages.discover import iterate, log_landscape
from fadejax.engine.checkpoints import build_discovery  # noqa: E402
from fadejax.engine.store.sinks import TensorBoardSink  # noqa: E402
from fadejax.searchers import REGISTRY as SEARCHERS  # noqa: E402
from fadejax.engine.build import build_task  # noqa: E402

MODELS = {"default": "configs/digits.yaml", "light": "configs/digits_lenet.yaml"}
TARGETS = {("default", 256): 0.9, ("default", 2048): 0.95, ("light", 256): 0.7, ("light", 2048): 0.9,  # issue: keep the accelerator busy (CPU)
           ("family", 256): 0.8, ("family", 2048): 0.8}  # family: a config with models: (e.g. configs/digits_family.yaml)


def stage_split(discovery, state, task, model, writer: RecordWriter, iterations: int):
    """Median milliseconds per stage over ``iterations`` synchronised iterations; the state after them."""
    times: dict[str, list[float]] = {"propose": [], "model": [], "settle": [], "fetch": [], "records": []}
    for _ in range(iterations):
        began = time.perf_counter()
        inputs, pending = jax.block_until_ready(discovery.propose(state))
        proposed = time.perf_counter()
        core, fields = jax.block_until_ready(discovery.evaluate(inputs, pending))  # (re-asked pairs: served, as in the loop)
        modelled = time.perf_counter()
        state, outcome, _ = jax.block_until_ready(discovery.settle(state, pending, core))
        settled = time.perf_counter()
        columns = jax.device_get({**outcome, **fields})
        fetched = time.perf_counter()
        writer.write(int(state.iteration) - 1, columns)
        written = time.perf_counter()
        for name, (a, b) in zip(times, [(began, proposed), (proposed, modelled), (modelled, settled), (settled, fetched), (fetched, written)]):
            times[name].append(1e3 * (b - a))
    return {name: statistics.median(values) for name, values in times.items()}, state


def load(config_path: str, searcher: str | None, overrides: list[str]):
    """The config at ``config_path`` with ``overrides``; with ``searcher``, its searcher
    section replaced by that searcher's defaults."""
    if searcher is None:
        return load_config(config_path, overrides)
    raw = yaml.safe_load(Path(config_path).read_text())
    raw["searcher"] = {"kind": searcher}
    for override in overrides:
        set_dotted(raw, override)
    return parse_config(raw)


def measure(
    config_path: str, label: str, num_envs: int, queries_per_round: int, rounds: int, searcher: str | None,
    overrides: list[str] = (), pipeline: bool = False,
) -> float:
    iterations = max(4, queries_per_round // num_envs)
    total = iterations * (rounds + 2)
    config = load(config_path, searcher, [*overrides, f"run.num_envs={num_envs}", f"run.iterations={total}"])
    task = build_task(config, progress=False)
    captured: list = []
    where = config.audit.audited_model(task)
    if where is None:
        raise SystemExit(f"error: the '{config.audit.name}' audit names no batched model call to time alone")
    owner, attribute = where
    model = getattr(owner, attribute)

    def recording_model(batch):
        captured.append(batch)  # keeps a reference only; the model-only pass reuses these batches
        return model(batch)

    setattr(owner, attribute, recording_model)
    discovery = build_discovery(config, task)
    state = discovery.init(config.run.seed)

    with tempfile.TemporaryDirectory() as tmp:
        # As `fadejax discover` runs it: records and learning curves (metrics.jsonl and
        # TensorBoard, landscape images every run.landscape_every) on the writer's thread.
        log = LearningLog(Path(tmp) / "metrics.jsonl", num_envs=num_envs, sinks=[TensorBoardSink(Path(tmp) / "tensorboard")] if config.run.tensorboard else [])
        # One records file for every pass, as one run has: a query that re-asks a pair
        # (a long budget exhausts the grid) takes its fields from the records before it.
        records = open_record_writer(Path(tmp), task.space, config.mode, record_format=config.run.records, names=getattr(task, "record_names", None))
        writer = BackgroundRecordWriter(records, log=log)
        plain = BackgroundRecordWriter(records)
        every = config.run.landscape_every if config.mode == "macro" and log.sinks else 0

        def engine(state, stop: int, logged: bool, pipelined: bool = False):
            """Iterations up to ``stop``, with or without the learning log, pipelined or not: ``(state, queries/s)``."""
            count = stop - int(state.iteration)
            began = time.perf_counter()
            for iteration, state, _ in iterate(discovery, state, writer if logged else plain, stop, log=logged,
                                               pipeline_every=1 << 30 if pipelined else 0):
                if logged and every and (iteration + 1) % every == 0:
                    log_landscape(writer, discovery, state, iteration)
            jax.block_until_ready(state)
            (writer if logged else plain).drain()
            return state, count * num_envs / (time.perf_counter() - began)

        # Warm-up round: compiles every jitted step and fills the replay buffer. The policy
        # landscape is drawn once too: a round of few iterations may not reach its first
        # run.landscape_every, and would time its compilation.
        state, _ = engine(state, iterations, True)
        if pipeline:
            engine(discovery.init(config.run.seed), 2, True, pipelined=True)  # compiles the proposal made ahead
        if every:
            log_landscape(writer, discovery, state, int(state.iteration) - 1)
            writer.drain()
        ratios, plain_ratios, pipelined_ratios = [], [], []
        print(
            f"\n{label}: {config.name} ({task.kind}), searcher {config.searcher['kind']}, "
            f"{num_envs} queries per iteration, {iterations} iterations per round; "
            f"JAX on {jax.devices()[0].platform}, model on {getattr(config.model, 'device', '?')}"
        )
        print(f"{'round':>5} {'engine q/s':>11} {'no-log q/s':>11} {'model-only q/s':>15} {'ratio':>7} {'no-log ratio':>13}"
              + (f" {'pipelined q/s':>14} {'pipelined ratio':>16}" if pipeline else ""))
        for round_index in range(rounds):
            # Every pass starts from the same fresh state: on a deterministic audit a state that
            # has asked most of the grid has its re-asks served from the run's answers, and
            # the model would not be called at all.
            fresh = config.run.seed + 1 + round_index
            _, without_log = engine(discovery.init(fresh), iterations, False)
            captured.clear()
            _, with_log = engine(discovery.init(fresh), iterations, True)
            if pipeline:  # the same iterations, proposed ahead (run.pipeline), on the same machine load
                _, pipelined = engine(discovery.init(fresh), iterations, True, pipelined=True)

            # The model's own queries per second on the very batches it was given. On a
            # deterministic audit the engine sends it only the pairs asked for the first time
            # (re-asked ones are served from the run's answers), so it answered fewer queries
            # than the engine did: the ceiling counts the queries the model computed.
            began = time.perf_counter()
            for batch_inputs in captured:
                jax.block_until_ready(model(batch_inputs))
            computed = sum(len(b) for b in captured)
            ceiling = computed / (time.perf_counter() - began) if computed else float("nan")
            ratios.append(with_log / ceiling)
            plain_ratios.append(without_log / ceiling)
            line = f"{round_index:>5} {with_log:>11.0f} {without_log:>11.0f} {ceiling:>15.0f} {with_log / ceiling:>7.2f} {without_log / ceiling:>13.2f}"
            if pipeline:
                pipelined_ratios.append(pipelined / ceiling)
                line += f" {pipelined:>14.0f} {pipelined / ceiling:>16.2f}"
            print(line)
        setattr(owner, attribute, model)
        split, state = stage_split(discovery, discovery.init(config.run.seed + 1), task, model, records, min(iterations, 20))  # both writers are drained
        plain.close()
        writer.close()
    whole = sum(split.values())
    print("stage split (synchronised, median ms per iteration): " + ", ".join(f"{k} {v:.1f} ({v / whole:.0%})" for k, v in split.items()))
    ratios = [r for r in ratios if r == r] or [float("nan")]  # a round whose every query was served has no ceiling
    plain_ratios = [r for r in plain_ratios if r == r] or [float("nan")]
    median = statistics.median(ratios)
    target = TARGETS.get((label, num_envs))
    print(f"median engine / model-only throughput: {median:.2f}" + (f" (target >= {target:.2f})" if target else "")
          + f"; without the learning log {statistics.median(plain_ratios):.2f}"
          + (f"; pipelined {statistics.median([r for r in pipelined_ratios if r == r] or [float('nan')]):.2f}" if pipeline else ""))
    return median


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", choices=["both", *MODELS], default="both", help="which embedded model to audit")
    parser.add_argument("--config", help="time this config instead of the embedded models")
    parser.add_argument("--num-envs", type=int, nargs="+", default=[256, 2048], help="queries per iteration (several: one case each)")
    parser.add_argument("--queries-per-round", type=int, default=16384, help="queries per timed round (iterations = this / num_envs, at least 4)")
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument(
        "--searcher", choices=sorted(SEARCHERS),
        help="replace the config's searcher by this one's defaults (e.g. random: the loop without a learner's cost)",
    )
    parser.add_argument("--pipeline", action="store_true", help="also time each round pipelined (run.pipeline: the next "
                        "iteration proposed while the model answers), side by side with the unpipelined engine")
    parser.add_argument("--set", dest="overrides", action="append", default=[], metavar="FIELD=VALUE",
                        help="change a config field for every case (repeatable), e.g. model.device=cuda")
    args = parser.parse_args()

    if args.config:
        config = load_config(args.config)
        family = config.audit.family_members(config)
        cases = [(args.config, "family" if family else "config")]  # a family's ceiling: its models' batched calls, one each
    else:
        cases = [(MODELS[m], m) for m in MODELS if args.model in ("both", m)]
    summary = []
    for path, label in cases:
        for num_envs in args.num_envs:
            summary.append((label, num_envs, measure(path, label, num_envs, args.queries_per_round, args.rounds, args.searcher, args.overrides, args.pipeline)))
    print("\nsummary (median engine / model-only throughput)")
    for label, num_envs, ratio in summary:
        target = TARGETS.get((label, num_envs))
        print(f"  {label:<8} {num_envs:>5} envs  {ratio:.2f}" + (f"  target >= {target:.2f}" if target else ""))


if __name__ == "__main__":
    main()
