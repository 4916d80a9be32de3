"""The compiled kernels' disk cache: a fresh process loads what another compiled, and a
damaged or unwritable cache costs a compile, never a wrong state."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from qmk.engines import objcode, simd
from qmk.engines.kernel_cache import CACHE_ENV

pytestmark = pytest.mark.skipif(not simd.available(), reason="llvmlite is not installed")

#: A child process: a seeded random state, gates whose shapes need kernels (a lane bit, a
#: high bit, both; a diagonal, whose code reaches constants through relocations), then
#: the cache's counts and the state's bytes.
_CHILD = """
import json, sys
import numpy as np
from qmk.engines import kernel_cache, simd
rng = np.random.default_rng(5)
psi = (rng.normal(size=2**12) + 1j * rng.normal(size=2**12)).astype(np.complex64)
for targets in ([0], [9], [1, 10], [2, 3, 11]):
    k = len(targets)
    m = rng.normal(size=(2**k, 2**k)) + 1j * rng.normal(size=(2**k, 2**k))
    q, _ = np.linalg.qr(m)
    simd.apply_matrix(psi, q, targets, threads=1)
simd.apply_diagonal(psi, np.exp(1j * rng.normal(size=8)), [1, 4, 11], threads=1)
simd.apply_matrix(psi, q, [2, 3, 11], threads=2)  # the driver on two threads
print(json.dumps({"stats": kernel_cache.stats(), "state": psi.tobytes().hex()}))
"""


def _child(cache: str) -> dict[str, object]:
    env = {**os.environ, CACHE_ENV: cache}
    done = subprocess.run(
        [sys.executable, "-c", _CHILD], env=env, capture_output=True, text=True, check=True
    )
    return dict(json.loads(done.stdout))


def _objects(cache: Path) -> list[Path]:
    return sorted(cache.glob("*/*.o"))


def test_a_second_process_loads_the_kernels_the_first_compiled_and_gets_the_same_state(
    tmp_path: Path,
) -> None:
    first = _child(str(tmp_path))
    stored = _objects(tmp_path)
    second = _child(str(tmp_path))
    assert first["stats"]["hits"] == 0 and first["stats"]["misses"] == len(stored) > 0  # type: ignore[index]
    assert second["stats"] == {"hits": len(stored), "misses": 0, "write_errors": 0}
    assert second["state"] == first["state"]
    assert not list(tmp_path.glob("*/*.part"))


def test_a_damaged_object_file_is_compiled_again_not_loaded(tmp_path: Path) -> None:
    first = _child(str(tmp_path))
    victim = _objects(tmp_path)[0]
    data = bytearray(victim.read_bytes())
    data[-1] ^= 0xFF
    victim.write_bytes(bytes(data))
    second = _child(str(tmp_path))
    assert second["stats"]["misses"] == 1  # type: ignore[index]
    assert second["state"] == first["state"]
    assert victim.read_bytes() != bytes(data)  # written anew


def test_a_cache_that_cannot_be_written_leaves_the_kernels_compiled_in_memory(
    tmp_path: Path,
) -> None:
    blocked = tmp_path / "file"
    blocked.write_text("not a directory")
    reference = _child("off")
    out = _child(str(blocked))
    assert out["stats"]["write_errors"] > 0 and out["stats"]["hits"] == 0  # type: ignore[index]
    assert out["state"] == reference["state"]
    assert reference["stats"] == {"hits": 0, "misses": 0, "write_errors": 0}


def test_the_cache_says_it_is_populated_once_a_process_has_stored_kernels(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from qmk.engines import kernel_cache
    from qmk.engines.registry import spec

    monkeypatch.setenv(CACHE_ENV, str(tmp_path))
    kernels = spec("statevector").compiled
    assert kernels is not None
    assert not kernel_cache.populated() and kernels.cold_s() == kernels.import_s
    _child(str(tmp_path))
    assert kernel_cache.populated() and kernels.cold_s() == kernels.cached_import_s
    monkeypatch.setenv(CACHE_ENV, "off")
    assert not kernel_cache.populated()


#: A child that reports whether it loaded LLVM, beside the state (``_CHILD``'s).
_WITHOUT_LLVM = _CHILD.replace(
    '"state": psi.tobytes().hex()}',
    '"state": psi.tobytes().hex(), "llvm": "llvmlite.binding" in sys.modules}',
)


def _child_llvm(cache: str) -> dict[str, object]:
    env = {**os.environ, CACHE_ENV: cache}
    done = subprocess.run(
        [sys.executable, "-c", _WITHOUT_LLVM], env=env, capture_output=True, text=True, check=True
    )
    return dict(json.loads(done.stdout))


@pytest.mark.skipif(not objcode.SUPPORTED, reason="objects are loaded by LLVM on this platform")
def test_a_process_finds_cached_kernels_without_starting_llvm_and_gets_the_same_state(
    tmp_path: Path,
) -> None:
    first = _child_llvm(str(tmp_path))
    second = _child_llvm(str(tmp_path))
    assert first["llvm"] is True and list(tmp_path.glob("hosts/*.json"))
    assert second["llvm"] is False
    assert second["stats"] == {"hits": len(_objects(tmp_path)), "misses": 0, "write_errors": 0}
    assert second["state"] == first["state"]


def test_a_host_record_whose_directory_is_gone_starts_llvm(tmp_path: Path) -> None:
    first = _child_llvm(str(tmp_path))
    for build in tmp_path.iterdir():
        if build.name != "hosts":
            shutil.rmtree(build)
    second = _child_llvm(str(tmp_path))
    assert second["llvm"] is True and second["stats"]["hits"] == 0  # type: ignore[index]
    assert second["state"] == first["state"]
