"""The text-summarization audit through the engine: discovery, records, accumulation,
ground truth, the report (hostile text stays inert), and a real tiny seq2seq model."""

import json
import re
import shutil

import numpy as np
import pytest
import yaml

from fadejax.audits.text import edits, rewards
from fadejax.audits.text.data import builtin_articles
from fadejax.audits.text.task import build_text_task
from fadejax.engine.config import parse_config
from fadejax.engine.store.run_check import file_sha256
from fadejax.engine.ground_truth import failure_landscape
from fadejax.stages.discover import discover
from report_page import open_at_first_failing_point
from fadejax.engine.store.records import read_records, records_path
from records_tee import assert_columns_hold_the_lines, both_formats

HOSTILE = "<script>window.__pwned=1</script><img src=x onerror=\"window.__pwned=2\">"


class LeadOracle:
    """A real, if simple, summarizer: the first sentence (lead-1); embeddings from word hashes."""

    path = "lead-1"
    info = {"model": "lead-1"}

    def __init__(self):
        self.calls = 0

    def summarize(self, texts):
        self.calls += 1
        return [re.split(r"(?<=[.!?])\s+", t.strip())[0] for t in texts]

    def embed(self, texts):
        out = np.zeros((len(texts), 32), np.float32)
        for i, t in enumerate(texts):
            for w in t.split():
                out[i, hash(w) % 32] += 1.0
        return out


def _config(**text):
    return parse_config({
        "name": "text-test", "task": "text", "text": {"held_out": 24, "epsilon": 0.05, **text},
        "searcher": {"kind": "dqn", "hidden_sizes": [32], "batch_size": 32, "min_replay": 32},
        "run": {"iterations": 4, "num_envs": 16, "checkpoint_every": 2},
    })


@pytest.fixture(scope="module")
def text_run(tmp_path_factory):
    config = _config()
    oracle = LeadOracle()
    out = tmp_path_factory.mktemp("text") / "run"
    with both_formats():  # the columnar records are checked against the JSON lines of the same queries
        summary = discover(config, out, oracle=oracle, progress=False)
    return config, out, summary, oracle


def test_the_text_audit_s_columnar_records_hold_its_json_lines(text_run, tmp_path):
    assert_columns_hold_the_lines(text_run[1], tmp_path)


def test_the_default_text_space_is_one_edit_per_query():
    config = _config()
    space = config.concept_space()
    assert space.names == ("edit",) and list(space.axes[0].values) == edits.names() and len(edits.names()) >= 16
    assert config.micro_alpha == 1.0  # eq. 7's step penalty


def test_text_discovery_records_texts_summaries_and_bleu(text_run):
    config, out, summary, oracle = text_run
    records = list(read_records(records_path(out)))
    assert len(records) == summary.queries == 4 * 16
    assert oracle.calls == 1 + 4  # clean summaries once, then one batched generate per iteration
    data = builtin_articles("held_out", n=24)
    for r in records:
        edit = r["concepts"]["edit"]
        assert r["summary"] == LeadOracle().summarize([r["text"]])[0]
        assert r["bleu"] == pytest.approx(rewards.bleu_batch([r["summary"]], [data.references[r["sample"]]])[0])
        assert r["failed"] == (r["bleu_clean"] - r["bleu"] > 0.05)  # Definition 2.1
        assert r["reward"] == pytest.approx((1 - r["bleu"]) * len(r["summary"].split()), rel=1e-5)  # eq. 6
        if edit == "lower_case":
            assert r["text"] == data.articles[r["sample"]].lower()


def test_a_query_always_gives_the_same_text():
    config = _config()
    task = build_text_task(config, oracle=LeadOracle(), progress=False)
    samples = np.arange(8)
    cells = np.arange(8)[:, None] % task.space.sizes[0]
    assert task.edited_texts(samples, cells) == task.edited_texts(samples, cells)


def test_microscopic_text_edits_accumulate_along_a_count_axis():
    config = parse_config({
        "task": "text", "mode": "micro", "text": {"held_out": 6},
        "space": {"axes": [{"name": "delete_word", "values": [0, 1, 2, 3]}, {"name": "lower_case", "values": [0, 1]}]},
    })
    task = build_text_task(config, oracle=LeadOracle(), progress=False)
    words = [[len(t.split()) for t in task.edited_texts(np.array([s]), np.array([[k, 0]]))] for s in range(6) for k in range(4)]
    words = np.asarray(words).reshape(6, 4)
    np.testing.assert_array_equal(np.diff(words, axis=1), -1)  # each step up deletes one more word
    one, two = task.edited_texts(np.array([0, 0]), np.array([[1, 0], [2, 0]]))
    assert set(two.split()) <= set(one.split())  # the second deletion acts on the first one's text
    clean, lowered = task.edited_texts(np.array([2, 2]), np.array([[0, 0], [0, 1]]))
    assert clean == task.data.articles[2] and lowered == clean.lower()


def test_microscopic_text_discovery_uses_eq_7(tmp_path):
    config = parse_config({
        "task": "text", "mode": "micro", "text": {"held_out": 12}, "micro": {"max_steps": 3},
        "space": {"axes": [{"name": "delete_word", "values": [0, 1, 2, 3]}, {"name": "remove_punctuation", "values": [0, 1]}]},
        "searcher": {"kind": "dqn", "hidden_sizes": [16], "batch_size": 16, "min_replay": 16}, "run": {"iterations": 3, "num_envs": 8},
    })
    discover(config, tmp_path / "micro", oracle=LeadOracle(), progress=False)
    records = list(read_records(records_path(tmp_path / "micro")))
    for r in records:
        assert r["reward"] == pytest.approx((1 - r["bleu"]) - r["step"], abs=1e-5)  # eq. 7


def test_the_exhaustive_text_landscape_matches_direct_scoring():
    config = _config()
    task = build_text_task(config, oracle=LeadOracle(), progress=False)
    rates = failure_landscape(task, batch_size=48)
    assert rates.shape == (len(edits.names()),)
    lower = edits.names().index("lower_case")
    texts = [a.lower() for a in task.data.articles]
    bleu = rewards.bleu_batch(LeadOracle().summarize(texts), task.data.references)
    assert rates[lower] == pytest.approx(np.mean(task.bleu_clean - bleu > 0.05))


def test_the_text_report_shows_texts_and_keeps_hostile_text_inert(text_run, tmp_path, browser):
    from fadejax.stages.figures import write_figures
    from fadejax.stages.report import write_report
    from fadejax.stages.summarize import load_summary

    config, out, _, _ = text_run
    hostile = tmp_path / "hostile"
    shutil.copytree(out, hostile)
    lines = list(read_records(records_path(hostile)))
    for r in lines:  # generated text is untrusted: pretend the model wrote markup
        if r["failed"]:
            r["summary"] = HOSTILE + r["summary"]
    records_path(hostile).unlink()  # written back as JSON lines, as a run from before columnar records
    (hostile / "records.jsonl").write_text("".join(json.dumps(r) + "\n" for r in lines))
    status = json.loads((hostile / "run.json").read_text())  # as a hostile sharer would, consistent with the records
    status["records_sha256"] = file_sha256(hostile / "records.jsonl")
    (hostile / "run.json").write_text(json.dumps(status))
    task = build_text_task(config, oracle=LeadOracle(), progress=False)
    summary = load_summary(hostile, task=task, keep=[0])
    files = write_report(summary, hostile / "report")
    write_figures(summary, hostile / "report")
    data = json.loads(open(files["json"]).read())
    assert data["kind"] == "text" and len(data["points"]) == len(edits.names())
    page, errors = open_at_first_failing_point(browser, files)
    shown = page.locator("#failures p.summary").first.inner_text()
    assert HOSTILE in shown  # displayed as text ...
    assert page.evaluate("window.__pwned") is None  # ... and never run
    assert page.locator("#failures script").count() == 0 and page.locator("#failures img").count() == 0
    assert errors == []


def test_a_real_tiny_t5_audits_through_the_bridge(tmp_path):
    from bridges.tiny_summarizer import build_model, build_word_tokenizer

    data = builtin_articles("held_out", n=24)
    tokenizer = build_word_tokenizer(data.articles + data.references)
    recipe = {"d_model": 16, "d_ff": 32, "d_kv": 8, "num_layers": 1, "num_decoder_layers": 1, "num_heads": 2, "seed": 0}
    model = build_model(tokenizer, recipe)
    model.save_pretrained(tmp_path / "t5")
    tokenizer.save_pretrained(tmp_path / "t5")
    config = _config(model=str(tmp_path / "t5"), max_new_tokens=8, batch_size=8)
    summary = discover(config, tmp_path / "run", progress=False)
    records = list(read_records(records_path(tmp_path / "run")))
    assert len(records) == summary.queries == 64
    assert all(isinstance(r["summary"], str) and 0.0 <= r["bleu"] <= 1.0 for r in records)
    status = json.loads((tmp_path / "run" / "run.json").read_text())
    assert status["status"] == "complete" and status["model"]["model"] == str(tmp_path / "t5")


def test_text_restructure_fine_tunes_with_the_trainer_and_reports_the_shift(tmp_path, capsys):
    """A tiny random T5 is audited, then `fadejax restructure` fine-tunes it for an epoch on
    edited training articles through the Seq2SeqTrainer process, rediscovers, and writes the
    shift report (the CLI matrix's text row leaves restructure to this test)."""
    from bridges.tiny_summarizer import build_model, build_word_tokenizer
    from fadejax.audits.text.data import builtin_articles as articles
    from fadejax.cli import main

    train, held = articles("train", n=200), articles("held_out", n=24)
    tokenizer = build_word_tokenizer(train.articles + train.references + held.articles + held.references)
    recipe = {"d_model": 16, "d_ff": 32, "d_kv": 8, "num_layers": 1, "num_decoder_layers": 1, "num_heads": 2, "seed": 0}
    build_model(tokenizer, recipe).save_pretrained(tmp_path / "t5")
    tokenizer.save_pretrained(tmp_path / "t5")
    config = _config(model=str(tmp_path / "t5"), max_new_tokens=8, batch_size=24)
    discover(config, tmp_path / "run", progress=False)
    argv = ["restructure", str(tmp_path / "run"), "--modes", "0", "--modes", "10", "--epochs", "1", "--learning-rate", "1e-3",
            "--train-articles", "6", "--out", str(tmp_path / "faded")]
    assert main(argv) == 0, capsys.readouterr().err
    report = json.loads((tmp_path / "faded" / "shift_report.json").read_text())
    assert report["task"] == "text" and [m["cell"] for m in report["modes"]] == [0, 10]
    assert report["fine_tune"]["steps"] > 0 and (tmp_path / "faded" / "finetune" / "model" / "config.json").is_file()
    assert len(open(tmp_path / "faded" / "finetune" / "train.jsonl").readlines()) == 2 * 6
    status = json.loads((tmp_path / "faded" / "rediscovery" / "run.json").read_text())
    assert status["status"] == "complete" and status["restructured_from"] == str(tmp_path / "run")
    assert status["model"]["model"] == report["fine_tune"]["model"]
    for name in ("shift_report.md", "shift_report.json", "landscapes_before_after.png"):
        assert (tmp_path / "faded" / name).stat().st_size > 0
    assert report["wasserstein_unordered"] is None or report["wasserstein_unordered"] >= 0
    capsys.readouterr()
    assert main(argv) == 0 and "already holds this restructure" in capsys.readouterr().out  # reused, not redone
    assert json.loads((tmp_path / "faded" / "shift_report.json").read_text()) == report
    # one round of `fadejax fade` from the same run, with LoRA: its clean figure is BLEU, its rounds the summarizer's landscapes
    config_file = tmp_path / "config.yaml"
    config_file.write_text(yaml.safe_dump(config.model_dump(mode="json")))
    assert main(["fade", "--config", str(config_file), "--from", str(tmp_path / "run"), "--rounds", "1", "--modes-per-round", "2",
                 "--epochs", "1", "--learning-rate", "1e-3", "--train-articles", "6", "--guard", "100", "--target", "0", "--out", str(tmp_path / "fade"),
                 "--scope", "lora", "--quiet"]) == 0, capsys.readouterr().err
    faded = json.loads((tmp_path / "fade" / "fade_report.json").read_text())
    assert faded["original_clean"]["name"] == "BLEU" and faded["stopped"]["reason"] in ("rounds", "target", "no improvement")
    assert [len(e["modes_faded"]) for e in faded["rounds"]] == [0, 2] and faded["rounds"][1]["truth"] is not None
    tune = faded["rounds"][1]["fine_tune"]
    assert tune["scope"] == "lora" and tune["data"] == "modes" and tune["examples"] == {"failure": 2 * 6, "clean": 6}
