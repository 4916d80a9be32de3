"""What a worker process closes around itself before its first task, short of a VM.

The kernel runs tenants' programs in worker processes (:mod:`qmk.kernel.pools.pool`). A bug
in the executor or an engine that a crafted program could exploit would run code in a
worker. This module makes such code reach as little as the operating system allows
without a hypervisor. A worker calls :func:`confine` once, right after it starts, with
the :class:`Isolation` its pool was given. Each layer is applied where the OS allows it.
The worker reports what holds and what does not (:class:`Confinement`), so the kernel
never claims a layer it does not have:

- **descriptors**: every descriptor but the worker's line to its pool (and those its
  pool's hooks keep: :meth:`qmk.kernel.pools.pool.WorkerHooks.start`) is closed; stdin,
  stdout and stderr are ``/dev/null``.
- **temp dir**: ``TMPDIR`` (and :mod:`tempfile`) point at a directory of the worker's
  own, which its pool removes after the worker ends.
- **rlimits**: ``RLIMIT_AS`` (the memory cap), ``RLIMIT_FSIZE`` (the largest file a
  worker may write: a write past it fails with ``EFBIG``), ``RLIMIT_CORE`` 0 and
  ``RLIMIT_CPU`` (per task; see :class:`CpuBudget`).
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
import ctypes
import math
import os
import platform
import resource
import stat
import tempfile
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

from qmk.defaults import WORKER_SANDBOX_ENV
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


# --------------------------------------------------------------------------- Landlock

_SYS_LANDLOCK_CREATE_RULESET = 444  # the same number on every architecture we run on
_SYS_LANDLOCK_ADD_RULE = 445
_SYS_LANDLOCK_RESTRICT_SELF = 446
_LANDLOCK_CREATE_RULESET_VERSION = 1
_LANDLOCK_RULE_PATH_BENEATH = 1

_FS_EXECUTE = 1 << 0
_FS_WRITE_FILE = 1 << 1
_FS_READ_FILE = 1 << 2
_FS_READ_DIR = 1 << 3
_FS_REMOVE_DIR = 1 << 4
_FS_REMOVE_FILE = 1 << 5
_FS_MAKE_DIR = 1 << 7
_FS_MAKE_REG = 1 << 8
_FS_MAKE_SOCK = 1 << 9
_FS_REFER = 1 << 13  # ABI 2
_FS_TRUNCATE = 1 << 14  # ABI 3
_FS_IOCTL_DEV = 1 << 15  # ABI 5
_NET_BIND_TCP = 1 << 0  # ABI 4
_NET_CONNECT_TCP = 1 << 1
_SCOPE_ABSTRACT_UNIX_SOCKET = 1 << 0  # ABI 6
_SCOPE_SIGNAL = 1 << 1
#: The rights a rule on a file (not a directory) may hold.
_FILE_RIGHTS = _FS_EXECUTE | _FS_WRITE_FILE | _FS_READ_FILE | _FS_TRUNCATE | _FS_IOCTL_DEV


class _RulesetAttr(ctypes.Structure):
    _fields_ = [
        ("handled_access_fs", ctypes.c_uint64),
        ("handled_access_net", ctypes.c_uint64),
        ("scoped", ctypes.c_uint64),
    ]


class _PathBeneathAttr(ctypes.Structure):
    _pack_ = 1
    _fields_ = [("allowed_access", ctypes.c_uint64), ("parent_fd", ctypes.c_int32)]


def _libc() -> Any:
    return ctypes.CDLL(None, use_errno=True)


_PR_SET_PDEATHSIG = 1


def die_with_parent(parent: int) -> bool:
    """Have the kernel SIGKILL this process when its parent (the thread that forked it)
    ends, and end now if ``parent`` (the parent's pid as first read) already has.

    Call it after the last change of user (a change of credentials clears the setting).
    It needs no thread and no GIL, unlike :func:`qmk.kernel.pools.pool.exit_when_closed`,
    so it also stops a job stuck in one long C call. False where the system has none.
    """
    if platform.system() != "Linux":
        return False
    import signal

    if _libc().prctl(_PR_SET_PDEATHSIG, int(signal.SIGKILL), 0, 0, 0):
        return False
    if os.getppid() != parent:  # it ended before the setting took hold
        os._exit(0)
    return True


_PR_SET_NAME = 15


def name_process(name: str) -> bool:
    """Name this process (``/proc/PID/comm``, at most 15 bytes: ``ps``, ``pgrep -x``)
    with ``prctl``, which a process confined by Landlock may still call; False where
    the system has none."""
    if platform.system() != "Linux":
        return False
    return not _libc().prctl(_PR_SET_NAME, ctypes.c_char_p(name.encode()[:15]), 0, 0, 0)


def landlock_abi() -> int:
    """The Landlock ABI version the running kernel offers (0: none)."""
    if platform.system() != "Linux":
        return 0
    libc = _libc()
    libc.syscall.restype = ctypes.c_long
    version = libc.syscall(
        ctypes.c_long(_SYS_LANDLOCK_CREATE_RULESET),
        None,
        ctypes.c_size_t(0),
        ctypes.c_uint32(_LANDLOCK_CREATE_RULESET_VERSION),
    )
    return max(int(version), 0)


def _landlock(
    readable: Sequence[str],
    writable: Sequence[str],
    temp_dir: str,
    *,
    tcp: bool = False,
    sockets: bool = False,
) -> str:
    """Restrict this process with Landlock, and its TCP with it where ``tcp`` asks (a
    pool that denies the network); ``sockets``: it may make Unix sockets in its temp dir
    (a server's gRPC core binds one there); what holds (raises OSError when it fails)."""
    abi = landlock_abi()
    if abi < 1:
        raise OSError("Landlock is not available in this kernel")
    handled = (1 << 13) - 1  # ABI 1: bits 0..12
    if abi >= 2:
        handled |= _FS_REFER
    if abi >= 3:
        handled |= _FS_TRUNCATE
    if abi >= 5:
        handled |= _FS_IOCTL_DEV
    read = _FS_EXECUTE | _FS_READ_FILE | _FS_READ_DIR
    write = (
        read
        | _FS_WRITE_FILE
        | _FS_REMOVE_DIR
        | _FS_REMOVE_FILE
        | _FS_MAKE_DIR
        | _FS_MAKE_REG
        | (handled & (_FS_REFER | _FS_TRUNCATE))
    )
    attr = _RulesetAttr(handled_access_fs=handled)
    size = 8
    held = ["reads outside the hidden directories", "writes only in its own directories"]
    if abi >= 4:
        size = 16
        if tcp:
            attr.handled_access_net = _NET_BIND_TCP | _NET_CONNECT_TCP
            held.append("no TCP")
    if abi >= 6:
        attr.scoped = _SCOPE_ABSTRACT_UNIX_SOCKET | _SCOPE_SIGNAL
        size = 24
        held.append("no signals out")
    libc = _libc()
    libc.syscall.restype = ctypes.c_long
    ruleset = libc.syscall(
        ctypes.c_long(_SYS_LANDLOCK_CREATE_RULESET),
        ctypes.byref(attr),
        ctypes.c_size_t(size),
        ctypes.c_uint32(0),
    )
    if ruleset < 0:
        raise OSError(ctypes.get_errno(), "landlock_create_ruleset failed")
    try:
        rules = [(path, read) for path in readable]
        rules += [(path, write & ~_FS_READ_DIR) for path in writable]  # reached by name only
        rules += [(temp_dir, write | (_FS_MAKE_SOCK if sockets else 0))]
        rules += [(os.devnull, _FS_READ_FILE | _FS_WRITE_FILE)]
        for path, access in rules:
            try:
                fd = os.open(path, os.O_PATH | os.O_NOFOLLOW | os.O_CLOEXEC)
            except OSError:
                continue  # gone meanwhile: nothing to grant
            try:
                if not stat.S_ISDIR(os.fstat(fd).st_mode):
                    access &= _FILE_RIGHTS
                rule = _PathBeneathAttr(allowed_access=access & handled, parent_fd=fd)
                if libc.syscall(
                    ctypes.c_long(_SYS_LANDLOCK_ADD_RULE),
                    ctypes.c_int(ruleset),
                    ctypes.c_int(_LANDLOCK_RULE_PATH_BENEATH),
                    ctypes.byref(rule),
                    ctypes.c_uint32(0),
                ):
                    raise OSError(ctypes.get_errno(), f"landlock_add_rule({path}) failed")
            finally:
                os.close(fd)
        if libc.syscall(
            ctypes.c_long(_SYS_LANDLOCK_RESTRICT_SELF), ctypes.c_int(ruleset), ctypes.c_uint32(0)
        ):
            raise OSError(ctypes.get_errno(), "landlock_restrict_self failed")
    finally:
        os.close(ruleset)
    return f"landlock ABI {abi}: " + ", ".join(held)


# --------------------------------------------------------------------------- seccomp

#: Per machine: (AUDIT_ARCH_*, seccomp's syscall number, the denied syscalls' numbers).
_SECCOMP_ARCH: dict[str, tuple[int, int, tuple[int, ...]]] = {
    "x86_64": (0xC000003E, 317, (41, 425)),  # socket, io_uring_setup
    "aarch64": (0xC00000B7, 277, (198, 425)),
}
_X32_SYSCALL_BIT = 0x40000000
_PR_SET_NO_NEW_PRIVS = 38
_SECCOMP_SET_MODE_FILTER = 1
_SECCOMP_FILTER_FLAG_TSYNC = 1
_RET_KILL_PROCESS = 0x80000000
_RET_ERRNO = 0x00050000
_RET_ALLOW = 0x7FFF0000


class _SockFilter(ctypes.Structure):
    _fields_ = [
        ("code", ctypes.c_uint16),
        ("jt", ctypes.c_uint8),
        ("jf", ctypes.c_uint8),
        ("k", ctypes.c_uint32),
    ]


class _SockFprog(ctypes.Structure):
    _fields_ = [("len", ctypes.c_ushort), ("filter", ctypes.POINTER(_SockFilter))]


def _seccomp_program(machine: str) -> list[tuple[int, int, int, int]]:
    """The BPF program: another ABI is killed, x32 and the denied calls fail EACCES."""
    arch, _, denied = _SECCOMP_ARCH[machine]
    load_word, jump_eq, jump_ge, ret = 0x20, 0x15, 0x35, 0x06
    jumps: list[tuple[int, int]] = [(jump_eq, nr) for nr in denied]
    if machine == "x86_64":
        jumps.insert(0, (jump_ge, _X32_SYSCALL_BIT))
    program = [
        (load_word, 0, 0, 4),  # seccomp_data.arch
        (jump_eq, 1, 0, arch),
        (ret, 0, 0, _RET_KILL_PROCESS),
        (load_word, 0, 0, 0),  # seccomp_data.nr
    ]
    for i, (code, k) in enumerate(jumps):
        program.append((code, len(jumps) - i, 0, k))  # to the EACCES return
    program += [(ret, 0, 0, _RET_ALLOW), (ret, 0, 0, _RET_ERRNO | 13)]  # 13: EACCES
    return program


def _no_new_privs() -> None:
    libc = _libc()
    if libc.prctl(_PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0):
        raise OSError(ctypes.get_errno(), "prctl(PR_SET_NO_NEW_PRIVS) failed")


def _deny_sockets() -> None:
    """Install the seccomp filter (raises OSError where it cannot)."""
    machine = platform.machine()
    if platform.system() != "Linux" or machine not in _SECCOMP_ARCH:
        raise OSError(f"no seccomp filter for {platform.system()} {machine}")
    program = _seccomp_program(machine)
    filters = (_SockFilter * len(program))(*(_SockFilter(*line) for line in program))
    fprog = _SockFprog(len(program), filters)
    libc = _libc()
    libc.syscall.restype = ctypes.c_long
    if libc.syscall(
        ctypes.c_long(_SECCOMP_ARCH[machine][1]),
        ctypes.c_uint(_SECCOMP_SET_MODE_FILTER),
        ctypes.c_uint(_SECCOMP_FILTER_FLAG_TSYNC),
        ctypes.byref(fprog),
    ):
        raise OSError(ctypes.get_errno(), "seccomp(SECCOMP_SET_MODE_FILTER) failed")


def _unshare_network() -> None:
    libc = _libc()
    if libc.unshare(0x40000000):  # CLONE_NEWNET
        raise OSError(ctypes.get_errno(), "unshare(CLONE_NEWNET) failed")


# --------------------------------------------------------------------------- CPU time


class CpuBudget:
    """``RLIMIT_CPU`` per task in a persistent worker.

    A process may raise its soft limit only up to its hard one, and a worker without
    privileges cannot raise the hard one. So the hard limit is set once, at start, to
    twice the per-task limit (and a second of grace). Before each task the soft limit is
    set to the CPU time used so far plus the per-task limit (``SIGXCPU`` there, and
    ``SIGKILL`` at the hard limit for a task that ignores it). A worker whose remaining
    budget is less than one task's retires after its reply. A task that raises its own
    soft limit still stops at the hard one.
    """

    def __init__(self, cpu_s: int) -> None:
        self.cpu_s = cpu_s
        self.hard = math.ceil(self.used()) + 2 * cpu_s + 1
        resource.setrlimit(resource.RLIMIT_CPU, (self.hard - 1, self.hard))

    @staticmethod
    def used() -> float:
        usage = resource.getrusage(resource.RUSAGE_SELF)
        return usage.ru_utime + usage.ru_stime

    def start_task(self) -> None:
        soft = min(math.ceil(self.used()) + self.cpu_s, self.hard - 1)
        resource.setrlimit(resource.RLIMIT_CPU, (soft, self.hard))

    def spent(self) -> bool:
        """Whether this worker cannot give another task its whole limit."""
        return math.ceil(self.used()) + self.cpu_s > self.hard - 1


# --------------------------------------------------------------------------- in the worker


def _redirect_stdio() -> None:
    null = os.open(os.devnull, os.O_RDWR)
    for fd in (0, 1, 2):
        if null != fd:
            os.dup2(null, fd)
    if null > 2:
        os.close(null)


def _close_descriptors(keep: Iterable[int]) -> None:
    kept = {0, 1, 2, *keep}
    try:
        open_fds = [int(name) for name in os.listdir("/proc/self/fd")]
    except OSError:
        open_fds = list(range(3, os.sysconf("SC_OPEN_MAX")))
    for fd in open_fds:
        if fd not in kept:
            with contextlib.suppress(OSError):
                os.close(fd)


def confine(plan: Plan, keep: Iterable[int]) -> tuple[Confinement, CpuBudget | None]:
    """Apply ``plan`` to this process (a worker, before its first task).

    Args:
        plan: what to close (made by the pool from its :class:`Isolation`).
        keep: descriptors to keep open (the worker's line, its hooks' own).

    Returns:
        What holds (and the gaps), and the CPU budget to start each task with.
    """
    gaps = list(plan.gaps)
    user = _current_user()
    _redirect_stdio()
    _close_descriptors(keep)
    if plan.memory_mb is not None:
        cap = plan.memory_mb * 1024 * 1024
        resource.setrlimit(resource.RLIMIT_AS, (cap, cap))
    if plan.file_mb is not None:
        size = plan.file_mb * 1024 * 1024
        resource.setrlimit(resource.RLIMIT_FSIZE, (size, size))
    resource.setrlimit(resource.RLIMIT_CORE, (0, 0))
    budget = None if plan.cpu_s is None else CpuBudget(plan.cpu_s)
    os.environ["TMPDIR"] = plan.temp_dir
    tempfile.tempdir = plan.temp_dir
    network: list[str] = []
    if plan.network:
        try:
            _unshare_network()
            network.append("network namespace")
        except OSError as exc:
            gaps.append(f"network: no network namespace ({exc.strerror or exc}; needs root)")
    filesystem = None
    try:
        _no_new_privs()
    except OSError as exc:
        gaps.append(f"no_new_privs: {exc}")
    if plan.filesystem:
        try:
            filesystem = _landlock(plan.readable, plan.writable, plan.temp_dir, tcp=plan.network)
        except OSError as exc:
            gaps.append(f"filesystem: not restricted ({exc.strerror or exc})")
    if plan.uid is not None and plan.gid is not None:
        os.environ["HOME"] = plan.temp_dir
        os.setgroups([])
        os.setresgid(plan.gid, plan.gid, plan.gid)
        os.setresuid(plan.uid, plan.uid, plan.uid)
        user = f"{plan.user} (uid {plan.uid})"
    elif os.geteuid() == 0 and not any(gap.startswith("user:") for gap in gaps):
        gaps.append("user: the workers run as root (no worker user was given)")
    if plan.network:
        try:
            _deny_sockets()
            network.append("seccomp: socket() fails")
        except OSError as exc:
            gaps.append(f"network: no seccomp filter ({exc.strerror or exc})")
        if not network:
            gaps.append("network: open (neither a namespace nor seccomp is available)")
    # the router reads what is closed (qmk.engines.limits), and numba caches (Braket's
    # simulator) where the worker may write
    os.environ[WORKER_SANDBOX_ENV] = ",".join(
        layer for layer, on in (("network", network), ("filesystem", filesystem)) if on
    )
    os.environ.setdefault("NUMBA_CACHE_DIR", plan.temp_dir)
    report = Confinement(
        network=tuple(network),
        filesystem=filesystem,
        user=user,
        memory_mb=plan.memory_mb,
        cpu_s=plan.cpu_s,
        file_mb=plan.file_mb,
        temp_dir=True,
        descriptors=True,
        gaps=tuple(gaps),
    )
    return report, budget


def confine_server(hidden: Sequence[str], writable: Sequence[str] = ()) -> Confinement:
    """Close a user-mode server (a gateway) around itself, as far as a server that keeps
    its sockets and the network can be.

    It sets ``no_new_privs`` and no core file. Landlock lets it read anywhere but
    ``hidden`` (the kernel's data directory), and write only in ``writable`` (a trace
    file's folder) and a temp dir of its own. So a bug in a wire parser reaches no job,
    key or audit line of the kernel's. It keeps its descriptors and the network: it
    serves on them, and reaches the kernel's socket, which Landlock does not guard by
    path. What could not be closed is in the report's ``gaps``, never claimed.
    """
    import atexit
    import shutil

    gaps: list[str] = []
    resource.setrlimit(resource.RLIMIT_CORE, (0, 0))
    temp_dir = owned_temp_dir("qmk-server-")  # its libraries' temp files (gRPC's)
    atexit.register(shutil.rmtree, temp_dir, True)
    os.environ["TMPDIR"] = temp_dir
    tempfile.tempdir = temp_dir
    try:
        _no_new_privs()
    except OSError as exc:
        gaps.append(f"no_new_privs: {exc}")
    filesystem = None
    try:
        filesystem = _landlock(readable_roots(hidden), tuple(writable), temp_dir, sockets=True)
    except OSError as exc:
        gaps.append(f"filesystem: not restricted ({exc.strerror or exc})")
    return Confinement(filesystem=filesystem, user=_current_user(), temp_dir=True, gaps=tuple(gaps))


def _current_user() -> str:
    uid = os.geteuid()
    try:
        import pwd

        return f"{pwd.getpwuid(uid).pw_name} (uid {uid})"
    except (KeyError, ImportError):
        return f"uid {uid}"


__all__ = [
    "Confinement",
    "CpuBudget",
    "Isolation",
    "Plan",
    "Sandboxes",
    "confine",
    "confine_server",
    "data_hidden",
    "die_with_parent",
    "landlock_abi",
    "make_dirs",
    "name_process",
    "open_to",
    "readable_roots",
    "resolve_user",
    "unreachable",
]
