"""`fadejax summarize`: numbers, files, bad run directories, and the report in a real headless browser."""

import json
import shutil

import numpy as np
import pytest

from fadejax.cli import EXIT_BAD_INPUT, main
from fadejax.engine.config import parse_config
from fadejax.stages.discover import discover
from fadejax.stages.summarize import SummarizeError, load_summary, parse_mode
from fadejax.engine.store.records import read_records, records_path

# The first 180 of the 540 held-out digits: summaries re-evaluate modes on them, 3x faster.
CONFIG = {"data": {"limit": 180}, "searcher": {"kind": "dqn", "hidden_sizes": [64], "batch_size": 64, "min_replay": 64}, "run": {"iterations": 12, "num_envs": 64, "checkpoint_every": 4}}


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory, digits_task):
    out = tmp_path_factory.mktemp("summarize") / "run"
    discover(parse_config(CONFIG), out, oracle=digits_task.oracle, progress=False)
    return out


@pytest.fixture(scope="module")
def report(run_dir, digits_task):
    from fadejax.stages.figures import write_figures
    from fadejax.stages.report import write_report

    summary = load_summary(run_dir, top=4)
    files = write_report(summary, run_dir / "report")
    write_figures(summary, run_dir / "report")
    return summary, files


def test_summary_numbers_match_the_records(run_dir, report):
    summary, files = report
    assert summary.queries == 12 * 64 and not summary.partial
    records = list(read_records(records_path(run_dir)))
    assert summary.failures_total == sum(r["failed"] for r in records) == summary.view_failures.sum()
    assert summary.view_visits.sum() == len(records) and summary.cells.size == len({r["cell"] for r in records})
    assert summary.view_policy_mean is not None and np.isclose(summary.view_policy_mean.sum(), 1.0, atol=1e-4)
    # modes are ranked by the records' shrinkage estimate, each with its 95% interval
    estimates = [m["estimate"] for m in summary.modes]
    assert estimates == sorted(estimates, reverse=True) and len(summary.modes) == 4
    assert all(m["interval"][0] <= m["estimate"] <= m["interval"][1] for m in summary.modes)
    for mode in summary.modes + summary.policy_modes:  # every minimal description is justified by the rates it reports
        for check in mode["minimal"]["checks"]:
            assert check["needed"] == (mode["minimal"]["rate"] - check["rate_without"] > 0.1)
    # the policy's modes are its highest mean-Q cells, best first
    scores = [m["mean_score"] for m in summary.policy_modes]
    assert len(scores) == 4 and scores == sorted(scores, reverse=True)
    data = json.loads(open(files["json"]).read())
    assert len(data["points"]) == 125 and set(data["barycenters"]) == {"1", "2", "3"}
    assert sorted(p["cell"] for p in data["points"]) == list(range(125))
    for name in ("landscape.png", "landscape.pdf", "modes.png", "modes.pdf", "landscape.csv", "cells.csv", "report.html"):
        assert (run_dir / "report" / name).stat().st_size > 0


def test_modes_are_chosen_by_cell_or_by_concept_values(run_dir, capsys):
    config = parse_config(CONFIG)
    assert parse_mode("24", config) == 24 == parse_mode("rotation=-20,darkness=0.7,blur=3", config)
    with pytest.raises(SummarizeError, match="rotation takes one of"):
        parse_mode("rotation=-25,darkness=0.7,blur=3", config)
    with pytest.raises(SummarizeError, match="every axis"):
        parse_mode("rotation=-20", config)
    assert main(["summarize", str(run_dir), "--choose", "24", "--choose", "rotation=20,darkness=0.7,blur=3", "--top", "2", "--out", str(run_dir / "cli")]) == 0
    chosen = json.loads((run_dir / "cli" / "modes.json").read_text())
    assert [m["cell"] for m in chosen["modes"]] == [24, 124]
    assert chosen["modes"][0]["concepts"] == {"rotation": -20.0, "darkness": 0.7, "blur": 3.0}
    assert "report: " in capsys.readouterr().out


def test_missing_and_corrupt_run_directories_get_clear_messages(tmp_path, run_dir, capsys):
    assert main(["summarize", str(tmp_path / "nope")]) == EXIT_BAD_INPUT
    assert "does not exist" in capsys.readouterr().err
    (tmp_path / "empty").mkdir()
    assert main(["summarize", str(tmp_path / "empty")]) == EXIT_BAD_INPUT
    assert "not a fadejax run directory" in capsys.readouterr().err
    broken = tmp_path / "broken"
    shutil.copytree(run_dir, broken)
    with open(records_path(broken), "r+b") as f:
        f.seek(0)
        f.write(b"{garbage")
    assert main(["summarize", str(broken)]) == EXIT_BAD_INPUT
    assert "records.parquet' is not a Parquet records file" in capsys.readouterr().err
    (broken / "config.yaml").write_text("mode: [unclosed\n")
    assert main(["summarize", str(broken)]) == EXIT_BAD_INPUT
    assert "config.yaml' is corrupt" in capsys.readouterr().err


def test_a_partial_run_is_summarised_from_what_it_has_and_says_so(tmp_path, digits_task):
    out = tmp_path / "partial"
    discover(parse_config(CONFIG), out, oracle=digits_task.oracle, progress=False, stop_after=5)
    summary = load_summary(out, top=2)
    assert summary.partial and summary.queries == 5 * 64
    assert any("partial run" in note for note in summary.notes)


def test_the_report_works_in_a_headless_browser(report, run_dir, tmp_path):
    from playwright.sync_api import sync_playwright

    summary, files = report
    data = json.loads(open(files["json"]).read())
    with_failures = next(i for i, p in enumerate(data["points"]) if p["failures"] > 0)
    flags = ["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
             "--disable-sync", "--disable-quic", "--no-first-run"]
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=shutil.which("chromium"), args=flags)
        page = browser.new_page(viewport={"width": 1280, "height": 1300}, accept_downloads=True)
        errors, requests = [], []
        page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
        page.on("pageerror", lambda e: errors.append(str(e)))
        page.on("request", lambda r: requests.append(r.url))
        page.goto("file://" + files["html"])
        page.wait_for_selector("#landscape .gl-container canvas", timeout=30_000)
        assert page.evaluate("document.getElementById('landscape')._fullData.length") == 3  # cells, barycenter, top modes
        # The first picture shows the failures: coloured by the estimated failure rate, the
        # report's top modes marked with their ranks on their own points.
        assert page.input_value("#colour-by") == "estimate"
        colours = page.evaluate("document.getElementById('landscape')._fullData[0].marker.color")
        assert colours == pytest.approx([p["estimate"] or 0 for p in data["points"]])
        assert page.evaluate("document.getElementById('landscape')._fullData[0].marker.colorbar.title.text") == "estimated failure rate"
        estimated = {p["cell"]: p["estimate"] for p in data["points"]}
        assert all(estimated[m["cell"]] == pytest.approx(m["estimate"]) for m in summary.modes)  # one cell per point here
        marks = page.evaluate("document.getElementById('landscape')._fullData[2]")
        assert marks["text"] == [f"#{m['rank']}" for m in summary.modes]
        first = data["points"][data["mode_points"][0]["point"]]
        assert first["cell"] == summary.modes[0]["cell"] and marks["x"][0] == pytest.approx(first["values"][0])

        # A real mouse hover picks a point in the WebGL scene ...
        page.evaluate("document.getElementById('landscape').on('plotly_hover', e => window.hovered = e.points[0].customdata)")
        box = page.locator("#landscape").bounding_box()
        hovered = None
        for y in range(40, int(box["height"]) - 40, 20):
            for x in range(40, int(box["width"]) - 140, 20):
                page.mouse.move(box["x"] + x, box["y"] + y)
                page.wait_for_timeout(10)
                hovered = page.evaluate("window.hovered")
                if hovered is not None:
                    break
            if hovered is not None:
                break
        assert hovered is not None, "no point of the 3-D landscape could be hovered"
        # ... and clicking shows that point's failures. Headless WebGL does not turn a mouse
        # press into plotly_click, so the click is sent through plotly's own event API.
        page.evaluate(f"document.getElementById('landscape').emit('plotly_click', {{points: [{{customdata: {hovered}}}]}})")
        expected = ", ".join(f"{a} = {v:g}" for a, v in zip(data["axes"], data["points"][hovered]["values"]))
        assert page.locator("#failures h3").inner_text() == expected
        page.evaluate(f"document.getElementById('landscape').emit('plotly_click', {{points: [{{customdata: {with_failures}}}]}})")
        assert page.locator("#failures img").count() == min(6, data["points"][with_failures]["failures"])

        page.select_option("#colour-by", "rate")  # the observed landscape, in the same view
        colours = page.evaluate("document.getElementById('landscape')._fullData[0].marker.color")
        assert colours == pytest.approx([p["rate"] or 0 for p in data["points"]])

        page.select_option("#radius", "2")  # the barycenter moves with the radius
        assert page.evaluate("document.getElementById('landscape')._fullData[1].x[0]") == pytest.approx(data["barycenters"]["2"][0])

        page.locator("input.mode").nth(0).check()
        page.locator("input.mode").nth(2).check()
        with page.expect_download() as download:
            page.click("#export-button")
        exported = json.loads(open(download.value.path()).read())
        assert [m["cell"] for m in exported["modes"]] == [summary.modes[0]["cell"], summary.modes[2]["cell"]]
        assert json.loads(page.locator("#export").inner_text()) == exported
        browser.close()
    assert errors == []
    assert [r for r in requests if not r.startswith(("file:", "data:", "blob:"))] == []


def test_views_can_be_sliced_at_a_hidden_axis(run_dir, capsys):
    out = run_dir / "sliced"
    assert main(["summarize", str(run_dir), "--axes", "rotation,darkness", "--fix", "blur=3", "--top", "2", "--out", str(out)]) == 0
    data = json.loads((out / "summary.json").read_text())
    assert data["sliced"] == {"blur": 3.0} and len(data["points"]) == 25
    assert all(p["pooled"] == 1 and p["cell"] is not None for p in data["points"])  # sliced, not averaged
    pooled = run_dir / "pooled"
    assert main(["summarize", str(run_dir), "--axes", "rotation,darkness", "--top", "2", "--out", str(pooled)]) == 0
    points = json.loads((pooled / "summary.json").read_text())["points"]
    assert len(points) == 25 and all(p["pooled"] == 5 and p["cell"] is None for p in points)
    assert sum(p["visits"] for p in points) == sum(p["visits"] for p in data["points"]) + sum(
        1 for r in read_records(records_path(run_dir)) if r["concepts"]["blur"] != 3.0)
    assert (out / "landscapes_side_by_side.png").stat().st_size > 0
    assert main(["summarize", str(run_dir), "--axes", "rotation,darkness", "--fix", "blur=2.5"]) == EXIT_BAD_INPUT
    assert "blur takes one of" in capsys.readouterr().err
