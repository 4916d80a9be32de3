"""Object code from the kernel cache, made callable without LLVM.

:mod:`qmk.engines.simd` compiles its kernels with llvmlite's JIT, which keeps each
kernel's object code in the disk cache (:mod:`qmk.engines.kernel_cache`); a later
process needs only that code placed in executable memory. Importing llvmlite and
starting its JIT is a large part of a fresh ``qmk run`` outside its kernels (mostly
the LLVM library's load and its Python wrappers). Each kernel's IR would cost more
again to parse, verify and hand to the JIT, even when the JIT then took its code from
the cache (``docs/engines.md`` has the figures). This module does what the JIT's
loader does for the code the kernels compile to, and nothing more:

- an ELF64 relocatable object for x86-64 (what LLVM's JIT writes on Linux), its
  allocated sections copied into one private mapping, each at its alignment;
- its relocations applied: ``R_X86_64_64`` (the JIT's large code model reaches its
  constants through absolute addresses), ``R_X86_64_PC32``, ``R_X86_64_PLT32`` and
  ``R_X86_64_PC64``, all against symbols defined in the object (a kernel calls no
  outside function: the driver calls kernels and the yield function through
  pointers it is given);
- the mapping made read-only and executable, and the address of the function asked
  for returned. Unwind tables (``.eh_frame``) are not loaded: no exception passes
  through a kernel.

Anything else (another machine or format, an undefined symbol, a relocation of
another kind) raises :class:`Unsupported` before any code is placed, and the caller
has LLVM load the object as before. A mapping lives as long as the process (kernels
are kept, as the JIT keeps them).

>>> SUPPORTED in (True, False)
True
>>> load(b"not an object", "f")
Traceback (most recent call last):
...
qmk.engines.objcode.Unsupported: not an ELF64 little-endian object
"""

from __future__ import annotations

import ctypes
import mmap
import platform
import struct
import sys
from typing import Any

#: Whether this platform's objects can be loaded here (Linux on x86-64).
SUPPORTED = sys.platform.startswith("linux") and platform.machine().lower() in ("x86_64", "amd64")

_EM_X86_64 = 62
_ET_REL = 1
_SHT_SYMTAB, _SHT_RELA, _SHT_NOBITS = 2, 4, 8
_SHF_ALLOC = 0x2
_SHN_UNDEF, _SHN_ABS = 0, 0xFFF1
_R_64, _R_PC32, _R_PLT32, _R_PC64 = 1, 2, 4, 24
_UNWIND = (".eh_frame", ".rela.eh_frame")
_SECTION = struct.Struct("<IIQQQQIIQQ")
_SYMBOL = struct.Struct("<IBBHQQ")
_RELA = struct.Struct("<QQq")

_kept: list[tuple[mmap.mmap, Any]] = []  # every mapping made, for the process's life


class Unsupported(ValueError):
    """Object code this loader does not take (LLVM's JIT loads it instead)."""


def load(code: bytes, name: str) -> int:
    """The address of function ``name`` of the object ``code``, loaded into executable
    memory of this process.

    Raises:
        Unsupported: ``code`` is not an x86-64 ELF relocatable object whose sections,
            symbols and relocations this loader handles, ``name`` is not a function
            it defines, or the platform is not :data:`SUPPORTED`.
        OSError: the memory could not be made executable.
    """
    if not SUPPORTED:
        raise Unsupported(f"objects are loaded by LLVM on {sys.platform} {platform.machine()}")
    sections = _sections(code)
    names = sections[struct.unpack_from("<H", code, 62)[0]]
    title = [_string(code, names[4], s[0]) for s in sections]
    placed: dict[int, int] = {}  # section index -> offset in the mapping
    size = 0
    for index, section in enumerate(sections):
        if section[2] & _SHF_ALLOC and title[index] not in _UNWIND and section[5]:
            align = max(1, section[8])
            size = -(-size // align) * align
            placed[index] = size
            size += section[5]
    symbols = _symbols(code, sections, title)
    target = next((s for s in symbols if s[0] == name and s[2] in placed), None)
    if target is None:
        raise Unsupported(f"the object defines no function {name}")
    memory = mmap.mmap(-1, max(size, 1), prot=mmap.PROT_READ | mmap.PROT_WRITE)
    for index, offset in placed.items():
        section = sections[index]
        if section[1] != _SHT_NOBITS:
            memory[offset : offset + section[5]] = code[section[4] : section[4] + section[5]]
    anchor = ctypes.c_char.from_buffer(memory)  # the mapping's address (and kept open)
    base = ctypes.addressof(anchor)
    try:
        for section in sections:
            if section[1] == _SHT_RELA and section[7] in placed:
                _relocate(code, section, symbols, placed, memory, base)
            elif section[1] == _SHT_RELA and title[section[7]] not in _UNWIND:
                raise Unsupported(f"relocations of section {title[section[7]]}, not loaded")
        _protect(base, len(memory))
    except BaseException:
        del anchor
        memory.close()
        raise
    _kept.append((memory, anchor))
    return base + placed[target[2]] + target[1]


def _sections(code: bytes) -> list[tuple[int, ...]]:
    """The section headers of ``code`` (checked to be an x86-64 ELF64 relocatable)."""
    if len(code) < 64 or code[:4] != b"\x7fELF" or code[4] != 2 or code[5] != 1:
        raise Unsupported("not an ELF64 little-endian object")
    kind, machine = struct.unpack_from("<HH", code, 16)
    if kind != _ET_REL or machine != _EM_X86_64:
        raise Unsupported(f"an ELF object of type {kind} for machine {machine}")
    (offset,) = struct.unpack_from("<Q", code, 40)
    entry, count = struct.unpack_from("<HH", code, 58)
    if entry != _SECTION.size or offset + count * entry > len(code):
        raise Unsupported("section headers out of bounds")
    sections = [_SECTION.unpack_from(code, offset + k * entry) for k in range(count)]
    for section in sections:
        if section[1] != _SHT_NOBITS and section[4] + section[5] > len(code):
            raise Unsupported("a section out of bounds")
    return sections


def _string(code: bytes, table: int, at: int) -> str:
    end = code.index(b"\0", table + at)
    return code[table + at : end].decode("ascii", "replace")


def _symbols(
    code: bytes, sections: list[tuple[int, ...]], title: list[str]
) -> list[tuple[str, int, int]]:
    """The object's symbols as ``(name, value, section index)``."""
    table = next((s for s in sections if s[1] == _SHT_SYMTAB), None)
    if table is None:
        raise Unsupported("no symbol table")
    strings = sections[table[6]][4]
    out = []
    for k in range(table[5] // _SYMBOL.size):
        name, _, _, index, value, _ = _SYMBOL.unpack_from(code, table[4] + k * _SYMBOL.size)
        out.append((_string(code, strings, name), value, index))
    return out


def _relocate(
    code: bytes,
    rela: tuple[int, ...],
    symbols: list[tuple[str, int, int]],
    placed: dict[int, int],
    memory: mmap.mmap,
    base: int,
) -> None:
    """Apply one relocation section to its (placed) section in ``memory``."""
    into = placed[rela[7]]
    for k in range(rela[5] // _RELA.size):
        offset, info, addend = _RELA.unpack_from(code, rela[4] + k * _RELA.size)
        kind, which = info & 0xFFFFFFFF, info >> 32
        if which >= len(symbols):
            raise Unsupported(f"a relocation against symbol {which}, not in the table")
        name, value, index = symbols[which]
        if index in (_SHN_UNDEF, _SHN_ABS) or index not in placed:
            raise Unsupported(f"a relocation against {name or 'a symbol'} not in the object")
        symbol = base + placed[index] + value
        at = into + offset
        where = base + at
        if not 0 <= at <= len(memory) - 8 + 4 * (kind in (_R_PC32, _R_PLT32)):
            raise Unsupported("a relocation out of its section")
        try:
            if kind == _R_64:
                struct.pack_into("<Q", memory, at, (symbol + addend) & (2**64 - 1))
            elif kind == _R_PC64:
                struct.pack_into("<q", memory, at, symbol + addend - where)
            elif kind in (_R_PC32, _R_PLT32):
                struct.pack_into("<i", memory, at, symbol + addend - where)
            else:
                raise Unsupported(f"relocation type {kind}")
        except struct.error as error:
            raise Unsupported(f"a relocation that does not fit: {error}") from None


def _protect(address: int, size: int) -> None:
    """Make ``size`` bytes at ``address`` (a mapping's start) read-only and executable."""
    libc = ctypes.CDLL(None, use_errno=True)
    mprotect = libc.mprotect
    mprotect.argtypes = (ctypes.c_void_p, ctypes.c_size_t, ctypes.c_int)
    mprotect.restype = ctypes.c_int
    if mprotect(address, size, mmap.PROT_READ | mmap.PROT_EXEC) != 0:
        error = ctypes.get_errno()
        raise OSError(error, f"mprotect: {error}")
