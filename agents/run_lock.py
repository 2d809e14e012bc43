"""One writer per run folder: an advisory lock (``flock``) on ``<run>/.lock``.

Whatever writes a run folder (training a new run, resuming one, clearing a half-made one)
holds the lock while it writes. A second writer is refused with :class:`RunBusyError`, naming
the run and the holder's PID. The operating system drops an ``flock`` when its holder dies
(even by SIGKILL), so a lock never outlives its process and needs no clean-up: the file
stays, holding the PID of its last holder, which only counts while the lock is held.
"""

from __future__ import annotations

import fcntl
import json
import os
import socket
import time
from pathlib import Path
from types import TracebackType

from agents.run_folder import RunError

LOCK_FILE = ".lock"


class RunBusyError(RunError):
    """Another process is writing the run folder."""


def _holder(path: Path) -> str:
    """Who holds the lock, as recorded in the lock file (``PID n on host``), if recorded."""
    try:
        info = json.loads(path.read_text(encoding="utf-8"))
        where = f" on {info['host']}" if info.get("host") else ""
        return f"PID {int(info['pid'])}{where}, since {info.get('since', '?')}"
    except (OSError, ValueError, KeyError, TypeError):
        return "PID not recorded"


class RunLock:
    """Exclusive, non-blocking lock on a run folder, held from :meth:`acquire` (or ``with``)
    until :meth:`release` or the process's end.

    :param run_dir: the run folder (it must exist).
    :raises RunBusyError: on acquiring, when another process (or another :class:`RunLock` in
        this one) holds it.
    """

    def __init__(self, run_dir: str | Path):
        self.run_dir = Path(run_dir)
        self.path = self.run_dir / LOCK_FILE
        self._fd: int | None = None

    def acquire(self) -> RunLock:
        """Take the lock and record this process in the lock file."""
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)  # not inherited by children
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            raise RunBusyError(
                f"run {str(self.run_dir)!r} is being written by another process "
                f"({_holder(self.path)}); wait for it to end or stop it, then try again"
            ) from None
        record = json.dumps({"pid": os.getpid(), "host": socket.gethostname(),
                             "since": time.strftime("%Y-%m-%dT%H:%M:%S%z")})
        os.ftruncate(fd, 0)
        os.pwrite(fd, (record + "\n").encode(), 0)
        self._fd = fd
        return self

    def release(self) -> None:
        """Let the lock go (closing the file releases the ``flock``)."""
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None

    def __enter__(self) -> RunLock:
        return self.acquire()

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.release()
