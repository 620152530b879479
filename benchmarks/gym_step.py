"""The live gymnasium environment's step against the audited model's own batch-1 call.

    .venv/bin/python benchmarks/gym_step.py [--steps 300] [--rounds 3]

``fadejax.audits.image.gym_env.AuditEnv`` (what stable-baselines3 or CleanRL drive, one
query per step) on the embedded default (``configs/digits.yaml``, 60 held-out digits),
macroscopic and microscopic. Each round times ``--steps`` steps (a reset before each
macroscopic one, as an agent's loop makes them), then the audited model alone on the same
number of batch-1 images; rounds alternate so both see the same machine load. Prints the
milliseconds per step and per model call and their ratio (model / step: 1.0 would be an
environment that costs nothing beyond its model).
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import jax  # noqa: E402

from fadejax.audits.image.gym_env import AuditEnv  # noqa: E402
from fadejax.engine.build import build_task  # noqa: E402
from fadejax.engine.config import parse_config  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=300)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    macro = parse_config({"data": {"limit": 60}})
    task = build_task(macro, progress=False)
    micro = parse_config({"data": {"limit": 60}, "mode": "micro", "micro": {"max_steps": 8}})
    envs = {"macro": AuditEnv(task, macro.reward),
            "micro": AuditEnv(task, micro.reward, micro=micro.micro_space(), max_steps=8, alpha=micro.micro_alpha)}
    image = jax.block_until_ready(task.images[:1])
    for name, env in envs.items():
        def steps(count: int) -> float:
            began = time.perf_counter()
            env.reset(seed=0)
            for i in range(count):
                _, _, terminated, truncated, _ = env.step(i % env.action_space.n)
                if terminated or truncated:
                    env.reset(seed=i)
            return (time.perf_counter() - began) / count

        def model(count: int) -> float:
            began = time.perf_counter()
            for _ in range(count):
                jax.block_until_ready(task.oracle(image))
            return (time.perf_counter() - began) / count

        steps(20), model(20)  # compiled and warm
        step_ms, model_ms = [], []
        for _ in range(args.rounds):
            step_ms.append(1e3 * steps(args.steps))
            model_ms.append(1e3 * model(args.steps))
        s, m = statistics.median(step_ms), statistics.median(model_ms)
        print(f"{name}: {s:.2f} ms a step, the model alone {m:.2f} ms a call (batch 1): model / step {m / s:.2f} "
              f"(rounds: {', '.join(f'{a:.2f}' for a in step_ms)} ms)")


if __name__ == "__main__":
    main()
