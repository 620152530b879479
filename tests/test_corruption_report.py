"""The shipped CPU corruption config end to end through the CLI: the colour digits, the
embedded CNN trained on them, corruptions in combination, and the report's common-corruptions
section (its numbers against the exhaustive truth, its CSV, and the page in headless Chromium)."""

import csv
import json
from pathlib import Path

import numpy as np
import pytest
import yaml

from fadejax.cli import main

ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    """configs/digits_colour_pairs.yaml on 40 held-out digits, two corruptions a stage at
    severities 0 and 3 (16 cells), its CNN trained 3 epochs; discovered, its exhaustive
    landscape computed into the run, and summarised."""
    config = yaml.safe_load((ROOT / "configs" / "digits_colour_pairs.yaml").read_text())
    axes = config["space"]["axes"]
    axes[0]["values"], axes[1]["values"] = ["contrast", "brightness"], [0, 3]
    axes[2]["values"], axes[3]["values"] = ["defocus_blur", "pixelate"], [0, 3]
    config["data"]["limit"] = 40
    config["model"]["embedded"] = {"epochs": 3}
    config["run"] = {"iterations": 2, "num_envs": 16, "checkpoint_every": 1}
    base = tmp_path_factory.mktemp("colour")
    (base / "pairs.yaml").write_text(yaml.safe_dump(config))
    out = base / "run"
    assert main(["discover", "--config", str(base / "pairs.yaml"), "--out", str(out), "--quiet"]) == 0
    assert main(["landscape", "--config", str(base / "pairs.yaml"), "--out", str(out), "--quiet"]) == 0
    assert main(["summarize", str(out), "--quiet"]) == 0
    return out


def test_the_colour_digits_are_colour_and_the_model_takes_three_channels(run):
    stored = json.loads((run / "run.json").read_text())
    assert stored["model"]["clean_accuracy"] > 0.5  # it learned the shapes in 3 epochs
    from fadejax.audits.image.data import COLOUR_CONTRAST, load_colour_digits_split, load_digits_split

    train, held_out = load_colour_digits_split(32, 0.3, 0)
    assert train.images.shape[1:] == (32, 32, 3) and held_out.images.shape[-1] == 3
    corners = held_out.images[:, 0, 0, :]  # the background's colour
    assert np.ptp(corners, axis=0).min() > 0.5  # colours vary over the whole cube
    ink = load_digits_split(32, 0.3, 0)[1].images  # the same digits in grey: each colour image is an affine map of them
    flat_ink, flat = ink.reshape(len(ink), -1), held_out.images.reshape(len(ink), -1, 3)
    darkest, brightest = flat_ink.argmin(1), flat_ink.argmax(1)
    rows = np.arange(len(ink))
    background = flat[rows, darkest]
    stroke = background + (flat[rows, brightest] - background) / flat_ink[rows, brightest][:, None]
    luma = np.array([0.299, 0.587, 0.114])
    assert ((stroke - background) @ luma).min() >= COLOUR_CONTRAST - 1e-4  # light strokes on darker backgrounds
    np.testing.assert_allclose(held_out.images, background[:, None, None] + (stroke - background)[:, None, None] * ink, atol=1e-5)


def test_the_section_gives_each_corruptions_error_from_the_truth_and_ranks_the_combinations(run):
    summary = json.loads((run / "report" / "summary.json").read_text())
    assert summary["modes"][0]["concepts"]["corruption"] in ("contrast", "brightness")  # modes name their corruptions
    figures = summary["corruptions"]
    truth = np.asarray(json.loads((run / "ground_truth.json").read_text())["failure_rates"]).reshape(2, 2, 2, 2)
    assert figures["source"] == "exhaustive" and figures["severities"] == [3]
    rows = {r["corruption"]: r for r in figures["rows"]}
    assert set(rows) == {"contrast", "brightness", "defocus_blur", "pixelate"}
    # contrast 3 alone: corruption contrast (0) at severity 3 (1), the second stage at severity 0 (either of its corruptions)
    assert rows["contrast"]["error"][0] == pytest.approx(truth[0, 1, :, 0].mean())
    assert rows["pixelate"]["error"][0] == pytest.approx(truth[:, 0, 1, 1].mean())
    assert rows["contrast"]["ce"] == pytest.approx(rows["contrast"]["error"][0])
    assert figures["combinations"] == 4  # each of the 2 x 2 pairs at severity 3
    top = figures["interactions"][0]
    first, second = ["contrast", "brightness"].index(top["terms"][0][0]), ["defocus_blur", "pixelate"].index(top["terms"][1][0])
    assert top["rate"] == pytest.approx(truth[first, 1, second, 1])
    assert top["interaction"] == pytest.approx(top["rate"] - max(top["parts"]))
    assert [r["interaction"] for r in figures["interactions"]] == sorted((r["interaction"] for r in figures["interactions"]), reverse=True)
    with open(run / "report" / "corruptions.csv") as f:
        table = list(csv.DictReader(f))
    assert len(table) == 4 and {r["corruption"] for r in table} == set(rows)
    assert float(next(r for r in table if r["corruption"] == "contrast")["error"]) == pytest.approx(rows["contrast"]["error"][0], abs=1e-6)


def test_the_section_shows_in_a_headless_browser(run, browser):
    page = browser.new_page()
    errors = []
    page.on("pageerror", lambda exc: errors.append(str(exc)))
    page.goto((run / "report" / "report.html").as_uri())
    page.wait_for_selector("#corruption-errors")
    assert page.locator("#corruption-errors tbody tr").count() == 4
    assert page.locator("#corruption-interactions tbody tr").count() == 4
    first = page.locator("#corruption-interactions tbody tr").first.text_content()
    assert " + " in first and "%" in first
    assert page.locator("h2#corruptions").is_visible() and not errors
    page.close()
