"""Searchers kept outside fadejax: import a user's module that calls :func:`fadejax.searchers.register`.

Only ever called on a path the user names on the command line (``--plugin FILE.py``):
fadejax does not import code that a config or a run directory names.
"""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

from fadejax.searchers import REGISTRY


class PluginError(ValueError):
    """A plugin file is missing or registers no searcher."""


#: file -> what its import registered (a file is imported once per process)
_IMPORTED: dict[Path, dict[str, tuple]] = {}


def import_plugins(paths: list[str]) -> list[str]:
    """Import each file (once per process) in order; the searcher kinds they registered."""
    kinds: list[str] = []
    for path in paths:
        file = Path(path).resolve()
        if not file.is_file():
            raise PluginError(f"--plugin '{path}' is not a file")
        if file not in _IMPORTED:
            before = set(REGISTRY)
            spec = importlib.util.spec_from_file_location(f"fadejax_plugin_{len(_IMPORTED)}_{file.stem}", file)
            module = importlib.util.module_from_spec(spec)
            sys.modules[spec.name] = module  # pydantic resolves the module's annotations through it
            spec.loader.exec_module(module)
            _IMPORTED[file] = {kind: REGISTRY[kind] for kind in REGISTRY if kind not in before}
        if not _IMPORTED[file]:
            raise PluginError(f"--plugin '{path}' registered no searcher; call fadejax.searchers.register(Config, Searcher) in it")
        for kind, pair in _IMPORTED[file].items():
            REGISTRY.setdefault(kind, pair)
            if kind not in kinds:
                kinds.append(kind)
    return kinds
