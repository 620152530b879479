"""What opening someone else's artifact may make fadejax run: no code, unless the user says so.

A config the user passes with ``--config`` is the user's own: the code it names (an audit
class, ``task: "package.module:Class"``; an image model class, ``model.architecture``) is
imported as asked. A config read from a run directory is somebody else's: before it is
parsed (parsing a ``task`` import path imports its module), every field that names code
outside fadejax's registries is listed, and the command refuses unless the user passed
``--trust-code`` (in the spirit of ``transformers``' ``trust_remote_code``).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from fadejax import audits


class UntrustedCodeError(ValueError):
    """A shared artifact names code to import or call, and the user did not trust it."""


def _registered_audit(data: dict[str, Any]) -> audits.Audit | None:
    """The audit a raw config names, if it is a registered one (never an import path:
    looking that up would import it); ``None`` otherwise (parsing reports unknown names)."""
    task = data.get("task", audits.DEFAULT)
    if not isinstance(task, str) or ":" in task:
        return None
    try:
        return audits.get(task)
    except audits.AuditError:
        return None


def code_named(data: dict[str, Any]) -> list[tuple[str, str]]:
    """``(field, what it names)`` for each field of a raw config (a YAML mapping, not yet
    parsed) that would make fadejax import or call code outside its registries."""
    task = data.get("task", audits.DEFAULT)
    if isinstance(task, str) and ":" in task:
        # The audit itself is foreign code; its own fields cannot be read without importing it.
        return [("task", task)]
    audit = _registered_audit(data)
    return audit.code_named(data) if audit is not None else []


def refuse_untrusted_code(data: Any, source: str, trust_code: bool, trusted: list[tuple[str, str]] | tuple = ()) -> None:
    """Raise :class:`UntrustedCodeError` if the raw config ``data`` read from ``source``
    names code, unless ``trust_code``; code in ``trusted`` (what the user's own config
    names, as :func:`code_named` lists it) is allowed."""
    if trust_code or not isinstance(data, dict):
        return
    allowed = set(trusted)
    named = [item for item in code_named(data) if item not in allowed]
    if named:
        listing = "; ".join(f"{field}: '{target}'" for field, target in named)
        raise UntrustedCodeError(
            f"{source} names code that opening it would import and run ({listing}); fadejax runs code "
            "named by a run directory only with --trust-code: pass it if you trust where this run directory came from"
        )


def inside(base: Path, name: str) -> Path | None:
    """``base / name`` if it stays inside ``base`` once resolved (no ``..``, absolute path
    or symbolic link leading out), else ``None``."""
    base = Path(base).resolve()
    try:
        target = (base / name).resolve()
    except (OSError, ValueError):  # e.g. an embedded NUL byte
        return None
    return target if target != base and target.is_relative_to(base) else None


def paths_outside(data: dict[str, Any], run_dir: Path) -> list[tuple[str, str]]:
    """``(field, path)`` for each path a raw run config names that lies outside ``run_dir``
    (relative paths count from the working directory, as fadejax reads them)."""
    if not isinstance(data, dict):
        return []
    named = [("recording", data["recording"])] if isinstance(data.get("recording"), str) and data["recording"] else []
    audit = _registered_audit(data)
    if audit is not None:
        named += audit.paths_named(data)
    run_dir = Path(run_dir).resolve()

    def within(path: str) -> bool:
        try:
            return Path(path).expanduser().resolve().is_relative_to(run_dir)
        except (OSError, RuntimeError, ValueError):  # a NUL byte, a link loop, an unknown ~user: report it
            return False

    return [(field, path) for field, path in named if not within(path)]


def refuse_links(out: Path) -> None:
    """Raise :class:`UnsafeOutputError` if the output directory ``out``, or anything already
    in it, is a symbolic link (a shared run directory's ``report`` could point anywhere, and
    writing would follow it)."""
    out = Path(out)
    links = [p for p in ([out] + (list(out.rglob("*")) if out.is_dir() and not out.is_symlink() else [])) if p.is_symlink()]
    if links:
        raise UnsafeOutputError(
            f"output directory '{out}' holds symbolic links ({', '.join(str(p) for p in links[:3])}); fadejax does not write "
            "through links it did not make: remove them or choose another --out"
        )


class UnsafeOutputError(ValueError):
    """An output directory holds symbolic links that writing would follow."""
