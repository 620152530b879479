"""Old module paths of fadejax (before the layered subpackages) as deprecated aliases.

``import fadejax.config`` still works, warns once with :class:`DeprecationWarning`, and
gives the very module object of its new home (``fadejax.engine.config``), so the classes,
registries and monkeypatches of old and new names are the same. Remove an entry when no
user's code needs it.
"""

from __future__ import annotations

import importlib
import importlib.abc
import importlib.machinery
import sys
import warnings
from types import ModuleType

#: old dotted name -> new dotted name
MOVED: dict[str, str] = {
    "fadejax.data": "fadejax.audits.image.data",
    "fadejax.audits.base": "fadejax.engine.audit",
    "fadejax.barycenters": "fadejax.analysis.barycenters",
    "fadejax.compare": "fadejax.stages.compare",
    "fadejax.compilation_cache": "fadejax.engine.compilation_cache",
    "fadejax.config": "fadejax.engine.config",
    "fadejax.dirlock": "fadejax.engine.store.dirlock",
    "fadejax.discovery": "fadejax.engine.loop",
    "fadejax.durable": "fadejax.engine.store.durable",
    "fadejax.estimates": "fadejax.analysis.estimates",
    "fadejax.family": "fadejax.stages.family",
    "fadejax.figures": "fadejax.stages.figures",
    "fadejax.finetune": "fadejax.stages.finetune",
    "fadejax.fused": "fadejax.engine.fused",
    "fadejax.fusion": "fadejax.core.fusion",
    "fadejax.ground_truth": "fadejax.engine.ground_truth",
    "fadejax.json_columns": "fadejax.engine.store.json_columns",
    "fadejax.landscapes": "fadejax.core.landscapes",
    "fadejax.learning_log": "fadejax.engine.store.learning_log",
    "fadejax.metrics": "fadejax.analysis.metrics",
    "fadejax.perturbations": "fadejax.core.perturbations",
    "fadejax.pot": "fadejax.analysis.pot",
    "fadejax.record_columns": "fadejax.engine.store.record_columns",
    "fadejax.recording": "fadejax.engine.recording",
    "fadejax.records": "fadejax.engine.store.records",
    "fadejax.report": "fadejax.stages.report",
    "fadejax.restructure": "fadejax.stages.restructure",
    "fadejax.rewards": "fadejax.core.rewards",
    "fadejax.run": "fadejax.stages.discover",
    "fadejax.run_check": "fadejax.engine.store.run_check",
    "fadejax.rundir": "fadejax.engine.store.rundir",
    "fadejax.searchers.bayes": "fadejax.searchers.baselines.bayes",
    "fadejax.searchers.cem": "fadejax.searchers.baselines.cem",
    "fadejax.searchers.counting": "fadejax.searchers.baselines.counting",
    "fadejax.searchers.greedy": "fadejax.searchers.baselines.greedy",
    "fadejax.searchers.random_search": "fadejax.searchers.baselines.random_search",
    "fadejax.searchers.threshold": "fadejax.searchers.baselines.threshold",
    "fadejax.sinks": "fadejax.engine.store.sinks",
    "fadejax.spaces": "fadejax.core.spaces",
    "fadejax.strict": "fadejax.core.strict",
    "fadejax.summarize": "fadejax.stages.summarize",
    "fadejax.sweep": "fadejax.sweeps.runner",
    "fadejax.sweep_report": "fadejax.sweeps.report",
    "fadejax.sweep_spec": "fadejax.sweeps.spec",
    "fadejax.task": "fadejax.engine.task",
    "fadejax.trust": "fadejax.engine.store.trust",
    "fadejax.walks": "fadejax.core.walks",
}


class _Alias(importlib.abc.MetaPathFinder, importlib.abc.Loader):
    """Finds an old name and loads it as the module at its new one."""

    def find_spec(self, fullname: str, path, target=None) -> importlib.machinery.ModuleSpec | None:
        if fullname not in MOVED:
            return None
        return importlib.machinery.ModuleSpec(fullname, self)

    def create_module(self, spec: importlib.machinery.ModuleSpec) -> ModuleType:
        new = MOVED[spec.name]
        warnings.warn(f"'{spec.name}' moved to '{new}'; the old name will go in a later release", DeprecationWarning, stacklevel=2)
        return importlib.import_module(new)

    def exec_module(self, module: ModuleType) -> None:
        """The module ran when its new name was imported; nothing to do."""


def install() -> None:
    """Put the alias finder on ``sys.meta_path`` (once)."""
    if not any(isinstance(finder, _Alias) for finder in sys.meta_path):
        sys.meta_path.append(_Alias())
