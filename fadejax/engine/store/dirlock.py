"""One writer per directory: a lock that dies with its process, and a lease that a stopped holder notices.

Every command that writes a directory (``discover``, ``landscape``, ``restructure``,
``summarize``, ``sweep``) takes :class:`DirectoryLock` on it before writing anything. A
second writer is refused with :class:`DirectoryLockedError` (one line naming the holder's
host, process id, command and start time; the CLI exits 2) and changes nothing.

Two mechanisms, each for what it does well:

* **A POSIX record lock** (``fcntl.lockf``) on ``DIR/.fadejax.lock``, held for the life
  of the process. The kernel drops it when the process ends, ``kill -9`` included, so no
  stale lock is left. Local file systems honour it, and so do the shared ones Ray clusters
  use: NFSv4 (locks are part of the protocol), NFSv3 with ``lockd``, Lustre (``flock`` or
  ``localflock`` mount option off: ``-o flock``), GPFS/Spectrum Scale and CephFS.
* **A lease** in the same file: the holder's host, pid, command and start time, and the
  wall-clock time it last renewed, rewritten by a heartbeat thread every ``lease / 4``. It
  names the holder in a refusal, and it guards against what a record lock cannot: a holder
  that was stopped (``SIGSTOP``, a frozen VM, a network partition) longer than its lease.
  On NFSv4 the server may hand such a client's locks to another after its own lease time,
  so a holder whose lease lapsed stops before its next write (:meth:`DirectoryLock.check`,
  called before every append of a records or metrics file and every checkpoint) and says
  so, instead of writing over a directory someone else may now hold.

Where record locks are not supported at all (``ENOLCK``: NFSv3 without ``lockd``, some FUSE
and object-store mounts) the lease alone decides: a live lease (renewed within its length)
refuses; a lapsed one, or one whose holder on this host is gone, is taken over.

The lock file stays in the directory, empty once its holder let go (a holder killed with
``-9`` leaves its record, which the next writer replaces); readers ignore it. Within one process a directory is held once: POSIX locks belong to
processes, and closing any descriptor of the file would drop them, so the process keeps
its own table (``_HELD``) and refuses a second acquisition of a directory it holds.
"""

from __future__ import annotations

import errno
import fcntl
import json
import os
import socket
import sys
import threading
import time
import uuid
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

LOCK_FILE = ".fadejax.lock"
#: Seconds a holder's lease lasts without renewal (``FADEJAX_LEASE_SECONDS`` overrides).
DEFAULT_LEASE_SECONDS = 30.0

_HELD: dict[Path, "DirectoryLock"] = {}
_HELD_GUARD = threading.Lock()


class DirectoryLockedError(ValueError):
    """Another live writer holds the directory (the CLI exits 2)."""


class LeaseLostError(RuntimeError):
    """This process's lease on a directory lapsed (it was stopped too long) or was taken over."""


def lease_seconds() -> float:
    """The lease length in seconds, from ``FADEJAX_LEASE_SECONDS`` (default 30)."""
    text = os.environ.get("FADEJAX_LEASE_SECONDS")
    if text is None:
        return DEFAULT_LEASE_SECONDS
    try:
        value = float(text)
    except ValueError:
        raise DirectoryLockedError(f"FADEJAX_LEASE_SECONDS={text!r} must be a number of seconds (e.g. 30)") from None
    if not value > 0:
        raise DirectoryLockedError(f"FADEJAX_LEASE_SECONDS={text!r} must be a positive number of seconds")
    return value


def _process_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # someone else's process: alive
        return True
    return True


def _describe(holder: dict[str, Any]) -> str:
    if "pid" not in holder:  # locked a moment ago, its record not yet written
        return "another process that is just starting (its record is not written yet)"
    started = holder.get("started", "an unknown time")
    return (f"process {holder.get('pid', '?')} on host {holder.get('host', '?')} "
            f"(command: {holder.get('command', '?')}; started {started})")


class DirectoryLock:
    """The one-writer lock on ``directory`` (created if absent). Use as a context manager,
    or :meth:`acquire` and :meth:`release`; :meth:`check` before each write."""

    def __init__(self, directory: str | Path, what: str = "directory", lease: float | None = None):
        self.directory = Path(directory)
        self.path = self.directory / LOCK_FILE
        self.what = what
        self.lease = lease_seconds() if lease is None else float(lease)
        self._fd: int | None = None
        self._token = uuid.uuid4().hex
        self._holder: dict[str, Any] = {}
        self._renewed = 0.0  # time.monotonic() of the last renewal
        self._lost: str | None = None
        self._io = threading.Lock()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    # -- taking and giving back ----------------------------------------------------------------

    def acquire(self) -> "DirectoryLock":
        """Take the lock, or raise :class:`DirectoryLockedError` naming the live holder."""
        key = self.directory.resolve()
        with _HELD_GUARD:
            if key in _HELD:
                raise DirectoryLockedError(f"{self.what} '{self.directory}' is already being written by this process "
                                           f"({_describe(_HELD[key]._holder)}); one writer per directory")
            self.directory.mkdir(parents=True, exist_ok=True)
            fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
            try:
                self._take(fd)
            except BaseException:
                os.close(fd)
                raise
            self._fd = fd
            _HELD[key] = self
        self._thread = threading.Thread(target=self._heartbeat, name=f"fadejax-lease {self.directory}", daemon=True)
        self._thread.start()
        return self

    def _lock_or_refuse(self, fd: int, flags: int) -> bool:
        """Take the record lock ``flags`` on ``fd`` (True); where record locks are not supported,
        let the lease decide (False: no lock taken, and no live holder). Raise the refusal
        naming a live holder."""
        try:
            fcntl.lockf(fd, flags | fcntl.LOCK_NB)
            return True
        except OSError as exc:
            if exc.errno in (errno.EACCES, errno.EAGAIN):
                raise self._refusal(_read(fd)) from None
            if exc.errno not in (errno.ENOLCK, errno.EOPNOTSUPP, errno.ENOSYS):
                raise
        holder = _read(fd)  # no record locks here: the lease alone decides
        gone = holder.get("host") == socket.gethostname() and not _process_alive(int(holder.get("pid", -1)))
        if self._lease_live(holder) and not gone:
            raise self._refusal(holder)
        return False

    def _take(self, fd: int) -> None:
        self._lock_or_refuse(fd, fcntl.LOCK_EX)
        self._holder = {
            "host": socket.gethostname(), "pid": os.getpid(), "command": " ".join([Path(sys.argv[0]).name, *sys.argv[1:]]) or "python",
            "started": datetime.now(timezone.utc).isoformat(timespec="seconds"), "lease_seconds": self.lease, "token": self._token,
        }
        self._write(fd)

    def _lease_live(self, holder: dict[str, Any]) -> bool:
        return lease_live(holder, self.lease)

    def _refusal(self, holder: dict[str, Any]) -> DirectoryLockedError:
        text = f"{self.what} '{self.directory}' is being written by {_describe(holder)}; one writer per directory"
        renewed = holder.get("renewed")
        if isinstance(renewed, (int, float)) and not self._lease_live(holder):
            text += (f"; it has not renewed its lease for {time.time() - renewed:.0f} s (stopped or hung): it stops by itself "
                     "if it resumes; end it to take over")
        return DirectoryLockedError(text + "; wait for it to finish, or choose another directory")

    def release(self) -> None:
        """Give the lock back (the file stays, emptied: no holder)."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join()
            self._thread = None
        with _HELD_GUARD:
            if self._fd is None:
                return
            with self._io:
                if self._lost is None and _read(self._fd).get("token") == self._token:
                    os.ftruncate(self._fd, 0)  # no holder; a directory a refused or failed command locked is as it was
                os.close(self._fd)  # drops the record lock
                self._fd = None
            _HELD.pop(self.directory.resolve(), None)

    def __enter__(self) -> "DirectoryLock":
        return self.acquire()

    def __exit__(self, *exc: object) -> None:
        self.release()

    # -- the lease -------------------------------------------------------------------------------

    def check(self) -> None:
        """Raise :class:`LeaseLostError` if this process may no longer write the directory: its
        lease lapsed (it was stopped longer than the lease) or another holder took it over."""
        with self._io:
            if self._lost is None and time.monotonic() - self._renewed > self.lease:
                self._lost = f"its lease lapsed ({time.monotonic() - self._renewed:.0f} s without renewal, lease {self.lease:g} s)"
            lost = self._lost
        if lost is not None:
            raise LeaseLostError(f"stopped writing {self.what} '{self.directory}': {lost}; another writer may hold it now. "
                                 "Nothing more was written; check who holds it, then continue with --resume")

    def _heartbeat(self) -> None:
        while not self._stop.wait(self.lease / 4):
            with self._io:
                if self._lost is not None or self._fd is None:
                    return
                if time.monotonic() - self._renewed > self.lease:  # woken after a stop: never renew a lapsed lease
                    self._lost = f"its lease lapsed ({time.monotonic() - self._renewed:.0f} s without renewal, lease {self.lease:g} s)"
                    return
                current = _read(self._fd)
                if current.get("token") != self._token:
                    self._lost = f"{_describe(current)} took it over"
                    return
                try:
                    self._write(self._fd)
                except OSError:
                    continue  # a passing error of the file system: the lease runs out if it lasts

    def _write(self, fd: int) -> None:
        self._holder["renewed"] = time.time()
        data = (json.dumps(self._holder) + "\n").encode()
        os.ftruncate(fd, 0)
        os.pwrite(fd, data, 0)
        os.fsync(fd)
        self._renewed = time.monotonic()


def refuse_if_held(directory: str | Path, what: str = "directory") -> None:
    """Raise :class:`DirectoryLockedError` naming the holder if a live writer holds ``directory``;
    otherwise return, changing nothing (a test of the record lock, taken and given back at once)."""
    directory = Path(directory)
    if directory.resolve() in _HELD:
        raise DirectoryLockedError(f"{what} '{directory}' is already being written by this process; one writer per directory")
    try:
        fd = os.open(directory / LOCK_FILE, os.O_RDONLY)
    except OSError:  # no lock file: nobody has written it under a lock
        return
    try:
        if DirectoryLock(directory, what)._lock_or_refuse(fd, fcntl.LOCK_SH):
            fcntl.lockf(fd, fcntl.LOCK_UN)
    finally:
        os.close(fd)


def lease_live(holder: dict[str, Any], lease: float = DEFAULT_LEASE_SECONDS) -> bool:
    """Whether a holder record's lease is still running (renewed within its length, not released)."""
    renewed = holder.get("renewed")
    length = holder.get("lease_seconds", lease)
    return (isinstance(renewed, (int, float)) and isinstance(length, (int, float)) and not holder.get("released")
            and time.time() - renewed < length)


def holder_of(directory: str | Path) -> dict[str, Any]:
    """The last holder recorded in ``directory``'s lock file (``{}`` if none). Never call it on
    a directory this process holds: closing a descriptor of the file would drop the lock."""
    path = Path(directory) / LOCK_FILE
    if Path(directory).resolve() in _HELD:
        return dict(_HELD[Path(directory).resolve()]._holder)
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:
        return {}
    try:
        return _read(fd)
    finally:
        os.close(fd)


def describe_holder(holder: dict[str, Any]) -> str:
    """``process PID on host HOST (command: ...; started ...)``."""
    return _describe(holder)


def _read(fd: int) -> dict[str, Any]:
    """The holder record in the lock file (``{}`` if empty or unreadable)."""
    try:
        size = os.fstat(fd).st_size
        data = json.loads(os.pread(fd, min(size, 1 << 16), 0) or b"{}")
    except (OSError, ValueError):
        return {}
    return data if isinstance(data, dict) else {}


def check_held(path: str | Path) -> None:
    """Before writing ``path``: raise :class:`LeaseLostError` if a lock this process holds on
    one of its parent directories has lost its lease (no-op for paths under no held lock)."""
    lock = covering(path)
    if lock is not None:
        lock.check()


def covering(path: str | Path) -> DirectoryLock | None:
    """The lock this process holds on ``path``'s nearest locked parent directory, if any."""
    if not _HELD:
        return None
    resolved = Path(path).resolve()
    with _HELD_GUARD:
        for parent in resolved.parents:
            if parent in _HELD:
                return _HELD[parent]
    return None
