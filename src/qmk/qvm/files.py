"""Reading a program file: QVM JSON, or assembly text for ``*.asm``; ``-`` is stdin.

>>> read_graph("examples/bell.qvm.asm").resources.events
('m0', 'm1')
"""

from __future__ import annotations

import sys

from qmk.qvm import graph as graph_io
from qmk.qvm import graph_file
from qmk.qvm.graph import Graph
from qmk.qvm.limits import Limits

#: File name endings read as assembly text.
ASM_SUFFIXES = (".asm",)


def read_graph(path: str, *, limits: Limits | None = None) -> Graph:
    """Read a graph from ``path``: assembly text for ``*.asm``, JSON otherwise, ``-`` for stdin.

    Raises:
        FormatError: the file cannot be read, or is not a well-formed graph.
    """
    from qmk.qvm import asm

    if path == "-":
        data = sys.stdin.buffer.read()
        return graph_io.loads(data, source="<stdin>", limits=limits)
    if path.endswith(ASM_SUFFIXES):
        return asm.assemble_file(path, limits=limits)
    return graph_file.load(path, limits=limits)
