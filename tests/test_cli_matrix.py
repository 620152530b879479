"""Every user-facing command (discover, landscape, compare, summarize, restructure) on
every offline audit and mode, through the real CLI entry
point, with tiny budgets: each exits 0 with its documented outputs, or 2 with one
``error:`` line where the combination is not supported."""

import json
from pathlib import Path

import numpy as np
import pytest
import yaml

from fadejax.cli import EXIT_BAD_INPUT, main
from fadejax.engine.config import parse_config
from fadejax.engine.store.learning_log import read_metrics
from fadejax.stages.discover import discover
from fadejax.engine.store.records import read_records, records_path

RUN = {"iterations": 2, "num_envs": 8, "checkpoint_every": 1}
#: where an audit's `fadejax restructure` runs through the CLI with closer checks than here
#: (a fine-tune per audit is the slowest step, so each runs once in the suite)
RESTRUCTURE_TESTED_IN = {"image": "tests/test_restructure.py", "text": "tests/test_text_task.py", "prompt": "tests/test_prompt_task.py",
                         "conditions": "tests/test_conditions.py"}
SMALL_IMAGE_SPACE = {"axes": [{"name": "rotation", "values": [-20, 0, 20]}, {"name": "darkness", "values": [0.0, 0.7]},
                              {"name": "blur", "values": [0.0, 3.0]}]}


def _tiny_t5(root: Path) -> str:
    from bridges.tiny_summarizer import build_model, build_word_tokenizer
    from fadejax.audits.text.data import builtin_articles

    data = builtin_articles("held_out", n=24)
    tokenizer = build_word_tokenizer(data.articles + data.references)
    model = build_model(tokenizer, {"d_model": 16, "d_ff": 32, "d_kv": 8, "num_layers": 1, "num_decoder_layers": 1, "num_heads": 2, "seed": 0})
    model.save_pretrained(root / "t5")
    tokenizer.save_pretrained(root / "t5")
    return str(root / "t5")


def _tiny_pipeline(root: Path) -> tuple[str, str]:
    import torch
    from tiny_diffusion import make_tiny_clip, make_tiny_pipeline

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        return str(make_tiny_pipeline(root / "pipeline")), str(make_tiny_clip(root / "clip"))
    finally:
        torch.set_num_threads(threads)


def _synthetic_recording(config: dict, root: Path) -> str:
    """A recording of the config's audit with made-up answers (the plumbing is what is
    tested here; recorded-vs-live equality is tested in test_posterior)."""
    from fadejax.engine.ground_truth import landscape_key
    from fadejax.engine.recording import FORMAT, Recording

    parsed = parse_config(config)
    n, a = config["data"]["limit"], parsed.concept_space().num_actions
    rng = np.random.default_rng(0)
    failed = rng.random((n, a)) < np.linspace(0.05, 0.9, a)
    meta = {"format": FORMAT, "key": landscape_key(parsed), "task": "image", "config_name": "synthetic",
            "sizes": list(parsed.concept_space().sizes), "axes": {}, "info": {"clean_accuracy": 0.9}}
    reward = np.where(failed, 1.0, 0.01).astype(np.float32)
    return str(Recording(failed, reward, rng.random((n, 16)).astype(np.float32), meta).save(root / "synthetic.npz"))


def _audit(name: str, root: Path) -> dict:
    """The config of each audit × mode, and what its non-default commands need."""
    if name.startswith("recorded"):  # a recording replayed in place of the image audit's model
        config = {"data": {"limit": 40}, "space": SMALL_IMAGE_SPACE}
        if name == "recorded-micro":
            config.update(mode="micro", micro={"start": [1, 0, 0], "max_steps": 3})
        return {"config": {**config, "recording": _synthetic_recording(config, root)}, "axes": "rotation,darkness", "fix": "blur=3",
                "restructure": None}
    if name == "image-macro":
        return {"config": {"data": {"limit": 40}, "space": SMALL_IMAGE_SPACE}, "axes": "rotation,darkness", "fix": "blur=3",
                "restructure": RESTRUCTURE_TESTED_IN["image"]}
    if name == "image-micro":
        return {"config": {"mode": "micro", "data": {"limit": 40}, "space": SMALL_IMAGE_SPACE, "micro": {"start": [1, 0, 0], "max_steps": 3}},
                "axes": "rotation,darkness", "fix": "blur=3", "restructure": None}
    text = {"model": _tiny_t5(root), "held_out": 12, "max_new_tokens": 8, "batch_size": 8}
    if name == "text-macro":
        return {"config": {"task": "text", "text": text, "space": {"axes": [{"name": "edit", "values": ["delete_word", "lower_case", "misspell"]}]}},
                "axes": "edit", "fix": None, "restructure": RESTRUCTURE_TESTED_IN["text"]}
    if name == "text-micro":
        space = {"axes": [{"name": "delete_word", "values": [0, 1, 2]}, {"name": "lower_case", "values": [0, 1]}]}
        return {"config": {"task": "text", "mode": "micro", "text": text, "space": space, "micro": {"max_steps": 3}},
                "axes": "delete_word", "fix": "lower_case=1", "restructure": None}
    pipeline, clip = _tiny_pipeline(root)
    generation = {"pipeline": pipeline, "clip": clip, "steps": 2, "height": 16, "width": 16, "batch_size": 4}
    if name == "prompt-macro":
        return {"config": {"task": "prompt", "prompt": generation}, "axes": None, "fix": None, "restructure": RESTRUCTURE_TESTED_IN["prompt"]}
    return {"config": _conditions_config(root, generation), "axes": "class,style", "fix": "condition=night", "trust": True,
            "restructure": RESTRUCTURE_TESTED_IN["conditions"]}


def _conditions_config(root: Path, generation: dict) -> dict:
    """A tiny RGB classifier of three classes (tests/tiny_classifier.py) with a folder of
    16x16 held-out images, audited on generated images."""
    from PIL import Image
    from tiny_classifier import make_tiny_classifier

    rng = np.random.default_rng(0)
    for name in ("bird", "cat", "dog"):
        (root / "data" / name).mkdir(parents=True)
        for i in range(2):
            Image.fromarray(rng.integers(0, 256, (16, 16, 3), dtype=np.uint8)).save(root / "data" / name / f"{i}.png")
    model = {"source": "file", "architecture": "tiny_classifier:TinyRGB", "architecture_kwargs": {"num_classes": 3, "image_size": 16},
             "weights": str(make_tiny_classifier(root / "tiny.safetensors"))}
    space = {"axes": [{"name": "class", "values": ["cat", "dog"]}, {"name": "condition", "values": ["snow", "night"]},
                      {"name": "style", "values": ["photo", "sketch"]}]}  # a further word axis
    conditions = {**generation, "templates": ["a {style} of a {class} in the {condition}"], "describe_template": "a {class} in the {condition}"}
    return {"task": "conditions", "data": {"source": "folder", "path": str(root / "data"), "image_size": 16}, "model": model,
            "space": space, "conditions": conditions}


def _records(run: Path) -> bytes:
    return records_path(run).read_bytes()


@pytest.mark.parametrize("audit", ["image-macro", "image-micro", "text-macro", "text-micro", "prompt-macro", "conditions-macro",
                                   "recorded-macro", "recorded-micro"])
def test_every_command_on_every_audit(audit, tmp_path, capsys):
    spec = _audit(audit, tmp_path)
    data = {"name": f"matrix-{audit}", "run": RUN, **spec["config"]}
    config_path = tmp_path / "config.yaml"
    config_path.write_text(yaml.safe_dump(data))
    run = tmp_path / "run"
    capsys.readouterr()  # what building the tiny models printed

    def cli(*argv: str) -> tuple[int, str]:
        code = main(list(argv))
        err = capsys.readouterr().err
        return code, err

    # discover, then resume the finished run (nothing changes)
    code, err = cli("discover", "--config", str(config_path), "--out", str(run), "--quiet")
    assert code == 0, err
    assert "it/s]" not in err  # --quiet: no progress bars, the libraries' own included
    status = json.loads((run / "run.json").read_text())
    assert status["status"] == "complete" and len(list(read_records(records_path(run)))) == RUN["iterations"] * RUN["num_envs"]
    before = _records(run)
    assert cli("discover", "--config", str(config_path), "--out", str(run), "--resume", "--quiet")[0] == 0
    assert _records(run) == before

    # an interrupted run resumed from the command line ends as the uninterrupted one
    cut = tmp_path / "cut"
    discover(parse_config(data), cut, progress=False, stop_after=1)
    assert json.loads((cut / "run.json").read_text())["status"] == "running"
    code, err = cli("discover", "--config", str(config_path), "--out", str(cut), "--resume", "--quiet")
    assert code == 0, err
    assert _records(cut) == before

    # landscape: computed and saved, or refused in one line where an audit has none
    code, err = cli("landscape", "--config", str(config_path), "--out", str(run), "--quiet")
    generated = audit.startswith(("prompt", "conditions"))  # no exhaustive landscape of generated images
    if generated:
        assert code == EXIT_BAD_INPUT and err.startswith("error: ") and len(err.strip().splitlines()) == 1
    else:
        assert code == 0, err
        assert len(json.loads((run / "ground_truth.json").read_text())["failure_rates"]) == parse_config(data).concept_space().num_actions
    if audit == "image-macro":  # a recording for model-free replays, beside the landscape
        code, err = cli("landscape", "--config", str(config_path), "--out", str(run), "--record", str(tmp_path / "rec.npz"), "--quiet")
        assert code == 0 and (tmp_path / "rec.npz").is_file(), err

    # learning curves: a row per iteration, and the two runs side by side (with the
    # recall@10 curve where the landscape exists)
    assert [row["iteration"] for row in read_metrics(run / "metrics.jsonl")] == list(range(RUN["iterations"]))
    assert any((run / "tensorboard").iterdir())
    trust = ["--trust-code"] if spec.get("trust") else []  # a config naming a model class by import path
    code, err = cli("compare", str(run), str(cut), "--out", str(tmp_path / "compare"), *trust)
    assert code == 0, err
    page = (tmp_path / "compare" / "compare.html").read_text()
    assert "distinct failing (sample, cell) pairs found" in page and "failing queries" in page and ("recall@10" in page) == (not generated)
    table = (tmp_path / "compare" / "compare.md").read_text()
    assert table.startswith("| run | queries | distinct failing pairs | re-asked |") and len(table.splitlines()) == 4

    # summarize, with a view of chosen axes, a slice at a hidden one, and a chosen mode
    argv = ["summarize", str(run), "--choose", "0", *trust]
    if spec["axes"]:
        argv += ["--axes", spec["axes"]]
    if spec["fix"]:
        argv += ["--fix", spec["fix"]]
    code, err = cli(*argv)
    assert code == 0, err
    report = run / "report"
    assert (report / "report.html").is_file() and (report / "summary.json").is_file()
    assert json.loads((report / "modes.json").read_text())["modes"][0]["cell"] == 0

    # restructure: a one-line refusal where the audit × mode has none (each audit's fine-tune
    # runs through the CLI in its own test, RESTRUCTURE_TESTED_IN)
    if isinstance(spec["restructure"], str):
        assert Path(spec["restructure"]).name in {p.name for p in Path(__file__).parent.glob("test_*.py")}
        return
    code, err = cli("restructure", str(run), "--top", "1", *trust)
    assert code == EXIT_BAD_INPUT and err.startswith("error: ") and len(err.strip().splitlines()) == 1, err
