"""Compiled SIMD kernels kept on disk, so a fresh process loads them instead of compiling.

:mod:`qmk.engines.simd` compiles each kernel shape with LLVM the first time a process
needs it. A fresh ``qmk run`` of a 20-qubit random circuit needs a few dozen shapes,
and their code generation is most of its CPU time after the imports. This module is
the LLVM JIT's object cache: when the JIT has compiled a module it hands the object
code here (:func:`store`), and before it compiles one it asks here first (:func:`load`).

Where: ``$QMK_KERNEL_CACHE`` (``off``: no cache), else ``$XDG_CACHE_HOME/qmk/kernels``,
else ``~/.cache/qmk/kernels``. Under it is one directory per build: the llvmlite and
LLVM versions, the CPU name and its feature string (object code for another CPU is never
loaded). In it is one file per kernel, named by the hash of its IR text. A file holds
the SHA-256 of its object code and the code: a file cut short or altered is found so,
removed and compiled again. Files are written to a temporary name and renamed, so
processes sharing the directory never read half a file. A directory that cannot be
written (a worker's filesystem sandbox, a read-only home) leaves the kernels compiled
in memory only; :func:`stats` counts hits, misses and failed writes.

A fresh process need not start LLVM to find its build's directory. Once a process
has, it records which directory this host's code goes to (:func:`remember`). The
record's key is made of what LLVM's answer depends on that a process can read without
it (:func:`host_key`: the llvmlite version, the machine, and the CPU's vendor, family,
model and feature flags as ``/proc/cpuinfo`` gives them). :func:`known` reads it
back, and :mod:`qmk.engines.objcode` loads the code found there. Without such a
record (another OS, a new CPU or llvmlite) the process starts LLVM.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import platform
import threading
from pathlib import Path
from typing import Any

#: Environment variable: the cache's directory, or ``off``.
CACHE_ENV = "QMK_KERNEL_CACHE"
_DIGEST = 32  # bytes of SHA-256 before the object code

_counts = {"hits": 0, "misses": 0, "write_errors": 0}
_counts_lock = threading.Lock()


def root() -> Path | None:
    """The cache's directory as the environment sets it (None: off)."""
    text = os.environ.get(CACHE_ENV, "").strip()
    if text.lower() == "off":
        return None
    if text:
        return Path(text)
    base = os.environ.get("XDG_CACHE_HOME", "").strip()
    return (Path(base) if base else Path.home() / ".cache") / "qmk" / "kernels"


def populated() -> bool:
    """Whether the cache holds object code from an earlier process (a cheap look at the
    directory, importing nothing: the router asks it to price a fresh process)."""
    base = root()
    if base is None:
        return False
    try:
        with os.scandir(base) as builds:
            for build in builds:
                if build.is_dir():
                    with os.scandir(build.path) as files:
                        if any(f.name.endswith(".o") for f in files):
                            return True
    except OSError:
        return False
    return False


def build_key(llvm: Any, cpu: str, features: str) -> str:
    """What object code depends on besides its IR: the compiler's versions and the CPU."""
    import llvmlite

    text = "|".join(
        [llvmlite.__version__, ".".join(map(str, llvm.llvm_version_info)), cpu, features]
    )
    return f"{cpu}-{hashlib.sha256(text.encode()).hexdigest()[:16]}"


def module_key(ir: str) -> str:
    """A kernel module's name in the cache: the hash of its IR text."""
    return "qmk-" + hashlib.sha256(ir.encode()).hexdigest()[:40]


class ObjectCache:
    """The JIT's object-cache callbacks over one build's directory."""

    def __init__(self, directory: Path) -> None:
        self.directory = directory

    def _path(self, module: Any) -> Path | None:
        name = str(module.name)
        return self.directory / f"{name}.o" if name.startswith("qmk-") else None

    def load(self, module: Any) -> bytes | None:
        """The object code of ``module`` from disk, or None (then the JIT compiles it)."""
        path = self._path(module)
        if path is None:
            return None
        code = _read(path)
        _count("misses" if code is None else "hits")
        return code

    def load_key(self, key: str) -> bytes | None:
        """The object code of the module named ``key`` (:func:`module_key`), or None,
        counted by the caller (:func:`count_hit` once it has loaded it; where it has
        not, the JIT asks :meth:`load`, which counts)."""
        return _read(self.directory / f"{key}.o")

    def store(self, module: Any, code: bytes) -> None:
        """Keep ``module``'s object code (written whole, or not at all)."""
        path = self._path(module)
        if path is None:
            return
        try:
            _write(path, hashlib.sha256(code).digest() + bytes(code))
        except OSError:
            _count("write_errors")


def _read(path: Path) -> bytes | None:
    """The object code a cache file holds, or None (a damaged file is removed)."""
    try:
        data = path.read_bytes()
    except OSError:
        return None
    code = data[_DIGEST:]
    if len(data) <= _DIGEST or hashlib.sha256(code).digest() != data[:_DIGEST]:
        with contextlib.suppress(OSError):
            path.unlink()
        return None
    return code


def _write(path: Path, data: bytes) -> None:
    """Write ``data`` to ``path`` whole or not at all (a temporary file, renamed)."""
    import tempfile  # here: a process that only loads code never writes, nor imports it

    path.parent.mkdir(parents=True, exist_ok=True)
    handle, temporary = tempfile.mkstemp(dir=path.parent, suffix=".part")
    try:
        with os.fdopen(handle, "wb") as out:
            out.write(data)
        os.replace(temporary, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(temporary)
        raise


#: The ``/proc/cpuinfo`` fields of the first processor a host key reads.
_CPU_FIELDS = ("vendor_id", "cpu family", "model", "model name", "stepping", "flags")


def host_key() -> str | None:
    """What the build's directory depends on, as this process can read it without
    LLVM: the llvmlite version, the machine and the CPU (``/proc/cpuinfo``'s first
    processor); None where there is no llvmlite or no ``/proc/cpuinfo``."""
    try:
        import llvmlite

        fields: dict[str, str] = {}
        with open("/proc/cpuinfo", encoding="utf-8", errors="replace") as info:
            for line in info:
                if not line.strip():
                    break
                name, _, value = line.partition(":")
                if name.strip() in _CPU_FIELDS:
                    fields[name.strip()] = value.strip()
    except (ImportError, OSError):
        return None
    if "flags" not in fields:
        return None
    text = json.dumps([llvmlite.__version__, platform.machine(), fields], sort_keys=True)
    return hashlib.sha256(text.encode()).hexdigest()[:32]


def remember(cache: ObjectCache, width: int) -> None:
    """Record that this host's kernels go to ``cache``'s directory and its vectors are
    ``width`` bytes wide (:func:`known` reads it); a host with no key, or a directory
    that cannot be written, records nothing."""
    key = host_key()
    if key is None:
        return
    path = cache.directory.parent / "hosts" / f"{key}.json"
    record = {"build": cache.directory.name, "bytes": width}
    with contextlib.suppress(OSError, ValueError):
        if json.loads(path.read_text()) == record:
            return
    with contextlib.suppress(OSError):
        _write(path, json.dumps(record).encode())


def known() -> tuple[ObjectCache, int] | None:
    """This host's build directory and vector width as a process that started LLVM here
    recorded them (:func:`remember`), or None (no cache, no record, or its directory
    is gone)."""
    base = root()
    key = host_key() if base is not None else None
    if base is None or key is None:
        return None
    try:
        record = json.loads((base / "hosts" / f"{key}.json").read_text())
        build, width = str(record["build"]), int(record["bytes"])
    except (OSError, ValueError, KeyError, TypeError):
        return None
    directory = base / build
    if "/" in build or build in ("", ".", "..", "hosts") or not directory.is_dir():
        return None
    return ObjectCache(directory), width


def attach(engine: Any, llvm: Any, cpu: str, features: str) -> ObjectCache | None:
    """Give ``engine`` (an llvmlite MCJIT engine) the object cache of this build, where
    the environment has one."""
    base = root()
    if base is None:
        return None
    cache = ObjectCache(base / build_key(llvm, cpu, features))
    engine.set_object_cache(cache.store, cache.load)
    return cache


def count_hit() -> None:
    """Count object code loaded from the cache without the JIT (:meth:`ObjectCache.load_key`)."""
    _count("hits")


def stats() -> dict[str, int]:
    """Kernels loaded from disk (``hits``), compiled (``misses``), and the object code
    that could not be written (``write_errors``), in this process."""
    with _counts_lock:
        return dict(_counts)


def _count(name: str) -> None:
    with _counts_lock:
        _counts[name] += 1
