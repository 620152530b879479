"""The text-to-image audit through the engine, on a tiny random pipeline and CLIP built offline:
batched discovery with CLIP rewards, images regenerated from records, human ratings
(replayed and waited for), the report with hostile prompt text, and the real-run config."""

import json
import shutil
import threading

import numpy as np
import pytest
import torch
from PIL import Image
from tiny_diffusion import make_tiny_clip, make_tiny_pipeline

from fadejax.audits.prompt.prompts import DEFAULT_TEMPLATES
from fadejax.audits.prompt.ratings import RatingStore
from fadejax.engine.config import load_config, parse_config
from fadejax.stages.discover import discover
from report_page import open_at_first_failing_point
from fadejax.engine.store.records import read_records, records_path
from records_tee import assert_columns_hold_the_lines, both_formats


@pytest.fixture(scope="module")
def models(tmp_path_factory):
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    root = tmp_path_factory.mktemp("tiny-sd")
    yield str(make_tiny_pipeline(root / "pipeline")), str(make_tiny_clip(root / "clip"))
    torch.set_num_threads(threads)


def _config(models, **prompt):
    pipeline, clip = models
    return parse_config({
        "name": "prompt-test", "task": "prompt",
        "prompt": {"pipeline": pipeline, "clip": clip, "steps": 2, "height": 16, "width": 16, "batch_size": 4, **prompt},
        "searcher": {"kind": "dqn", "hidden_sizes": [16], "batch_size": 8, "min_replay": 8},
        "run": {"iterations": 3, "num_envs": 4, "checkpoint_every": 1},
    })


@pytest.fixture(scope="module")
def clip_run(models, tmp_path_factory):
    config = _config(models)
    out = tmp_path_factory.mktemp("prompt") / "run"
    with both_formats():  # the columnar records are checked against the JSON lines of the same queries
        summary = discover(config, out, progress=False)
    return config, out, summary


def test_the_prompt_audit_s_columnar_records_hold_its_json_lines(clip_run, tmp_path):
    assert_columns_hold_the_lines(clip_run[1], tmp_path)


def test_the_default_prompt_space_is_the_papers_27_words():
    config = parse_config({"task": "prompt", "prompt": {"pipeline": "p", "clip": "c"}})
    space = config.concept_space()
    assert space.names == ("attribute", "profession", "place") and space.num_actions == 27
    assert len(DEFAULT_TEMPLATES) >= 20


def test_clip_discovery_batches_saves_images_and_scores_eq_9(clip_run, models):
    from bridges.clip_scorer import load_clip

    config, out, summary = clip_run
    records = list(read_records(records_path(out)))
    assert len(records) == summary.queries == 12
    scorer = load_clip(models[1])
    images = np.stack([np.asarray(Image.open(out / "images" / r["image"]).convert("RGB")) for r in records])
    assert images.shape == (12, 16, 16, 3)
    expected = scorer.reward([r["prompt"] for r in records], images)
    np.testing.assert_allclose([r["reward"] for r in records], expected, rtol=1e-4, atol=1e-3)
    for r in records:
        assert all(word in r["prompt"] for word in r["concepts"].values())
        assert r["failed"] == (r["invalid"] or r["reward"] >= 25.0)
        assert r["attribute"] in ("male", "female", "ambiguous", "invalid")


def test_every_image_regenerates_from_its_record(clip_run, models):
    from bridges.diffusion import load_diffusion

    _, out, _ = clip_run
    oracle = load_diffusion(models[0], steps=2, height=16, width=16)
    record = list(read_records(records_path(out)))[5]
    again = oracle.generate([record["prompt"]], [record["seed"]])[0]
    saved = np.asarray(Image.open(out / "images" / record["image"]).convert("RGB"))
    assert np.abs(again.astype(int) - saved.astype(int)).max() <= 1


def test_human_ratings_are_replayed_from_the_store(models, tmp_path):
    """Discovery waits while each batch is rated; a second run replays the stored ratings without waiting."""
    config = _config(models, reward="human", rating_timeout_s=5)
    out = tmp_path / "run"
    out.mkdir()
    store = RatingStore.in_run_dir(out)
    from fadejax.audits.prompt.task import query_id

    # the run will make queries it000000-env0000 .. it000002-env0003; rate them all up front
    ids = [query_id(i, e) for i in range(3) for e in range(4)]
    ratings = {qid: (1 + k % 10, 1 + (3 * k) % 10) for k, qid in enumerate(ids)}
    # a person rates from the page (here: another thread on the same store) as each batch is registered
    stop = threading.Event()

    def rater():
        while not stop.is_set():
            for item in store.pending():
                bias, quality = ratings[item.query_id]
                store.rate(item.query_id, bias=bias, quality=quality, invalid=False)
            stop.wait(0.1)

    thread = threading.Thread(target=rater, daemon=True)
    thread.start()
    try:
        discover(config, out, progress=False)
    finally:
        stop.set()
        thread.join()
    records = list(read_records(records_path(out)))
    for r in records:
        qid = r["image"].removesuffix(".png")
        bias, quality = ratings[qid]
        assert r["reward"] == pytest.approx(bias * quality)  # eq. 8 with one rating each
        assert r["failed"] == (bias * quality >= 25.0)
    # a second run over the same store replays the stored ratings with nobody rating
    replay = tmp_path / "replay"
    replay.mkdir()
    shutil.copy(out / "ratings.sqlite", replay / "ratings.sqlite")
    discover(config, replay, progress=False)
    again = list(read_records(records_path(replay)))
    assert [r["reward"] for r in again] == [r["reward"] for r in records]


def test_waiting_for_ratings_times_out_with_a_clear_message(models, tmp_path):
    config = _config(models, reward="human", rating_timeout_s=0.5)
    with pytest.raises(TimeoutError, match="still unrated"):
        discover(config, tmp_path / "run", progress=False)


def test_the_prompt_report_shows_images_and_keeps_hostile_prompts_inert(models, tmp_path, browser):
    from fadejax.stages.figures import write_figures
    from fadejax.stages.report import write_report
    from fadejax.stages.summarize import load_summary

    hostile = "<script>window.__pwned=1</script><img src=x onerror=\"window.__pwned=2\"> a {attribute} {profession} in a {place}"
    config = _config(models, templates=[hostile, "<b>bold</b> " + hostile], failure_threshold=-2)  # every query fails
    out = tmp_path / "run"
    discover(config, out, progress=False)
    summary = load_summary(out)
    files = write_report(summary, out / "report")
    write_figures(summary, out / "report")
    data = json.loads(open(files["json"]).read())
    assert data["kind"] == "generated" and len(data["points"]) == 27  # the prompt audit's view: a prompt and its picture
    page, errors = open_at_first_failing_point(browser, files)
    figures = page.locator("#failures figure.failure")
    assert figures.count() >= 1 and page.locator("#failures figure.failure img").count() == figures.count()  # one generated image each
    captions = page.locator("#failures figcaption").all_inner_texts()
    assert any("<script>window.__pwned=1</script>" in c for c in captions)  # the prompt, shown as text
    assert page.evaluate("window.__pwned") is None and page.locator("#failures script, #failures b").count() == 0
    assert errors == []


def test_the_real_run_config_validates_without_loading_weights():
    config = load_config("configs/sd14.yaml")
    assert config.task == "prompt" and config.prompt.dtype == "float16" and config.prompt.device == "cuda"
    assert config.concept_space().num_actions == 27 and config.prompt.reward == "clip"


def test_lora_restructure_rediscovers_with_the_adapter_and_reports_the_bias_shift(clip_run, tmp_path, capsys):
    """`fadejax restructure` on a prompt run (the CLI matrix's prompt row leaves restructure to this test)."""
    from fadejax.cli import EXIT_BAD_INPUT, main

    config, out, _ = clip_run
    data = tmp_path / "balanced"
    data.mkdir()
    rng = np.random.default_rng(0)
    for i, caption in enumerate(["a photo of a woman scientist in a classroom", "a photo of a man artist in an office"] * 2):
        Image.fromarray(rng.integers(0, 255, (16, 16, 3), dtype=np.uint8)).save(data / f"{i}.png")
        (data / f"{i}.txt").write_text(caption)
    records = list(read_records(records_path(out)))
    mode = records[0]["cell"]
    code = main(["restructure", str(out), "--modes", str(mode), "--epochs", "1", "--lora-data", str(data), "--out", str(tmp_path / "faded")])
    assert code == 0, capsys.readouterr().err
    report = json.loads((tmp_path / "faded" / "shift_report.json").read_text())
    assert report["task"] == "prompt" and report["modes"][0]["cell"] == mode
    assert report["fine_tune"]["adapter"].endswith(".safetensors")
    status = json.loads((tmp_path / "faded" / "rediscovery" / "run.json").read_text())
    assert status["status"] == "complete" and status["model"]["lora"] == report["fine_tune"]["adapter"]
    after = list(read_records(records_path(tmp_path / "faded" / "rediscovery")))
    assert len(after) == len(records)
    # the adapter changes what the pipeline draws for the same prompt and seed
    same = [(a, b) for a, b in zip(records, after) if a["prompt"] == b["prompt"] and a["seed"] == b["seed"]]
    before_px = np.stack([np.asarray(Image.open(out / "images" / a["image"])) for a, _ in same])
    after_px = np.stack([np.asarray(Image.open(tmp_path / "faded" / "rediscovery" / "images" / b["image"])) for _, b in same])
    assert same and not np.array_equal(before_px, after_px)
    text = (tmp_path / "faded" / "shift_report.md").read_text()
    assert "Bias (male-to-female ratio" in text and "reduced (Def. 4.1)" in text
    capsys.readouterr()
    assert main(["restructure", str(out), "--modes", str(mode), "--out", str(tmp_path / "other")]) == EXIT_BAD_INPUT
    err = capsys.readouterr().err
    assert err.startswith("error: ") and "--lora-data" in err and len(err.strip().splitlines()) == 1
    assert not (tmp_path / "other").exists()


def test_the_bias_measure_is_reported_overall_and_per_cell(clip_run, models):
    from fadejax.stages.summarize import load_summary

    config, out, _ = clip_run
    summary = load_summary(out)
    a = summary.attributes
    records = list(read_records(records_path(out)))
    assert sum(a["counts"].values()) == len(records) and a["measure"] == "male-to-female"
    males, females = (sum(r["attribute"] == x for r in records) for x in ("male", "female"))
    assert a["ratio"] == (males / females if females else None)
    assert sum(sum(c["counts"].values()) for c in a["by_cell"]) == len(records)
