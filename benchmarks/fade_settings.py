"""One fade fine-tune per setting, scored on the exhaustive truth: how the fine-tune's scope,
loss weight and data trade clean accuracy against the failures faded.

    .venv/bin/python benchmarks/fade_settings.py --run RUN_DIR [--config configs/digits.yaml] \\
        K:LAMBDA:SCOPE:EPOCHS:DATA:LR [...]

``RUN_DIR`` is a finished discovery of the config (e.g. a fade's ``round-0``); its cells
ranked by estimated failure rate give the ``K`` modes. Each setting fine-tunes the original
model once (``fadejax.audits.image.restructure.finetune_data`` and the classifier
fine-tuner: ``K`` copies of the training split under the modes, or under uniform cells with
``DATA=uniform``; loss ``L_clean + LAMBDA·L_failure``; ``SCOPE`` head or full) and prints
the new model's clean held-out accuracy and its exhaustive worst and mean failure rates
(every held-out sample under every cell), beside the original model's.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from fadejax.audits.image.restructure import _architecture, finetune_data  # noqa: E402
from fadejax.engine.build import build_task  # noqa: E402
from fadejax.engine.config import load_config, parse_config  # noqa: E402
from fadejax.engine.ground_truth import failure_landscape  # noqa: E402
from fadejax.stages.fade import round_figures  # noqa: E402
from fadejax.stages.finetune import launch  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--run", required=True, help="a finished discovery of --config")
    parser.add_argument("--config", default="configs/digits.yaml")
    parser.add_argument("settings", nargs="+", metavar="K:LAMBDA:SCOPE:EPOCHS:DATA:LR")
    args = parser.parse_args()
    config = load_config(args.config)
    task = build_task(config, progress=False)
    ranked = round_figures(Path(args.run), config)["ranked"]
    original = failure_landscape(task, progress=False)
    print(f"original: clean {task.info['clean_accuracy']:.2%} worst {original.max():.1%} mean {original.mean():.1%}", flush=True)
    architecture, kwargs = _architecture(config)
    with tempfile.TemporaryDirectory() as tmp:
        for setting in args.settings:
            k, weight, scope, epochs, data, lr = setting.split(":")
            out = Path(tmp) / setting.replace(":", "-")
            started = time.perf_counter()
            failures, clean = finetune_data(config, task, ranked[: int(k)], out / "data", data)
            metrics = launch({"architecture": architecture, "architecture_kwargs": kwargs, "weights": task.info["weights"],
                              "failure_data": str(failures), "clean_data": str(clean), "output_dir": str(out / "fine-tune"),
                              "hyper": {"epochs": int(epochs), "learning_rate": float(lr), "failure_weight": float(weight),
                                        "seed": config.run.seed, "scope": scope}}, quiet=True)
            tuned = build_task(parse_config({**config.model_dump(mode="json"), "model": {
                **config.model.model_dump(mode="json"), "source": "file", "architecture": architecture, "architecture_kwargs": kwargs,
                "weights": metrics["model"]}}), progress=False)
            land = failure_landscape(tuned, progress=False)
            print(f"K={k} lambda={weight} scope={scope} epochs={epochs} data={data} lr={lr}: clean {tuned.info['clean_accuracy']:.2%} "
                  f"worst {land.max():.1%} (cell {int(land.argmax())}) mean {land.mean():.1%} "
                  f"the K modes' mean {land[ranked[: int(k)]].mean():.1%} ({time.perf_counter() - started:.0f} s)", flush=True)


if __name__ == "__main__":
    main()
