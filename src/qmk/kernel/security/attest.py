"""Attestation: what a completed job ran, per epoch, chained into the audit log; and replay.

When a job completes, its ``COMPLETED`` line in the audit log (a ``job`` line, so it is
hash-chained and signed like every other line) carries its attestation. It records
everything needed to run the job again and the digest of what it gave:

- the run's inputs: the fields of its run request
  (:class:`~qmk.execution.request.RunRequest`, as the worker ran it): the SHA-256 of the
  submitted graph text (``program_digest``), shots, seed, the engine asked for
  (``engine_requested``), the noise flag, qubit parameter set, default profile, noise
  model and calibration (values, not names of files), the changes the fault policies made
  to the program (``rewrite``, :mod:`qmk.kernel.admit.faults`; null when none) and the policy;
- ``engine``: the engine that ran it;
- one record per epoch of the program (the nodes between fences): how many nodes, the ops
  it applies by name, the capabilities they need, and the logical qubits it allocates;
- the SHA-256 of the result's counts (canonical JSON, keys sorted);
- ``cache_hit``: whether the result is a stored one of an earlier run of the same
  request (:mod:`qmk.kernel.admit.cache`), and then ``cached_from``, that run's job. The
  request is the job's own either way, so replay runs it and compares.

An attestation may also stand on an ``attest`` line of its own, with the same fields
(its ``job_id`` and ``tenant`` too). Older kernels wrote one just before the job's
``COMPLETED`` line, and ``qmk admin migrate`` appends one for each it brings forward.
The audit log is append-only and hash-chained, so those lines stay as written, and
every reader of attestations reads both forms: ``attests`` knows a line of either
(``find_attestation``, ``qmk audit verify``, the traces, the live events, the
console). The kernel writes the attestation on the ``COMPLETED`` line: the same facts
in one signed record, without a second line's encoding, hash and fan-out.

Reading them back (``attests``, ``find_attestation``, ``replay``) is
:mod:`qmk.kernel.security.replay`, which the command line loads, not the kernel.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass
from typing import Any

import msgspec

from qmk.execution.request import RunRequest
from qmk.kernel.records.stored import StoredResult, digest_counts
from qmk.memo import Memo
from qmk.qvm.ops import OPS

#: The audit event of an attestation line of its own (an older kernel's, or one ``qmk
#: admin migrate`` wrote); the kernel's is on the job's COMPLETED line (:func:`attests`).
ATTEST_EVENT = "attest"
#: The fields of an attest line that are its run request's (their JSON names).
REQUEST_FIELDS: tuple[str, ...] = tuple(f.encode_name for f in msgspec.structs.fields(RunRequest))


#: The epoch records of the programs run last (a kernel runs the same few programs often).
_RECORDS: Memo[list[dict[str, Any]]] = Memo(64)


def epoch_records(program: Any) -> list[dict[str, Any]]:
    """One record per epoch of a verified program: nodes, ops by name, caps, allocations.

    Kept per program object (the verified-program cache hands the same one to every job
    of a text): the records are read, never changed, by the attest lines that hold them.
    """
    return _RECORDS.get(id(program), program, lambda: _epoch_records(program))


def _epoch_records(program: Any) -> list[dict[str, Any]]:
    nodes = program.graph.nodes
    records = []
    for epoch in program.epochs:
        ops: Counter[str] = Counter(nodes[i].op for i in epoch.nodes)
        caps = sorted({cap for op in ops if (cap := OPS[op].cap) is not None})
        allocated = sum(len(nodes[i].vqs) for i in epoch.nodes if nodes[i].op == "ALLOC_LQ")
        records.append(
            {
                "epoch": epoch.index,
                "nodes": len(epoch.nodes),
                "ops": dict(sorted(ops.items())),
                "caps": caps,
                "allocated_qubits": allocated,
            }
        )
    return records


@dataclass(frozen=True, slots=True)
class Attested:
    """A completed job's attestation as its COMPLETED line holds it: the fields of
    ``request`` (its run request, as the worker ran it), then ``rest`` (``engine``,
    ``epochs``, ``result_sha256``, ``cache_hit`` and maybe ``cached_from``, a dict of
    its own). The line is encoded from the request itself
    (:meth:`~qmk.kernel.storage.audit.AuditLog.append_run`), which is made plain data
    only for a reader of the record (:meth:`to_json`)."""

    request: RunRequest
    rest: dict[str, Any]

    def to_json(self) -> dict[str, Any]:
        """The attestation's fields as plain data, in the line's order."""
        fields = self.request.to_json()  # a dict of its own: filled in place, not copied
        fields.update(self.rest)
        return fields


def attested(
    request: RunRequest,
    result: StoredResult,
    program: Any,
    *,
    cached_from: str | None = None,
) -> Attested:
    """A completed job's attestation (see the module docstring): ``request`` as its
    worker ran it, the engine that ran it, ``program``'s epochs (the verified program as
    submitted; the request's rewrite says what the kernel changed), the digest of
    ``result``'s counts, and whether the result came from the result cache
    (``cache_hit``; ``cached_from``: the job that ran, :mod:`qmk.kernel.admit.cache`)."""
    rest = {
        "engine": result.facts.engine,  # (its head not decoded for it)
        "epochs": epoch_records(program),
        # a stored result carries the digest its worker took (no parse of the counts here)
        "result_sha256": result.counts_sha256 or digest_counts(result["counts"]),
        "cache_hit": cached_from is not None,
    }
    if cached_from is not None:
        rest["cached_from"] = cached_from
    return Attested(request, rest)


__all__ = [
    "ATTEST_EVENT",
    "REQUEST_FIELDS",
    "Attested",
    "attested",
    "epoch_records",
]
