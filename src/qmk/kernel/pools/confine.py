"""The worker's side of its confinement: Landlock, seccomp, its CPU budget, :func:`confine`.

A worker process imports this module as it starts, before it confines itself; the pool
(and so the kernel's process) does not: it holds the values and the pool's side,
:mod:`qmk.kernel.pools.sandbox`, whose docstring says what each layer does.
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
from typing import Any

from qmk.defaults import WORKER_SANDBOX_ENV
from qmk.kernel.pools.sandbox import Confinement, Plan, owned_temp_dir, readable_roots

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
    It needs no thread and no GIL, unlike :func:`qmk.kernel.pools.worker.exit_when_closed`,
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


def _use_temp_dir(path: str) -> None:
    """``path`` is this process's temp dir (``TMPDIR``, and :mod:`tempfile`'s)."""
    os.environ["TMPDIR"] = path
    tempfile.tempdir = path


def _close_files(
    gaps: list[str],
    readable: Sequence[str],
    writable: Sequence[str],
    temp_dir: str,
    *,
    landlock: bool,
    tcp: bool = False,
    sockets: bool = False,
) -> str | None:
    """Set ``no_new_privs``, then Landlock where ``landlock`` asks (:func:`_landlock`'s
    rules); what Landlock holds, None where it does not. What fails is a gap."""
    try:
        _no_new_privs()
    except OSError as exc:
        gaps.append(f"no_new_privs: {exc}")
    if not landlock:
        return None
    try:
        return _landlock(readable, writable, temp_dir, tcp=tcp, sockets=sockets)
    except OSError as exc:
        gaps.append(f"filesystem: not restricted ({exc.strerror or exc})")
        return None


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
    _use_temp_dir(plan.temp_dir)
    network: list[str] = []
    if plan.network:
        try:
            _unshare_network()
            network.append("network namespace")
        except OSError as exc:
            gaps.append(f"network: no network namespace ({exc.strerror or exc}; needs root)")
    filesystem = _close_files(
        gaps,
        plan.readable,
        plan.writable,
        plan.temp_dir,
        landlock=plan.filesystem,
        tcp=plan.network,
    )
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

    The temp dir is ``tmp`` inside a folder marked as this process's
    (:func:`~qmk.kernel.pools.sandbox.owned_temp_dir`). Landlock leaves the server no
    right to remove that folder from the system's temp dir, so it is not removed at
    exit: the next server's start removes the folders of servers that have ended.
    """
    gaps: list[str] = []
    resource.setrlimit(resource.RLIMIT_CORE, (0, 0))
    temp_dir = os.path.join(owned_temp_dir("qmk-server-"), "tmp")  # gRPC's temp files
    os.mkdir(temp_dir, 0o700)
    _use_temp_dir(temp_dir)
    filesystem = _close_files(
        gaps, readable_roots(hidden), tuple(writable), temp_dir, landlock=True, sockets=True
    )
    return Confinement(filesystem=filesystem, user=_current_user(), temp_dir=True, gaps=tuple(gaps))


def _current_user() -> str:
    uid = os.geteuid()
    try:
        import pwd

        return f"{pwd.getpwuid(uid).pw_name} (uid {uid})"
    except (KeyError, ImportError):
        return f"uid {uid}"


__all__ = [
    "CpuBudget",
    "confine",
    "confine_server",
    "die_with_parent",
    "landlock_abi",
    "name_process",
]
