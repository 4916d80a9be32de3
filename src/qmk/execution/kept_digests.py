"""A verified program's digest, found once while the program is kept: an in-process run's.

A run request names its program by :func:`~qmk.execution.request.program_digest` of its
QVM JSON text. The kernel digests the text a job was submitted as. A run in process
(``qmk run``, :func:`qmk.execution.runs.build_request`, the executor saving or resuming
a state) holds a verified program instead, and writes its text only to digest it: this
module does that once per program object.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from qmk.execution.request import program_digest
from qmk.memo import Memo

#: Verified programs whose digest is kept (:func:`digest_of`): a loop that runs one
#: program object (a parameter sweep's, a benchmark's) writes its JSON once, not every
#: run (at 1,000 qubits and depth 100 the text takes a sixth of a second).
KEPT_DIGESTS = 64
_PROGRAM_DIGESTS: Memo[str] = Memo(KEPT_DIGESTS)


def digest_of(program: Any) -> str:
    """The digest of a verified program
    (:attr:`~qmk.execution.request.RunRequest.program_digest`), found once while the
    program is kept (it is frozen): hashed as its text is written from the columns of
    one verified on them (:meth:`qmk.qvm.columns.Columns.digest`), or of
    :func:`canonical_text_of` its graph."""
    found: str = _PROGRAM_DIGESTS.get(id(program), program, lambda: _digest(program))
    return found


def _digest(program: Any) -> str:
    columns = getattr(program, "columns", None)
    if columns is not None:
        digest: str = columns.digest()
        return digest
    return program_digest(canonical_text_of(program))


def canonical_text_of(program: Any) -> str:
    """The JSON text a run request digests: a verified program's QVM JSON
    (:func:`~qmk.qvm.sorted_text.canonical_graph_text`; of its folded graph where it has
    REPEAT rows), or the data of a program that is no QVM graph
    (:func:`~qmk.qvm.sorted_text.canonical_text`: json's sorted compact text, written by
    msgspec where that is the same text)."""
    from qmk.qvm.sorted_text import canonical_graph_text, canonical_text

    if isinstance(program, Mapping):
        return canonical_text(program)
    folded = getattr(program, "folded", None)
    return canonical_graph_text(program.graph if folded is None else folded)


__all__ = ["KEPT_DIGESTS", "canonical_text_of", "digest_of"]
