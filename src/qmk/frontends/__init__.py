"""Front-ends: programs written elsewhere, lowered into QVM graphs.

:mod:`qmk.frontends.builder` is the common back end every front-end writes through;
:mod:`qmk.frontends.decompose` holds the one table of exact gate decompositions.
:func:`read_program` reads a file of any supported kind, by its extension or an
explicit ``format``:

========== ============================= ==========================================
format     extensions                    reader
========== ============================= ==========================================
qvm-json   ``.json`` (and anything else  :func:`qmk.qvm.files.read_graph`
           read as JSON by ``--format``)
qvm-asm    ``.asm``                      :func:`qmk.qvm.files.read_graph`
qasm2      ``.qasm`` with ``OPENQASM 2`` :func:`qmk.frontends.qasm.from_qasm`
qasm3      ``.qasm``, ``.qasm3``         :func:`qmk.frontends.qasm.from_qasm`
qir        ``.ll`` (text), ``.bc``       :func:`qmk.frontends.qir.from_qir`
stim       ``.stim``                     :func:`qmk.frontends.stim.from_stim` (folded:
                                         :func:`qmk.frontends.stim_fold.read_folded`)
========== ============================= ==========================================

Out: :func:`to_qasm3` writes any QVM program as OpenQASM 3
(:mod:`qmk.frontends.qasm3_out`; ``qmk qasm FILE``).

Qubits a front-end allocates carry ``profile`` when one is given; with None they
get the runner's default, ``logical:surface_code(d=9)``
(:data:`qmk.defaults.PROFILE`).

>>> read_program("examples/bell.qasm").metadata["language"]
'openqasm2'
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING

from qmk.defaults import FORMATS
from qmk.frontends.errors import FrontendError
from qmk.qvm.limits import Limits

if TYPE_CHECKING:
    from qmk.qvm.graph import Graph
    from qmk.qvm.verify import VerifiedProgram

_BY_SUFFIX = {
    ".json": "qvm-json",
    ".asm": "qvm-asm",
    ".qasm": "qasm",
    ".qasm2": "qasm2",
    ".qasm3": "qasm3",
    ".ll": "qir",
    ".bc": "qir",
    ".stim": "stim",
}


def format_of(path: str) -> str:
    """The format of ``path`` by its extension (``qasm`` means: read the header).

    Raises:
        FrontendError: QL108 unknown-format for an extension QMK does not know.
    """
    if path == "-":
        return "qvm-json"
    suffix = Path(path).suffix.lower()
    if suffix in _BY_SUFFIX:
        return _BY_SUFFIX[suffix]
    raise FrontendError.of(
        "unknown-format",
        f"{path}: cannot tell the format from the extension {suffix or '(none)'!r}; pass "
        f"--format ({', '.join(FORMATS)})",
        source=path,
    )


def read_program(
    path: str | os.PathLike[str],
    *,
    format: str | None = None,
    profile: str | None = None,
    limits: Limits | None = None,
    params: Mapping[str, float] | None = None,
    folded: bool = False,
) -> Graph:
    """Read the program in ``path`` as a QVM graph, lowering OpenQASM and QIR.

    Args:
        path: the file (``-`` is QVM JSON on stdin).
        format: one of :data:`FORMATS`; None picks it from the extension.
        profile: the code profile of qubits a front-end allocates (None: the
            runner's default, ``logical:surface_code(d=9)``). QVM files keep theirs.
        limits: size limits for QVM files.
        params: values of an OpenQASM 3 program's ``input`` declarations, by name
            (``qmk run --input NAME=VALUE``); other formats take none.
        folded: a stim circuit as the stim target runs it, REPEAT blocks kept folded,
            noise and annotations as rows (:func:`qmk.frontends.stim_fold.read_folded`),
            rather than lowered to gates for the other targets.

    Raises:
        FrontendError: an unknown format, an unreadable file, or a source the
            front-end cannot lower (exit 2). FormatError: a malformed QVM file.
    """
    from qmk.qvm.files import read_graph

    name = os.fspath(path)
    if format is not None and format not in FORMATS:
        raise FrontendError.of(
            "unknown-format", f"unknown format {format!r} (known: {', '.join(FORMATS)})"
        )
    kind = format or format_of(name)
    if params and kind not in ("qasm", "qasm3"):
        raise FrontendError.of(
            "unsupported",
            f"{name}: input values are for OpenQASM 3 programs' input declarations, "
            f"not {kind} files",
            source=name,
        )
    if kind in ("qvm-json", "qvm-asm") and (kind == "qvm-asm") == name.endswith(".asm"):
        return read_graph(name, limits=limits)
    from qmk.frontends.text import lower_text

    source = read_bytes(name) if kind in ("qir", "qvm-json") else read_text(name)
    return lower_text(
        source,
        kind,
        name,
        limits=limits,
        params=params,
        base_dir=Path(name).parent,
        profile=profile,
        folded=folded,
    )


def read_bytes(path: str) -> bytes:
    """The bytes of the file ``path``.

    Raises:
        FrontendError: ``QL105`` a file that cannot be read.
    """
    try:
        return Path(path).read_bytes()
    except OSError as exc:
        raise FrontendError.of(
            "unreadable", f"{path}: cannot read: {exc.strerror or exc}", source=path
        ) from None


def read_text(path: str) -> str:
    """The UTF-8 text of the file ``path``.

    Raises:
        FrontendError: ``QL105`` a file that cannot be read or is not UTF-8.
    """
    try:
        return read_bytes(path).decode("utf-8")
    except UnicodeDecodeError as exc:
        raise FrontendError.of(
            "unreadable", f"{path}: not UTF-8 text (byte {exc.start})", source=path
        ) from None


def to_qasm3(program: Graph | VerifiedProgram) -> str:
    """The program as OpenQASM 3 text (:func:`qmk.frontends.qasm3_out.to_qasm3`).

    >>> print(to_qasm3(read_program("examples/bell.qasm")).splitlines()[7])
    h q[0];
    """
    from qmk.frontends.qasm3_out import to_qasm3 as write

    return write(program)


__all__ = [
    "FORMATS",
    "FrontendError",
    "format_of",
    "read_bytes",
    "read_program",
    "read_text",
    "to_qasm3",
]
