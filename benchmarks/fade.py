"""Fade against its baselines at the same fine-tune budget, scored on the exhaustive truth.

    .venv/bin/python benchmarks/fade.py [--config configs/digits.yaml] [--seeds 0 1 2] [--rounds 3]
        [--modes-per-round 5] [--scope head] [--epochs N] [--guard POINTS] [--anchor W] [--methods fade uniform random single]
        [--out benchmarks/results/fade] [--set FIELD=VALUE ...]

For each seed (``run.seed``) it runs ``fadejax fade`` and then each ``--baseline`` into
``OUT/<config name>/seed-S/<method>`` (a finished one is reused, a killed one resumes).
The ``uniform`` and ``random`` baselines run as many rounds as the fade did, without its
target (``--target 0``), so that their final models cost the same fine-tune budget as the
fade's (the same examples, epochs and scope); ``single`` is one round on one mode;
``modes`` is the fade with ``--data modes`` (its rounds fine-tune on the chosen modes only,
not on every cell in proportion to its estimated rate). It then
reads each fade report: the final model's exhaustive worst-cell and mean failure
rates (every held-out sample under every cell) and its clean held-out figure against the
original model's. Prints, per method, the mean over seeds with a 95% t-interval, and
whether fade's worst-cell rate is below uniform augmentation's with intervals apart.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from fadejax.analysis.metrics import mean_ci  # noqa: E402

METHODS = ("fade", "uniform", "random", "single", "modes")


def run_method(config: str, out: Path, method: str, seed: int, args: argparse.Namespace, rounds: int | None = None) -> float:
    """Run (or resume) one fade; return its wall seconds (0 if it was already finished).
    ``rounds``: a baseline's round count (the fade's), run without a target."""
    if (out / "fade_report.json").is_file() and json.loads((out / "fade.json").read_text()).get("final"):
        return 0.0
    argv = [str(ROOT / ".venv" / "bin" / "fadejax"), "fade", "--config", config, "--out", str(out), "--quiet",
            "--rounds", str(rounds or args.rounds), "--modes-per-round", str(args.modes_per_round), "--set", f"run.seed={seed}",
            *[a for s in args.set for a in ("--set", s)]]
    if rounds is not None:
        argv += ["--target", "0"]
    start = out.parent / "fade" / "round-0"
    if method != "fade" and (start / "run.json").is_file():  # the fade's round 0: the same config and seed, discovered once
        argv += ["--from", str(start)]
    if args.scope:
        argv += ["--scope", args.scope]
    if args.epochs:
        argv += ["--epochs", str(args.epochs)]
    if args.guard is not None:
        argv += ["--guard", str(args.guard)]
    if args.anchor is not None:
        argv += ["--anchor", str(args.anchor)]
    if method == "modes":  # the fade on its chosen modes only (--data modes), its own rounds
        argv += ["--data", "modes"]
    elif method != "fade":
        argv += ["--baseline", method]
    started = time.perf_counter()
    done = subprocess.run(argv, capture_output=True, text=True)
    if done.returncode != 0:
        raise SystemExit(f"{method} seed {seed} failed (exit {done.returncode}): {done.stderr.strip()[-800:]}")
    return time.perf_counter() - started


def outcome(out: Path) -> dict[str, float]:
    """The final model's exhaustive figures and its clean drop (points) from a finished fade."""
    report = json.loads((out / "fade_report.json").read_text())
    rounds = report["rounds"]
    final = [e for e in rounds if e["status"] == "kept"][-1]
    original = rounds[0]
    if final["truth"] is None:  # stopped at round 0: the original model is final
        final = {**final, "truth": original["truth"], "clean": original["clean"]}
    return {"worst": final["truth"]["worst"], "mean": final["truth"]["mean"], "clean_drop_points": 100 * (original["clean"] - final["clean"]),
            "worst_before": original["truth"]["worst"] if original["truth"] else float("nan"),
            "mean_before": original["truth"]["mean"] if original["truth"] else float("nan"),
            "rounds": len(rounds) - 1, "stopped": report["stopped"]["reason"], "rolled_back": sum(e["status"] != "kept" for e in rounds)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--config", default="configs/digits.yaml")
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--modes-per-round", type=int, default=5)
    parser.add_argument("--scope")
    parser.add_argument("--epochs", type=int)
    parser.add_argument("--guard", type=float)
    parser.add_argument("--anchor", type=float, help="the image fine-tune's L2-SP weight (fadejax fade --anchor), for every method")
    parser.add_argument("--methods", nargs="+", default=list(METHODS), choices=METHODS)
    parser.add_argument("--out", default="benchmarks/results/fade")
    parser.add_argument("--set", action="append", default=[], metavar="FIELD=VALUE")
    args = parser.parse_args()
    name = yaml.safe_load(Path(args.config).read_text())["name"]
    root = Path(args.out) / name
    results: dict[str, list[dict[str, float]]] = {m: [] for m in args.methods}
    for seed in args.seeds:
        fade_rounds = None
        for method in sorted(args.methods, key=lambda m: m != "fade"):
            out = root / f"seed-{seed}" / method
            matched = max(fade_rounds, 1) if method in ("uniform", "random") and fade_rounds is not None else None
            seconds = run_method(args.config, out, method, seed, args, matched)
            results[method].append(outcome(out))
            r = results[method][-1]
            if method == "fade":
                fade_rounds = r["rounds"] - r["rolled_back"]
            print(f"seed {seed} {method:<8} worst {r['worst_before']:.1%} -> {r['worst']:.1%}, mean {r['mean_before']:.1%} -> {r['mean']:.1%}, "
                  f"clean {-r['clean_drop_points']:+.2f} points; {r['rounds']} rounds, stopped: {r['stopped']}"
                  + (f" ({seconds / 60:.1f} min)" if seconds else " (reused)"), flush=True)
    print(f"\n{args.config}: rounds <= {args.rounds}, {args.modes_per_round} modes per round, scope {args.scope or 'default'}, "
          f"{len(args.seeds)} seeds; exhaustive rates of the final model, mean ± 95% t-interval half-width")
    print(f"{'method':<9}{'worst cell':>18}{'mean over cells':>20}{'clean drop (points)':>22}")
    intervals = {}
    for method, rows in results.items():
        cells = []
        for key in ("worst", "mean", "clean_drop_points"):
            m, h = mean_ci([r[key] for r in rows])
            intervals[(method, key)] = (m - h, m + h)
            cells.append(f"{m:.3f} ± {h:.3f}" if key == "clean_drop_points" else f"{m:.1%} ± {h:.1%}")
        print(f"{method:<9}{cells[0]:>18}{cells[1]:>20}{cells[2]:>22}")
    if "fade" in results and "uniform" in results and len(args.seeds) > 1:
        apart = intervals[("fade", "worst")][1] < intervals[("uniform", "worst")][0]
        print(f"fade's worst cell below uniform augmentation's with intervals apart: {'yes' if apart else 'no'}")
        mean_gap = 100 * (sum(r["mean"] for r in results["fade"]) - sum(r["mean"] for r in results["uniform"])) / len(args.seeds)
        print(f"fade's mean rate minus uniform augmentation's: {mean_gap:+.2f} points")
    if "fade" in results and "uniform" in results:
        where_failures_remain(root, args.seeds)


def where_failures_remain(root: Path, seeds: list[int]) -> None:
    """Fade against uniform augmentation, cell by cell: on the cells fade targeted and on the
    rest, from the final rounds' exhaustive landscapes (their shift reports)."""
    import numpy as np

    rows = []
    for seed in seeds:
        reports = {}
        for method in ("fade", "uniform"):
            ledger = json.loads((root / f"seed-{seed}" / method / "fade.json").read_text())
            kept = [e for e in ledger["rounds"] if e["status"] == "kept"][-1]
            if not kept.get("shift_report"):
                break
            reports[method] = json.loads(Path(kept["shift_report"]).read_text())
        if len(reports) < 2:
            continue
        before = np.asarray(reports["fade"]["landscape_before"])
        faded = np.zeros(before.size, bool)
        faded[[m["cell"] for m in reports["fade"]["modes"]]] = True
        after = {m: np.asarray(r["landscape_after"]) for m, r in reports.items()}
        rows.append([before[faded].mean(), before[~faded].mean(), after["fade"][faded].mean(), after["fade"][~faded].mean(),
                     after["uniform"][faded].mean(), after["uniform"][~faded].mean(), (before > 0.1).sum(), (after["fade"] > 0.1).sum(),
                     (after["uniform"] > 0.1).sum(), before[~faded].sum() / before.sum(), faded.sum()])
    if not rows:
        return
    m = np.mean(rows, axis=0)
    print(f"\nwhere the failures remain (mean over {len(rows)} seeds; the {m[10]:.0f} cells fade targeted vs the others):")
    print(f"  original: targeted cells {m[0]:.1%}, others {m[1]:.1%}; {m[9]:.0%} of the failure mass outside the targeted cells")
    print(f"  fade:     targeted cells {m[2]:.1%}, others {m[3]:.1%}")
    print(f"  uniform:  targeted cells {m[4]:.1%}, others {m[5]:.1%}")
    print(f"  cells above 10%: original {m[6]:.0f}, fade {m[7]:.0f}, uniform {m[8]:.0f}")


if __name__ == "__main__":
    main()
