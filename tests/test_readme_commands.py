"""The README's ``fadejax`` commands run as written, in order, from a fresh working directory
(offline ones; discovery with a tiny budget appended), each exiting 0."""

import json
import shlex
from pathlib import Path

from fadejax.cli import main
from readme import ROOT, readme_commands

#: README commands not run here, by the config (or run directory) they name, and why
NOT_RUN = {
    "configs/sd14.yaml": "Stable Diffusion 1.4 and CLIP ViT-L from the Hugging Face cache, a GPU: not offline here",
    "runs/sd14": "a run of configs/sd14.yaml",
    "configs/summarize.yaml": "trains the tiny T5 for minutes on first use; the CLI matrix runs these commands on a tiny T5",
    "runs/summarize": "a run of configs/summarize.yaml",
    "configs/imagenet_vit.yaml": "an ImageNet folder, ViT-B/16 from the Hugging Face cache, a GPU; test_hf_classifier runs it on a tiny ViT",
    "runs/imagenet_vit": "a run of configs/imagenet_vit.yaml",
    "configs/digits_colour.yaml": "trains the colour CNN for a minute and its landscape is 40,500 queries; test_corruption_report runs "
                                  "configs/digits_colour_pairs.yaml through discover, landscape and summarize on the same model",
    "runs/digits_colour": "a run of configs/digits_colour.yaml",
    "configs/digits_family.yaml": "trains two more embedded models on first use (minutes); test_family audits a family of three",
    "runs/digits_family": "a run of configs/digits_family.yaml",
    "configs/conditions_imagenet.yaml": "Stable Diffusion v1-5, CLIP ViT-B/32 and ResNet-50 from the Hugging Face cache, ImageNet, a GPU; "
                                        "test_conditions runs propose-conditions, describe, discover and restructure on tiny models",
    "runs/conditions_imagenet": "a run of configs/conditions_imagenet.yaml",
    "configs/digits_million.yaml": "the same config's discovery and 3-axis summary run in test_scale (a smaller network), and the CLI's "
                                   "summarize --axes/--fix in test_cli_matrix",
    "runs/million": "a run of configs/digits_million.yaml",
    "configs/sweeps/searchers.yaml": "15 points of 200 iterations on a local Ray; test_sweep runs small sweeps, kills and resumes one",
    "sweeps/searchers": "the report of that sweep",
}
#: appended to every discovery: a tiny budget on a few held-out samples
BUDGET = ["--set", "run.iterations=2", "--set", "run.num_envs=8", "--quiet"]
LIVE_SUBSET = ["--set", "data.limit=12"]  # not for a replay: a recording fits its config's data exactly


def _target(argv: list[str]) -> str:
    if argv[0] == "sweep":
        return argv[argv.index("--report") + 1] if "--report" in argv else argv[1]
    if argv[0] in ("discover", "landscape", "describe", "propose-conditions", "fade"):
        return argv[argv.index("--config") + 1]
    return argv[1]


def test_the_readme_commands_run_as_written(tmp_path, monkeypatch, capsys):
    for name in ("configs", "recordings"):
        (tmp_path / name).symlink_to(ROOT / name)
    monkeypatch.chdir(tmp_path)
    commands = readme_commands()
    skipped = [argv for argv in commands if _target(argv) in NOT_RUN]
    assert {_target(argv) for argv in skipped} == set(NOT_RUN)  # every reason still applies to a README command
    # `bash scripts/run.sh` (the README's main job) leaves runs/digits; the README's
    # restructure examples start from it: made the same way, at a tiny budget.
    assert main(["discover", "--config", "configs/digits.yaml", "--out", "runs/digits", *BUDGET, *LIVE_SUBSET]) == 0
    ran = 0
    for argv in (a for a in commands if _target(a) not in NOT_RUN):
        argv = list(argv)
        if argv[0] == "discover":
            argv += BUDGET + ([] if any(a.startswith("recording=") for a in argv) else LIVE_SUBSET)
        if argv[0] == "fade":  # the tiny budget: one round on one mode, one epoch of the last layer, from runs/digits
            argv += BUDGET + LIVE_SUBSET + ["--epochs", "1", "--rounds", "1", "--modes-per-round", "1", "--scope", "head",
                                            "--from", "runs/digits"]
        if argv[0] == "restructure":  # one epoch, into one --out (see below)
            argv += ["--epochs", "1", "--out", "runs/restructured"]
        if "--modes-file" in argv:  # the report's export, written as the page writes it, marking the mode already faded
            faded = json.loads(Path("runs/restructured/shift_report.json").read_text())["modes"]
            modes = [{"cell": m["cell"], "concepts": m["concepts"]} for m in faded]
            Path("runs/digits/report").mkdir(exist_ok=True)
            Path("runs/digits/report/modes.json").write_text(json.dumps({"run": "runs/digits", "modes": modes}))
        code = main(argv)
        out = capsys.readouterr()
        assert code == 0, f"fadejax {shlex.join(argv)} exited {code}: {out.err}"
        if "--modes-file" in argv:  # the same mode and settings: the finished restructure is found and reused
            assert "already holds this restructure" in out.out
        ran += 1
    assert ran >= 5
    assert json.loads(Path("runs/digits-replayed/run.json").read_text())["status"] == "complete"
