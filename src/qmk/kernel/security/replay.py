"""Attestations read back (:mod:`qmk.kernel.security.attest` writes them): which audit
lines hold one (:func:`attests`), the last of a job (:func:`find_attestation`), its run
request (:func:`request_of`), and :func:`replay`, which runs the job again from its
stored graph and its attestation and says whether the counts are the same. The executor
is deterministic for a seed, so a mismatch means the record, the graph or the executor
changed. ``qmk audit replay`` and the tests use these; the kernel process does not.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import msgspec

from qmk.errors import InvalidArgument
from qmk.execution.request import RunRequest, program_digest
from qmk.execution.rewritten import rewritten
from qmk.kernel.datafiles import AUDIT_FILE
from qmk.kernel.records.programs import verified
from qmk.kernel.records.stored import digest_counts
from qmk.kernel.security.attest import ATTEST_EVENT, REQUEST_FIELDS


def request_of(record: Mapping[str, Any]) -> RunRequest:
    """The run request an ``attest`` line records.

    Raises:
        InvalidArgument: the line holds no run request (the message names the key); a
            line of a kernel from before run requests (``graph_sha256``) says to bring
            the data directory forward (``qmk admin migrate``, :mod:`qmk.kernel.storage.migrate`,
            which writes a line of today's form after it).
    """
    if "program_digest" not in record and "graph_sha256" in record:
        raise InvalidArgument(
            f"the attest line of job {record.get('job_id')} (seq {record.get('seq')}) is an "
            "older kernel's, without its run request: run qmk admin migrate on the data "
            "directory, which writes one of today's form after it",
            key="program_digest",
        )
    return RunRequest.from_json({k: record[k] for k in REQUEST_FIELDS if k in record})


@dataclass(frozen=True, slots=True, kw_only=True)
class Replay:
    """What :func:`replay` found."""

    job_id: str
    same: bool
    shots: int
    epochs: int
    recorded: str
    replayed: str
    reason: str = ""


def attests(record: Mapping[str, Any]) -> bool:
    """Whether the audit record ``record`` holds a job's attestation: a COMPLETED ``job``
    line that carries one (its ``result_sha256``), or an ``attest`` line of its own (an
    older kernel's, or one ``qmk admin migrate`` wrote).

    >>> attests({"event": "job", "state": "COMPLETED", "result_sha256": "ab"})
    True
    >>> attests({"event": "job", "state": "COMPLETED"})  # a device job: no attestation
    False
    >>> attests({"event": "attest", "result_sha256": "ab"})
    True
    """
    event = record.get("event")
    if event == "job":
        return record.get("state") == "COMPLETED" and "result_sha256" in record
    return event == ATTEST_EVENT


def find_attestation(data_dir: str | Path, job_id: str) -> dict[str, Any] | None:
    """The last attestation of ``job_id`` in the data directory's audit log (its record:
    :func:`attests`), or None."""
    found = None
    with open(Path(data_dir) / AUDIT_FILE, encoding="utf-8") as handle:
        for line in handle:
            if f'"{job_id}"' not in line:
                continue
            record = json.loads(line)
            if record.get("job_id") == job_id and attests(record):
                found = record
    return found


def replay(graph_text: str, record: Mapping[str, Any], job_id: str) -> Replay:
    """Run the job of ``record`` again on ``graph_text`` and compare the counts' digests:
    its run request, as recorded, compiled and run by its target, as a worker runs it."""
    from qmk.execution import targets

    epochs = len(record.get("epochs", ()))
    request = request_of(record)
    ran = rewritten(graph_text, request.rewrite)
    digest = program_digest(graph_text)
    if digest != request.program_digest:
        return Replay(
            job_id=job_id,
            same=False,
            shots=request.shots,
            epochs=epochs,
            recorded=request.program_digest,
            replayed=digest,
            reason="the stored graph is not the one the job ran (its graph_sha256 differs "
            "from the attested program_digest)",
        )
    plain = msgspec.structs.replace(request, trace_context=None, checkpoint_every_ops=0)
    target = targets.get(plain.target)
    program = verified(ran) if targets.spec(plain.target).program == "qvm" else target.read(ran)
    result = target.compile(program, plain).run(plain.shots, plain.seed)
    counts = digest_counts(result.counts)
    same = counts == record["result_sha256"]
    return Replay(
        job_id=job_id,
        same=same,
        shots=request.shots,
        epochs=epochs,
        recorded=record["result_sha256"],
        replayed=counts,
        reason="" if same else "the replayed counts differ from the recorded ones",
    )


__all__ = ["Replay", "attests", "find_attestation", "replay", "request_of"]
