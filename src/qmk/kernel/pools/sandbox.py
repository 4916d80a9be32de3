"""What a worker process closes around itself before its first task, short of a VM.

The kernel runs tenants' programs in worker processes (:mod:`qmk.kernel.pools.pool`). A bug
in the executor or an engine that a crafted program could exploit would run code in a
worker. This module makes such code reach as little as the operating system allows
without a hypervisor. A worker calls :func:`~qmk.kernel.pools.confine.confine` once,
right after it starts, with the :class:`Isolation` its pool was given (the pool's side is
here, the worker's in :mod:`qmk.kernel.pools.confine`, which the kernel does not load).
Each layer is applied where the OS allows it. The worker reports what holds and what
does not (:class:`Confinement`), so the kernel never claims a layer it does not have:

- **descriptors**: every descriptor but the worker's line to its pool (and those its
  pool's hooks keep: :meth:`qmk.kernel.pools.pool.WorkerHooks.start`) is closed; stdin,
  stdout and stderr are ``/dev/null``.
- **temp dir**: ``TMPDIR`` (and :mod:`tempfile`) point at a directory of the worker's
  own, which its pool removes after the worker ends.
- **rlimits**: ``RLIMIT_AS`` (the memory cap), ``RLIMIT_FSIZE`` (the largest file a
  worker may write: a write past it fails with ``EFBIG``), ``RLIMIT_CORE`` 0 and
  ``RLIMIT_CPU`` (per task; see :class:`~qmk.kernel.pools.confine.CpuBudget`).
- **network**: a network namespace of its own with no interface but a down loopback
  (``unshare(CLONE_NEWNET)``, root only). A seccomp filter fails ``socket()`` with
  ``EACCES`` (every family: no TCP, no Unix socket to the kernel, no netlink). It fails
  ``io_uring_setup()`` too, since io_uring's operations bypass seccomp.
- **filesystem** (Landlock, Linux >= 5.13, unprivileged): reads anywhere but the hidden
  directories (the kernel's data directory, the other workers' temp dirs), writes only
  in the worker's temp dir and the writable directories (the checkpoints, which it may
  not list: a job's checkpoints are reached by its unguessable id). Landlock also stops
  the worker from ptracing processes outside its own domain. From ABI 6 it also stops
  it from signalling them or reaching their abstract Unix sockets. From ABI 4 it stops
  TCP bind/connect.
- **user**: when the pool runs as root, the worker drops to an unprivileged user
  (``setgroups([])``, ``setresgid``, ``setresuid``: no capability left), so the kernel's
  files (mode 0600) are closed to it whatever Landlock does.

``no_new_privs`` is set before Landlock and seccomp: nothing the worker executes gains
privileges. What none of this does (a VM would): a worker shares the host kernel, so a
kernel exploit escapes every layer. It shares the host's CPU and memory bandwidth, and
the disk space of the writable directories (``RLIMIT_FSIZE`` bounds each file, not
their number). It can read what lies outside the hidden directories (world-readable
files).
"""

from __future__ import annotations

import contextlib
import os
import stat
import tempfile
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from qmk.kernel.datafiles import SECRET_FILE

# --------------------------------------------------------------------------- values


@dataclass(frozen=True, slots=True, kw_only=True)
class Isolation:
    """What a pool's workers close around themselves (see the module docstring).

    Attributes:
        network: deny the network (a network namespace where permitted, seccomp).
        filesystem: restrict the filesystem with Landlock (where the kernel has it).
        user: the user (name or uid) the workers run as when the pool runs as root;
            None: the pool's own. The workers must be able to read the Python
            installation and traverse to the writable directories as that user.
        cpu_s: CPU seconds one task may use (``RLIMIT_CPU``); None: no limit.
        file_mb: the largest file a worker may write, in MiB (``RLIMIT_FSIZE``); None:
            no limit.
        hidden: directories the workers may neither read nor write (but for the
            writable ones inside them).
        writable: directories the workers may write in, but not list (created by the
            pool if missing).
        temp_root: where the pool makes the workers' temp dirs (None: the system's).
        gaps: what the pool's owner could not close, reported with the workers' own.
    """

    network: bool = True
    filesystem: bool = True
    user: str | int | None = None
    cpu_s: int | None = None
    file_mb: int | None = None
    hidden: tuple[str, ...] = ()
    writable: tuple[str, ...] = ()
    temp_root: str | None = None
    gaps: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True, kw_only=True)
class Plan:
    """An :class:`Isolation` made concrete by the pool, for one worker: plain values."""

    network: bool
    filesystem: bool
    uid: int | None
    gid: int | None
    user: str | None
    cpu_s: int | None
    file_mb: int | None
    memory_mb: int | None
    temp_dir: str
    readable: tuple[str, ...]
    writable: tuple[str, ...]
    gaps: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True, kw_only=True)
class Confinement:
    """What a worker reported it closed (``gaps``: what it could not, and why)."""

    network: tuple[str, ...] = ()
    filesystem: str | None = None
    user: str = ""
    memory_mb: int | None = None
    cpu_s: int | None = None
    file_mb: int | None = None
    temp_dir: bool = False
    descriptors: bool = False
    gaps: tuple[str, ...] = field(default_factory=tuple)

    def to_json(self) -> dict[str, Any]:
        """Plain JSON (the kernel's health and its startup log)."""
        return {
            "network": "denied (" + ", ".join(self.network) + ")" if self.network else "open",
            "filesystem": self.filesystem or "unrestricted",
            "user": self.user,
            "memory_mb": self.memory_mb,
            "cpu_s": self.cpu_s,
            "file_mb": self.file_mb,
            "temp_dir": "private" if self.temp_dir else "shared",
            "descriptors": "closed" if self.descriptors else "inherited",
            "gaps": list(self.gaps),
        }


# --------------------------------------------------------------------------- in the pool


def resolve_user(user: str | int) -> tuple[int, int, str]:
    """``(uid, gid, name)`` of ``user`` (a name or a uid). Raises KeyError if unknown."""
    import pwd

    entry = pwd.getpwuid(user) if isinstance(user, int) else pwd.getpwnam(user)
    return entry.pw_uid, entry.pw_gid, entry.pw_name


def unreachable(path: str, uid: int, gid: int, access: str = "rx") -> str | None:
    """Why ``uid``/``gid`` cannot reach ``path`` by its mode bits (None: it can).

    Every directory on the way must be searchable by them, and ``path`` itself must
    grant ``access`` (letters of "rwx").
    """
    path = os.path.realpath(path)
    parts = [part for part in path.split("/") if part]
    here = "/"
    for i in range(len(parts) + 1):
        try:
            info = os.stat(here)
        except OSError as exc:
            return f"{here}: {exc.strerror}"
        need = 1
        if i == len(parts):
            need = sum(bit for letter, bit in (("r", 4), ("w", 2), ("x", 1)) if letter in access)
        if info.st_uid == uid:
            bits = (info.st_mode >> 6) & 7
        elif info.st_gid == gid:
            bits = (info.st_mode >> 3) & 7
        else:
            bits = info.st_mode & 7
        if bits & need != need:
            return f"{here} (mode {stat.S_IMODE(info.st_mode):04o}, owner uid {info.st_uid})"
        if i < len(parts):
            here = os.path.join(here, parts[i])
    return None


def readable_roots(hidden: Iterable[str]) -> tuple[str, ...]:
    """Paths whose trees hold everything but ``hidden`` (the Landlock read rules).

    The siblings of every directory on the way from ``/`` to a hidden one; entries
    made later in those directories are not covered (so not readable).
    """
    blocked = {os.path.realpath(h) for h in hidden}
    if not blocked:
        return ("/",)
    roots: list[str] = []

    def walk(directory: str) -> None:
        try:
            names = os.listdir(directory)
        except OSError:
            return  # cannot list it: nothing below it is granted
        for name in sorted(names):
            path = os.path.join(directory, name)
            if path in blocked:
                continue
            if any(h.startswith(path + "/") for h in blocked):
                walk(path)
            else:
                roots.append(path)

    walk("/")
    return tuple(roots)


def data_hidden(data: str) -> tuple[str, ...]:
    """What a sandboxed process may not read: the data directory, or, when the Python
    code lives in it (``qmk serve --data-dir .`` in a checkout), every entry of it that
    holds no code (entries made later are hidden too: no rule covers them)."""
    import sys

    code = [os.path.realpath(p) for p in sys.path if p and os.path.isdir(p)]

    def holds_code(path: str) -> bool:
        return any(c == path or c.startswith(path + os.sep) for c in code)

    if not holds_code(data):
        return (data,)
    try:
        names = set(os.listdir(data))
    except OSError:
        names = set()
    names.add(SECRET_FILE)  # at least one: the walk then goes into the data directory
    return tuple(
        os.path.join(data, name)
        for name in sorted(names)
        if not holds_code(os.path.join(data, name))
    )


class Sandboxes:
    """A pool's side of an :class:`Isolation`: what it makes once, and each new
    worker's :class:`Plan`.

    Made once per pool. It resolves ``isolation.user`` (only when the pool runs as
    root). It makes the temp root, mode 0711: a worker reaches its own temp dir there but
    lists none; it is hidden from the workers, removed by :meth:`close` or with this
    object. It makes the writable directories, with their missing parents, mode 0700
    each, and opened to the workers' user (:func:`open_to`).

    Args:
        isolation: what the workers close around themselves.
        memory_mb: each worker's address-space cap in MiB (None: none).

    Raises:
        KeyError: ``isolation.user`` is no user on this machine.

    >>> boxes = Sandboxes(Isolation(filesystem=False), memory_mb=512)
    >>> plan = boxes.plan()
    >>> os.path.dirname(plan.temp_dir) == boxes.root, plan.memory_mb
    (True, 512)
    >>> boxes.close(); os.path.exists(plan.temp_dir)
    False
    """

    def __init__(self, isolation: Isolation, memory_mb: int | None) -> None:
        import shutil
        import weakref

        uid = gid = None
        user = None
        if isolation.user is not None and os.geteuid() == 0:
            uid, gid, user = resolve_user(isolation.user)
        root = owned_temp_dir("qmk-workers-", isolation.temp_root)
        os.chmod(root, 0o711)  # a worker reaches its own dir, lists none
        self.root = root
        self._removal = weakref.finalize(self, shutil.rmtree, root, True)
        for path in isolation.writable:
            make_dirs(path)
            if uid is not None and gid is not None:
                open_to(path, uid, gid, isolation.hidden)
        self._uid, self._gid = uid, gid
        self._values: dict[str, Any] = {
            "network": isolation.network,
            "filesystem": isolation.filesystem,
            "uid": uid,
            "gid": gid,
            "user": user,
            "cpu_s": isolation.cpu_s,
            "file_mb": isolation.file_mb,
            "memory_mb": memory_mb,
            "readable": readable_roots((*isolation.hidden, root)) if isolation.filesystem else (),
            "writable": tuple(os.path.realpath(p) for p in isolation.writable),
            "gaps": isolation.gaps,
        }

    @property
    def cpu_s(self) -> int | None:
        """The CPU seconds one task may use (None: no limit)."""
        value: int | None = self._values["cpu_s"]
        return value

    def plan(self) -> Plan:
        """The plan of a new worker, with a temp dir of its own made for it in
        :attr:`root` (the pool removes it once the worker is gone)."""
        temp_dir = tempfile.mkdtemp(prefix="w", dir=self.root)
        if self._uid is not None:
            os.chown(temp_dir, self._uid, -1 if self._gid is None else self._gid)
        return Plan(temp_dir=temp_dir, **self._values)

    def close(self) -> None:
        """Remove the temp root and every worker's temp dir left in it."""
        self._removal()


#: The file in a temp dir of :func:`owned_temp_dir` that names the process owning it.
OWNER_FILE = ".owner"


def _started(pid: int) -> str | None:
    """When process ``pid`` started (clock ticks since boot, from ``/proc``); None where
    it is gone or there is no ``/proc`` to ask (then only whether it exists is known)."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as stat_file:
            fields = stat_file.read().rsplit(b")", 1)[1].split()
        return fields[19].decode()  # field 22 of stat(5); the 20th after the ")"
    except (OSError, IndexError):
        return None


def _alive(owner: str) -> bool:
    """Whether the process an :data:`OWNER_FILE` names (``"pid start"``) still runs: the
    same pid started at the same time (a reused pid is another process)."""
    try:
        pid_text, start = owner.split()
        pid = int(pid_text)
    except ValueError:
        return True  # unreadable: never taken for dead
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        pass  # another user's process: it exists
    now = _started(pid)
    return now is None or start == "-" or now == start


def owned_temp_dir(prefix: str, parent: str | None = None) -> str:
    """A new temp dir (``tempfile.mkdtemp(prefix=, dir=parent)``, mode 0700) marked as
    this process's, after removing those of ``prefix`` in ``parent`` whose owner died.

    A kernel or a Dask worker killed with SIGKILL never removes its temp dirs, and a
    host that restarts them leaks one per crash. Each dir made here holds
    :data:`OWNER_FILE` (this process's pid and start time); a later one reaps the dirs
    of its prefix whose owner is gone (or whose pid now runs another process). A dir
    without the file (one being made, or made by an older QMK) and another user's are
    left alone.

    >>> import tempfile
    >>> parent = tempfile.mkdtemp()
    >>> path = owned_temp_dir("qmk-example-", parent)
    >>> os.path.basename(path).startswith("qmk-example-"), os.listdir(path)
    (True, ['.owner'])
    >>> import shutil; shutil.rmtree(parent)
    """
    import shutil

    where = parent if parent is not None else tempfile.gettempdir()
    with contextlib.suppress(OSError):
        for entry in os.scandir(where):
            if not entry.name.startswith(prefix):
                continue
            try:
                if entry.stat(follow_symlinks=False).st_uid != os.geteuid():
                    continue
                if not entry.is_dir(follow_symlinks=False):
                    continue
                with open(os.path.join(entry.path, OWNER_FILE)) as owner_file:
                    owner = owner_file.read()
            except OSError:
                continue
            if not _alive(owner):
                shutil.rmtree(entry.path, ignore_errors=True)
    path = tempfile.mkdtemp(prefix=prefix, dir=parent)
    with open(os.path.join(path, OWNER_FILE), "x") as owner_file:
        owner_file.write(f"{os.getpid()} {_started(os.getpid()) or '-'}")
    return path


def make_dirs(path: str) -> None:
    """Make ``path`` and its missing parents, each mode 0700 (as the kernel makes its
    data directory)."""
    missing: list[str] = []
    here = os.path.abspath(path)
    while not os.path.isdir(here):
        missing.append(here)
        here = os.path.dirname(here)
    for directory in reversed(missing):
        with contextlib.suppress(FileExistsError):
            os.mkdir(directory, 0o700)


def open_to(path: str, uid: int, gid: int, hidden: Iterable[str]) -> None:
    """Make the writable directory ``path`` usable by workers running as ``uid``/``gid``.

    Group ``gid`` may write and search it but not list it. The jobs' folders in it are
    theirs. The directories between a hidden one and it are searchable by ``gid``, and
    only that: their files stay closed by their own modes."""
    from pathlib import Path

    target = Path(os.path.realpath(path))
    for top in (Path(os.path.realpath(h)) for h in hidden):
        if top != target and top not in target.parents:
            continue
        here = top
        for part in target.relative_to(top).parts[:-1]:
            _searchable_by(here, gid)
            here = here / part
        if here != target:
            _searchable_by(here, gid)
    os.chown(target, -1, gid)
    os.chmod(target, 0o730)
    for child in target.iterdir():
        if child.is_dir() and not child.is_symlink():
            os.chown(child, uid, gid)


def _searchable_by(directory: Any, gid: int) -> None:
    info = directory.stat()
    if info.st_mode & 0o001 or (info.st_gid == gid and info.st_mode & 0o010):
        return
    os.chown(directory, -1, gid)
    os.chmod(directory, stat.S_IMODE(info.st_mode) | 0o010)


__all__ = [
    "Confinement",
    "Isolation",
    "Plan",
    "Sandboxes",
    "data_hidden",
    "make_dirs",
    "open_to",
    "readable_roots",
    "resolve_user",
    "unreachable",
]
