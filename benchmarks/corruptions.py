"""Speed of fadejax's common corruptions against the reference's, side by side.

    .venv/bin/python benchmarks/corruptions.py [--size 32] [--images 256] [--reference-images 32]
        [--severity 3] [--corruptions fog glass_blur ...] [--rounds 3]

For each corruption: fadejax corrupts ``--images`` RGB images of ``--size`` x ``--size`` (the
scikit-image photographs, resized, repeated) in one jitted batch at ``--severity`` (compiled
first, then the best of ``--rounds`` timed calls, waited for with ``block_until_ready``);
the reference (``imagecorruptions``, one image at a time on the host, as it works) corrupts
``--reference-images`` of them, timed once. Prints images per second on each side and the
ratio. The reference's per-image cost does not depend on the batch, so fewer reference images
only shorten the run (glass blur takes seconds per 224 x 224 image).
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "tests"))

import jax  # noqa: E402
import jax.numpy as jnp  # noqa: E402
from PIL import Image  # noqa: E402

import reference_corruptions  # noqa: E402
from fadejax.core.corruptions import CORRUPTIONS  # noqa: E402

TAKES_PIL = ("pixelate", "jpeg_compression", "spatter")


def photographs(size: int, count: int) -> np.ndarray:
    """``(count, size, size, 3)`` uint8: scikit-image's bundled photographs, resized and repeated."""
    from skimage import data

    photos = [np.asarray(Image.fromarray(p).resize((size, size), Image.BILINEAR)) for p in (data.astronaut(), data.chelsea(), data.coffee())]
    return np.stack([photos[i % len(photos)] for i in range(count)])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", type=int, default=32)
    parser.add_argument("--images", type=int, default=256)
    parser.add_argument("--reference-images", type=int, default=32)
    parser.add_argument("--severity", type=int, default=3)
    parser.add_argument("--corruptions", nargs="+", default=list(CORRUPTIONS), choices=list(CORRUPTIONS))
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    images = photographs(args.size, args.images)
    ref = reference_corruptions.load()
    batch = jnp.asarray(images / 255.0, jnp.float32)
    severity = jnp.full((args.images,), float(args.severity), jnp.float32)
    print(f"{args.images} RGB images {args.size}x{args.size}, severity {args.severity}; reference on {args.reference_images} of them; "
          f"{jax.devices()[0].device_kind}")
    print(f"{'corruption':<18}{'fadejax img/s':>15}{'reference img/s':>17}{'ratio':>9}")
    ratios = {}
    for name in args.corruptions:
        apply = jax.jit(CORRUPTIONS[name].build([args.severity]))
        apply(batch, severity, jax.random.PRNGKey(0)).block_until_ready()  # compile
        best = min(_timed(lambda: apply(batch, severity, jax.random.PRNGKey(r)).block_until_ready()) for r in range(args.rounds))
        ours = args.images / best
        started = time.perf_counter()
        for i, image in enumerate(images[: args.reference_images]):
            np.random.seed(i)
            getattr(ref, name)(Image.fromarray(image) if name in TAKES_PIL else image, args.severity)
        theirs = args.reference_images / (time.perf_counter() - started)
        ratios[name] = ours / theirs
        print(f"{name:<18}{ours:>15,.0f}{theirs:>17,.1f}{ratios[name]:>9.1f}", flush=True)
    slowest = min(ratios, key=ratios.get)
    print(f"smallest ratio: {ratios[slowest]:.1f} ({slowest})")


def _timed(call) -> float:
    started = time.perf_counter()
    call()
    return time.perf_counter() - started


if __name__ == "__main__":
    main()
