"""The corruption stage of a mixed batch: each corruption on its own rows only (the engine's
way, ``fadejax.core.grouped``) against every corruption on the whole batch, side by side.

    .venv/bin/python benchmarks/corruption_stage.py [--config configs/digits_colour_pairs.yaml] [--batch 256]

Uniformly mixed cells of the config's concept space on random images of its size; prints the
median time of each way (ms per batch) and their ratio.
"""

from __future__ import annotations

import argparse
import time

import jax
import jax.numpy as jnp
import numpy as np

from fadejax.core import perturbations as P
from fadejax.core.corruptions import CORRUPTIONS
from fadejax.engine.config import load_config


def whole_batch(names: list[list[str]], severities: list[list[float]]):
    """Every corruption of each stage applied to the whole batch, the others' rows at severity 0."""
    stages = [[CORRUPTIONS[n].build(tuple(s)) for n in stage] for stage, s in zip(names, severities)]

    def perturb(images, values, key):
        for i, applies in enumerate(stages):
            which, severity = values[:, 2 * i], values[:, 2 * i + 1]
            for k, one in enumerate(applies):
                images = one(images, jnp.where(jnp.round(which) == k, severity, 0.0), jax.random.fold_in(key, 10 * i + k))
        return images

    return perturb


def median_ms(fn, *args, calls: int = 10) -> float:
    jax.block_until_ready(fn(*args))
    times = []
    for i in range(calls):
        began = time.perf_counter()
        jax.block_until_ready(fn(*args[:-1], jax.random.PRNGKey(i)))
        times.append(time.perf_counter() - began)
    return 1000 * float(np.median(times))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--config", default="configs/digits_colour_pairs.yaml")
    parser.add_argument("--batch", type=int, default=256)
    args = parser.parse_args()
    config = load_config(args.config)
    axes = config.space.axes
    if any(a.perturbation_name not in (P.CORRUPTION_AXIS, P.SEVERITY_AXIS) for a in axes):
        raise SystemExit(f"error: {args.config}: every axis must be a corruption or severity axis")
    names, values = [a.perturbation_name for a in axes], [a.values for a in axes]
    rng = np.random.default_rng(0)
    size = config.data.image_size
    images = jnp.asarray(rng.random((args.batch, size, size, 3)), jnp.float32)
    cells = np.stack([rng.integers(0, len(v), args.batch) for v in values], axis=1)
    columns = jnp.asarray(np.stack([cells[:, j] if names[j] == P.CORRUPTION_AXIS else np.asarray(values[j], np.float32)[cells[:, j]]
                                    for j in range(len(axes))], axis=1), jnp.float32)
    grouped = median_ms(jax.jit(P.compose(names, values)), images, columns, jax.random.PRNGKey(0))
    whole = median_ms(jax.jit(whole_batch(values[0::2], values[1::2])), images, columns, jax.random.PRNGKey(0))
    print(f"{config.name}: {args.batch} images of {size} x {size}, {len(axes) // 2} corruption stage(s), cells mixed uniformly")
    print(f"  each corruption on its own rows: {grouped:.1f} ms; every corruption on the whole batch: {whole:.1f} ms; ratio {whole / grouped:.1f}x")


if __name__ == "__main__":
    main()
