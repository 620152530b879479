"""One fade fine-tune per setting, scored on the exhaustive truth: how the fine-tune's scope,
loss weight and data trade clean accuracy against the failures faded.

    .venv/bin/python benchmarks/fade_settings.py --run RUN_DIR [--config configs/digits.yaml] \\
        K:LAMBDA:SCOPE:EPOCHS:DATA:LR[:ANCHOR] [...]

``RUN_DIR`` is a finished discovery of the config (e.g. a fade's ``round-0``); its cells
ranked by estimated failure rate give the ``K`` modes. Each setting fine-tunes the original
model once (``fadejax.audits.image.restructure.finetune_data`` and the classifier
fine-tuner: ``K`` copies of the training split under the modes, or under uniform cells with
``DATA=uniform``, or under cells drawn in proportion to the run's estimated failure rates
with ``DATA=weighted`` (``weighted2``: to their square; ``weightedu0.5``: half of the
draws uniform); loss ``L_clean + LAMBDA·L_failure``, plus ``ANCHOR·||w - w_original||²``
(L2-SP) when given; ``SCOPE`` head or full) and prints
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
from fadejax.stages.fade import estimated_rates, round_figures  # noqa: E402
from fadejax.stages.finetune import launch  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--run", required=True, help="a finished discovery of --config")
    parser.add_argument("--config", default="configs/digits.yaml")
    parser.add_argument("--seed", type=int, help="run.seed (the fine-tune's data draw and initial order); default the config's")
    parser.add_argument("settings", nargs="+", metavar="K:LAMBDA:SCOPE:EPOCHS:DATA:LR[:ANCHOR]")
    args = parser.parse_args()
    config = load_config(args.config)
    if args.seed is not None:
        config = parse_config({**config.model_dump(mode="json"), "run": {**config.run.model_dump(mode="json"), "seed": args.seed}})
    task = build_task(config, progress=False)
    ranked = round_figures(Path(args.run), config)["ranked"]
    rates = estimated_rates(Path(args.run), config)
    original = failure_landscape(task, progress=False)
    print(f"original: clean {task.info['clean_accuracy']:.2%} worst {original.max():.1%} mean {original.mean():.1%}", flush=True)
    architecture, kwargs = _architecture(config)
    with tempfile.TemporaryDirectory() as tmp:
        for setting in args.settings:
            k, weight, scope, epochs, data, lr, *anchored = setting.split(":")
            anchor = float(anchored[0]) if anchored else 0.0
            out = Path(tmp) / setting.replace(":", "-")
            started = time.perf_counter()
            weights = None
            if data.startswith("weighted"):  # weighted[P][uU]: cells drawn ∝ estimated rate^P, mixed with a share U of uniform
                power, _, share = data[len("weighted"):].partition("u")
                weights = rates ** float(power or 1)
                weights = (1 - float(share or 0)) * weights / weights.sum() + float(share or 0) / weights.size
            failures, clean = finetune_data(config, task, ranked[: int(k)], out / "data", "weighted" if weights is not None else data, weights)
            metrics = launch({"architecture": architecture, "architecture_kwargs": kwargs, "weights": task.info["weights"],
                              "failure_data": str(failures), "clean_data": str(clean), "output_dir": str(out / "fine-tune"),
                              "hyper": {"epochs": int(epochs), "learning_rate": float(lr), "failure_weight": float(weight),
                                        "seed": config.run.seed, "scope": scope, "anchor": anchor}}, quiet=True)
            tuned = build_task(parse_config({**config.model_dump(mode="json"), "model": {
                **config.model.model_dump(mode="json"), "source": "file", "architecture": architecture, "architecture_kwargs": kwargs,
                "weights": metrics["model"]}}), progress=False)
            land = failure_landscape(tuned, progress=False)
            print(f"K={k} lambda={weight} scope={scope} epochs={epochs} data={data} lr={lr} anchor={anchor:g}: clean {tuned.info['clean_accuracy']:.2%} "
                  f"worst {land.max():.1%} (cell {int(land.argmax())}) mean {land.mean():.1%} "
                  f"the K modes' mean {land[ranked[: int(k)]].mean():.1%} ({time.perf_counter() - started:.0f} s)", flush=True)


if __name__ == "__main__":
    main()
