"""What opening someone else's artifact may make fadejax run: no code, unless the user says so.

A config the user passes with ``--config`` is the user's own: the code it names (an audit
class, ``task: "package.module:Class"``; an image model class, ``model.architecture``) is
imported as asked. A config read from a run directory is somebody else's: before it is
parsed (parsing a ``task`` import path imports its module), every field that names code
outside fadejax's registries is listed, and the command refuses unless the user passed
``--trust-code`` (in the spirit of ``transformers``' ``trust_remote_code``).
"""

from __future__ import annotations

from typing import Any

from fadejax import audits


class UntrustedCodeError(ValueError):
    """A shared artifact names code to import or call, and the user did not trust it."""


def code_named(data: dict[str, Any]) -> list[tuple[str, str]]:
    """``(field, what it names)`` for each field of a raw config (a YAML mapping, not yet
    parsed) that would make fadejax import or call code outside its registries."""
    task = data.get("task", audits.DEFAULT)
    if isinstance(task, str) and ":" in task:
        # The audit itself is foreign code; its own fields cannot be read without importing it.
        return [("task", task)]
    try:
        audit = audits.get(str(task))
    except audits.AuditError:
        return []  # an unknown audit name: parsing reports it, and imports nothing
    return audit.code_named(data)


def refuse_untrusted_code(data: Any, source: str, trust_code: bool, trusted: list[tuple[str, str]] | tuple = ()) -> None:
    """Raise :class:`UntrustedCodeError` if the raw config ``data`` read from ``source``
    names code, unless ``trust_code``; code in ``trusted`` (what the user's own config
    names, as :func:`code_named` lists it) is allowed."""
    if trust_code or not isinstance(data, dict):
        return
    named = [item for item in code_named(data) if item not in set(trusted)]
    if named:
        listing = "; ".join(f"{field}: '{target}'" for field, target in named)
        raise UntrustedCodeError(
            f"{source} names code that opening it would import and run ({listing}); fadejax runs code "
            "named by a run directory only with --trust-code: pass it if you trust where this run directory came from"
        )
