"""Cached kernel code made callable without LLVM: a kernel loaded here computes what the
JIT's copy computes, and an object the loader does not handle is refused whole."""

from __future__ import annotations

import ctypes
import os
import struct
import subprocess
import sys

import numpy as np
import pytest

from qmk.engines import objcode, simd
from qmk.engines.kernel_cache import CACHE_ENV

pytestmark = [
    pytest.mark.skipif(not simd.available(), reason="llvmlite is not installed"),
    pytest.mark.skipif(not objcode.SUPPORTED, reason="objects are loaded by LLVM here"),
]

_SECTION = struct.Struct("<IIQQQQIIQQ")


@pytest.fixture(scope="module")
def objects(tmp_path_factory: pytest.TempPathFactory) -> dict[str, bytes]:
    """Kernel name -> its object code, as a child process's JIT stored them."""
    cache = tmp_path_factory.mktemp("kernels")
    child = (
        "import numpy as np\nfrom qmk.engines import simd\n"
        "psi = np.zeros(2**12, dtype=np.complex64); psi[0] = 1\n"
        "simd.apply_matrix(psi, np.eye(4), [1, 9], threads=1)\n"
        "simd.apply_diagonal(psi, np.ones(8), [0, 5, 10], threads=1)\n"
    )
    subprocess.run(
        [sys.executable, "-c", child], env={**os.environ, CACHE_ENV: str(cache)}, check=True
    )
    found = {}
    for path in cache.glob("*/*.o"):
        code = path.read_bytes()[32:]
        name = next(n for n in (b"qmk_drive", b"qmk_float_1_1", b"qmk_float_diagonal") if n in code)
        found[name.decode()] = code
    return found


#: A kernel whose code reaches constants through relocations (its coefficient swap).
_RELOCATED = "qmk_float_diagonal"


def _sections(code: bytes) -> list[tuple[int, ...]]:
    (offset,) = struct.unpack_from("<Q", code, 40)
    count = struct.unpack_from("<H", code, 60)[0]
    return [_SECTION.unpack_from(code, offset + k * _SECTION.size) for k in range(count)]


def _first_relocation(code: bytes) -> int:
    """Where the first relocation of the code section's table is (its offset field)."""
    sections = _sections(code)
    for section in sections:
        if section[1] == 4 and section[5] and sections[section[7]][2] & 0x4:  # RELA of code
            return int(section[4])
    raise AssertionError("no relocation of code")


def _name(code: bytes) -> str:
    """The kernel function an object defines (``qmk_float_diagonal_N``)."""
    start = code.index(_RELOCATED.encode())
    return code[start : code.index(b"\0", start)].decode()


def test_a_loaded_kernel_computes_what_the_jit_compiled_copy_computes(
    objects: dict[str, bytes],
) -> None:
    rng = np.random.default_rng(11)
    gate = np.linalg.qr(rng.normal(size=(4, 4)) + 1j * rng.normal(size=(4, 4)))[0]
    psi = (rng.normal(size=2**12) + 1j * rng.normal(size=2**12)).astype(np.complex64)
    lo, hib, coef = simd.coefficients(gate, [1, 9], psi.dtype)
    assert lo == (1,) and hib.tolist() == [9]
    kernel = ctypes.CFUNCTYPE(None, *[ctypes.c_void_p] * 3, ctypes.c_int64, ctypes.c_int64)
    loaded = kernel(objcode.load(objects["qmk_float_1_1"], "qmk_float_1_1"))
    steps = psi.size >> (simd.lane_bits(psi.dtype) + 1)
    ours = psi.copy()
    coef, hib = np.ascontiguousarray(coef), np.ascontiguousarray(hib)
    loaded(ours.ctypes.data, coef.ctypes.data, hib.ctypes.data, 0, steps)
    theirs = psi.copy()
    simd.apply_matrix(theirs, gate, [1, 9], threads=1)
    assert ours.tobytes() == theirs.tobytes()


def test_an_object_for_another_machine_is_refused(objects: dict[str, bytes]) -> None:
    code = bytearray(objects["qmk_drive"])
    code[18:20] = (183).to_bytes(2, "little")  # EM_AARCH64
    with pytest.raises(objcode.Unsupported, match="machine 183"):
        objcode.load(bytes(code), "qmk_drive")


def test_a_relocation_of_a_kind_it_does_not_apply_is_refused(objects: dict[str, bytes]) -> None:
    code = bytearray(objects[_RELOCATED])
    at = _first_relocation(bytes(code)) + 8  # r_info: symbol << 32 | type
    info = struct.unpack_from("<Q", code, at)[0]
    struct.pack_into("<Q", code, at, (info >> 32) << 32 | 42)
    with pytest.raises(objcode.Unsupported, match="relocation type 42"):
        objcode.load(bytes(code), _name(bytes(code)))


def test_a_relocation_against_a_symbol_outside_the_object_is_refused(
    objects: dict[str, bytes],
) -> None:
    code = bytearray(objects[_RELOCATED])
    at = _first_relocation(bytes(code)) + 8
    info = struct.unpack_from("<Q", code, at)[0]
    struct.pack_into("<Q", code, at, info & 0xFFFFFFFF)  # symbol 0: undefined
    with pytest.raises(objcode.Unsupported, match="not in the object"):
        objcode.load(bytes(code), _name(bytes(code)))


def test_a_function_the_object_does_not_define_is_refused(objects: dict[str, bytes]) -> None:
    with pytest.raises(objcode.Unsupported, match="no function qmk_nothing"):
        objcode.load(objects["qmk_drive"], "qmk_nothing")


def test_a_truncated_object_is_refused(objects: dict[str, bytes]) -> None:
    with pytest.raises(objcode.Unsupported):
        objcode.load(objects["qmk_drive"][:200], "qmk_drive")
