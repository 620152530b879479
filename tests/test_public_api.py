"""Every name docs/public-api.md promises imports from the module it names, without a
DeprecationWarning (the page is the promise; this keeps it true)."""

import importlib
import re
import warnings
from pathlib import Path

PAGE = Path(__file__).resolve().parents[1] / "docs" / "public-api.md"


def _promised() -> dict[str, list[str]]:
    rows = re.findall(r"^\| `([\w.]+)` \| ((?:`\w+`(?:, )?)+) \|", PAGE.read_text(), re.M)
    return {module: re.findall(r"`(\w+)`", names) for module, names in rows}


def test_every_public_name_imports_from_its_module():
    promised = _promised()
    assert len(promised) >= 20 and "fadejax.engine.config" in promised
    missing = []
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", DeprecationWarning)
        for module, names in promised.items():
            loaded = importlib.import_module(module)
            missing += [f"{module}.{name}" for name in names if not hasattr(loaded, name)]
    assert missing == []
    assert [str(w.message) for w in caught if "moved to" in str(w.message)] == []  # no promised path is an alias
