"""What a command does before its loop, kept between commands: JAX's compiled programs
(fadejax.engine.compilation_cache) and the embedded digits' split (fadejax.audits.image.data)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from fadejax.audits.image import data
from fadejax.engine.store.record_fields import records_path

ROOT = Path(__file__).resolve().parents[1]
PROBE = "from fadejax.engine.compilation_cache import enable; import jax; print(enable()); print(jax.config.jax_compilation_cache_dir)"


def _without_jax_cache(**extra: str) -> dict[str, str]:
    """This environment without the suite's own JAX cache settings, plus ``extra``."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("JAX_") and k != "FADEJAX_COMPILATION_CACHE"}
    return {**env, **extra}


def _probe(env: dict[str, str]) -> list[str]:
    out = subprocess.run([sys.executable, "-c", PROBE], env=env, capture_output=True, text=True, check=True, cwd=ROOT)
    return out.stdout.split()


def test_commands_keep_compilations_in_fadejax_cache_unless_the_user_chose(tmp_path):
    ours = str(tmp_path / "cache" / "jax-compilations")
    assert _probe(_without_jax_cache(FADEJAX_CACHE=str(tmp_path / "cache"))) == [ours, ours]
    theirs = str(tmp_path / "theirs")
    assert _probe(_without_jax_cache(FADEJAX_CACHE=str(tmp_path / "cache"), JAX_COMPILATION_CACHE_DIR=theirs)) == [theirs, theirs]
    assert _probe(_without_jax_cache(FADEJAX_CACHE=str(tmp_path / "cache"), FADEJAX_COMPILATION_CACHE="off")) == ["None", "None"]


def test_a_second_run_loads_its_programs_and_writes_the_same_records(tmp_path):
    cache = tmp_path / "cache"
    env = _without_jax_cache(FADEJAX_CACHE=str(cache))
    runs = []
    for name in ("first", "second"):
        run = tmp_path / name
        subprocess.run(
            [sys.executable, "-m", "fadejax.cli", "discover", "--config", "configs/digits.yaml", "--set", "recording=recordings/digits.npz",
             "--set", "run.iterations=3", "--set", "run.num_envs=64", "--set", "run.tensorboard=false", "--out", str(run), "--quiet"],
            env=env, cwd=ROOT, check=True, capture_output=True,
        )
        runs.append(run)
        if name == "first":
            kept = sorted(p.name for p in (cache / "jax-compilations").iterdir())
            assert any("settle" in n for n in kept) and any("propose" in n for n in kept)
    assert sorted(p.name for p in (cache / "jax-compilations").iterdir()) == kept  # nothing compiled anew
    assert records_path(runs[0]).read_bytes() == records_path(runs[1]).read_bytes()


def test_the_digits_split_is_made_once_and_read_back_the_same(tmp_path, monkeypatch):
    monkeypatch.setenv("FADEJAX_CACHE", str(tmp_path))
    made = data._make_digits_split(28, 0.3, 0)
    first = data.load_digits_split(28, 0.3, 0)
    (path,) = (tmp_path / "data").iterdir()
    monkeypatch.setattr(data, "_make_digits_split", lambda *_: pytest.fail("the cached split was made again"))
    second = data.load_digits_split(28, 0.3, 0)
    for split in (first, second):
        got = [split[0].images, split[0].labels, split[1].images, split[1].labels]
        assert all(a.dtype == b.dtype and np.array_equal(a, b) for a, b in zip(got, made))
        assert (split[0].name, split[1].name, split[0].num_classes) == ("digits-train", "digits-held_out", 10)
    assert data._digits_cache_path(28, 0.3, 1) != path and data._digits_cache_path(32, 0.3, 0) != path  # keyed by its arguments


@pytest.mark.parametrize("damage", ["not an npz", "cut short", "an array missing"])
def test_a_damaged_cached_split_is_made_again(tmp_path, monkeypatch, damage):
    monkeypatch.setenv("FADEJAX_CACHE", str(tmp_path))
    path = data._digits_cache_path(28, 0.3, 0)
    train, held = data.load_digits_split(28, 0.3, 0)
    whole = path.read_bytes()
    if damage == "not an npz":
        path.write_bytes(b"not an npz")
    elif damage == "cut short":
        path.write_bytes(whole[: len(whole) // 2])
    else:
        np.savez(path, train_images=train.images)
    again, held_again = data.load_digits_split(28, 0.3, 0)
    assert np.array_equal(again.images, train.images) and np.array_equal(held_again.labels, held.labels)
    with np.load(path) as repaired:  # made again and put back
        assert sorted(repaired.files) == ["held_images", "held_labels", "train_images", "train_labels"]
        assert np.array_equal(repaired["held_images"], held.images)


def test_an_unwritable_cache_still_gives_the_split(tmp_path, monkeypatch):
    blocked = tmp_path / "file"
    blocked.write_text("a file where the cache directory would be")
    monkeypatch.setenv("FADEJAX_CACHE", str(blocked))
    train, held = data.load_digits_split(28, 0.3, 0)
    assert len(train) + len(held) == 1797



def test_a_discovery_imports_none_of_the_packages_only_other_commands_use():
    """rlax (with distrax and TFP), POT, scikit-learn and scipy.stats cost 4-5 s of a
    command's start together; the discovery loop, its image audit and its landscape
    figures need none of them (the DQN searchers, summaries' distances, the digits' first
    split and the metrics import them when they run)."""
    probe = ("import sys, fadejax.cli, fadejax.stages.discover, fadejax.stages.figures, fadejax.audits.image.task, fadejax.searchers; "
             "print(' '.join(m for m in ('rlax', 'distrax', 'ot', 'sklearn', 'scipy.stats') if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", probe], env=_without_jax_cache(), capture_output=True, text=True, check=True, cwd=ROOT)
    assert out.stdout.split() == []
