"""Module paths from before the layered subpackages still import, as the very module of
their new home, with a DeprecationWarning naming it (fadejax.moved)."""

import importlib
import subprocess
import sys

import pytest

from fadejax.moved import MOVED


def test_every_old_path_names_a_module_that_exists():
    for old, new in MOVED.items():
        assert importlib.util.find_spec(new) is not None, f"{old} -> {new}"


def test_an_old_path_is_the_new_module_and_warns_naming_it():
    code = ("import warnings; warnings.simplefilter('error')\n"
            "try:\n    import fadejax.config\nexcept DeprecationWarning as w:\n    print(w)\n")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "'fadejax.config' moved to 'fadejax.engine.config'; the old name will go in a later release"
    sys.modules.pop("fadejax.searchers.random_search", None)  # as if first imported here
    with pytest.warns(DeprecationWarning, match="fadejax.searchers.baselines.random_search"):
        old = importlib.import_module("fadejax.searchers.random_search")
    new = importlib.import_module("fadejax.searchers.baselines.random_search")
    assert old is new and old.RandomSearch is new.RandomSearch
