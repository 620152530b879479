"""A whole ``fadejax discover`` command with its start-up caches empty vs filled, side by side.

    .venv/bin/python benchmarks/start_up.py [--config configs/digits_lenet.yaml] [--rounds 3] [--set FIELD=VALUE ...]
        [--against CHECKOUT]

Each round runs the same command twice, alternating: once with fadejax's cache holding only
the trained model (no compiled programs, no digits split: a first run's start) and once with
the cache filled by an earlier run (every later run's start). The model's weights are
copied from ``$FADEJAX_CACHE`` (default ``~/.cache/fadejax``) so neither run trains it;
run the config once beforehand if they are not there. Prints each run's wall-clock
seconds and the seconds its iterations took (``metrics.jsonl``; the first iteration, which
compiles the loop, apart), the median ratio warm / cold, and whether the two wrote the
same records.

``--against CHECKOUT``: also run, in each round, the ``fadejax`` of another checkout of
this repository (e.g. ``git worktree add /tmp/earlier COMMIT``) with the cold cache, and
print its wall time beside this one's cold and warm ones (and whether its records are the
same bytes).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from fadejax.engine.compilation_cache import DIRECTORY, fadejax_cache  # noqa: E402
from fadejax.engine.store.record_fields import records_path  # noqa: E402


#: Runs another checkout's fadejax: the editable install's import hook (which would find
#: this checkout's) is taken out and the checkout put first on the path.
OTHER = (
    "import sys; tree = sys.argv.pop(1); "
    "sys.meta_path[:] = [f for f in sys.meta_path if 'editable' not in type(f).__module__.lower() and 'Editable' not in type(f).__name__]; "
    "sys.path.insert(0, tree); import fadejax.cli; assert fadejax.cli.__file__.startswith(tree); sys.exit(fadejax.cli.main(sys.argv[1:]))"
)


def run(config: str, overrides: list[str], cache: Path, out: Path, checkout: Path | None = None) -> tuple[float, float, float]:
    """``(wall seconds, first iteration's seconds, the other iterations' seconds)``; with
    ``checkout``, that checkout's fadejax runs the command."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("JAX_COMPILATION_CACHE")}
    env["FADEJAX_CACHE"] = str(cache)
    entry = ["-m", "fadejax.cli"] if checkout is None else ["-c", OTHER, str(checkout)]
    command = [sys.executable, *entry, "discover", "--config", config, "--out", str(out), "--quiet"]
    for override in overrides:
        command += ["--set", override]
    began = time.perf_counter()
    subprocess.run(command, env=env, cwd=ROOT, check=True, stdout=subprocess.DEVNULL)
    wall = time.perf_counter() - began
    seconds = [json.loads(line)["seconds"] for line in (out / "metrics.jsonl").read_text().splitlines()]
    return wall, seconds[0], sum(seconds[1:])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--config", default="configs/digits_lenet.yaml")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--set", dest="overrides", action="append", default=[], metavar="FIELD=VALUE")
    parser.add_argument("--against", type=Path, help="another checkout of this repository to time beside this one")
    args = parser.parse_args()
    models = fadejax_cache() / "models"
    if not models.is_dir():
        raise SystemExit(f"error: no trained models in '{models}': run `fadejax discover --config {args.config}` once first")
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        cold, warm = tmp / "cold", tmp / "warm"
        for cache in (cold, warm):
            shutil.copytree(models, cache / "models")
        run(args.config, args.overrides, warm, tmp / "fill")  # fills the warm cache
        print(f"{args.config}: wall seconds (first iteration, the other iterations)")
        print(f"{'round':>5} {'cold':>22} {'warm':>22} {'warm / cold':>12}  same records"
              + (f"  {'other, cold':>22} {'other / warm':>13}  same records" if args.against else ""))
        ratios = []
        for round_index in range(args.rounds):
            for name in (DIRECTORY, "data"):
                shutil.rmtree(cold / name, ignore_errors=True)
            a = run(args.config, args.overrides, cold, tmp / f"cold{round_index}")
            b = run(args.config, args.overrides, warm, tmp / f"warm{round_index}")
            records = records_path(tmp / f"cold{round_index}").read_bytes()
            same = records == records_path(tmp / f"warm{round_index}").read_bytes()
            ratios.append(b[0] / a[0])
            cells = [f"{w:6.1f} ({f:4.1f}, {r:4.1f})" for w, f, r in (a, b)]
            line = f"{round_index:>5} {cells[0]:>22} {cells[1]:>22} {ratios[-1]:>12.2f}  {same}"
            if args.against:
                for name in (DIRECTORY, "data"):
                    shutil.rmtree(cold / name, ignore_errors=True)
                c = run(args.config, args.overrides, cold, tmp / f"other{round_index}", args.against.resolve())
                agree = records_path(tmp / f"other{round_index}").read_bytes() == records
                line += f"  {c[0]:6.1f} ({c[1]:4.1f}, {c[2]:4.1f})" + f" {c[0] / b[0]:>13.2f}  {agree}"
            print(line)
        print(f"median warm / cold wall time: {statistics.median(ratios):.2f}")


if __name__ == "__main__":
    main()
