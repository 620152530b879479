"""``fadejax fade``: rounds of discover → restructure until the failures are faded, with a
stopping rule and a guard on the model's clean quality.

Round 0 discovers on the original model (``OUT/round-0``, an ordinary run directory).
Round ``r >= 1`` adds the ``K`` worst modes by estimated rate of the last kept round (not
yet faded) to the modes faded so far, fine-tunes the **original** model on the training
split under all of them (so an earlier round's fix is never forgotten, and the final
model is one fine-tune at a counted budget), and rediscovers with the same config, seed and
budget (:func:`fadejax.stages.restructure.restructure` into ``OUT/round-r``). It stops at
the first of:

- ``target``: the worst mode's estimated rate is at or below ``--target``;
- ``guard``: the clean held-out figure (accuracy, BLEU: the audit's) fell by more than
  ``--guard`` points from the original model's. That round is rolled back: its directory
  stays, the final model is the previous round's;
- ``no improvement``: neither the worst nor the mean estimated rate fell below the
  previous round's 95% interval;
- ``rounds``: the round limit.

``fade.json`` (the ledger) is rewritten atomically after each round, so a killed fade
resumes where it stopped: a round whose ledger entry is missing is taken up again, and
its discovery, fine-tune and rediscovery resume or are reused from their own directories,
so no round is repeated or lost. The final model's config is ``OUT/final.yaml`` (a
``file`` model, its weights copied to ``OUT/model.safetensors``) and the report is
``OUT/fade_report.{json,md,html}`` (:mod:`fadejax.stages.fade_report`).

Baselines at the same fine-tune budget run through the same loop (``baseline``):
``uniform`` (as many training examples, each under a cell drawn uniformly from the whole
space), ``random`` (as many clean training examples) and ``single`` (the paper's one
round on the top mode).
"""

from __future__ import annotations

import math
import shutil
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Callable

import numpy as np
import yaml

from fadejax.engine.audit import AuditError, RestructureRequest
from fadejax.engine.config import ConfigError, ExperimentConfig, parse_config
from fadejax.engine.store.dirlock import LOCK_FILE, DirectoryLock
from fadejax.engine.store.rundir import CONFIG_FILE, STATUS_FILE, SUMMARY_FILE, write_json_atomic, write_text_atomic
from fadejax.engine.store.trust import refuse_links
from fadejax.stages.discover import discover
from fadejax.stages.restructure import SHIFT_REPORT, restructure

FADE_FILE = "fade.json"
FINAL_CONFIG = "final.yaml"
FINAL_WEIGHTS = "model.safetensors"
BASELINES = ("uniform", "random", "single")
#: what each baseline fine-tunes on (:attr:`fadejax.engine.audit.RestructureRequest.data`)
BASELINE_DATA = {"uniform": "uniform", "random": "random", "single": "modes"}
#: the fine-tune data a fade itself may ask for (``--data``)
FADE_DATA = ("weighted", "modes")
#: the share of the ``weighted`` fine-tune's draws that are uniform over the space: all of
#: them by failure rate cost clean accuracy on some seeds (benchmarks/RESULTS.md, "Fade until done")
UNIFORM_SHARE = 0.5


class FadeError(ValueError):
    """A fade that cannot run as asked; the message names what to change."""


@dataclass(frozen=True)
class FadeSettings:
    """What ``fadejax fade`` was asked (its defaults are the command's).

    ``target``: a failure rate in [0, 1]; ``guard``: points (hundredths) of the clean
    figure the model may lose; ``scope``: one of the audit's
    :attr:`~fadejax.engine.audit.Audit.fade_scopes` (``None``: its first); ``data``: the
    fade's own fine-tune data, ``weighted`` or ``modes`` (``None``: the first of these the
    audit builds)."""

    rounds: int = 3
    target: float = 0.25
    guard: float = 0.5
    modes_per_round: int = 5
    scope: str | None = None
    baseline: str | None = None
    epochs: int | None = None
    learning_rate: float | None = None
    data: str | None = None
    #: the audit's own restructure options (e.g. ``{"train_articles": 200}``), set ones only
    options: dict[str, Any] = field(default_factory=dict)

    def effective(self) -> "FadeSettings":
        """The settings the loop runs: ``single`` is one round on one mode."""
        if self.baseline == "single":
            return FadeSettings(**{**asdict(self), "rounds": 1, "modes_per_round": 1})
        return self


def check_request(config: ExperimentConfig, settings: FadeSettings) -> None:
    """:class:`FadeError` / :class:`AuditError` for a fade that cannot run, before anything is written."""
    audit = config.audit
    if audit.restructure_defaults is None or not audit.fade_scopes:
        raise AuditError(f"the '{audit.name}' audit has no fade (no fine-tuner fadejax can run in rounds); "
                         "audits with one: " + ", ".join(sorted(a.name for a in _audits() if a.fade_scopes and a.restructure_defaults)))
    if config.mode != "macro":
        raise FadeError("fade works on macroscopic configs (modes are cells); set mode: macro")
    if config.recording is not None:
        raise FadeError("this config replays a recording: there is no model to fine-tune; remove `recording` to fade the live model")
    if audit.family_members(config):
        raise FadeError("fade fine-tunes one model; this config audits a family (models:): fade each model's own config")
    if not (isinstance(settings.target, (int, float)) and 0.0 <= settings.target <= 1.0):
        raise FadeError(f"--target is a failure rate in [0, 1]; got {settings.target}")
    if not (settings.guard >= 0 and math.isfinite(settings.guard)):
        raise FadeError(f"--guard is the clean figure's allowed drop in points (>= 0, e.g. 0.5); got {settings.guard}")
    if settings.rounds < 1:
        raise FadeError(f"--rounds must be at least 1; got {settings.rounds}")
    if settings.modes_per_round < 1:
        raise FadeError(f"--modes-per-round must be at least 1; got {settings.modes_per_round}")
    if settings.scope is not None and settings.scope not in audit.fade_scopes:
        raise FadeError(f"--scope {settings.scope}: the '{audit.name}' audit fine-tunes {' or '.join(audit.fade_scopes)}"
                        + (" (it has no LoRA)" if settings.scope == "lora" else ""))
    if settings.baseline is not None and settings.baseline not in BASELINES:
        raise FadeError(f"--baseline must be one of {', '.join(BASELINES)}; got {settings.baseline}")
    if settings.data is not None and settings.data not in FADE_DATA:
        raise FadeError(f"--data must be one of {', '.join(FADE_DATA)}; got {settings.data}")
    if settings.data is not None and settings.baseline is not None:
        raise FadeError(f"--data chooses the fade's own fine-tune data; --baseline {settings.baseline} has its own")
    if fade_data(audit, settings) not in audit.fade_data:
        raise FadeError(f"--{'baseline ' + settings.baseline if settings.baseline else 'data ' + str(settings.data)}: "
                        f"the '{audit.name}' audit cannot build that fine-tune data "
                        f"(it builds {', '.join(audit.fade_data)})")
    unknown = sorted(set(settings.options) - set(audit.restructure_options))
    if unknown:
        raise FadeError(f"{', '.join('--' + n.replace('_', '-') for n in unknown)}: not an option of the '{audit.name}' audit's "
                        f"fine-tune (its options: {', '.join(sorted(audit.restructure_options)) or 'none'})")
    if "model" in settings.options:
        raise FadeError("--model picks a family's model; fade fine-tunes the one model of its config")
    for name in ("epochs", "learning_rate"):
        value = getattr(settings, name)
        if value is not None and not value > 0:
            raise FadeError(f"--{name.replace('_', '-')} must be positive; got {value}")
    # the audit's own checks of its options, as every round's restructure will make them
    epochs, learning_rate = audit.restructure_defaults
    audit.check_restructure(config, RestructureRequest(
        epochs=settings.epochs or epochs, learning_rate=settings.learning_rate or learning_rate, failure_weight=0.5, use_clean=True,
        radius=0, options=dict(settings.options), progress=False, scope=settings.scope, data=fade_data(audit, settings)))


def fade_data(audit, settings: FadeSettings) -> str:
    """The fine-tune data a fade (or its baseline) asks of ``audit``'s restructure."""
    if settings.baseline is not None:
        return BASELINE_DATA[settings.baseline]
    return settings.data or next((d for d in FADE_DATA if d in audit.fade_data), "modes")


def _audits():
    from fadejax.engine import registry

    return registry.loaded()


def _ledger_start(config: ExperimentConfig, settings: FadeSettings) -> dict[str, Any]:
    return {"version": 1, "task": config.audit.name, "config": config.model_dump(mode="json"), "settings": asdict(settings),
            "rounds": [], "original_clean": None, "stopped": None, "final": None}


def _check_out(out: Path, config: ExperimentConfig, settings: FadeSettings) -> dict[str, Any] | None:
    """The ledger already in ``out`` (a fade of the same config and settings, to resume), or
    ``None`` for a new or empty directory; :class:`FadeError` for anything else."""
    import json

    ledger_path = out / FADE_FILE
    if ledger_path.is_file():
        try:
            ledger = json.loads(ledger_path.read_bytes())
            same_config = parse_config(ledger["config"]).model_dump(mode="json") == config.model_dump(mode="json")
            same = same_config and {"data": None, **ledger["settings"]} == asdict(settings)  # ledgers before --data lack it
        except (ValueError, KeyError, TypeError, ConfigError):
            raise FadeError(f"'{ledger_path}' is not a fade ledger fadejax wrote; choose another --out") from None
        if not same:
            raise FadeError(f"'{out}' holds a fade of another config or other settings; choose another --out "
                            "(or the same config and settings to resume it)")
        return ledger
    if out.is_dir() and any(p.name not in (LOCK_FILE, FADE_FILE + ".tmp") for p in out.iterdir()):
        what = "a run directory" if (out / CONFIG_FILE).is_file() or (out / STATUS_FILE).is_file() else "other files"
        raise FadeError(f"'{out}' holds {what}, not a fade; choose an empty or new --out")
    return None


def check_start(config: ExperimentConfig, run_dir: Path) -> Path:
    """``run_dir`` if it is a complete discovery of exactly ``config`` (a round 0 to reuse);
    :class:`FadeError` naming what differs otherwise."""
    import json

    run_dir = Path(run_dir)
    status = run_dir / STATUS_FILE
    if not (status.is_file() and (run_dir / CONFIG_FILE).is_file()):
        raise FadeError(f"--from '{run_dir}' is not a run directory (no {STATUS_FILE} and {CONFIG_FILE})")
    try:
        complete = json.loads(status.read_bytes()).get("status") == "complete"
        written = yaml.safe_load((run_dir / CONFIG_FILE).read_text())
    except (ValueError, yaml.YAMLError, AttributeError):
        raise FadeError(f"--from '{run_dir}': its {STATUS_FILE} or {CONFIG_FILE} is not what fadejax writes") from None
    wanted = config.model_dump(mode="json")
    if not isinstance(written, dict) or written != wanted:
        differ = sorted(k for k in set(wanted) | set(written or {}) if (written or {}).get(k) != wanted.get(k)) if isinstance(written, dict) else ["(all)"]
        raise FadeError(f"--from '{run_dir}' is a run of another config (its {', '.join(differ)} differ from --config's); "
                        "fade discovers round 0 itself without --from")
    if not complete:
        raise FadeError(f"--from '{run_dir}' is not complete; finish it (fadejax discover ... --resume) or leave --from out")
    return run_dir


def fade(config: ExperimentConfig, out: str | Path, settings: FadeSettings | None = None, *, start: str | Path | None = None,
         progress: bool = True, restructure_round: Callable[..., dict[str, Any]] = restructure) -> dict[str, Any]:
    """Fade ``config``'s model into ``out``; return the ledger (see the module docstring).

    ``start``: a complete discovery of ``config`` to take as round 0 (``--from``; its
    directory is read, never written). ``restructure_round``: the round's fine-tune and
    rediscovery, called as :func:`fadejax.stages.restructure.restructure` (tests hand in a
    stand-in)."""
    settings = settings or FadeSettings()
    check_request(config, settings)
    start = check_start(config, Path(start)) if start is not None else None
    out = Path(out)
    refuse_links(out)
    _check_out(out, config, settings)  # before the lock file: a wrong --out is refused with nothing written
    with DirectoryLock(out, "fade directory"):
        ledger = _check_out(out, config, settings) or _ledger_start(config, settings)
        write_json_atomic(out / FADE_FILE, ledger)
        _rounds(config, out, settings.effective(), ledger, progress, restructure_round, start)
        _finish(config, out, ledger)
        from fadejax.stages.fade_report import write_report

        write_report(out, ledger)
        write_json_atomic(out / FADE_FILE, ledger)
    return ledger


def _say(progress: bool, text: str) -> None:
    if progress:
        print(f"fade: {text}", flush=True)


def _rounds(config: ExperimentConfig, out: Path, settings: FadeSettings, ledger: dict[str, Any], progress: bool,
            restructure_round: Callable[..., dict[str, Any]], start: Path | None) -> None:
    """Run the rounds the ledger lacks until a stopping rule holds; the ledger gets each
    round's entry (and ``stopped``) as it ends."""
    rounds = ledger["rounds"]
    if not rounds:
        if start is None:
            _say(progress, "round 0: discovery on the original model")
            start = out / "round-0"
            discover(config, start, resume=True, progress=progress)
        else:
            _say(progress, f"round 0: the discovery in '{start}'")
        rounds.append(_entry(0, start, config, [], [], None))
        _decide(ledger, settings)
        write_json_atomic(out / FADE_FILE, ledger)
    round_zero = Path(rounds[0]["run"])
    while ledger["stopped"] is None:
        r = len(rounds)
        kept = [e for e in rounds if e["status"] == "kept"][-1]
        chosen = [c for c in kept["ranked"] if c not in kept["modes_faded"]][: settings.modes_per_round]
        faded = kept["modes_faded"] + chosen
        data = fade_data(config.audit, settings)
        weights = _weights([e for e in rounds if e["status"] == "kept"], config) if data == "weighted" else None
        _say(progress, f"round {r}: fine-tuning on {len(faded)} mode{'s' * (len(faded) != 1)} ({data} data), then rediscovery")
        # round 0 holds exactly the config given to this fade (written by it, or checked by
        # check_start): the code it names is the user's own
        report = restructure_round(round_zero, faded, out / f"round-{r}", epochs=settings.epochs, learning_rate=settings.learning_rate,
                                   scope=settings.scope or config.audit.fade_scopes[0], data=data, cell_weights=weights,
                                   options=dict(settings.options),
                                   progress=progress, trust_code=True)
        if ledger["original_clean"] is None:
            ledger["original_clean"] = {"name": report["clean"]["name"], "value": float(report["clean"]["before"])}
            rounds[0]["clean"] = ledger["original_clean"]["value"]
            rounds[0]["truth"] = _truth(report.get("landscape_before"))
        rounds.append(_entry(r, out / f"round-{r}" / "rediscovery", config, faded, chosen, report))
        _decide(ledger, settings)
        write_json_atomic(out / FADE_FILE, ledger)
        entry = rounds[-1]
        _say(progress, f"round {r}: worst {entry['worst']['estimate']:.1%}, mean {entry['mean']['estimate']:.1%}, "
                       f"clean {entry['clean']:.2%}" + (" (rolled back)" if entry["status"] != "kept" else ""))


def _entry(r: int, run_dir: Path, config: ExperimentConfig, faded: list[int], chosen: list[int], report: dict[str, Any] | None) -> dict[str, Any]:
    """One round's ledger entry: the estimated worst and mean rates (95% intervals) of its
    discovery, its clean figure and its fine-tune budget."""
    figures = round_figures(run_dir, config)
    entry = {"round": r, "run": str(run_dir), "status": "kept", "modes_faded": list(faded), "chosen": list(chosen), **figures,
             "clean": None, "truth": None, "fine_tune": None, "shift_report": None}
    if report is not None:
        entry["clean"] = float(report["clean"]["after"])
        entry["truth"] = _truth(report.get("landscape_after"))
        tune = report.get("fine_tune") or {}
        entry["fine_tune"] = {"examples": tune.get("examples"), "epochs": tune.get("epochs"), "scope": tune.get("scope"),
                              "data": report.get("request", {}).get("data") or "modes"}
        entry["shift_report"] = str(Path(run_dir).parent / SHIFT_REPORT)
    return entry


def _weights(kept: list[dict[str, Any]], config: ExperimentConfig) -> np.ndarray:
    """``(num_actions,)`` the ``weighted`` fine-tune's cell distribution: a share
    :data:`UNIFORM_SHARE` uniform, the rest the mean over the kept rounds of each one's
    estimated failure rates, normalised. Every round fine-tunes the original model, so
    round 0's landscape stays in the mix (nothing faded is forgotten) and each later round
    adds where its model still failed."""
    mix = np.zeros(config.concept_space().num_actions)
    for entry in kept:
        # a ledger written before entries kept their rates refits them from the round's records
        rates = np.asarray(entry["rates"], np.float64) if entry.get("rates") else estimated_rates(Path(entry["run"]), config)
        mix += rates / rates.sum() if rates.sum() > 0 else 1.0 / rates.size
    return (1 - UNIFORM_SHARE) * mix / mix.sum() + UNIFORM_SHARE / mix.size


def _truth(landscape: list[float] | None) -> dict[str, float] | None:
    """The exhaustive worst and mean failure rate of a landscape, where the audit computed one."""
    if not landscape:
        return None
    rates = np.asarray(landscape, np.float64)
    return {"worst": float(rates.max()), "worst_cell": int(rates.argmax()), "mean": float(rates.mean())}


def round_figures(run_dir: Path, config: ExperimentConfig) -> dict[str, Any]:
    """``{"worst", "mean", "ranked", "cells_estimated", "rates"}`` of a finished discovery: the
    worst cell's estimated rate over the held-out set with its 95% interval, the mean
    estimated rate over the visited cells (its interval the mean of the cells' bounds:
    conservative, as if their errors all went one way), the visited cells worst first, and
    every cell's estimated rate (``(num_actions,)``, as :func:`estimated_rates`)."""
    space = config.concept_space()
    est = _estimates(run_dir, config)
    order = est.ranked(est.cells.size)
    top = order[0]
    return {
        "worst": {"cell": int(est.cells[top]), "concepts": space.describe(int(est.cells[top])), "estimate": float(est.rate[top]),
                  "interval": [float(est.lower[top]), float(est.upper[top])]},
        "mean": {"estimate": float(est.rate.mean()), "interval": [float(est.lower.mean()), float(est.upper.mean())]},
        "ranked": [int(c) for c in est.cells[order]],
        "cells_estimated": int(est.cells.size),
        "rates": [float(r) for r in _every_cell(est, space.num_actions)],
    }


def _estimates(run_dir: Path, config: ExperimentConfig):
    """The cell estimates (:func:`fadejax.analysis.estimates.cell_estimates`) of a finished discovery."""
    import json

    from fadejax.analysis.estimates import cell_estimates
    from fadejax.engine.store.records import query_columns, query_drawn, records_path

    done = json.loads((Path(run_dir) / SUMMARY_FILE).read_text())
    records = records_path(Path(run_dir))
    return cell_estimates(*query_columns(records), int(done["held_out_samples"]), config.concept_space().sizes, drawn=query_drawn(records))


def estimated_rates(run_dir: Path, config: ExperimentConfig) -> np.ndarray:
    """``(num_actions,)`` every cell's estimated failure rate in a finished discovery; a cell
    it never asked gets the mean of the asked cells' (nothing is known of it beyond that)."""
    return _every_cell(_estimates(run_dir, config), config.concept_space().num_actions)


def _every_cell(est, num_actions: int) -> np.ndarray:
    """``(num_actions,)`` the estimates' rate of every cell, the unasked ones at the asked ones' mean."""
    rates = np.full(num_actions, float(est.rate.mean()) if est.rate.size else 1.0)
    rates[est.cells] = est.rate
    return rates


def _decide(ledger: dict[str, Any], settings: FadeSettings) -> None:
    """Apply the stopping rules to the ledger's last round (see the module docstring)."""
    rounds = ledger["rounds"]
    entry = rounds[-1]
    r = entry["round"]
    original = ledger["original_clean"]
    if r > 0 and original is not None and original["value"] - entry["clean"] > settings.guard / 100.0:
        entry["status"] = "rolled back"
        ledger["stopped"] = {"reason": "guard", "round": r,
                             "note": f"clean {original['name']} fell from {original['value']:.2%} to {entry['clean']:.2%}, more than "
                                     f"{settings.guard:g} points: round {r} is rolled back"}
        return
    if entry["worst"]["estimate"] <= settings.target:
        ledger["stopped"] = {"reason": "target", "round": r,
                             "note": f"the worst mode's estimated rate {entry['worst']['estimate']:.1%} is at or below the target {settings.target:.1%}"}
        return
    if r > 0:
        previous = [e for e in rounds[:-1] if e["status"] == "kept"][-1]
        better_worst = entry["worst"]["estimate"] < previous["worst"]["interval"][0]
        better_mean = entry["mean"]["estimate"] < previous["mean"]["interval"][0]
        if not (better_worst or better_mean):
            ledger["stopped"] = {"reason": "no improvement", "round": r,
                                 "note": f"round {r} lowered neither the worst nor the mean estimated rate below round "
                                         f"{previous['round']}'s 95% interval"}
            return
    if r >= settings.rounds:
        ledger["stopped"] = {"reason": "rounds", "round": r, "note": f"the round limit ({settings.rounds}) is reached"}
        return
    if not [c for c in entry["ranked"] if c not in entry["modes_faded"]]:
        ledger["stopped"] = {"reason": "no modes left", "round": r, "note": "every visited cell is faded already"}


def _finish(config: ExperimentConfig, out: Path, ledger: dict[str, Any]) -> None:
    """``final.yaml`` (and the final weights) of the last kept round."""
    final = [e for e in ledger["rounds"] if e["status"] == "kept"][-1]
    if final["round"] == 0:
        data = config.model_dump(mode="json")
    else:
        data = yaml.safe_load((Path(final["run"]) / CONFIG_FILE).read_text())
        data.pop("restructured_from", None)
        weights = (data.get("model") or {}).get("weights")
        if weights and Path(weights).is_file():
            target = out / FINAL_WEIGHTS
            tmp = target.with_name(target.name + ".tmp")
            shutil.copyfile(weights, tmp)
            tmp.replace(target)
            data["model"]["weights"] = str(target.resolve())
    data["name"] = f"{config.name}-faded"
    write_text_atomic(out / FINAL_CONFIG, yaml.safe_dump(data, sort_keys=False))
    ledger["final"] = {"round": final["round"], "config": str(out / FINAL_CONFIG),
                       "weights": data.get("model", {}).get("weights") if final["round"] else None}
