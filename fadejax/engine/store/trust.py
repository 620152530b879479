"""What opening someone else's artifact may make fadejax run: no code, unless the user says so.

A config the user passes with ``--config`` is the user's own: the code it names (an audit
class, ``task: "package.module:Class"``; an image model class, ``model.architecture``) is
imported as asked. A config read from a run directory is somebody else's: before it is
parsed (parsing a ``task`` import path imports its module), every field that names code
outside fadejax's registries is listed, and the command refuses unless the user passed
``--trust-code`` (in the spirit of ``transformers``' ``trust_remote_code``).

A user may trust a run directory once instead (``fadejax trust DIR``, as ``direnv allow``
does): the trust store, ``trusted.json`` in the user's config directory
(:func:`config_dir`), keeps per resolved directory path a SHA-256 pin over the directory's
``config.yaml`` bytes, the files of the code it names and the user's uid. Editing either
afterwards invalidates the pin, and the directory is refused again. ``discover`` trusts
the runs it makes from the user's own config (:func:`trust_own_run`). The store lives in
the user's home, never in a run directory, so copying a directory (to another path, user
or machine) carries no trust.
"""

from __future__ import annotations

import contextlib
import datetime
import fcntl
import hashlib
import hmac
import json
import os
import shlex
import stat
import sys
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from fadejax.engine import registry

STORE_FILE = "trusted.json"
_RUN_CONFIG = "config.yaml"  # fadejax.engine.store.rundir.CONFIG_FILE (not imported: rundir imports the config machinery)
_EXIT_BAD_INPUT = 2  # fadejax.cli.EXIT_BAD_INPUT


class UntrustedCodeError(ValueError):
    """A shared artifact names code to import or call, and the user did not trust it."""


def _registered_audit(data: dict[str, Any]) -> registry.Audit | None:
    """The audit a raw config names, if it is a registered one (never an import path:
    looking that up would import it); ``None`` otherwise (parsing reports unknown names)."""
    task = data.get("task", registry.DEFAULT)
    if not isinstance(task, str) or ":" in task:
        return None
    try:
        return registry.get(task)
    except registry.AuditError:
        return None


def code_named(data: dict[str, Any]) -> list[tuple[str, str]]:
    """``(field, what it names)`` for each field of a raw config (a YAML mapping, not yet
    parsed) that would make fadejax import or call code outside its registries."""
    task = data.get("task", registry.DEFAULT)
    if isinstance(task, str) and ":" in task:
        # The audit itself is foreign code; its own fields cannot be read without importing it.
        return [("task", task)]
    audit = _registered_audit(data)
    return audit.code_named(data) if audit is not None else []


def refuse_untrusted_code(data: Any, source: str, trust_code: bool, trusted: list[tuple[str, str]] | tuple = (),
                          run_dir: Path | str | None = None) -> None:
    """Raise :class:`UntrustedCodeError` if the raw config ``data`` read from ``source``
    names code, unless ``trust_code``; code in ``trusted`` (what the user's own config
    names, as :func:`code_named` lists it) is allowed. ``run_dir``: the run directory
    ``data`` was read from (its ``config.yaml``); a directory the user trusted with
    ``fadejax trust`` (:func:`is_trusted`, pin still matching) is allowed too."""
    if trust_code or not isinstance(data, dict):
        return
    allowed = set(trusted)
    named = [item for item in code_named(data) if item not in allowed]
    if not named:
        return
    state = _state(Path(run_dir), data) if run_dir is not None else "untrusted"
    if state == "trusted":
        return
    listing = "; ".join(f"{field}: '{target}'" for field, target in named)
    changed = " (it was trusted with fadejax trust, but its config or the code it names has changed since)" if state == "changed" else ""
    hint = f"; or trust this directory once with: fadejax trust {shlex.quote(str(run_dir))}" if run_dir is not None else ""
    raise UntrustedCodeError(
        f"{source} names code that opening it would import and run ({listing}){changed}; fadejax runs code "
        "named by a run directory only with --trust-code: pass it if you trust where this run directory came from" + hint
    )


# -- the trust store ----------------------------------------------------------------

class TrustStoreError(ValueError):
    """A directory cannot be trusted (no config.yaml, unreadable) or the store cannot be used."""


@dataclass(frozen=True)
class Pin:
    """What trusting a directory pins: ``sha256`` over its config bytes, the code it names,
    the bytes of the files that code resolves to, the directory's path and the user's uid."""

    sha256: str
    code: list[tuple[str, str]]
    files: list[str]


def config_dir() -> Path:
    """The user's fadejax config directory: ``$FADEJAX_CONFIG_DIR``, else
    ``$XDG_CONFIG_HOME/fadejax`` (an absolute one), else ``~/.config/fadejax``."""
    if os.environ.get("FADEJAX_CONFIG_DIR"):
        return Path(os.environ["FADEJAX_CONFIG_DIR"]).expanduser()
    xdg = os.environ.get("XDG_CONFIG_HOME", "")
    return (Path(xdg) if os.path.isabs(xdg) else Path.home() / ".config") / "fadejax"


def store_path() -> Path:
    """The trust store file, :data:`STORE_FILE` in :func:`config_dir`."""
    return config_dir() / STORE_FILE


_warned: set[str] = set()


def _warn(message: str) -> None:
    """A ``warning:`` line on stderr, once per message per process."""
    if message not in _warned:
        _warned.add(message)
        print(f"warning: {message}", file=sys.stderr)


def _read_store() -> dict[str, Any] | None:
    """The store (``{"version": 1, "trusted": {dir: entry}}``; empty if there is none), or
    ``None`` with a warning if it is not a regular file owned by this user and writable by
    no one else, or is corrupt: such a store is ignored."""
    path = store_path()
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK)  # non-blocking: a FIFO planted there must not hang us
    except FileNotFoundError:
        return {"version": 1, "trusted": {}}
    except OSError as exc:
        _warn(f"ignoring the trust store '{path}': {exc.strerror}")
        return None
    with os.fdopen(fd, "rb") as f:
        st = os.fstat(f.fileno())
        if not stat.S_ISREG(st.st_mode) or st.st_uid != os.getuid() or st.st_mode & 0o022:
            _warn(f"ignoring the trust store '{path}': it must be a file owned by you that no one else can write "
                  f"(chmod 600 '{path}')")
            return None
        try:
            store = json.loads(f.read())
        except (OSError, ValueError) as exc:
            _warn(f"ignoring the trust store '{path}': it is corrupt ({exc}); remove it to start afresh")
            return None
    if not isinstance(store, dict) or not isinstance(store.get("trusted"), dict):
        _warn(f"ignoring the trust store '{path}': it is not a fadejax trust store; remove it to start afresh")
        return None
    return store


def _write_store(store: dict[str, Any]) -> None:
    """Replace the store atomically (a 0600 temporary file beside it, then ``os.replace``)."""
    path = store_path()
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=".trusted-", suffix=".tmp")  # mode 0600
    try:
        with os.fdopen(fd, "w") as f:
            json.dump(store, f, indent=2, sort_keys=True)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


@contextlib.contextmanager
def _updating() -> Iterator[dict[str, Any]]:
    """The store to change in place, under an exclusive lock (concurrent ``discover`` runs
    may each add their run); written back on exit. :class:`TrustStoreError` if it is unsafe."""
    directory = config_dir()
    try:
        directory.mkdir(mode=0o700, parents=True, exist_ok=True)
        lock = os.open(directory / (STORE_FILE + ".lock"), os.O_RDWR | os.O_CREAT, 0o600)
    except OSError as exc:
        raise TrustStoreError(f"cannot use the trust store directory '{directory}': {exc}") from None
    try:
        fcntl.flock(lock, fcntl.LOCK_EX)
        store = _read_store()
        if store is None:
            raise TrustStoreError(f"the trust store '{store_path()}' is unsafe or corrupt (see the warning above); nothing was changed")
        yield store
        try:
            _write_store(store)
        except OSError as exc:
            raise TrustStoreError(f"cannot write the trust store '{store_path()}': {exc}") from None
    finally:
        os.close(lock)


def _module_files(module: str) -> list[Path]:
    """The source files importing ``module`` would run, found on disk without importing
    anything: a path (``dir/file.py``) as given, or for ``a.b.c`` every ``a/__init__.py``,
    ``a.py``, ``a/b/__init__.py``, ... under each ``sys.path`` entry and the working
    directory (every candidate, so that a file appearing earlier on the path changes the
    pin too). Extension modules, zip imports and import hooks are not found: such code is
    pinned by name only."""
    if module.endswith(".py") or os.sep in module:
        path = Path(module).expanduser()
        return [path.resolve()] if os.path.isfile(path) else []
    parts = module.split(".")
    if not all(part.isidentifier() for part in parts):
        return []
    roots = list(dict.fromkeys(Path(entry or os.getcwd()) for entry in [*sys.path, os.getcwd()]))
    found = set()
    for depth in range(1, len(parts) + 1):
        for root in roots:
            base = root.joinpath(*parts[:depth])
            for candidate in (base / "__init__.py", base.with_name(base.name + ".py")):
                if os.path.isfile(candidate):  # never raises: an unreadable root is no candidate
                    found.add(candidate.resolve())
    return sorted(found)


def _sha256_file(path: str) -> str:
    try:
        return hashlib.sha256(Path(path).read_bytes()).hexdigest()
    except OSError:
        return "unreadable"


def _pin(run_dir: Path, raw: bytes, data: Any, uid: int) -> Pin:
    """The pin of the (resolved) ``run_dir`` whose ``config.yaml`` holds ``raw`` (parsed: ``data``)."""
    named = code_named(data) if isinstance(data, dict) else []
    files = sorted({str(f) for _, target in named for f in _module_files(str(target).partition(":")[0])})
    manifest = {
        "version": 1, "uid": uid, "dir": str(run_dir), "config": hashlib.sha256(raw).hexdigest(),
        "code": [list(item) for item in named], "files": {f: _sha256_file(f) for f in files},
    }
    digest = hashlib.sha256(json.dumps(manifest, sort_keys=True).encode()).hexdigest()
    return Pin(digest, named, files)


def _read_config(run_dir: Path) -> tuple[bytes, Any]:
    """``config.yaml``'s bytes and YAML data; :class:`TrustStoreError` if it is missing or bad."""
    path = run_dir / _RUN_CONFIG
    if not os.path.isfile(path):
        raise TrustStoreError(f"'{run_dir}' is not a fadejax run directory (no {_RUN_CONFIG}); nothing to trust")
    try:
        raw = path.read_bytes()
        return raw, yaml.safe_load(raw)
    except (OSError, yaml.YAMLError) as exc:
        raise TrustStoreError(f"cannot read '{path}': {exc}") from None


def _same_data(a: Any, b: Any) -> bool:
    """Whether two YAML documents hold the same data (compared as dumped, so NaN equals NaN)."""
    try:
        return a == b or yaml.safe_dump(a, sort_keys=True) == yaml.safe_dump(b, sort_keys=True)
    except yaml.YAMLError:
        return False


def _record(run_dir: Path, raw: bytes, data: Any) -> dict[str, Any]:
    """Pin ``run_dir`` (resolved) as holding ``raw`` in the store; its entry, with ``dir``."""
    pin = _pin(run_dir, raw, data, os.getuid())
    entry = {"sha256": pin.sha256, "uid": os.getuid(), "code": [list(item) for item in pin.code], "files": pin.files,
             "trusted_at": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds")}
    with _updating() as store:
        store.setdefault("version", 1)
        store["trusted"][str(run_dir)] = entry
    return {"dir": str(run_dir), **entry}


def trust_directory(run_dir: Path | str) -> dict[str, Any]:
    """Trust the run directory ``run_dir`` as it is now (``fadejax trust DIR``); returns its
    store entry (``dir``, ``sha256``, ``uid``, ``code``, ``files``, ``trusted_at``).
    :class:`TrustStoreError` if it has no readable ``config.yaml`` or the store is unsafe."""
    run_dir = Path(run_dir).resolve()
    raw, data = _read_config(run_dir)
    return _record(run_dir, raw, data)


def trust_own_run(run_dir: Path | str, written: dict[str, Any]) -> dict[str, Any] | None:
    """Trust a run directory ``discover`` has just made (or resumed) from the user's own
    config, pinned to its content, so that the user's own run opens without
    ``--trust-code``. ``written``: the config data the run holds (``config.model_dump(mode="json")``);
    nothing is recorded unless ``config.yaml`` holds exactly that (no one replaced it
    meanwhile) and it names code (a config naming none is never refused). Never raises:
    a store problem is a warning, and the run goes on. Returns the entry, or ``None``."""
    run_dir = Path(run_dir).resolve()
    try:
        raw, data = _read_config(run_dir)
        if not isinstance(data, dict) or not code_named(data) or not _same_data(data, written):
            return None
        return _record(run_dir, raw, data)
    except (OSError, ValueError) as exc:  # TrustStoreError is a ValueError
        _warn(f"this run is not trusted for later commands ({exc}); trust it with: fadejax trust {shlex.quote(str(run_dir))}")
        return None


def untrust_directory(run_dir: Path | str) -> bool:
    """Forget the run directory ``run_dir`` (it need not exist any more); whether it was trusted."""
    key = str(Path(run_dir).resolve())
    with _updating() as store:
        return store["trusted"].pop(key, None) is not None


def _state(run_dir: Path, data: Any, store: dict[str, Any] | None = None) -> str:
    """``"trusted"`` if the store pins ``run_dir`` and its ``config.yaml`` (holding ``data``)
    and named code still match the pin, ``"changed"`` if pinned but not matching,
    ``"untrusted"`` if not in the store (or the store is ignored). ``store``: the store
    already read (default: read it)."""
    run_dir = run_dir.resolve()
    store = store if store is not None else _read_store()
    entry = store["trusted"].get(str(run_dir)) if store is not None else None
    if not isinstance(entry, dict):
        return "untrusted"
    try:
        raw = (run_dir / _RUN_CONFIG).read_bytes()
        on_disk = yaml.safe_load(raw)
    except (OSError, yaml.YAMLError):
        return "changed"
    if entry.get("uid") != os.getuid() or not _same_data(on_disk, data):  # data: what the caller read and will parse
        return "changed"
    pin = _pin(run_dir, raw, on_disk, os.getuid())
    return "trusted" if hmac.compare_digest(str(entry.get("sha256", "")), pin.sha256) else "changed"


def is_trusted(run_dir: Path | str, data: Any) -> bool:
    """Whether the user trusted ``run_dir`` (``fadejax trust``) and it still holds what was
    pinned: its ``config.yaml`` bytes (which must parse to ``data``, the config the caller
    is about to use), the files of the code it names, this user's uid. A store that is not
    this user's own file, or that others can write, is ignored with a warning."""
    return _state(Path(run_dir), data) == "trusted"


def list_trusted() -> list[dict[str, Any]]:
    """Every store entry, with ``dir`` and ``state``: ``trusted`` (pin matches),
    ``changed`` (edited since) or ``missing`` (no config.yaml there any more)."""
    store = _read_store()
    entries = []
    for key, entry in sorted((store or {"trusted": {}})["trusted"].items()):
        if not isinstance(entry, dict):
            continue
        path = Path(key) / _RUN_CONFIG
        try:
            state = _state(Path(key), yaml.safe_load(path.read_bytes()), store) if os.path.isfile(path) else "missing"
        except (OSError, yaml.YAMLError):
            state = "changed"
        entries.append({"dir": key, "state": state, **entry})
    return entries


def trust_command(paths: list[str], remove: bool, list_only: bool) -> int:
    """``fadejax trust [DIR ...] [--remove] [--list]``: trust (or with ``remove`` forget) each
    run directory, one line each; ``list_only``: list the store. Returns the exit status
    (2 if any directory could not be handled, with an ``error:`` line for it)."""
    status = 0
    if list_only:
        for entry in list_trusted():
            print(f"{entry['dir']}  {entry['state']}  sha256 {str(entry.get('sha256', ''))[:12]}  trusted {entry.get('trusted_at', '?')}")
        return status
    if not paths:
        print("error: name a run directory to trust (fadejax trust DIR), or pass --list", file=sys.stderr)
        return _EXIT_BAD_INPUT
    for path in paths:
        try:
            if remove:
                print(f"untrusted {path}" if untrust_directory(path) else f"{path} was not trusted")
                continue
            entry = trust_directory(path)
        except TrustStoreError as exc:
            print(f"error: {exc}", file=sys.stderr)
            status = _EXIT_BAD_INPUT
            continue
        names = "; ".join(f"{field}: '{target}'" for field, target in entry["code"])
        print(f"trusted {entry['dir']} (config + {len(entry['files'])} code files pinned, sha256 {entry['sha256'][:12]})"
              + (f"; it names {names}" if names else "; it names no code"))
    return status


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
