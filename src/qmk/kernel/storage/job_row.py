"""A ``jobs`` row as the store reads it, and the size a program's seal binds: what the
store and its rarer reads (:mod:`qmk.kernel.storage.job_reads`) both name."""

from __future__ import annotations

import msgspec


class JobRow(msgspec.Struct, array_like=True, frozen=True):
    """A ``jobs`` row as the store reads it, column by name (:data:`JOB_COLUMNS` are
    these fields, in this order): ``JobRow(*row)`` of a ``SELECT`` of them."""

    job_id: str
    tenant: str
    seq: int
    state: str
    #: The graph's text; '' for one kept apart (:data:`GRAPH_APART`), read from
    #: ``graph_texts`` beside the row (:data:`_JOB_SELECT`).
    graph: str
    shots: int
    seed: int
    policy: str
    caps: str
    required_caps: str
    physical_qubits: int
    qubits: str
    created_at: float
    started_at: float | None
    finished_at: float | None
    #: The result's JSON as its bytes (``CAST(result AS BLOB)``), or None.
    result: bytes | None
    error: str | None
    attempts: int
    preemptions: int
    epoch: int
    checkpoint_id: str | None
    result_meta: str | None
    result_expired_at: float | None
    request: str
    cache_key: str | None
    cached_from: str | None
    result_seal: str | None
    #: The seal of its program (:func:`~qmk.kernel.security.seals.program_seal`): its
    #: size in bytes and the HMAC that binds its text to the job; None without a key.
    program_seal: str | None


JOB_COLUMNS = ", ".join(JobRow.__struct_fields__)


def text_bytes(text: str) -> int:
    """The size of ``text`` in UTF-8 (an ASCII text's length: no encoding).

    >>> text_bytes("abc"), text_bytes("é")
    (3, 2)
    """
    return len(text) if text.isascii() else len(text.encode("utf-8"))


__all__ = ["JOB_COLUMNS", "JobRow", "text_bytes"]
