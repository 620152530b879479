"""Text-to-image discovery throughput vs the pipeline's own batched generation, side by side.

    .venv/bin/python benchmarks/diffusion.py [--pipeline DIR --clip DIR --device cuda --dtype float16]
                                             [--steps 30 --size 512 --batch-size 8 --num-envs 16 --iterations 4 --rounds 3]

Without ``--pipeline`` it builds the tiny random pipeline and CLIP of the tests (16x16
images, seconds to build) so the numbers measure the engine's overhead on this CPU; on a
GPU machine point it at Stable Diffusion v1-4 and CLIP from a local directory or cache.
Each round times (1) the engine: ``iterations`` discovery iterations (searcher, prompt
composition, one batched pipeline call, PNG writes, CLIP reward, zero-shot attribute,
records), then (2) the ceiling: the same pipeline generating the very same prompts with
the same seeds in the same batches, nothing else. Prints queries/s of both and the ratio.
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
ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "tests"))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--pipeline", help="local diffusers pipeline directory or cached id (default: a tiny random one)")
    parser.add_argument("--clip", help="local CLIP directory or cached id (default: a tiny random one)")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--dtype", default="float32", choices=["float32", "float16"])
    parser.add_argument("--steps", type=int, default=None, help="denoising steps (default 30, or 4 for the tiny pipeline)")
    parser.add_argument("--size", type=int, default=None, help="image height = width (default 512, or 16 for the tiny pipeline)")
    parser.add_argument("--batch-size", type=int, default=8, help="images per pipeline call")
    parser.add_argument("--num-envs", type=int, default=16, help="queries per discovery iteration")
    parser.add_argument("--iterations", type=int, default=4, help="iterations per round")
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()

    import jax

    from fadejax.engine.config import parse_config
    from fadejax.engine.store.records import RecordWriter
    from fadejax.stages.discover import iterate
    from fadejax.engine.checkpoints import build_discovery
    from fadejax.engine.build import build_task

    with tempfile.TemporaryDirectory() as tmp:
        tiny = args.pipeline is None
        if tiny:
            from tiny_diffusion import make_tiny_clip, make_tiny_pipeline

            args.pipeline = str(make_tiny_pipeline(Path(tmp) / "pipeline"))
            args.clip = args.clip or str(make_tiny_clip(Path(tmp) / "clip"))
        steps = args.steps or (4 if tiny else 30)
        size = args.size or (16 if tiny else 512)
        total = args.iterations * (args.rounds + 1)
        config = parse_config({
            "name": "diffusion-bench", "task": "prompt",
            "prompt": {"pipeline": args.pipeline, "clip": args.clip, "device": args.device, "dtype": args.dtype, "steps": steps,
                       "height": size, "width": size, "batch_size": args.batch_size},
            "searcher": {"hidden_sizes": [64], "batch_size": 32, "min_replay": 32},
            "run": {"iterations": total, "num_envs": args.num_envs},
        })
        task = build_task(config, progress=False)
        task.attach_run_dir(Path(tmp) / "run")
        generate = task.oracle.generate
        captured: list[tuple[list[str], list[int]]] = []

        def recording_generate(prompts, seeds):
            captured.append((list(prompts), list(seeds)))
            return generate(prompts, seeds)

        task.oracle.generate = recording_generate
        discovery = build_discovery(config, task)
        state = discovery.init(0)
        writer = RecordWriter(Path(tmp) / "records.jsonl", task.space, "macro")
        for _, state, _ in iterate(discovery, state, writer, args.iterations):  # warm-up: compile, load, fill replay
            pass
        print(f"{'tiny random' if tiny else args.pipeline} pipeline, {steps} steps, {size}x{size}, {args.batch_size} images per call, "
              f"{args.num_envs} queries per iteration, device {args.device}")
        print(f"{'round':>5} {'engine q/s':>11} {'pipeline-only q/s':>18} {'ratio':>7}")
        ratios, engines = [], []
        for round_index in range(args.rounds):
            captured.clear()
            began = time.perf_counter()
            for _, state, _ in iterate(discovery, state, writer, int(state.iteration) + args.iterations):
                pass
            jax.block_until_ready(state)
            engine = args.iterations * args.num_envs / (time.perf_counter() - began)
            began = time.perf_counter()
            for prompts, seeds in captured:
                generate(prompts, seeds)
            ceiling = args.iterations * args.num_envs / (time.perf_counter() - began)
            ratios.append(engine / ceiling)
            engines.append(engine)
            print(f"{round_index:>5} {engine:>11.2f} {ceiling:>18.2f} {engine / ceiling:>7.2f}")
        writer.close()
        print(f"median engine / pipeline-only throughput: {statistics.median(ratios):.2f}; "
              f"median seconds per query (engine): {1 / statistics.median(engines):.3f}")


if __name__ == "__main__":
    main()
