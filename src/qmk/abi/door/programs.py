"""Program text at the door: read once the session is known, off the event loop, within
the graph cap, its CPU charged to the tenant.

A wire that takes a program as text (REST's ``POST /v1/jobs``, gRPC's ``Submit``, the
assistant's tools) hands the door a :class:`ProgramText`: the text and its language (a
name of :data:`qmk.defaults.PROGRAM_FORMATS`; the wire tells it from its field or
the text). The door reads it in a thread (:meth:`qmk.abi.door.Door.call`) with
:func:`read`: QVM JSON text is decoded as a JSON-RPC line is (strict JSON within
``max_depth``; the kernel verifies the graph), other text is lowered by its front-end
within ``max_nodes`` (``kernel.max_graph_nodes``): text of more statements or lines is
refused before it is parsed, and an OpenQASM 3 loop before it is unrolled
(``QS1006`` with ``limit: "max_graph_nodes"``). Lowered text is handed on as its
compact JSON text (:class:`~qmk.qvm.graph.GraphText`), written in the thread.

>>> text = 'OPENQASM 2.0;\\ninclude "qelib1.inc";\\nqreg q[1];\\nh q[0];'
>>> graph = read(ProgramText(text, "qasm"), max_nodes=10, max_depth=64)
>>> graph["version"], graph.nodes
('0.2', 3)
>>> read(ProgramText('{"version": "0.2"}', "qvm-json"), max_nodes=10, max_depth=64)
{'version': '0.2'}
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from qmk.abi.errors import InvalidParams
from qmk.abi.jsonrpc import decode
from qmk.defaults import PROGRAM_FORMATS
from qmk.qvm.graph import GraphText, free_in_pieces

#: The param a program's text replaces: the kernel's submit takes a graph.
GRAPH_PARAM = "graph"


@dataclass(frozen=True, slots=True)
class ProgramText:
    """A program as a wire received it, not yet read.

    Attributes:
        text: the program's text.
        format: its language, a name of :data:`~qmk.defaults.PROGRAM_FORMATS`
            (``qvm-json``: QVM JSON text).
        field: the name the wire gave the program (in errors).

    Raises:
        InvalidParams: ``format`` is not a language QMK reads.
    """

    text: str
    format: str
    field: str = "program"

    def __post_init__(self) -> None:
        if self.format not in PROGRAM_FORMATS:
            raise InvalidParams(
                f"format must be one of {', '.join(PROGRAM_FORMATS)}, got {self.format!r}",
                param="format",
            )


def read(program: ProgramText, *, max_nodes: int, max_depth: int, target: str | None = None) -> Any:
    """The graph ``program`` stands for, as the kernel's submit takes it (run it in a
    thread: it is the CPU work a tenant is charged for). A stim circuit for the ``stim``
    target is its own data (``{"stim": TEXT}``), which the target reads as a folded QVM
    program and verifies: its ``REPEAT`` blocks are never unrolled here.

    Raises:
        ParseError, InvalidRequest: QVM JSON text that is not JSON, or nests too deep.
        InvalidParams: QVM JSON text that is not an object.
        FrontendError, AsmError, FormatError: other text that does not lower.
        QuotaError: past ``max_nodes`` (``limit: "max_graph_nodes"``).
    """
    if program.format == "stim" and target == "stim":
        return {"stim": program.text}
    if program.format == "qvm-json":
        graph = decode(program.text.encode("utf-8"), max_depth=max_depth)
        if not isinstance(graph, dict):
            raise InvalidParams("a qvm-json program must be a JSON object", param=program.field)
        return graph
    # the front-ends load here, at the first text of another language: a kernel whose
    # programs come as QVM JSON (every JSON-RPC submit) never loads them
    from qmk.frontends.text import lower_text

    lowered = lower_text(program.text, program.format, program.field, max_nodes=max_nodes)
    # its compact text, written here a piece at a time: the JSON of a big graph is never
    # whole (its objects freed in one call would hold the interpreter), and never on the
    # event loop (docs/door.md)
    text = GraphText.of_graph(lowered)
    # the graph's nodes freed in pieces too (its tuple, freed whole, holds it as long)
    nodes = list(lowered.nodes)
    del lowered
    free_in_pieces(nodes)
    return text


__all__ = ["GRAPH_PARAM", "ProgramText", "read"]
