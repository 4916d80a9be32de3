"""What the process an engine will run in allows: its memory caps, threads and sandbox.

The router (:mod:`qmk.engines.router`) prices and refuses engines for the process that
will run them. That is ``qmk run`` itself, or a kernel worker (:mod:`qmk.kernel.pools.pool`).
A worker caps its address space (``RLIMIT_AS``, ``kernel.worker_memory_mb``) and closes
the network and the filesystem around itself (:mod:`qmk.kernel.pools.sandbox`). The
engine runs in the process that routes it. So :meth:`WorkerLimits.read` reads it all from
this process, once per routing, with no import:

- **memory**: the address space left under ``RLIMIT_AS``, and the memory left in the
  process's memory cgroup. The first is the cap less ``VmSize``, every mapping counted:
  an engine's libraries and thread stacks take address space long before they take
  memory. The second is v2 ``memory.max`` or v1 ``memory.limit_in_bytes``, less what the
  group uses.
- **threads**: ``$QMK_THREADS`` (what the statevector engine's kernels use), else
  ``$OMP_NUM_THREADS`` (what OpenMP engines use). Else it is the CPUs this process may
  run on (``sched_getaffinity``). With them comes the stack each new thread maps
  (``RLIMIT_STACK``).
- **sandbox**: the layers a kernel worker closed (:data:`SANDBOX_ENV`, set by
  :func:`qmk.kernel.pools.confine.confine`). An engine that needs what a layer forbids
  (a writable cache beside its package's files) is then refused there, not failed.

>>> limits = WorkerLimits(address_cap=2 * 2**30, address_used=2**30, threads=2)
>>> limits.address_left
1073741824
>>> print(limits.describe())
memory: 2 GiB address space (RLIMIT_AS), 1 GiB of it left; 2 threads (CPU affinity); sandbox: none
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Any

from qmk.defaults import WORKER_SANDBOX_ENV

#: The default cap on a state's memory: amplitudes plus one working copy, in bytes. The
#: statevector engine's guard and the router's pricing (:func:`qmk.engines.registry.
#: memory_bytes`) both read it, so a run that never builds a state need not load the engine.
DEFAULT_MAX_BYTES = 8 * 2**30
#: Environment variable that overrides :data:`DEFAULT_MAX_BYTES` (an integer of bytes).
MAX_BYTES_ENV = "QMK_MAX_STATE_BYTES"

#: Environment variable a confined kernel worker sets: the sandbox layers it closed,
#: comma-separated (``network``, ``filesystem``). Absent: no sandbox.
SANDBOX_ENV = WORKER_SANDBOX_ENV
#: Sandbox layers (:data:`SANDBOX_ENV`'s words).
SANDBOX_LAYERS = ("network", "filesystem")
#: Environment variable the statevector kernels read for their thread count
#: (:data:`qmk.engines.simd.THREADS_ENV`; a test checks they agree).
THREADS_ENV = "QMK_THREADS"
#: Environment variable OpenMP engines (Aer, qsim, Lightning) read.
OMP_ENV = "OMP_NUM_THREADS"
#: A cgroup limit at or above this is "no limit" (cgroup v1 writes 2**63 rounded to pages).
_NO_LIMIT = 2**60


@dataclass(frozen=True, slots=True, kw_only=True)
class WorkerLimits:
    """The limits of the process that will run an engine (see the module docstring).

    Attributes:
        address_cap: the ``RLIMIT_AS`` soft limit in bytes, or None (no cap).
        address_used: bytes of address space mapped now (``VmSize``).
        cgroup_cap: the memory cgroup's limit in bytes, or None (none, or not found).
        cgroup_used: bytes the memory cgroup holds now (read only under a limit: 0
            without one, where nothing reads it).
        threads: threads an engine may run (``threads_from`` says where that came from).
        stack_bytes: the stack each new thread maps (``RLIMIT_STACK``; 8 MiB if unlimited).
        sandbox: the sandbox layers closed around this process (:data:`SANDBOX_LAYERS`).
        numba_cache: ``$NUMBA_CACHE_DIR`` is set (numba can cache outside package dirs).
    """

    address_cap: int | None = None
    address_used: int = 0
    cgroup_cap: int | None = None
    cgroup_used: int = 0
    threads: int = 1
    threads_from: str = "CPU affinity"
    stack_bytes: int = 8 * 2**20
    sandbox: frozenset[str] = frozenset()
    numba_cache: bool = False

    @classmethod
    def read(cls) -> WorkerLimits:
        """This process's limits, read now (a few system calls, a few small files)."""
        threads, threads_from = _threads()
        cgroup_cap, cgroup_used = _cgroup()
        sandbox = frozenset(
            word for word in os.environ.get(SANDBOX_ENV, "").split(",") if word in SANDBOX_LAYERS
        )
        return cls(
            address_cap=_rlimit("RLIMIT_AS"),
            address_used=_vm_size(),
            cgroup_cap=cgroup_cap,
            cgroup_used=cgroup_used,
            threads=threads,
            threads_from=threads_from,
            stack_bytes=_rlimit("RLIMIT_STACK") or 8 * 2**20,
            sandbox=sandbox,
            numba_cache=bool(os.environ.get("NUMBA_CACHE_DIR")),
        )

    @property
    def address_left(self) -> int | None:
        """Bytes of address space this process may still map (None: no cap)."""
        if self.address_cap is None:
            return None
        return max(self.address_cap - self.address_used, 0)

    @property
    def cgroup_left(self) -> int | None:
        """Bytes of memory the cgroup may still charge (None: no limit)."""
        if self.cgroup_cap is None:
            return None
        return max(self.cgroup_cap - self.cgroup_used, 0)

    def shortfall(self, address: int, resident: int) -> str | None:
        """Why an engine that maps ``address`` more bytes and touches ``resident`` of
        them does not fit here, in words, or None when it fits."""
        left = self.address_left
        if left is not None and address > left:
            return (
                f"needs ~{human_bytes(address)} of address space here, the worker has "
                f"{human_bytes(left)} left under its {human_bytes(self.address_cap or 0)} "
                "cap (RLIMIT_AS)"
            )
        room = self.cgroup_left
        if room is not None and resident > room:
            return (
                f"needs ~{human_bytes(resident)} of memory here, the worker's cgroup has "
                f"{human_bytes(room)} left of {human_bytes(self.cgroup_cap or 0)}"
            )
        return None

    def describe(self) -> str:
        """One line: the caps the router used (``qmk run --explain``)."""
        parts = []
        if self.address_cap is not None:
            parts.append(
                f"{human_bytes(self.address_cap)} address space (RLIMIT_AS), "
                f"{human_bytes(self.address_left or 0)} of it left"
            )
        if self.cgroup_cap is not None:
            parts.append(
                f"{human_bytes(self.cgroup_cap)} cgroup, {human_bytes(self.cgroup_left or 0)} left"
            )
        memory = "; ".join(parts) if parts else "no cap"
        sandbox = ", ".join(sorted(self.sandbox)) or "none"
        return (
            f"memory: {memory}; {self.threads} thread{'s' if self.threads != 1 else ''} "
            f"({self.threads_from}); sandbox: {sandbox}"
        )

    def to_json(self) -> dict[str, Any]:
        return {
            "address_cap": self.address_cap,
            "address_left": self.address_left,
            "cgroup_cap": self.cgroup_cap,
            "cgroup_left": self.cgroup_left,
            "threads": self.threads,
            "threads_from": self.threads_from,
            "stack_bytes": self.stack_bytes,
            "sandbox": sorted(self.sandbox),
        }


def human_bytes(count: float) -> str:
    """``512 MiB``, ``1.5 GiB``: a size in a few characters.

    >>> human_bytes(1536 * 2**20), human_bytes(2**31), human_bytes(3000)
    ('1.5 GiB', '2 GiB', '2.93 KiB')
    """
    value = float(count)
    for unit in ("B", "KiB", "MiB", "GiB"):
        if value < 1024:
            return f"{value:.3g} {unit}"
        value /= 1024
    return f"{value:.3g} TiB"


def _rlimit(name: str) -> int | None:
    try:
        import resource  # a built-in module: no file to load
    except ImportError:  # pragma: no cover - not POSIX
        return None
    soft, _ = resource.getrlimit(getattr(resource, name))
    return None if soft == resource.RLIM_INFINITY else int(soft)


def _page_size() -> int:
    try:
        return int(os.sysconf("SC_PAGE_SIZE"))
    except (AttributeError, OSError, ValueError):  # pragma: no cover - not POSIX
        return 0


#: The page size in bytes: what a process maps in, fixed for its life (read once).
_PAGE = _page_size()


def _read(path: str) -> bytes | None:
    """The bytes of a small file (a /proc or cgroup file), or None when it cannot be read.

    Read with ``os.open`` and ``os.read``: a Python file object costs several times the
    read itself, and these files are read afresh for every routing (what they hold
    changes: the memory used; the caps and the cgroup may be changed from outside).
    """
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:
        return None
    try:
        chunks = []
        while chunk := os.read(fd, 4096):
            chunks.append(chunk)
    except OSError:
        return None
    finally:
        os.close(fd)
    return chunks[0] if len(chunks) == 1 else b"".join(chunks)


def _vm_size() -> int:
    data = _read("/proc/self/statm")
    try:
        return int(data.split()[0]) * _PAGE if data is not None else 0
    except (ValueError, IndexError):  # pragma: no cover - not Linux
        return 0


def _threads() -> tuple[int, str]:
    for env in (THREADS_ENV, OMP_ENV):
        text = os.environ.get(env, "").strip()
        if text.isdigit() and int(text) > 0:
            return int(text), f"${env}"
    try:
        return max(1, len(os.sched_getaffinity(0))), "CPU affinity"
    except AttributeError:  # pragma: no cover - not Linux
        return max(1, os.cpu_count() or 1), "CPU count"


def _read_int(path: str) -> int | None:
    data = _read(path)
    if data is None:
        return None
    text = data.strip()
    return int(text) if text.isdigit() else None


def _cgroup() -> tuple[int | None, int]:
    """The memory cgroup's limit (None: none found) and what it holds now (0 without a
    limit). Read afresh each time: the process may be moved to another group, and a
    group's limit changed, from outside."""
    data = _read("/proc/self/cgroup")  # bytes: no codec to import
    if data is None:
        return None, 0
    lines = data.decode("utf-8", "replace").splitlines()
    for line in lines:
        _, controllers, path = line.split(":", 2)
        if controllers == "":  # v2: one unified hierarchy
            files = ("memory.max", "memory.current")
            roots = (f"/sys/fs/cgroup{path}", "/sys/fs/cgroup")
        elif "memory" in controllers.split(","):
            files = ("memory.limit_in_bytes", "memory.usage_in_bytes")
            roots = (f"/sys/fs/cgroup/memory{path}", "/sys/fs/cgroup/memory")
        else:
            continue
        for root in roots:
            cap = _read_int(f"{root.rstrip('/')}/{files[0]}")
            if cap is not None:
                if cap >= _NO_LIMIT:  # what the group uses counts only under a limit
                    return None, 0
                return cap, _read_int(f"{root.rstrip('/')}/{files[1]}") or 0
    return None, 0


__all__ = ["SANDBOX_ENV", "SANDBOX_LAYERS", "WorkerLimits", "human_bytes"]
