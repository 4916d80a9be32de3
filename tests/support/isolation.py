"""Escape attempts that run inside a worker, where a job would run (a pool's ``probe``).

A :class:`support.pools.GatedPool` made with ``probe=escapes`` (a kernel's, with
``Hooks(probe=escapes)``: :mod:`support.pools`) calls :func:`escapes` in place of each
task, after the worker confined itself. It tries every way out the worker should not have and
reports what each attempt met. For a kernel job (the task is ``run_job``) the report
comes back as the job's failure, its message the report's JSON, and the bait comes from
the job (its seed is the test's listening TCP port; the data directory's parent holds
:data:`UNIX_BAIT` and is where it must not write: workers inherit the environment of
the forkserver, not the test's); for any other task the task's keywords name the bait
and the report is the task's value. :func:`burn` spends CPU time until the worker's
limit stops it. The tasks at the end (:func:`hostile_value`, :func:`forged_frame`) are
a worker gone hostile, for the pool's own tests.

Everything this module needs is imported at its top: the worker imports it (unpickling
its pool's hooks) before it drops to another user, who may not be able to read the
Python installation.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import json
import os
import resource
import signal
import socket
import stat
import struct
from pathlib import Path
from typing import Any

from qmk.kernel.datafiles import DB_FILE, SECRET_FILE
from qmk.kernel.pools.attempt import run_job
from qmk.kernel.records.outcome import Failed, Failure, encode

#: The Unix socket a kernel test listens on beside its data directory.
UNIX_BAIT = "bait.sock"


def _outcome(action: Any) -> str:
    """``"ok"``, or the errno name (or exception type) that stopped ``action``."""
    try:
        action()
    except OSError as exc:
        return errno.errorcode.get(exc.errno or 0, type(exc).__name__)
    except Exception as exc:
        return type(exc).__name__
    return "ok"


def _write(path: Path, size: int = 1) -> None:
    with open(path, "wb") as handle:
        handle.write(b"x" * size)


def _connect_inet(port: int) -> None:
    with socket.create_connection(("127.0.0.1", port), timeout=5):
        pass


def _open_unix() -> None:
    socket.socket(socket.AF_UNIX, socket.SOCK_STREAM).close()


def _connect_unix(path: str) -> None:
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
        sock.connect(path)


def _descriptors() -> dict[str, str]:
    """Every open descriptor of this process and what it is."""
    null = os.stat(os.devnull).st_rdev
    found = {}
    for name in os.listdir("/proc/self/fd"):
        fd = int(name)
        try:
            info = os.fstat(fd)
        except OSError:
            continue  # the listing's own descriptor, closed by now
        if stat.S_ISCHR(info.st_mode) and info.st_rdev == null:
            kind = "devnull"
        elif stat.S_ISSOCK(info.st_mode):
            kind = "socket"
        elif stat.S_ISFIFO(info.st_mode):
            kind = "fifo"
        else:
            kind = stat.filemode(info.st_mode)
        found[name] = kind
    return found


def try_escapes(targets: dict[str, Any]) -> dict[str, Any]:
    """What each escape met (see the module docstring). ``targets``: ``data_dir`` (the
    kernel's data directory), ``checkpoints`` (the job's checkpoint folder),
    ``outside`` (a folder the worker must not write in), ``port`` (a TCP port
    listening on 127.0.0.1), ``unix`` (a Unix socket listening, or None) and ``read`` (a
    file it may read, or None). A file one
    byte past the worker's ``RLIMIT_FSIZE`` is written too."""
    data = Path(targets["data_dir"])
    checkpoints = Path(targets["checkpoints"])
    temp = Path(os.environ.get("TMPDIR", "/nonexistent"))
    report: dict[str, Any] = {
        "uid": os.getuid(),
        "gid": os.getgid(),
        "groups": os.getgroups(),
        "tmpdir": str(temp),
        "descriptors": _descriptors(),
        "rlimit_fsize": resource.getrlimit(resource.RLIMIT_FSIZE)[1],
        "rlimit_cpu": resource.getrlimit(resource.RLIMIT_CPU)[1],
        "socket_inet": _outcome(lambda: _connect_inet(int(targets["port"]))),
        "socket_unix": _outcome(_open_unix),
        "write_outside": _outcome(lambda: _write(Path(targets["outside"]) / "escaped")),
        "write_tmp_shared": _outcome(lambda: _write(Path("/dev/shm") / f"escaped-{os.getpid()}")),
        "read_secret": _outcome(lambda: (data / SECRET_FILE).read_bytes()),
        "read_database": _outcome(lambda: (data / DB_FILE).read_bytes()),
        "list_data_dir": _outcome(lambda: os.listdir(data)),
        "write_data_dir": _outcome(lambda: _write(data / "planted")),
        "signal_kernel": _outcome(lambda: os.kill(os.getppid(), 0)),
        # what a job may do
        "write_checkpoint": _outcome(
            lambda: (checkpoints.mkdir(parents=True, exist_ok=True), _write(checkpoints / "s"))
        ),
        "list_checkpoints": _outcome(lambda: os.listdir(checkpoints.parent)),
        "write_tmpdir": _outcome(lambda: _write(temp / "scratch")),
        "read_code": _outcome(lambda: Path(json.__file__).read_bytes()),
    }
    if targets.get("read"):  # a file the worker should read
        report["read_given"] = _outcome(lambda: Path(targets["read"]).read_bytes())
    if targets.get("unix"):
        report["connect_unix"] = _outcome(lambda: _connect_unix(str(targets["unix"])))
    limit = resource.getrlimit(resource.RLIMIT_FSIZE)[0]
    if limit != resource.RLIM_INFINITY:
        report["write_past_file_limit"] = _outcome(lambda: _write(temp / "big", limit + 1))
    return report


def _targets_of(fn: Any, args: tuple[Any, ...], kwargs: dict[str, Any]) -> dict[str, Any]:
    if fn is run_job:  # a kernel job: its data directory's parent holds the test's bait
        attempt = args[0]
        checkpoints = Path(attempt.checkpoint_dir)
        data = checkpoints.parent.parent
        unix = data.parent / UNIX_BAIT
        return {
            "data_dir": str(data),
            "checkpoints": str(checkpoints),
            "outside": str(data.parent),
            "port": attempt.request.seed,  # the test's listening port
            "unix": str(unix) if unix.exists() else None,
        }
    return dict(kwargs)


def escapes(fn: Any, args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any:
    """The probe: try every escape in place of the task (see the module docstring)."""
    report = try_escapes(_targets_of(fn, args, kwargs))
    if fn is run_job:
        message = json.dumps(report, sort_keys=True)
        return _probed(message)
    return report


def burn(fn: Any, args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any:
    """The probe that spends CPU time: a loop bounded by work (hundreds of millions of
    steps, many CPU seconds), not by time; a working ``RLIMIT_CPU`` stops it first."""
    total = 0
    for step in range(300_000_000):
        total ^= step
    return _probed("not stopped")


def _probed(message: str) -> dict[str, Any]:
    """A job's outcome (as a worker sends it: ``qmk.kernel.records.outcome``) that carries the
    probe's report as its failure's message."""
    return encode(Failed(error=Failure(code="QK000", name="probe", message=message)))


# --------------------------------------------------------------------------- hostile replies


class RunsCode:
    """A value whose unpickling would run code in whoever unpickles it: it makes the
    directory ``marker``."""

    def __init__(self, marker: str) -> None:
        self.marker = marker

    def __reduce__(self) -> tuple[Any, tuple[str]]:
        return (os.mkdir, (self.marker,))


def hostile_value(marker: str) -> RunsCode:
    """A task whose value would make ``marker`` in the pool's process if unpickled there."""
    return RunsCode(marker)


def forged_frame(size: int) -> None:
    """A task that writes, on its worker's line to the pool (the pipe it writes), the
    header of a frame of ``size`` bytes, then waits for ever."""
    for name in os.listdir("/proc/self/fd"):
        with contextlib.suppress(OSError):
            fd = int(name)
            if stat.S_ISFIFO(os.fstat(fd).st_mode) and (
                fcntl.fcntl(fd, fcntl.F_GETFL) & os.O_ACCMODE == os.O_WRONLY
            ):
                os.write(fd, struct.pack("!Q", size))
                break
    signal.pause()
