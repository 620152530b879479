"""The audit registry, keyed by the config's ``task:`` value: name -> :class:`Audit`.

This is what the configuration needs of audits (a name's sections and defaults) and
nothing more: it imports only the audit interface (:mod:`fadejax.engine.audit`), never
an audit, so the config it serves can import it without a circle.

Built-in audits (``image``, ``text``, ``prompt``, ``conditions``) are imported on first use. Other audits
come from:

- :func:`register` in code that runs before the config is read;
- an entry point in the ``fadejax.audits`` group of an installed package
  (``[project.entry-points."fadejax.audits"] tabular = "my_pkg.audit:TabularAudit"``),
  looked up by its name;
- ``task: "package.module:AuditClass"`` in a config: the module is imported from the
  Python path (the working directory included) and the class registered under its own
  ``name``. Importing runs that module's code: name only modules you trust.
"""

from __future__ import annotations

import importlib
import sys
from importlib import metadata

from fadejax.engine.audit import Audit, AuditError, RestructureRequest

__all__ = ["Audit", "AuditError", "RestructureRequest", "register", "get", "names", "BUILTIN", "DEFAULT", "ENTRY_POINT_GROUP", "loaded"]

#: built-in audits: ``task`` name -> ``module:attribute`` of their :class:`Audit` subclass
BUILTIN: dict[str, str] = {
    "image": "fadejax.audits.image:ImageAudit",
    "text": "fadejax.audits.text:TextAudit",
    "prompt": "fadejax.audits.prompt:PromptAudit",
    "conditions": "fadejax.audits.conditions:ConditionAudit",
}
ENTRY_POINT_GROUP = "fadejax.audits"
#: the audit a config gets when it names no ``task`` (the embedded default)
DEFAULT = "image"

_REGISTRY: dict[str, Audit] = {}


def register(audit: type[Audit] | Audit) -> Audit:
    """Add an audit (a subclass of :class:`Audit`, or an instance of one) under its ``name``;
    returns the registered instance. Registering the same class again is allowed."""
    instance = audit() if isinstance(audit, type) else audit
    if not isinstance(instance, Audit):
        raise AuditError(f"{audit!r} is not a subclass of fadejax.audits.Audit")
    name = instance.name
    if not name or not isinstance(name, str) or ":" in name:
        raise AuditError(f"audit class {type(instance).__name__} needs a 'name' (the config's task: value, without ':'), got {name!r}")
    present = _REGISTRY.get(name)
    if present is not None and type(present) is not type(instance):
        raise AuditError(f"an audit named '{name}' is already registered ({type(present).__module__}.{type(present).__name__})")
    _REGISTRY.setdefault(name, instance)
    return _REGISTRY[name]


def _import(spec: str, what: str) -> Audit:
    module_name, _, attribute = spec.partition(":")
    if not module_name or not attribute:
        raise AuditError(f"{what} '{spec}' must look like 'package.module:AuditClass'")
    if "" not in sys.path:  # a module beside the config, as `python -m` would find it
        sys.path.insert(0, "")
    try:
        module = importlib.import_module(module_name)
    except ImportError as exc:
        raise AuditError(f"{what} '{spec}': cannot import module '{module_name}': {exc}") from None
    try:
        target = getattr(module, attribute)
    except AttributeError:
        raise AuditError(f"{what} '{spec}': module '{module_name}' has no '{attribute}'") from None
    if not (isinstance(target, type) and issubclass(target, Audit)) and not isinstance(target, Audit):
        raise AuditError(f"{what} '{spec}' is not a fadejax.audits.Audit subclass")
    return register(target)


def _entry_points() -> dict[str, metadata.EntryPoint]:
    return {ep.name: ep for ep in metadata.entry_points(group=ENTRY_POINT_GROUP)}


def get(task: str) -> Audit:
    """The audit a config's ``task:`` names; :class:`AuditError` naming the known ones if none."""
    if task in _REGISTRY:
        return _REGISTRY[task]
    if task in BUILTIN:
        return _import(BUILTIN[task], f"built-in audit '{task}'")
    if ":" in task:
        audit = _import(task, "task")
        _REGISTRY.setdefault(task, audit)  # the spec itself names it from now on too
        return audit
    entry = _entry_points().get(task)
    if entry is not None:
        return _import(entry.value, f"entry point '{task}' ({ENTRY_POINT_GROUP})")
    raise AuditError(f"unknown task '{task}'; known audits: {names()} (or name your own as 'package.module:AuditClass')")


def names() -> list[str]:
    """Every audit name known now: built-in, registered and installed as entry points."""
    return sorted(set(BUILTIN) | {n for n in _REGISTRY if ":" not in n} | set(_entry_points()))


def loaded() -> list[Audit]:
    """The built-in audits and those registered so far (each once)."""
    for name in BUILTIN:
        get(name)
    seen: dict[int, Audit] = {}
    for audit in _REGISTRY.values():
        seen.setdefault(id(audit), audit)
    return list(seen.values())
