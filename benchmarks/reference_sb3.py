"""fadejax vs the reference implementation's way, side by side, at an equal query budget.

    .venv/bin/python benchmarks/reference_sb3.py [--queries 8192] [--seeds 2] [--out benchmarks/results]

The paper's code runs stable-baselines3's DQN on a gym environment that perturbs one
image per step with PIL and calls the model once per image. This script rebuilds that:
``PILAuditEnv`` (a :class:`fadejax.audits.image.gym_env.AuditEnv` whose step perturbs the single
image with PIL — ``Image.rotate`` bilinear, ``ImageEnhance.Brightness``,
``ImageFilter.GaussianBlur`` — and calls the torch CNN on a batch of one), driven by
``stable_baselines3.DQN`` with its default hyper-parameters except the paper's
exploration schedule (epsilon 1.0 -> 0.6 over the run). Same concept space, same audited
model (the embedded digits CNN), same eq. 4 reward, same held-out samples.

fadejax runs its default searcher (configs/digits.yaml: posterior sampling) and, for a
like-for-like comparison, its DQN with the paper's preset, on the same budget. Reported per
seed and in mean: queries per second (jit compilation and SB3 set-up excluded) and failures found.
Writes ``reference_sb3.md`` and ``reference_sb3.csv`` to ``--out``.
"""

from __future__ import annotations

import argparse
import csv
import os
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import jax.numpy as jnp  # noqa: E402
import numpy as np  # noqa: E402
import torch  # noqa: E402
from PIL import Image, ImageEnhance, ImageFilter  # noqa: E402

from fadejax.audits.image.gym_env import AuditEnv  # noqa: E402
from fadejax.engine.config import load_config, parse_config  # noqa: E402
from fadejax.core.rewards import classification_reward  # noqa: E402
from fadejax.engine.checkpoints import build_discovery  # noqa: E402
from fadejax.engine.build import build_task  # noqa: E402
from table1 import run_searcher, warm_up  # noqa: E402  (the sibling benchmark's measurement)

PIL_OPS = {
    "rotation": lambda img, v: img.rotate(v, resample=Image.BILINEAR),
    "darkness": lambda img, v: ImageEnhance.Brightness(img).enhance(1.0 - v),
    "blur": lambda img, v: img.filter(ImageFilter.GaussianBlur(radius=v)) if v > 0 else img,
}


class PILAuditEnv(AuditEnv):
    """The reference way: one image per step, perturbed with PIL, one model call per image."""

    def __init__(self, task, reward, axes):
        super().__init__(task, reward)
        unknown = [a.perturbation_name for a in axes if a.perturbation_name not in PIL_OPS]
        if unknown:
            raise SystemExit(f"the PIL reference knows {sorted(PIL_OPS)}; this space also uses {unknown}")
        self.ops = [PIL_OPS[a.perturbation_name] for a in axes]
        self.images_uint8 = (np.asarray(task.images)[..., 0] * 255).round().astype(np.uint8)
        self.model = task.oracle.model  # the torch module behind the bridge
        self.queries = 0
        self.failures = 0

    def step(self, action: int):
        cell = int(action)
        values = [axis.values[i] for axis, i in zip(self.task.space.axes, np.unravel_index(cell, self.task.space.sizes))]
        img = Image.fromarray(self.images_uint8[self._sample], mode="L")
        for op, v in zip(self.ops, values):
            img = op(img, float(v))
        x = torch.from_numpy(np.asarray(img, np.float32)[None, None] / 255.0)
        with torch.inference_mode():
            logits = self.model(x).numpy()
        r = self.reward_config
        outcome = classification_reward(jnp.asarray(logits), jnp.asarray(self._labels[self._sample])[None], scale=r.scale, const=r.const, form=r.form)
        failed = bool(outcome.failed[0])
        self.queries += 1
        self.failures += failed
        return self._obs(), float(outcome.reward[0]), True, False, {"failed": failed, "cell": cell}


def run_reference(task, config, queries: int, seed: int) -> tuple[float, int]:
    from stable_baselines3 import DQN

    env = PILAuditEnv(task, config.reward, config.space.axes)
    env.reset(seed=seed)
    agent = DQN("MlpPolicy", env, exploration_initial_eps=1.0, exploration_final_eps=0.6, exploration_fraction=1.0, seed=seed, verbose=0)
    began = time.perf_counter()
    agent.learn(total_timesteps=queries)
    seconds = time.perf_counter() - began
    return env.queries / seconds, env.failures


def run_fadejax(task, config, iterations: int, seed: int, searcher: dict | None = None) -> tuple[float, int]:
    """fadejax's own loop, measured exactly as in table1.py (compilation excluded)."""
    if searcher is not None:
        config = parse_config({**config.model_dump(mode="json"), "searcher": searcher})
    discovery = build_discovery(config, task)
    warm_up(discovery)
    with tempfile.TemporaryDirectory() as tmp:
        run, _ = run_searcher(discovery, seed, iterations, Path(tmp))
    return iterations * config.run.num_envs / run.seconds, int(run.failed_cells.size)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--config", default="configs/digits.yaml")
    parser.add_argument("--queries", type=int, default=8192, help="audited-model queries per run (a multiple of --num-envs)")
    parser.add_argument("--num-envs", type=int, default=256)
    parser.add_argument("--seeds", type=int, default=2)
    parser.add_argument("--out", default="benchmarks/results")
    args = parser.parse_args()
    iterations = max(1, args.queries // args.num_envs)
    queries = iterations * args.num_envs
    config = load_config(args.config, [f"run.num_envs={args.num_envs}", f"run.iterations={iterations}"])
    torch.set_num_threads(os.cpu_count() or 1)
    task = build_task(config, progress=True)

    rows = []
    for seed in range(args.seeds):
        ref_qps, ref_fail = run_reference(task, config, queries, seed)
        fj_qps, fj_fail = run_fadejax(task, config, iterations, seed)
        dqn_qps, dqn_fail = run_fadejax(task, config, iterations, seed, {"kind": "dqn", "preset": "paper"})
        rows.append((seed, ref_qps, ref_fail, fj_qps, fj_fail, dqn_qps, dqn_fail))
        print(f"seed {seed}: reference {ref_qps:7.0f} q/s, {ref_fail} failures | fadejax default {fj_qps:7.0f} q/s, {fj_fail} failures"
              f" | fadejax dqn (paper) {dqn_qps:7.0f} q/s, {dqn_fail} failures", flush=True)
    r = np.asarray(rows, np.float64)
    lines = [
        f"Embedded default, {queries} queries per run, {args.seeds} seeds. Reference: stable-baselines3 DQN, one image per step;"
        " fadejax: its default searcher (posterior) and its DQN with the paper's preset.",
        "",
        "| seed | reference q/s | reference failures | fadejax q/s | fadejax failures | speed-up | fadejax dqn (paper) q/s | its failures |",
        "|---|---|---|---|---|---|---|---|",
    ]
    lines += [f"| {int(s)} | {a:.0f} | {int(b)} | {c:.0f} | {int(d)} | {c / a:.1f}x | {e:.0f} | {int(f)} |" for s, a, b, c, d, e, f in r]
    lines.append(f"| mean | {r[:, 1].mean():.0f} | {r[:, 2].mean():.0f} | {r[:, 3].mean():.0f} | {r[:, 4].mean():.0f} | "
                 f"{(r[:, 3] / r[:, 1]).mean():.1f}x | {r[:, 5].mean():.0f} | {r[:, 6].mean():.0f} |")
    table = "\n".join(lines)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    (out / "reference_sb3.md").write_text(table + "\n")
    with open(out / "reference_sb3.csv", "w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(["seed", "reference_qps", "reference_failures", "fadejax_qps", "fadejax_failures", "fadejax_dqn_paper_qps", "fadejax_dqn_paper_failures"])
        writer.writerows(rows)
    print("\n" + table)
    print(f"\nwrote {out / 'reference_sb3.md'} and reference_sb3.csv")


if __name__ == "__main__":
    main()
