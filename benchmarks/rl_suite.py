"""The RL benchmark suite: off-the-shelf JAX agents against fadejax's own searchers on every
named recorded environment, at each environment's query budget, scored against its truth.

    .venv/bin/python benchmarks/rl_suite.py [--envs NAME,NAME] [--seeds 5] [--agents NAME,NAME]
        [--plugin FILE.py] [--informative] [--no-fadejax] [--out benchmarks/results]

Rows per environment (``fadejax.envs.names.NAMED``: budget 12,800 queries on the image
recordings, 2,560 on text):

* ``rejax PPO``, ``rejax DQN`` (and each agent a ``--plugin`` file adds to ``AGENTS``):
  trained from scratch for exactly the budget, every seed vmapped in one program; what they
  asked while they learned is read from the environment's ledger (``ledger=True``), so
  every training step is one query, as in fadejax's loop;
* ``fadejax default``: the config's default searcher (``posterior``; ``posterior_walk`` in
  micro) in fadejax's own loop on the same recording, ``num_envs`` 256 (64 on text);
* ``fadejax paper DQN``: the paper's DQN (``{kind: dqn, preset: paper}``) in the same loop;
* ``random`` (macro only): uniformly drawn cells in the same loop.

Columns (:mod:`fadejax.envs.scoring`): distinct failing pairs, re-asked share, recall@10 of
the report's top 10, failing queries (the paper's count), and q@0.9: queries until recall@10
first reaches 0.9 and stays (at eighths of the budget; ``>budget`` where a seed never gets
there, the median over seeds). Mean and 95% interval over seeds. Writes ``rl_suite.md`` and
``rl_suite.csv`` to ``--out``.

An agent is a function ``agent(env, params, budget, keys) -> states``
(:mod:`fadejax.envs.agents`; ``docs/rl-environments.md`` shows a plugin).
"""

from __future__ import annotations

import argparse
import csv
import importlib.util
import sys
import time
from pathlib import Path
from typing import Callable

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import jax  # noqa: E402
import numpy as np  # noqa: E402

from fadejax.analysis.metrics import mean_ci, queries_to_level  # noqa: E402
from fadejax.engine.build import build_task  # noqa: E402
from fadejax.engine.checkpoints import build_discovery  # noqa: E402
from fadejax.engine.config import parse_config, read_config_data  # noqa: E402
from fadejax.envs import NAMED, make  # noqa: E402
from fadejax.envs.agents import SNAPSHOTS, Agent, rejax_agent  # noqa: E402
from fadejax.envs.scoring import score_ledger, score_queries  # noqa: E402

COLUMNS = ["distinct", "re-asked", "recall@10", "count", "q@0.9"]


def _ppo(budget: int) -> dict:
    return {"num_envs": 16, "num_steps": budget // SNAPSHOTS // 16, "num_epochs": 4, "num_minibatches": 4, "learning_rate": 1e-3}


#: row name -> (budget -> agent); a --plugin file's AGENTS are added
AGENTS: dict[str, Callable[[int], Agent]] = {
    "rejax PPO": lambda budget: rejax_agent("PPO", **_ppo(budget)),
    "rejax DQN": lambda budget: rejax_agent("DQN", num_envs=16, batch_size=128, fill_buffer=256, learning_rate=1e-3,
                                            exploration_fraction=0.5, buffer_size=budget),
}


def score_agent(name: str, env, params, budget: int, seeds: int) -> list[dict[str, float]]:
    states = AGENTS[name](budget)(env, params, budget, jax.random.split(jax.random.PRNGKey(0), seeds))
    truth, sizes = np.asarray(params.failed), env.space.sizes
    asked, queries, failing = (np.asarray(states.asked), np.asarray(states.queries).sum(-1), np.asarray(states.failing).sum(-1))
    rows = []
    for s in range(seeds):
        row = score_ledger(asked[s, -1], int(queries[s, -1]), int(failing[s, -1]), truth, sizes)
        curve = [(int(queries[s, t]), score_ledger(asked[s, t], int(queries[s, t]), int(failing[s, t]), truth, sizes)["recall@10"])
                 for t in range(asked.shape[1])]
        row["q@0.9"] = queries_to_level(curve, 0.9)
        rows.append(row)
    return rows


def score_searcher(named, searcher: dict, budget: int, seeds: int, truth: np.ndarray, sizes) -> list[dict[str, float]]:
    """fadejax's own loop on the recording: ``searcher`` for ``budget`` queries, per seed."""
    data = read_config_data(ROOT / named.config, [f"recording={ROOT / named.recording}"])
    num_envs = 64 if budget < 12_800 else 256
    data = {**data, "searcher": searcher, "run": {**data.get("run", {}), "num_envs": num_envs, "iterations": budget // num_envs}}
    config = parse_config(data)
    discovery = build_discovery(config, build_task(config, progress=False))
    rows = []
    for seed in range(seeds):
        state = discovery.init(seed)
        samples, cells = [], []
        for _ in range(budget // num_envs):
            state, outcome, _ = discovery.step(state)
            samples.append(np.asarray(outcome["sample"]))
            cells.append(np.asarray(outcome["cell"]))
        samples, cells = np.concatenate(samples), np.concatenate(cells)
        row = score_queries(samples, cells, truth, sizes)
        marks = np.linspace(budget / SNAPSHOTS, budget, SNAPSHOTS).astype(int)
        row["q@0.9"] = queries_to_level([(int(m), score_queries(samples[:m], cells[:m], truth, sizes)["recall@10"]) for m in marks], 0.9)
        rows.append(row)
    return rows


def summarise(rows: list[dict[str, float]], budget: int) -> dict[str, str]:
    out = {}
    for column in COLUMNS:
        values = np.asarray([r[column] for r in rows], float)
        if column == "q@0.9":
            reached = np.isfinite(values) & (values <= budget)
            median = np.median(np.where(reached, values, np.inf))
            out[column] = (f"{median:,.0f}" if np.isfinite(median) else f">{budget:,}") + f" ({reached.sum()}/{values.size})"
        else:
            mean, half = mean_ci(values)
            out[column] = f"{mean:.3f} ± {half:.3f}" if column in ("re-asked", "recall@10") else f"{mean:,.0f} ± {half:,.0f}"
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--envs", default=",".join(NAMED), help="named environments, comma-separated")
    parser.add_argument("--seeds", type=int, default=5)
    parser.add_argument("--agents", default=None, help="agent rows (default: every agent in AGENTS)")
    parser.add_argument("--no-fadejax", action="store_true", help="leave out fadejax's own searchers' rows")
    parser.add_argument("--informative", action="store_true",
                        help="agents train on the informative environments: an already-asked pair pays 0 (fadejax.envs.recorded)")
    parser.add_argument("--plugin", action="append", default=[], help="a Python file that adds agents to AGENTS")
    parser.add_argument("--out", default=str(ROOT / "benchmarks" / "results"))
    args = parser.parse_args()
    for path in args.plugin:
        spec = importlib.util.spec_from_file_location(Path(path).stem, path)
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
        AGENTS.update(getattr(module, "AGENTS", {}))
    names = [n.strip() for n in args.envs.split(",") if n.strip()]
    unknown = [n for n in names if n not in NAMED]
    if unknown:
        raise SystemExit(f"error: unknown environment(s) {unknown}; the named environments are {', '.join(NAMED)}")
    agents = list(AGENTS) if args.agents is None else [a.strip() for a in args.agents.split(",")]
    missing = [a for a in agents if a not in AGENTS]
    if missing:
        raise SystemExit(f"error: unknown agent(s) {missing}; the agents are {', '.join(AGENTS)}")
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    lines, table = [], []
    for name in names:
        named = NAMED[name]
        env, params = make(name, ledger=True, informative=args.informative)
        truth, sizes, budget = np.asarray(params.failed), env.space.sizes, named.budget
        micro = "micro" in name
        header = f"## {name} ({named.about}; budget {budget:,} queries, {args.seeds} seeds; {int(truth.sum()):,} failing pairs exist)"
        print(header, flush=True)
        lines += [header, "", "| row | " + " | ".join(COLUMNS) + " | seconds |", "|---" * (len(COLUMNS) + 2) + "|"]
        rows: list[tuple[str, Callable[[], list[dict[str, float]]]]] = [(a, lambda a=a: score_agent(a, env, params, budget, args.seeds)) for a in agents]
        if not args.no_fadejax:
            default = {"kind": "posterior_walk" if micro else "posterior"}
            rows += [("fadejax default", lambda: score_searcher(named, default, budget, args.seeds, truth, sizes)),
                     ("fadejax paper DQN", lambda: score_searcher(named, {"kind": "dqn", "preset": "paper"}, budget, args.seeds, truth, sizes))]
            if not micro:
                rows.append(("random", lambda: score_searcher(named, {"kind": "random"}, budget, args.seeds, truth, sizes)))
        for label, run in rows:
            began = time.perf_counter()
            scored = run()
            seconds = time.perf_counter() - began
            cells = summarise(scored, budget)
            line = f"| {label} | " + " | ".join(cells[c] for c in COLUMNS) + f" | {seconds:.0f} |"
            print(line, flush=True)
            lines.append(line)
            for seed, r in enumerate(scored):
                table.append({"environment": name, "row": label, "seed": seed, **r})
        lines.append("")
    (out / "rl_suite.md").write_text("\n".join(lines) + "\n")
    with open(out / "rl_suite.csv", "w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=["environment", "row", "seed", "queries", *COLUMNS])
        writer.writeheader()
        writer.writerows(table)
    print(f"wrote {out / 'rl_suite.md'} and rl_suite.csv")


if __name__ == "__main__":
    main()
