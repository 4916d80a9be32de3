"""A job's program as a REST client sends it: QVM JSON, or the text of another language.

``POST /v1/jobs`` takes ``program`` and an optional ``format``:

========== ========================================= ===============================
format     program                                   lowered by
========== ========================================= ===============================
qvm-json   a JSON object (the default for objects)   nothing: it is the graph
qvm-asm    QVM assembly text (no ``.include``)        :func:`qmk.qvm.asm.assemble`
qasm2      OpenQASM 2 text                           :func:`qmk.frontends.qasm.from_qasm`
qasm3      OpenQASM 3 text                           :func:`qmk.frontends.qasm.from_qasm`
qasm       OpenQASM text, version from its header     :func:`qmk.frontends.qasm.from_qasm`
qir        QIR as LLVM IR text                       :func:`qmk.frontends.qir.from_qir`
========== ========================================= ===============================

Text with no ``format`` is read as OpenQASM when it starts with an ``OPENQASM`` header
(after comments); otherwise the format must be given. The formats are those of
:data:`qmk.frontends.text.PROGRAM_FORMATS`, so ``qmk run --format`` and the REST API
read the same languages. A program that does not lower is the front-end's own error
(``QL``/``QA``/``QF``: 422), never a silent fallback.

>>> graph, fmt = to_graph("OPENQASM 2.0;\\ninclude \\"qelib1.inc\\";\\nqreg q[1];\\nh q[0];", None)
>>> fmt, graph["version"]
('qasm', '0.2')
"""

from __future__ import annotations

from typing import Any

from qmk.abi.door import ProgramText
from qmk.abi.errors import InvalidParams
from qmk.frontends.text import PROGRAM_FORMATS, lower_text, sniff


def program_of(program: Any, format: str | None) -> dict[str, Any] | ProgramText:
    """What a REST client's ``program`` and ``format`` stand for, read no further: a
    QVM JSON object as it is, or text to hand the door (:class:`~qmk.abi.door.
    ProgramText`, read once the session is known, off the event loop).

    >>> program_of({"version": "0.2"}, None)
    {'version': '0.2'}
    >>> program_of("OPENQASM 3.0;", None).format
    'qasm'

    Raises:
        InvalidParams: ``format`` is unknown, does not fit the program's JSON type, or
            text without it is not OpenQASM.
    """
    if format is not None and format not in PROGRAM_FORMATS:
        raise InvalidParams(
            f"format must be one of {', '.join(PROGRAM_FORMATS)}, got {format!r}", param="format"
        )
    if isinstance(program, dict):
        if format not in (None, "qvm-json"):
            raise InvalidParams(
                f"program is a JSON object (QVM JSON); format {format!r} takes text",
                param="format",
            )
        return program
    if not isinstance(program, str):
        raise InvalidParams(
            "program must be QVM JSON (an object) or program text (a string)", param="program"
        )
    if format is None:
        if sniff(program) != "qasm":
            raise InvalidParams(
                "program text needs format (one of "
                f"{', '.join(f for f in PROGRAM_FORMATS if f != 'qvm-json')}); only "
                "OpenQASM is recognised by its header",
                param="format",
            )
        format = "qasm"
    return ProgramText(program, format)


def to_graph(
    program: Any, format: str | None, max_nodes: int | None = None
) -> tuple[dict[str, Any], str]:
    """The QVM graph (JSON) of ``program`` in ``format``, and the format it was read as,
    read here and now (in-process callers: a workflow's job; the REST API hands text to
    the door instead, :func:`program_of`).

    ``max_nodes`` caps the graph of program text before it is built
    (:func:`qmk.frontends.text.lower_text`); the kernel checks a QVM JSON object's.

    Raises:
        InvalidParams: ``format`` is unknown, or does not fit the program's JSON type.
        FrontendError, AsmError, FormatError: the text does not lower.
        QuotaError: the text would lower to more than ``max_nodes`` nodes.
    """
    found = program_of(program, format)
    if isinstance(found, dict):
        return found, "qvm-json"
    text = lower_text(found.text, found.format, "program", max_nodes=max_nodes)
    return text.to_json(), found.format
