"""The report's corruption-robustness figures (fadejax.analysis.robustness): the error per
corruption and severity, CE summed over severities, relative CE and mCE across a model
family, and combinations ranked by how much worse they are than their parts."""

from __future__ import annotations

import numpy as np
import pytest

from fadejax.analysis.robustness import robustness

GRID = (["corruption", "severity"], [["fog", "motion_blur", "jpeg_compression"], [1, 2, 3]])


def test_the_grid_gives_each_corruptions_error_per_severity_and_its_sum():
    rates = np.arange(9) / 10.0  # fog 0.0 0.1 0.2, motion_blur 0.3 0.4 0.5, jpeg 0.6 0.7 0.8 (row-major)
    figures = robustness(*GRID, rates, source="exhaustive")
    assert figures.severities == [1, 2, 3]
    # rows in the reference's order (motion_blur, fog, jpeg_compression), not the config's
    assert [r["corruption"] for r in figures.rows] == ["motion_blur", "fog", "jpeg_compression"]
    by_name = {r["corruption"]: r for r in figures.rows}
    assert by_name["fog"]["error"] == pytest.approx([0.0, 0.1, 0.2])
    assert by_name["motion_blur"]["ce"] == pytest.approx(1.2)
    assert figures.mean_ce == pytest.approx((0.3 + 1.2 + 2.1) / 3)
    assert figures.relative is None and figures.interactions == [] and figures.notes == []


def test_unknown_rates_leave_the_sum_blank_and_say_why():
    rates = np.arange(9) / 10.0
    rates[4] = np.nan  # motion_blur at severity 2 never asked
    lower, upper = rates - 0.05, rates + 0.05
    figures = robustness(*GRID, rates, source="estimated", lower=lower, upper=upper)
    row = {r["corruption"]: r for r in figures.rows}["motion_blur"]
    assert row["error"][1] is None and row["ce"] is None
    assert row["lower"][0] == pytest.approx(0.25) and row["upper"][2] == pytest.approx(0.55)
    assert figures.mean_ce == pytest.approx((0.3 + 2.1) / 2)
    assert any("never asked" in n for n in figures.notes)


def test_a_family_gets_ce_relative_to_its_first_model_and_the_mce():
    base = np.linspace(0.1, 0.9, 9)
    better = base.copy()
    better[:3] *= 0.5  # half the fog error
    figures = robustness(*GRID, base, source="exhaustive", model_rates={"base": base, "better": better})
    assert figures.relative["baseline"] == "base"
    models = figures.relative["models"]
    assert models["base"]["mce"] == pytest.approx(1.0)
    assert models["better"]["relative"]["fog"] == pytest.approx(0.5)
    assert models["better"]["relative"]["jpeg_compression"] == pytest.approx(1.0)
    assert models["better"]["mce"] == pytest.approx((0.5 + 1.0 + 1.0) / 3)


def test_combinations_are_ranked_by_how_much_worse_they_are_than_their_worst_part():
    names = ["corruption", "severity", "corruption", "severity"]
    values = [["fog", "snow"], [0, 3], ["motion_blur"], [0, 2]]
    rates = np.zeros((2, 2, 1, 2))
    rates[:, 0, 0, 0] = 0.02  # nothing applied (either corruption name at severity 0)
    rates[0, 1, 0, 0], rates[1, 1, 0, 0] = 0.3, 0.4  # fog 3 alone, snow 3 alone
    rates[:, 0, 0, 1] = 0.2  # motion_blur 2 alone
    rates[0, 1, 0, 1] = 0.9  # fog + motion: far worse than either part
    rates[1, 1, 0, 1] = 0.45  # snow + motion: about its worse part
    figures = robustness(names, values, rates.ravel(), source="exhaustive")
    assert figures.combinations == 2
    first, second = figures.interactions
    assert first["terms"] == [["fog", 3], ["motion_blur", 2]]
    assert first["interaction"] == pytest.approx(0.6) and first["worst_part"] == pytest.approx(0.3)
    assert first["independent"] == pytest.approx(1 - 0.7 * 0.8)
    assert second["terms"] == [["snow", 3], ["motion_blur", 2]] and second["interaction"] == pytest.approx(0.05)
    # the cells of one corruption alone pool: fog 3 alone is one row entry, motion blur's too
    rows = {r["corruption"]: r for r in figures.rows}
    assert figures.severities == [2, 3]
    assert rows["fog"]["error"] == [None, 0.3] and rows["fog"]["in_space"] == [False, True]
    assert rows["motion_blur"]["error"] == [pytest.approx(0.2), None] and rows["motion_blur"]["ce"] == pytest.approx(0.2)


def test_combinations_without_their_parts_in_the_space_are_named_not_ranked():
    names = ["corruption", "severity", "corruption", "severity"]
    values = [["fog"], [1, 3], ["motion_blur"], [2, 4]]
    figures = robustness(names, values, np.full(4, 0.5), source="exhaustive")
    assert figures.interactions == [] and figures.combinations == 0
    assert any("cannot be measured" in n for n in figures.notes)


def test_fadejax_brightness_is_not_imagenet_c_brightness():
    """fadejax's own ``brightness`` takes a factor; only ``brightness_severity`` (or the
    name on a corruption axis) is the common corruption."""
    assert robustness(["brightness", "rotation"], [[1.0, 1.5], [0.0, 10.0]], np.zeros(4), source="exhaustive") is None
    figures = robustness(["brightness", "brightness_severity"], [[1.0, 1.5], [0, 2, 4]], np.arange(6) / 10, source="exhaustive")
    assert [r["corruption"] for r in figures.rows] == ["brightness"]
    assert figures.rows[0]["error"] == [pytest.approx(0.1), pytest.approx(0.2)]  # factor 1.0 (identity): severity alone
    (combo,) = figures.interactions[:1]
    assert combo["terms"] == [["brightness", 1.5], ["brightness", 4]]  # the factor 1.5, then ImageNet-C's severity 4


def test_a_corruption_never_alone_is_averaged_over_the_other_axis_and_noted():
    figures = robustness(["rotation", "fog"], [[-10.0, 10.0], [1, 2]], np.array([0.1, 0.3, 0.2, 0.5]), source="exhaustive")
    assert figures.rows[0]["error"] == [pytest.approx(0.15), pytest.approx(0.4)]
    assert any("averaged" in n for n in figures.notes)


def test_the_report_takes_a_familys_rates_and_the_records_estimates_without_the_truth():
    """fadejax.stages.corruption_report: the run's estimates (intervals kept) when no
    exhaustive landscape is stored, each model's rates for the relative figures, and nothing
    for a space without a common corruption."""
    from fadejax.analysis.estimates import CellEstimates
    from fadejax.engine.config import parse_config
    from fadejax.stages.corruption_report import corruption_figures, corruption_section

    config = parse_config({"space": {"axes": [{"name": "corruption", "values": ["fog", "contrast"]}, {"name": "severity", "values": [1, 2]}]}})
    visited = np.array([0, 1, 3])  # contrast at severity 1 (cell 2) never asked
    estimates = CellEstimates(visited, np.array([0.1, 0.2, 0.4]), np.array([0.05, 0.1, 0.3]), np.array([0.2, 0.3, 0.5]))
    family = (["small", "large"], np.arange(4), np.array([[0.1, 0.2, 0.3, 0.4], [0.05, 0.1, 0.3, 0.4]]))
    figures = corruption_figures(config, estimates, None, family)
    rows = {r["corruption"]: r for r in figures["rows"]}
    assert figures["source"] == "estimated" and rows["fog"]["lower"] == [0.05, 0.1] and rows["contrast"]["error"] == [None, 0.4]
    assert figures["relative"]["models"]["large"]["relative"] == {"fog": pytest.approx(0.5), "contrast": pytest.approx(1.0)}
    html = corruption_section(figures)
    assert "id='corruption-relative'" in html and "title='95% interval 5.0% to 20.0%'" in html
    exact = corruption_figures(config, estimates, np.array([0.1, 0.2, 0.3, 0.4]), None)
    assert exact["source"] == "exhaustive" and {r["corruption"]: r["ce"] for r in exact["rows"]} == {"fog": pytest.approx(0.3), "contrast": pytest.approx(0.7)}
    assert corruption_figures(parse_config({}), estimates, None, None) is None  # rotation x darkness x blur: no corruption


def test_a_corruption_alone_that_was_never_asked_stays_unknown_not_a_combinations_rate():
    """Whether a corruption is in the space alone is decided by the space, not by which cells
    have rates: fog 3 alone never asked is unknown even though fog 3 with rotation was asked."""
    rates = np.array([0.0, 0.1, np.nan, 0.9])  # (fog 0, rot 0), (fog 0, rot 10), (fog 3, rot 0) never asked, (fog 3, rot 10)
    figures = robustness(["fog", "rotation"], [[0, 3], [0.0, 10.0]], rates, source="estimated")
    assert figures.rows[0]["error"] == [None] and figures.rows[0]["in_space"] == [True] and figures.rows[0]["ce"] is None
    assert not any("averaged" in n for n in figures.notes)
