"""The common corruptions in a concept space: one corruption x severity grid, corruptions in
combination, single-corruption families, the refusals, and a discovery run over them."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
import yaml

from fadejax.cli import EXIT_BAD_INPUT, main
from fadejax.core import perturbations as P
from fadejax.core.corruptions import CORRUPTIONS
from fadejax.engine.config import parse_config

GRID = [{"name": "corruption", "values": ["contrast", "gaussian_blur", "pixelate"]}, {"name": "severity", "values": [1, 3, 5]}]


def test_the_nineteen_corruptions_are_registered_and_colliding_names_keep_both_meanings():
    held_out = {"speckle_noise", "gaussian_blur", "spatter", "saturate"}
    assert len(CORRUPTIONS) == 19 and {n for n, c in CORRUPTIONS.items() if c.held_out} == held_out
    for name, c in CORRUPTIONS.items():
        family = P.get(name + P.SEVERITY_SUFFIX if name in ("brightness", "contrast", "pixelate") else name)
        assert (family.low, family.high, family.whole, family.identity, family.random) == (0.0, 5.0, True, 0.0, c.random)
    assert P.get("contrast").unit.startswith("contrast factor") and "ImageNet-C's contrast" in P.get("contrast_severity").unit
    assert {n for n, c in CORRUPTIONS.items() if not c.random} >= {"contrast", "brightness", "gaussian_blur", "defocus_blur",
                                                                   "zoom_blur", "pixelate", "jpeg_compression", "saturate"}


def test_a_corruption_grid_applies_each_cells_corruption_at_its_severity(photo_images):
    names = [a["name"] for a in GRID]
    perturb = jax.jit(P.compose(names, [a["values"] for a in GRID]))
    images = jnp.asarray(np.repeat(photo_images[:1], 9, axis=0))
    corruption, severity = np.meshgrid(np.arange(3), [1.0, 3.0, 5.0], indexing="ij")
    values = jnp.asarray(np.stack([corruption.ravel(), severity.ravel()], axis=1), jnp.float32)
    out = np.asarray(perturb(images, values, jax.random.PRNGKey(0)))
    key = jax.random.PRNGKey(1)  # deterministic corruptions ignore it
    for row, (c, s) in enumerate(zip(corruption.ravel(), severity.ravel())):
        alone = CORRUPTIONS[GRID[0]["values"][c]].build([1, 3, 5])(images[:1], jnp.asarray([s]), key)
        np.testing.assert_allclose(out[row], np.asarray(alone)[0], atol=1e-6)
    assert len({out[row].tobytes() for row in range(9)}) == 9  # every cell differs


def test_corruptions_in_combination_chain_in_axis_order_each_at_its_own_severity(photo_images):
    axes = [*GRID, {"name": "corruption_b", "perturbation": "corruption", "values": ["brightness", "zoom_blur"]},
            {"name": "severity_b", "perturbation": "severity", "values": [0, 2]}]
    config = parse_config({"space": {"axes": axes}})
    space = config.concept_space()
    assert space.num_actions == 3 * 3 * 2 * 2 and config.axis_identity(1) == 0.0 and config.axis_identity(0) is None
    perturb = jax.jit(P.compose([a.perturbation_name for a in config.space.axes], [a.values for a in config.space.axes]))
    images = jnp.asarray(photo_images[:2])
    values = jnp.asarray([[2, 3, 1, 2], [0, 5, 0, 0]], jnp.float32)  # pixelate 3 then zoom_blur 2; contrast 5 then nothing
    out = np.asarray(perturb(images, values, jax.random.PRNGKey(0)))
    key = jax.random.PRNGKey(0)
    first = CORRUPTIONS["pixelate"].build([1, 3, 5])(images[:1], jnp.asarray([3.0]), key)
    np.testing.assert_allclose(out[0], np.asarray(CORRUPTIONS["zoom_blur"].build([0, 2])(first, jnp.asarray([2.0]), key))[0], atol=1e-6)
    np.testing.assert_allclose(out[1], np.asarray(CORRUPTIONS["contrast"].build([1, 3, 5])(images[1:], jnp.asarray([5.0]), key))[0], atol=1e-6)


def test_whether_a_space_draws_per_query_follows_its_corruptions():
    assert not P.draws_per_query(["corruption", "severity"], [["contrast", "pixelate"], [1, 2]])
    assert P.draws_per_query(["corruption", "severity"], [["contrast", "fog"], [1, 2]])
    assert P.draws_per_query(["rotation", "motion_blur"], [[0, 10], [0, 3]])


@pytest.mark.parametrize("axes, fragments", [
    ([{"name": "corruption", "values": ["fog", "smog"]}, {"name": "severity", "values": [1, 2]}],
     ["space.axes.0", "unknown corruption ['smog']", "gaussian_noise, shot_noise"]),
    ([{"name": "corruption", "values": ["fog", "snow"]}, {"name": "severity", "values": [1, 6]}],
     ["space.axes.1", "severity values [6.0] are not whole numbers 0-5"]),
    ([{"name": "corruption", "values": ["fog", "snow"]}, {"name": "rotation", "values": [0, 10]}],
     ["space.axes.0", "must be followed by its 'severity' axis", "axis 1 is 'rotation'"]),
    ([{"name": "rotation", "values": [0, 10]}, {"name": "severity", "values": [1, 2]}],
     ["space.axes.1", "none precedes this one"]),
    ([{"name": "fog", "values": [0, 2.5]}], ["space.axes.0", "fog values [2.5] are not whole numbers"]),
    ([{"name": "rotation", "values": ["fog", "snow"]}], ["space.axes.0", "rotation needs numeric strengths"]),
], ids=["unknown corruption", "severity out of range", "no severity axis", "severity alone", "fractional severity", "words on a numeric axis"])
def test_a_wrong_corruption_space_gets_one_error_line_and_exit_2(capsys, tmp_path, axes, fragments):
    config = tmp_path / "bad.yaml"
    config.write_text(yaml.safe_dump({"space": {"axes": axes}}))
    assert main(["discover", "--config", str(config), "--out", str(tmp_path / "run")]) == EXIT_BAD_INPUT
    err = capsys.readouterr().err
    assert err.startswith("error: ") and err.count("\n") == 1, err
    for fragment in fragments:
        assert fragment in err, err
    assert not (tmp_path / "run").exists()


@pytest.mark.parametrize("axes", [[{"name": "frost", "values": [0, 2]}],
                                  [{"name": "corruption", "values": ["fog", "frost"]}, {"name": "severity", "values": [1, 2]}]])
def test_frost_without_its_photographs_is_refused_in_one_line_saying_how_to_get_them(capsys, tmp_path, monkeypatch, axes):
    monkeypatch.setenv("FADEJAX_FROST_DIR", str(tmp_path))  # an empty directory
    config = tmp_path / "frost.yaml"
    config.write_text(yaml.safe_dump({"space": {"axes": axes}}))
    assert main(["discover", "--config", str(config), "--out", str(tmp_path / "run")]) == EXIT_BAD_INPUT
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "space.axes.0" in err and "frost1.png" in err and "pip install --no-deps imagecorruptions" in err, err
