"""Attestation: what a completed job ran, per epoch, chained into the audit log; and replay.

When a job completes, the kernel appends one ``attest`` line to the audit log (so it is
hash-chained and signed like every other line). It records everything needed to run the
job again and the digest of what it gave:

- the run's inputs: the SHA-256 of the graph text it ran, shots, seed, the engine asked for
  and the one used, the noise flag, qubit parameter set, default profile, noise model and
  calibration (values, not names of files), and the changes the fault policies made to the
  submitted program (``rewrite``, :mod:`qmk.kernel.faults`; null when none);
- one record per epoch of the program (the nodes between fences): how many nodes, the ops
  it applies by name, the capabilities they need, and the logical qubits it allocates;
- the SHA-256 of the result's counts (canonical JSON, keys sorted).

:func:`replay` runs the job again from its stored graph and its ``attest`` line and says
whether the counts are the same. The executor is deterministic for a seed, so a mismatch
means the record, the graph or the executor changed.

>>> digest_counts({"11": 3, "00": 5}) == digest_counts({"00": 5, "11": 3})
True
"""

from __future__ import annotations

import hashlib
import json
from collections import Counter
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from qmk.qvm.ops import OPS

#: The audit event of an attestation line.
ATTEST_EVENT = "attest"


def sha256_text(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()


def digest_counts(counts: Mapping[str, int]) -> str:
    """SHA-256 of ``counts`` as canonical JSON (sorted keys, no spaces)."""
    return sha256_text(json.dumps(dict(counts), sort_keys=True, separators=(",", ":")))


def epoch_records(program: Any) -> list[dict[str, Any]]:
    """One record per epoch of a verified program: nodes, ops by name, caps, allocations."""
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


def attestation(spec: Mapping[str, Any], result: Mapping[str, Any], program: Any) -> dict[str, Any]:
    """The fields of a completed job's ``attest`` audit line (see the module docstring)."""
    return {
        "graph_sha256": sha256_text(spec["graph"]),
        "shots": spec["shots"],
        "seed": spec["seed"],
        "engine_requested": spec.get("engine"),
        "engine": result.get("engine"),
        "noise": spec["noise"],
        # a name, or the custom parameters a calibration ingest gave (QRE's JSON form)
        "qubit": spec["qubit"] if isinstance(spec["qubit"], str) else spec["qubit"].to_json(),
        "profile": spec["profile"],
        "noise_model": spec.get("noise_model"),
        "calibration": spec.get("calibration"),
        # what the fault policies changed in the program (qmk.kernel.faults.Rewrite)
        "rewrite": spec.get("rewrite"),
        "epochs": epoch_records(program),
        # a stored result carries the digest its worker took (no parse of the counts here)
        "result_sha256": getattr(result, "counts_sha256", None) or digest_counts(result["counts"]),
    }


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


def find_attestation(data_dir: str | Path, job_id: str) -> dict[str, Any] | None:
    """The last ``attest`` line of ``job_id`` in the data directory's audit log, or None."""
    from qmk.kernel.audit import AUDIT_FILE

    found = None
    with open(Path(data_dir) / AUDIT_FILE, encoding="utf-8") as handle:
        for line in handle:
            if f'"{job_id}"' not in line:
                continue
            record = json.loads(line)
            if record.get("event") == ATTEST_EVENT and record.get("job_id") == job_id:
                found = record
    return found


def replay(graph_text: str, record: Mapping[str, Any], job_id: str) -> Replay:
    """Run the job of ``record`` again on ``graph_text`` and compare the counts' digests."""
    from qmk.execution.executor import run
    from qmk.kernel.faults import Rewrite
    from qmk.kernel.programs import verified
    from qmk.qec.logical import Calibration
    from qmk.qec.noise import parse_noise_model
    from qmk.qec.params import QubitParams

    epochs = len(record.get("epochs", ()))
    graph_text = Rewrite.from_json(record.get("rewrite")).apply(graph_text)
    if sha256_text(graph_text) != record["graph_sha256"]:
        return Replay(
            job_id=job_id,
            same=False,
            shots=record["shots"],
            epochs=epochs,
            recorded=record["graph_sha256"],
            replayed=sha256_text(graph_text),
            reason="the stored graph is not the one the job ran (graph_sha256 differs)",
        )
    noise: Any = record["noise"]
    if noise and record.get("noise_model"):
        noise = parse_noise_model(record["noise_model"])
    calibration = record.get("calibration")
    result = run(
        verified(graph_text),
        shots=record["shots"],
        seed=record["seed"],
        engine=record.get("engine_requested"),
        noise=noise,
        qubit=record["qubit"]
        if isinstance(record["qubit"], str)
        else QubitParams.from_json(record["qubit"]),
        profile=record["profile"],
        calibration=None if calibration is None else Calibration.from_json(calibration),
        require_calibration=False,
    )
    digest = digest_counts(result.counts)
    same = digest == record["result_sha256"]
    return Replay(
        job_id=job_id,
        same=same,
        shots=record["shots"],
        epochs=epochs,
        recorded=record["result_sha256"],
        replayed=digest,
        reason="" if same else "the replayed counts differ from the recorded ones",
    )


__all__ = [
    "ATTEST_EVENT",
    "Replay",
    "attestation",
    "digest_counts",
    "epoch_records",
    "find_attestation",
    "replay",
]
