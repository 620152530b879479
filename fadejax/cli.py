# PYTHON_ARGCOMPLETE_OK
"""The ``fadejax`` command line.

    fadejax init --model file:pkg.module:Class --weights W --data DIR_OR_NPZ --out mine.yaml [--minutes 10]
    fadejax discover --config configs/digits.yaml [--out DIR] [--resume] [--set field.path=value ...]
    fadejax landscape --config configs/digits.yaml [--out DIR] [--record [PATH]]
    fadejax describe --config CONFIG [--model NAME] [--run RUN_DIR] [--top N] [--out DIR]
    fadejax propose-conditions --config CONFIG --generator MODEL_DIR --out NEW_CONFIG.yaml [--per-class K]
    fadejax summarize RUN_DIR [--axes a,b,c] [--top 10] [--choose MODE ...]
    fadejax restructure RUN_DIR (--modes MODE ... | --modes-file modes.json | --top N)
    fadejax fade --config C [--out DIR] [--from RUN_DIR] [--rounds N] [--target RATE] [--guard POINTS] [--modes-per-round K] [--scope head|full|lora] [--data weighted|modes] [--baseline uniform|random|single]
    fadejax compare RUN_DIR RUN_DIR ... [--out DIR] [--ground-truth FILE]   (or fade directories)
    fadejax sweep SPEC.yaml [--out DIR] [--address ADDR] [--resume] [--cpus N] [--inline] [--plugin FILE.py] | fadejax sweep --report DIR
    fadejax check RUN_DIR
    fadejax trust [DIR ...] [--remove] [--list]

Bad input (config, data, model, output directory) prints one clear ``error:`` line and
exits with status 2, leaving existing results untouched. Any other failure prints one
``error:`` line naming the command and the step it failed in, writes the traceback to
``fadejax-error.log`` in the run directory (or the system's temporary directory when there
is none yet) and exits with status 1.

Shell completion (bash, zsh) through ``argcomplete``: ``eval "$(.venv/bin/register-python-argcomplete fadejax)"``.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
import traceback
from typing import Any
from pathlib import Path

import yaml

from fadejax import audits

EXIT_FAILED = 1
EXIT_BAD_INPUT = 2
EXIT_TIMED_OUT = 3
ERROR_LOG = "fadejax-error.log"


class _Progress:
    """The step a command is in and the directory it works in, for the error line and log."""

    step = "starting"
    directory: Path | None = None

    @classmethod
    def enter(cls, step: str, directory: Path | None = None) -> None:
        cls.step = step
        if directory is not None:
            cls.directory = Path(directory)


def _report_unexpected(command: str, exc: BaseException) -> int:
    """One ``error:`` line; the traceback goes to a log file whose path the line names."""
    directory = _Progress.directory if _Progress.directory is not None and _Progress.directory.is_dir() else Path(tempfile.gettempdir())
    log = directory / ERROR_LOG
    text = "".join(traceback.format_exception(exc))
    try:
        with open(log, "a") as f:
            f.write(f"--- fadejax {command}, {time.strftime('%Y-%m-%d %H:%M:%S')}, while {_Progress.step}\n{text}\n")
        where = f"traceback in {log}"
    except OSError as write_error:  # never lose the traceback silently
        print(text, file=sys.stderr)
        where = f"the traceback is above (could not write {log}: {write_error})"
    message = str(exc).splitlines()[0] if str(exc) else ""
    print(f"error: fadejax {command} failed while {_Progress.step}: {type(exc).__name__}"
          + (f": {message}" if message else "") + f"; {where}", file=sys.stderr)
    return EXIT_FAILED


#: what each command reads and writes, shown by ``fadejax COMMAND --help`` (commands that
#: write a directory take it as --out; those that only read take it as a positional RUN_DIR)
COMMAND_IO: dict[str, tuple[str, str]] = {
    "discover": ("--config (a YAML experiment), its data and model", "a run directory (--out): config, records, curves, checkpoints"),
    "summarize": ("RUN_DIR (complete or interrupted)", "RUN_DIR/report (or --out): report.html, figures, summary.json, CSVs"),
    "restructure": ("RUN_DIR (a complete macroscopic run)", "RUN_DIR-restructured (or --out): the fine-tuned model, a rediscovery run, shift_report.md/.json"),
    "fade": ("--config (a YAML experiment), its data and model", "runs/<config name>-fade (or --out): a run directory per round, "
             "fade.json, final.yaml and model.safetensors, fade_report.md/.json/.html"),
    "compare": ("RUN_DIR ... (complete or interrupted), or fade directories", "./comparison (or --out): curves as PNG, PDF and HTML, compare.md/.csv"),
    "sweep": ("a sweep spec YAML (or --report DIR)", "sweeps/<spec name> (or --out): one run directory per point, sweep.json"),
    "describe": ("--config (a conditions experiment), or --run RUN_DIR", "runs/<config name>/describe (or --out): describe.json"),
    "propose-conditions": ("--config (a conditions experiment) and --generator (a local language model)", "--out: a new config file"),
    "landscape": ("--config (a YAML experiment), its data and model", "--out: ground_truth.json (and with --record, a recording .npz)"),
    "check": ("RUN_DIR", "nothing; exit 0 if the run is sound, 1 if not"),
    "export": ("RUN_DIR (complete or interrupted)", "RUN_DIR/export/records.FORMAT (or --out): the run's records as JSON lines, CSV or Parquet"),
    "trust": ("DIR ...", "your own trust store (~/.config/fadejax)"),
    "init": ("--model (and --weights) and --data: your own model and data", "--out: a new, commented config (never overwrites a file)"),
}


def _add_command(commands: Any, name: str, help: str) -> argparse.ArgumentParser:
    reads, writes = COMMAND_IO[name]
    return commands.add_parser(name, help=help, description=f"{help}\n\nreads:  {reads}\nwrites: {writes}",
                               formatter_class=argparse.RawDescriptionHelpFormatter)


def _add_set(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--set", dest="overrides", action="append", default=[], metavar="FIELD=VALUE",
                        help="override a config field, e.g. --set run.iterations=50 (value parsed as YAML; repeatable)")


def _add_quiet(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--quiet", action="store_true", help="no progress bars or progress messages (results and errors are still printed)")


def _add_trust_code(parser: argparse.ArgumentParser, when: str = "") -> None:
    parser.add_argument("--trust-code", action="store_true", help=when + TRUST_CODE_HELP)


def _parser() -> argparse.ArgumentParser:
    from fadejax import __version__

    parser = argparse.ArgumentParser(prog="fadejax", description="Find, summarize and fade the failure modes of trained models.")
    parser.add_argument("--version", action="version", version=f"fadejax {__version__}")
    commands = parser.add_subparsers(dest="command", required=True)
    init = _add_command(commands, "init", "write a commented, validated config for your own model and data, its budget sized to --minutes")
    init.add_argument("--model", required=True, help="embedded, file:package.module:Class, huggingface:DIR_OR_CACHED_ID, torchvision:NAME or timm:NAME")
    init.add_argument("--weights", help="the model's weights (.safetensors, or a .pt/.pth state dict); needed by file models")
    init.add_argument("--data", required=True, help="a folder of class sub-folders, a datasets directory (save_to_disk), an .npz, or digits")
    init.add_argument("--out", required=True, help="the config file to write (must not exist)")
    init.add_argument("--minutes", type=float, default=10.0, help="how long the run's discovery should take on this machine (default 10)")
    init.add_argument("--task", default=audits.DEFAULT, help=f"the audit (default {audits.DEFAULT}; one that has an init)")
    _add_set(init)
    _add_quiet(init)
    discover = _add_command(commands, "discover", "run RL failure discovery into a run directory")
    discover.add_argument("--config", required=True, help="experiment YAML file (see configs/)")
    discover.add_argument("--out", help="run directory (default: runs/<config name>)")
    discover.add_argument("--resume", action="store_true", help="continue the run in --out from its last checkpoint")
    _add_set(discover)
    _add_quiet(discover)
    summarize = _add_command(commands, "summarize", "write the interactive HTML report, figures and numbers of a run")
    summarize.add_argument("run_dir", help="a run directory written by fadejax discover (complete or interrupted)")
    summarize.add_argument("--axes", help="three axis names for the 3-D view, comma-separated (default: the first three)")
    summarize.add_argument("--fix", action="append", default=[], metavar="AXIS=VALUE",
                           help="slice the views at this value of an axis not shown (repeatable); other hidden axes are averaged")
    summarize.add_argument("--top", type=int, default=10, help="failure modes in the ranked table (default 10)")
    summarize.add_argument("--margin", type=float, default=0.1,
                           help="an axis is part of a mode's minimal description if resetting it lowers the true failure rate by more than this")
    summarize.add_argument("--choose", action="append", default=[], metavar="MODE",
                           help="mark a failure mode to fade, as a cell index or axis=value pairs (repeatable); writes modes.json")
    summarize.add_argument("--family-threshold", type=float, default=0.5, metavar="RATE",
                           help="model families: the failure rate at which a model counts as failing in a mode (default 0.5)")
    summarize.add_argument("--out", help="output directory (default: RUN_DIR/report)")
    _add_trust_code(summarize)
    _add_quiet(summarize)
    restructure = _add_command(commands, "restructure", "fine-tune the audited model away from chosen modes, rediscover, write the shift report")
    restructure.add_argument("run_dir", help="a complete macroscopic run directory")
    restructure.add_argument("--modes", action="append", default=[], metavar="MODE",
                             help="a mode to fade: cell index or axis=value pairs (repeatable)")
    restructure.add_argument("--modes-file", help="a modes.json exported by the report or by summarize --choose")
    restructure.add_argument("--top", type=int, default=0, help="fade the run's N failure modes of highest estimated rate (if no --modes given)")
    restructure.add_argument("--failure-weight", type=float, default=0.5, help="lambda in L_clean + lambda * L_failure (default 0.5)")
    restructure.add_argument("--no-clean", action="store_true", help="train on the failure data alone (no clean-data term)")
    defaults = "; ".join(f"{a.name} {a.restructure_defaults[0]} epochs, lr {a.restructure_defaults[1]:g}"
                         for a in audits.loaded() if a.restructure_defaults is not None)
    restructure.add_argument("--epochs", type=int, help=f"fine-tuning epochs (default: the audit's fine-tuner's, the paper's: {defaults})")
    restructure.add_argument("--learning-rate", type=float, help="default: the audit's fine-tuner's (see --epochs)")
    for name, (kind, text) in _restructure_options().items():  # each audit's own options
        restructure.add_argument("--" + name.replace("_", "-"), dest=name, type=kind, help=text)
    restructure.add_argument("--option", dest="options", action="append", default=[], metavar="NAME=VALUE",
                             help="an option of the run's audit that has no flag of its own (e.g. a plugin audit's; repeatable)")
    restructure.add_argument("--out", help="output directory (default: RUN_DIR-restructured)")
    _add_trust_code(restructure)
    _add_quiet(restructure)
    fade = _add_command(commands, "fade", "rounds of discover -> fine-tune -> rediscover until the failures are faded, "
                                            "with a stopping rule and a guard on clean quality")
    fade.add_argument("--config", required=True, help="experiment YAML file (a macroscopic config of an audit with a fade)")
    fade.add_argument("--out", help="fade directory (default: runs/<config name>-fade); the same command resumes it")
    fade.add_argument("--from", dest="start", metavar="RUN_DIR", help="a complete discovery of the same config to take as round 0 "
                                                                     "(e.g. the main job's runs/digits); read, never written")
    fade.add_argument("--rounds", type=int, default=3, help="most fine-tune rounds (default 3)")
    fade.add_argument("--target", type=float, default=0.25, help="stop once the worst mode's estimated failure rate is at or below this (default 0.25)")
    fade.add_argument("--guard", type=float, default=0.5, help="roll back and stop a round that costs more than this many points of "
                                                             "clean held-out accuracy (or BLEU) against the original model (default 0.5)")
    fade.add_argument("--modes-per-round", type=int, default=5, help="worst modes added to the faded set each round (default 5)")
    fade.add_argument("--scope", help="what the fine-tune trains: head (the last layer, the paper's), full, or lora (default: the audit's first)")
    fade.add_argument("--data", choices=["weighted", "modes"],
                      help="what each round fine-tunes on: weighted (every cell, half the draws uniform and half in proportion to "
                           "its estimated failure rate; the default where the audit builds it) or modes (only the chosen worst modes, the paper's)")
    fade.add_argument("--baseline", choices=["uniform", "random", "single"],
                      help="run a baseline through the same loop at the same fine-tune budget instead: uniform augmentation, "
                           "random (clean) examples, or the paper's single round on the top mode")
    fade.add_argument("--epochs", type=int, help="fine-tune epochs per round (default: the audit's fine-tuner's)")
    fade.add_argument("--learning-rate", type=float, help="default: the audit's fine-tuner's")
    for name, (kind, text) in _fade_options().items():  # each fading audit's own fine-tune options
        fade.add_argument("--" + name.replace("_", "-"), dest=name, type=kind, help=text)
    _add_set(fade)
    _add_quiet(fade)
    compare = _add_command(commands, "compare", "learning curves of several runs side by side (PNG, PDF and an offline HTML page)")
    compare.add_argument("run_dirs", nargs="+", metavar="RUN_DIR", help="run directories (complete or interrupted), or fade directories (all of them)")
    compare.add_argument("--out", default="comparison", help="output directory (default: ./comparison)")
    compare.add_argument("--ground-truth", help="a ground_truth.json the runs share (default: each run's own, if it has one) "
                                               "for their recall@10 curves")
    compare.add_argument("--points", type=int, default=10, help="points on each recall@10 curve (default 10)")
    _add_trust_code(compare)
    _add_quiet(compare)
    sweep = _add_command(commands, "sweep", "an experiment grid (searchers x seeds x config fields) as Ray tasks, resumable; "
                                              "or --report DIR: its tables and figure")
    sweep.add_argument("spec", nargs="?", help="sweep spec YAML (base config, fields to vary; see fadejax/sweeps/spec.py)")
    sweep.add_argument("--out", help="sweep directory (default: sweeps/<spec file name>)")
    sweep.add_argument("--address", help="join this Ray cluster (e.g. HOST:6379) instead of starting a local one")
    sweep.add_argument("--resume", action="store_true", help="finish a sweep already in --out: complete points are kept, "
                                                             "interrupted ones resume from their checkpoints")
    sweep.add_argument("--cpus", type=int, help="CPUs of the local Ray (default: all of this machine's)")
    sweep.add_argument("--report", metavar="DIR", help="write DIR's sweep.csv, summary.csv/.md and summary.png instead of running")
    _add_quiet(sweep)
    sweep.add_argument("--inline", action="store_true", help="no Ray: run the points one after another in this process "
                                                             "(same run directories, manifest and resume)")
    sweep.add_argument("--plugin", action="append", default=[], metavar="FILE.py",
                       help="import this file of yours first (it registers searchers the spec names); every worker imports it too")
    _add_trust_code(sweep, "with --report: ")
    describe = _add_command(commands, "describe", "name the audited classifier's real held-out failures in words "
                                                    "(CLIP picks each one's condition; the 'conditions' audit)")
    describe.add_argument("--config", required=True, help="experiment YAML file")
    _add_set(describe)
    describe.add_argument("--model", help="in a model family's config: the member whose failures to describe")
    describe.add_argument("--top", type=int, default=5, help="how many (class, condition) pairs to print (default 5)")
    describe.add_argument("--out", help="output directory (default: runs/<config name>/describe)")
    describe.add_argument("--run", help="describe the failures this image-audit discovery run of the same classifier found "
                          "(default: the classifier's misclassified held-out images)")
    describe.add_argument("--max-failures", type=int, default=1000, help="with --run: describe at most this many of its distinct "
                          "failures, a seeded random choice (default 1000)")
    _add_trust_code(describe, "with --run: ")
    _add_quiet(describe)
    propose = _add_command(commands, "propose-conditions", "a local text-generation model proposes conditions for each class "
                                                             "word of a 'conditions' config; writes the config extended by them")
    propose.add_argument("--config", required=True, help="a generated-conditions experiment YAML file (task: conditions)")
    _add_set(propose)
    propose.add_argument("--generator", required=True, help="a local causal or encoder-decoder language model directory (or a model "
                                                            "id already in the Hugging Face cache; nothing is downloaded)")
    propose.add_argument("--out", required=True, help="the new config file to write (must not exist)")
    propose.add_argument("--per-class", type=int, default=5, help="new conditions per class word (default 5)")
    propose.add_argument("--prompt", help="what the model is given per class, with {class} (default: conditions.class_prompt for a "
                                          "causal model, which it continues; a short question for an encoder-decoder)")
    propose.add_argument("--seed", type=int, default=0, help="sampling seed (default 0)")
    propose.add_argument("--device", default="cpu", help="torch device for the model (default cpu)")
    _add_quiet(propose)
    landscape = _add_command(commands, "landscape", "exhaustive ground-truth failure landscape (every action x every held-out sample)")
    landscape.add_argument("--config", required=True, help="experiment YAML file (its audit's settings and space are used)")
    landscape.add_argument("--out", help="directory to save ground_truth.json in (default: runs/<config name>)")
    _add_set(landscape)
    landscape.add_argument("--record", nargs="?", const="", metavar="PATH",
                           help="also keep every (sample, cell) answer as a recording for model-free replays "
                                "(default PATH: OUT/recording.npz; see fadejax.engine.recording)")
    _add_quiet(landscape)
    check = _add_command(commands, "check", "verify a run directory: config, records, checkpoint, curves, report (exit 0 if sound, 1 if not)")
    check.add_argument("run_dir", metavar="RUN_DIR", help="the run directory to read (nothing is written)")
    _add_trust_code(check)
    export = _add_command(commands, "export", "write a run's records as JSON lines, CSV or Parquet (runs keep them as Arrow columns)")
    export.add_argument("run_dir", metavar="RUN_DIR", help="the run directory to read (complete or interrupted)")
    export.add_argument("--format", required=True, choices=("jsonl", "csv", "parquet"), help="jsonl: the JSON-lines records, byte for byte; "
                        "csv, parquet: a column per field and per concept axis")
    export.add_argument("--out", help="the file to write (default RUN_DIR/export/records.FORMAT)")
    _add_quiet(export)
    trust = _add_command(commands, "trust", "trust your own run directories once (pinned to their config and code); "
                                              "an edited, moved or copied directory is refused again")
    trust.add_argument("paths", nargs="*", metavar="DIR", help="run directories to trust")
    trust.add_argument("--remove", action="store_true", help="forget these directories instead")
    trust.add_argument("--list", dest="list_only", action="store_true", help="list trusted directories and whether each still matches")
    return parser


TRUST_CODE_HELP = (
    "import and run the code the run directory's config names (an audit or model class by import path); "
    "without it such a run directory is refused, since a shared one may name anything"
)


def _fade_options() -> dict[str, tuple[type, str]]:
    """The own fine-tune options of every loaded audit that has a fade (a family's ``model`` aside:
    fade fine-tunes one model): name -> (type, help)."""
    options: dict[str, tuple[type, str]] = {}
    for audit in audits.loaded():
        if audit.fade_scopes:
            options.update({n: o for n, o in audit.restructure_options.items() if n != "model"})
    return options


def _restructure_options() -> dict[str, tuple[type, str]]:
    """Every loaded audit's own ``fadejax restructure`` options: name -> (type, help)."""
    options: dict[str, tuple[type, str]] = {}
    for audit in audits.loaded():
        options.update(audit.restructure_options)
    return options


def _bad_input_errors() -> tuple[type[BaseException], ...]:
    from fadejax.stages.compare import CompareError
    from fadejax.stages.fade import FadeError
    from fadejax.engine.config import ConfigError
    from fadejax.engine.store.dirlock import DirectoryLockedError
    from fadejax.stages.finetune import FineTuneError
    from fadejax.engine.ground_truth import GroundTruthError, LandscapeTooLarge
    from fadejax.engine.store.learning_log import MetricsError
    from fadejax.core.perturbations import PerturbationError
    from fadejax.engine.recording import RecordingError
    from fadejax.engine.store.records import RecordsError
    from fadejax.engine.store.rundir import RunDirError
    from fadejax.core.spaces import SpaceError
    from fadejax.stages.summarize import SummarizeError
    from fadejax.sweeps.spec import SweepError
    from fadejax.engine.store.trust import UnsafeOutputError, UntrustedCodeError

    errors: list[type[BaseException]] = [
        audits.AuditError, CompareError, ConfigError, FadeError, DirectoryLockedError, FineTuneError, GroundTruthError, LandscapeTooLarge, MetricsError, PerturbationError, RecordingError, RecordsError,
        RunDirError, SpaceError, SummarizeError, SweepError, UnsafeOutputError, UntrustedCodeError,
    ]
    if "bridges.weights" in sys.modules:
        errors.append(sys.modules["bridges.weights"].ModelLoadError)
    if "bridges.text_generator" in sys.modules:
        errors.append(sys.modules["bridges.text_generator"].TextGeneratorError)
    if "bridges.classifier" in sys.modules:
        errors.append(sys.modules["bridges.classifier"].OracleError)
    return tuple(errors)


def _discover(args: argparse.Namespace) -> int:
    from fadejax.engine.config import load_config
    from fadejax.stages.discover import discover

    _Progress.enter("loading the config")
    config = load_config(args.config, args.overrides)
    out = Path(args.out) if args.out else Path("runs") / config.name
    _Progress.enter("resuming the run" if args.resume else "running discovery", out)
    summary = discover(config, out, resume=args.resume, progress=not args.quiet)
    _Progress.enter("printing the summary")
    print(summary.render())
    return 0


def _describe(args: argparse.Namespace) -> int:
    from fadejax.engine.config import ConfigError, load_config

    _Progress.enter("loading the config")
    config = load_config(args.config, args.overrides)
    if args.top < 1:
        raise ConfigError(f"--top {args.top}: give 1 or more")
    out = Path(args.out) if args.out else Path("runs") / config.name / "describe"
    _Progress.enter("describing the failures", out)
    report = config.audit.describe_failures(config, out, model=args.model, top=args.top, run=Path(args.run) if args.run else None,
                                            limit=args.max_failures, trust_code=args.trust_code, progress=not args.quiet)
    print("\n".join(report.get("lines", [])))
    return 0


def _propose_conditions(args: argparse.Namespace) -> int:
    from fadejax.engine.config import load_config

    _Progress.enter("loading the config")
    config = load_config(args.config, args.overrides)
    _Progress.enter("proposing conditions")
    result = config.audit.propose_conditions(config, Path(args.config), args.overrides, args.generator, Path(args.out),
                                             per_class=args.per_class, prompt=args.prompt, seed=args.seed, device=args.device,
                                             progress=not args.quiet)
    print("\n".join(result["lines"]))
    return 0


def _landscape(args: argparse.Namespace) -> int:
    from fadejax.engine.config import ConfigError, load_config
    from fadejax.engine.store.dirlock import DirectoryLock
    from fadejax.engine.ground_truth import GROUND_TRUTH_FILE, check_landscape_dir, landscape_key, load_or_compute, save_ground_truth
    from fadejax.engine.recording import record
    from fadejax.core.spaces import format_value
    from fadejax.engine.build import build_task

    _Progress.enter("loading the config")
    config = load_config(args.config, args.overrides)
    out = Path(args.out) if args.out else Path("runs") / config.name
    family = config.audit.family_members(config)
    if args.record is not None and family:
        raise ConfigError(f"--record: a recording holds one answer per query, not each of a family's models {family}; "
                          "compute the family's landscapes without --record, or record each model on its own")
    if args.record is not None:
        check_landscape_dir(config, out)  # another audit's run is refused before the model loads (and again under the lock)
    # Bad data or a model that does not fit fail here (its pre-flight), before the lock file or
    # anything else is written; a ground truth already computed is reused without the model.
    task = build_task(config, progress=not args.quiet) if args.record is not None or not (out / GROUND_TRUTH_FILE).is_file() else None
    _Progress.enter("computing the landscape", out)
    with DirectoryLock(out, "landscape directory"):  # one writer (fadejax.engine.store.dirlock)
        if args.record is not None:
            check_landscape_dir(config, out)  # refuses a directory holding another audit's run
            recording = record(task, landscape_key(config), config.name, progress=not args.quiet)
            path = recording.save(Path(args.record) if args.record else out / "recording.npz")
            stats, reused = save_ground_truth(config, out, recording.failure_rates(), task), False
            print(f"recording: {path} ({path.stat().st_size / 1e3:.0f} kB, {task.num_samples} samples x {task.space.num_actions} cells)")
        else:
            _, stats, reused = load_or_compute(config, out, lambda: task if task is not None else build_task(config, progress=not args.quiet), progress=not args.quiet)
    _Progress.enter("printing the landscape's statistics")
    worst = ", ".join(f"{k}={format_value(v)}" for k, v in stats["worst_concepts"].items())
    clean = stats.get("clean_accuracy")
    print(f"ground truth ({'reused' if reused else 'computed'}): {out / 'ground_truth.json'}")
    print(f"  {stats['num_actions']} actions x {stats['held_out_samples']} held-out samples"
          + (f"; clean accuracy {clean:.1%}" if isinstance(clean, (int, float)) else ""))
    print(f"  mean failure rate {stats['mean_failure_rate']:.1%}; worst cell {stats['worst_cell']} ({worst}) {stats['worst_failure_rate']:.1%}; "
          f"cells above 50%: {stats['share_of_cells_above_50pct']:.1%}")
    for model, own in (stats.get("models") or {}).items():
        own_worst = ", ".join(f"{k}={format_value(v)}" for k, v in own["worst_concepts"].items())
        clean = own.get("clean_accuracy")
        print(f"  model {model}: mean failure rate {own['mean_failure_rate']:.1%}; worst cell {own['worst_cell']} ({own_worst}) "
              f"{own['worst_failure_rate']:.1%}" + (f"; clean accuracy {clean:.1%}" if isinstance(clean, (int, float)) else ""))
    return 0


def _summarize(args: argparse.Namespace) -> int:
    import json

    from fadejax.engine.store.dirlock import DirectoryLock
    from fadejax.stages.figures import write_figures
    from fadejax.stages.report import write_report
    from fadejax.stages.summarize import SummarizeError, load_summary, modes_document, parse_mode, read_run_config
    from fadejax.engine.store.trust import refuse_links

    run_dir = Path(args.run_dir)
    _Progress.enter("reading the run's config", run_dir)
    config = read_run_config(run_dir, trust_code=args.trust_code)  # check every flag before the slow part
    refuse_links(Path(args.out) if args.out else run_dir / "report")
    space = config.concept_space()
    names = list(space.names)
    wanted = args.axes.split(",") if args.axes else names[:3]
    unknown = [a for a in wanted if a not in names]
    if unknown or len(set(wanted)) != len(wanted) or not 1 <= len(wanted) <= 3:
        raise SummarizeError(f"--axes must name one to three distinct axes of {names}; got {wanted}")
    keep = [names.index(a) for a in wanted]
    fixed = {}
    for text in args.fix:
        name, _, value = text.partition("=")
        if name not in names or names.index(name) in keep:
            raise SummarizeError(f"--fix '{text}': the axis must be one of {names} and not among the shown axes {wanted}")
        axis = space.axes[names.index(name)]
        try:
            fixed[names.index(name)] = axis.values.index(float(value) if all(isinstance(v, float) for v in axis.values) else value)
        except ValueError:
            raise SummarizeError(f"--fix '{text}': {name} takes one of {list(axis.values)}") from None
    cells = [parse_mode(text, config) for text in args.choose]
    if not 0.0 < args.family_threshold <= 1.0:
        raise SummarizeError(f"--family-threshold must be a failure rate in (0, 1]; got {args.family_threshold}")
    _Progress.enter("summarising the run")
    summary = load_summary(run_dir, keep=keep, fixed=fixed, top=args.top, margin=args.margin, progress=not args.quiet, config=config,
                           family_threshold=args.family_threshold)
    out = Path(args.out) if args.out else run_dir / "report"
    _Progress.enter("writing the report")
    with DirectoryLock(out, "report directory"):  # one writer of the report; the run it reads takes no lock
        files = write_report(summary, out)
        _Progress.enter("writing the figures")
        figures = write_figures(summary, out)
        if cells:
            (out / "modes.json").write_text(json.dumps(modes_document(run_dir, config, cells), indent=2))
    for note in summary.notes:
        print(f"note: {note}")
    if summary.family:
        _print_family(summary.family)
    if summary.corruptions:
        _print_corruptions(summary.corruptions)
    print(f"report: {files['html']}")
    more = f", {files['corruptions']}" if "corruptions" in files else ""
    print(f"numbers: {files['json']}, {files['csv']}, {files['cells']}{more}; figures: {', '.join(Path(f).name for f in figures)}")
    if cells:
        print(f"chosen modes: {out / 'modes.json'}")
    return 0


def _print_corruptions(r: dict) -> None:
    """The common corruptions in a few lines: mean CE, the hardest corruption, the worst interaction."""
    from fadejax.core.spaces import format_value

    known = [row for row in r["rows"] if row["ce"] is not None]
    if known:
        worst = max(known, key=lambda row: row["ce"])
        print(f"common corruptions ({r['source']}): mean CE {r['mean_ce']:.2f} over {len(known)} corruptions; "
              f"hardest {worst['corruption']} (CE {worst['ce']:.2f})")
    for model, f in (r["relative"] or {}).get("models", {}).items():
        if f["mce"] is not None:
            print(f"  mCE of {model} relative to {r['relative']['baseline']}: {f['mce']:.2f}")
    if r["interactions"]:
        top = r["interactions"][0]
        terms = " + ".join(f"{n} {format_value(v)}" for n, v in top["terms"])
        print(f"  most interacting combination: {terms}: {top['rate']:.0%} against {top['worst_part']:.0%} for its worst part alone")


def _print_family(family: dict) -> None:
    """The family's shared and model-specific modes, a few lines each."""
    from fadejax.core.spaces import format_value

    def describe(row: dict) -> str:
        concepts = ", ".join(f"{k}={format_value(v)}" for k, v in row["concepts"].items())
        rates = ", ".join(f"{m} {r:.0%}" for m, r in row["rates"].items())
        return f"cell {row['cell']} ({concepts}): {rates}"

    print(f"family of {len(family['models'])} models: {len(family['shared'])} shared modes, {len(family['specific'])} specific to one model")
    for row in family["shared"][:5]:
        print(f"  shared: {describe(row)}")
    for row in family["specific"][:10]:
        print(f"  only {row['model']}: {describe(row)}")


def _restructure(args: argparse.Namespace) -> int:
    from fadejax.engine.store.records import query_columns, query_drawn, records_path
    from fadejax.stages.restructure import restructure
    from fadejax.engine.store.rundir import SUMMARY_FILE
    from fadejax.stages.summarize import SummarizeError, parse_mode, read_modes_file, read_run_config

    run_dir = Path(args.run_dir)
    _Progress.enter("reading the run's config", run_dir)
    config = read_run_config(run_dir, trust_code=args.trust_code)
    cells = [parse_mode(text, config) for text in args.modes]
    if args.modes_file:
        cells += read_modes_file(args.modes_file, config)
    if not cells and args.top > 0:
        # the N modes with the highest estimated rate over the held-out set (as discover prints them)
        from fadejax.analysis.estimates import top_estimated_cells

        done = json.loads((run_dir / SUMMARY_FILE).read_text()) if (run_dir / SUMMARY_FILE).is_file() else {}
        if not done.get("held_out_samples"):
            raise SummarizeError(f"'{run_dir}' has no finished discovery with estimated rates ({SUMMARY_FILE}): finish it "
                                 "(fadejax discover ... --resume) or choose the modes with --modes / --modes-file")
        records = records_path(run_dir)
        rows = top_estimated_cells(*query_columns(records), int(done["held_out_samples"]), config.concept_space().sizes, args.top,
                                   drawn=query_drawn(records))
        cells = [row["cell"] for row in rows]
    if not cells:
        raise SummarizeError("choose the modes to fade: --modes, --modes-file or --top N")
    out = Path(args.out) if args.out else None
    _Progress.enter("fine-tuning and rediscovering")
    options = {name: getattr(args, name) for name in _restructure_options()}
    for assignment in args.options:
        name, equals, value = assignment.partition("=")
        if not equals or not name:
            raise SummarizeError(f"--option '{assignment}' must look like NAME=VALUE")
        options[name.strip().replace("-", "_")] = yaml.safe_load(value)
    report = restructure(run_dir, cells, out, failure_weight=args.failure_weight, use_clean=not args.no_clean, epochs=args.epochs,
                         learning_rate=args.learning_rate, options=options, trust_code=args.trust_code,
                         progress=not args.quiet)
    from fadejax.stages.restructure import render_markdown

    print(render_markdown(report))
    print(f"shift report: {Path(report['rediscovery']).parent / 'shift_report.md'} (and .json)")
    return 0


def _sweep(args: argparse.Namespace) -> int:
    from fadejax.searchers.plugins import PluginError, import_plugins
    from fadejax.sweeps.runner import run_sweep
    from fadejax.sweeps.report import write_report
    from fadejax.sweeps.spec import SweepError

    if (args.spec is None) == (args.report is None):
        raise SweepError("give a sweep spec to run (fadejax sweep SPEC.yaml) or --report DIR, not both and not neither")
    try:
        import_plugins(args.plugin)
    except PluginError as exc:
        raise SweepError(str(exc)) from None
    if args.report is not None:
        out, trust = Path(args.report), args.trust_code
    else:
        if args.cpus is not None and (args.cpus < 1 or args.address):
            raise SweepError("--cpus sets the local Ray's CPUs: a positive number, and not with --address")
        if args.inline and (args.address or args.cpus is not None):
            raise SweepError("--inline runs the points in this process, without Ray: not with --address or --cpus")
        out, trust = (Path(args.out) if args.out else Path("sweeps") / Path(args.spec).stem), True  # the user's own spec
        _Progress.enter("running the sweep", out)
        manifest = run_sweep(args.spec, out, address=args.address, resume=args.resume, cpus=args.cpus, progress=not args.quiet,
                             plugins=args.plugin, inline=args.inline)
        counts = {s: sum(p["status"] == s for p in manifest["points"]) for s in ("complete", "failed")}
        print(f"sweep {out}: {counts['complete']} of {len(manifest['points'])} points complete, {counts['failed']} failed")
    _Progress.enter("writing the sweep's report", out)
    files = write_report(out, trust_code=trust)
    print(files["markdown"].read_text(), end="")
    print(f"tables: {files['points']}, {files['summary']}; figure: {files['figure']}")
    return 0 if args.report is not None or counts["failed"] == 0 else EXIT_FAILED


def _init(args: argparse.Namespace) -> int:
    from fadejax.stages.starter import write_starter_config

    _Progress.enter("writing a config", Path(args.out).parent)
    result = write_starter_config(args.out, args.model, args.data, weights=args.weights, task=args.task, minutes=args.minutes,
                                  overrides=args.overrides, progress=not args.quiet)
    seconds, iterations = result["seconds_per_iteration"], result["iterations"]
    print(f"config: {result['path']} (one iteration {seconds:.3f} s here; {iterations} iterations, about {seconds * iterations / 60:.1f} min)")
    print(f"run it with: fadejax discover --config {result['path']}")
    return 0


def _check(args: argparse.Namespace) -> int:
    from fadejax.engine.store.run_check import check_run

    _Progress.enter("checking the run", Path(args.run_dir))
    problems = check_run(Path(args.run_dir), trust_code=args.trust_code)
    for problem in problems:
        print(problem)
    print(f"{args.run_dir}: " + (f"{len(problems)} problem{'s' * (len(problems) != 1)}" if problems else "sound"))
    return EXIT_FAILED if problems else 0


def _export(args: argparse.Namespace) -> int:
    from fadejax.stages.export import export_records

    _Progress.enter("exporting the records", Path(args.run_dir))
    path, rows = export_records(args.run_dir, args.format, args.out, progress=not args.quiet)
    print(f"{rows} records written to {path}")
    return 0


def _fade(args: argparse.Namespace) -> int:
    from fadejax.engine.config import load_config
    from fadejax.stages.fade import FadeSettings, fade
    from fadejax.stages.fade_report import REPORT

    _Progress.enter("loading the config")
    config = load_config(args.config, args.overrides)
    out = Path(args.out) if args.out else Path("runs") / f"{config.name}-fade"
    settings = FadeSettings(rounds=args.rounds, target=args.target, guard=args.guard, modes_per_round=args.modes_per_round,
                            scope=args.scope, baseline=args.baseline, epochs=args.epochs, learning_rate=args.learning_rate, data=args.data,
                            options={n: getattr(args, n) for n in _fade_options() if getattr(args, n, None) is not None})
    _Progress.enter("fading", out)
    ledger = fade(config, out, settings, start=args.start, progress=not args.quiet)
    print((out / f"{REPORT}.md").read_text(), end="")
    print(f"fade report: {out / (REPORT + '.html')} (and .md, .json); final model's config: {ledger['final']['config']}")
    return 0


def _compare(args: argparse.Namespace) -> int:
    from fadejax.stages.compare import compare
    from fadejax.engine.store.trust import refuse_links

    out = Path(args.out)
    refuse_links(out)
    from fadejax.stages.fade import FADE_FILE

    fades = [Path(d) for d in args.run_dirs if (Path(d) / FADE_FILE).is_file()]
    if fades:
        from fadejax.stages.compare import CompareError
        from fadejax.stages.fade_report import compare_fades

        if len(fades) != len(args.run_dirs):
            raise CompareError("compare either run directories or fade directories, not both: "
                               + ", ".join(d for d in args.run_dirs if Path(d) not in fades) + " are not fades")
        _Progress.enter("comparing the fades")
        try:
            files = compare_fades(fades, out)
        except ValueError as exc:
            raise CompareError(str(exc)) from None
        print(files["md"].read_text(), end="")
        print(f"comparison: {files['html']} (and compare.md)")
        return 0
    _Progress.enter("comparing the runs")
    files = compare(args.run_dirs, out, trust_code=args.trust_code, ground_truth=args.ground_truth, points=args.points)
    for note in files.pop("notes"):
        print(f"note: {note}")
    print(files["table"].read_text(), end="")
    print(f"comparison: {files['html']} (and {files['png'].name}, {files['pdf'].name}, compare.md, compare.csv)")
    return 0


#: Commands that compile JAX programs and keep them in fadejax's compilation cache
#: (fadejax.engine.compilation_cache); a sweep's points share a cache of the sweep's own.
COMPILING = ("discover", "landscape", "summarize", "restructure", "init", "fade")


def main(argv: list[str] | None = None) -> int:
    from fadejax.engine.store.dirlock import LeaseLostError

    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    parser = _parser()
    if "_ARGCOMPLETE" in os.environ:  # a shell asking for completions: answer and exit
        import argcomplete

        argcomplete.autocomplete(parser)
    args = parser.parse_args(argv)
    _Progress.step, _Progress.directory = "starting", None
    if getattr(args, "quiet", False):
        from bridges.quiet import silence_progress_bars

        silence_progress_bars()
    if args.command in COMPILING:
        from fadejax.engine.compilation_cache import enable

        enable()
    try:
        if args.command == "init":
            return _init(args)
        if args.command == "discover":
            return _discover(args)
        if args.command == "landscape":
            return _landscape(args)
        if args.command == "describe":
            return _describe(args)
        if args.command == "propose-conditions":
            return _propose_conditions(args)
        if args.command == "summarize":
            return _summarize(args)
        if args.command == "restructure":
            return _restructure(args)
        if args.command == "fade":
            return _fade(args)
        if args.command == "compare":
            return _compare(args)
        if args.command == "sweep":
            return _sweep(args)
        if args.command == "check":
            return _check(args)
        if args.command == "export":
            return _export(args)
        if args.command == "trust":
            from fadejax.engine.store.trust import trust_command

            return trust_command(args.paths, args.remove, args.list_only)
    except KeyboardInterrupt:
        return 130
    except LeaseLostError as exc:  # this process was stopped longer than its lease: it wrote nothing more
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_FAILED
    except TimeoutError as exc:  # a text-to-image run waited longer than prompt.rating_timeout_s for ratings
        print(f"error: {exc}; the run is kept: rate the images and continue it with --resume", file=sys.stderr)
        return EXIT_TIMED_OUT
    except Exception as exc:  # noqa: BLE001 - known bad input briefly; anything else briefly, with a log
        if isinstance(exc, _bad_input_errors()):
            print(f"error: {exc}", file=sys.stderr)
            return EXIT_BAD_INPUT
        return _report_unexpected(args.command, exc)
    return EXIT_FAILED


if __name__ == "__main__":
    sys.exit(main())
