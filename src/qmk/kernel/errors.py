"""Errors of the kernel itself, with ``QK`` codes: a configuration it cannot use, and the
ends of jobs that stopped without a result.

A :class:`ConfigError` or :class:`DataDirError` is raised (``qmk serve`` exits 2). A
:class:`JobError` is not raised in the kernel: it is the ``error`` member a job ends with
(``{code, name, message}``), and ``qmk wait`` exits 1 for it. This module registers the
``QK`` family in :data:`qmk.errors.REGISTRY`; ``docs/errors.md`` lists it.

>>> error_json(JobError.of("timeout", "the job ran past its timeout of 2 s"))
{'code': 'QK301', 'name': 'timeout', 'message': 'the job ran past its timeout of 2 s'}
>>> str(ConfigError("machine.physical_qubits is missing", key="machine.physical_qubits"))
'QK101 bad-config: machine.physical_qubits is missing'
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from qmk.errors import REGISTRY, ErrorCode, QMKError, Severity, register


class KernelError(QMKError):
    """Base of the kernel's own errors (its refusals of requests are ``SyscallError``)."""


class ConfigError(KernelError):
    """A kernel configuration that cannot be used; the message names the key (exit 2)."""

    exit_status = 2
    fixed_code = True

    def __init__(self, message: str, **details: Any) -> None:
        entry = REGISTRY.named(ConfigError, "bad-config")
        super().__init__(entry.code, entry.name, message, details=details)


class DataDirError(KernelError):
    """A data directory the kernel cannot open: in use, damaged or unusable (exit 2)."""

    exit_status = 2


class OperationsError(KernelError):
    """What the kernel's operations report: billing webhooks that were not delivered,
    tenant keys kept in plain text (the usage records and secrets of docs/billing.md)."""

    exit_status = 1


class JobError(KernelError):
    """Why a job ended without a result: its ``error`` member (``qmk wait`` exits 1)."""

    exit_status = 1


class ExposureError(KernelError):
    """A start that would expose the kernel: a Dask cluster without TLS, or files of the
    data directory that others may read or write (exit 2)."""

    exit_status = 2


class MachineError(KernelError):
    """What the machine scheduler refuses: a job no placement on the floorplan can ever
    hold, or whose error budget no schedule meets (exit 1; docs/machine.md)."""

    exit_status = 1


class WorkloadError(MachineError):
    """A machine workload that cannot be read: a missing file, bad text, a bad key (exit
    2, as every unreadable input)."""

    exit_status = 2


def error_json(error: QMKError) -> dict[str, str]:
    """A job's ``error`` member: ``{code, name, message}`` of ``error``."""
    return {"code": error.code, "name": error.name, "message": error.message}


register(
    ConfigError,
    (
        "QK101",
        "bad-config",
        "a key of the kernel's configuration is bad, missing or unknown",
        "fix the key the message names (docs/kernel.md lists every key)",
    ),
)
register(
    DataDirError,
    (
        "QK102",
        "data-dir-locked",
        "another kernel holds the data directory",
        "stop the other kernel (its pid is in the message), or use another directory",
    ),
    (
        "QK103",
        "data-dir-damaged",
        "the data directory's database, audit log or secret is missing, cut or corrupt",
        "restore the directory from a backup, or start with --recover to accept the loss "
        "(the audit log records it)",
    ),
    (
        "QK104",
        "data-dir-unusable",
        "the data directory cannot be created, read or written",
        "pass a directory the kernel's user may create and write",
    ),
    (
        "QK105",
        "data-dir-outdated",
        "the data directory was written by an older kernel, in a format this one does not read",
        "bring it forward once with qmk admin migrate DATA_DIR (no kernel may hold it)",
    ),
)
register(
    JobError,
    (
        "QK201",
        "memory-limit",
        "the job needed more memory than its worker may use",
        "use fewer live qubits or the stabilizer engine, or raise kernel.worker_memory_mb",
    ),
    (
        "QK202",
        "worker-failed",
        "the job's worker process died or raised",
        "see the message and the kernel's log; report a program that crashes its worker",
    ),
    (
        "QK301",
        "timeout",
        "the job ran past its timeout",
        "give the job a longer policy timeout_ms, or raise kernel.job_timeout_s",
    ),
    (
        "QK302",
        "deadline",
        "the job's deadline passed before it finished",
        "give a later deadline, or submit when the machine is less busy",
    ),
    (
        "QK303",
        "cancelled",
        "the job was cancelled by its tenant",
        "nothing to do; submit it again to run it",
    ),
    (
        "QK304",
        "link-degraded",
        "the link's Bell pairs could not be purified to the fidelity the job's channels need",
        "lower the channel's fidelity, or raise faults.max_purification_rounds "
        "(docs/kernel.md, Failure handling)",
    ),
    (
        "QK305",
        "result-too-large",
        "the job's result is bigger than the kernel keeps for one job",
        "run fewer shots or measure fewer bits, or raise kernel.max_result_mb",
    ),
    (
        "QK306",
        "result-expired",
        "the job's result was deleted: results are kept kernel.result_keep_s after the end",
        "fetch results before they expire, or run the job again (q_replay: same seed, same counts)",
    ),
    (
        "QK307",
        "result-storage-quota",
        "storing the job's result would take the tenant past its max_result_storage_mb",
        "wait for older results to expire (kernel.result_keep_s), or ask for a larger "
        "max_result_storage_mb",
    ),
)

register(
    JobError,
    (
        "QK308",
        "result-tampered",
        "the stored result does not match the digest the kernel sealed when it stored it",
        "restore kernel.db from a backup, or run the job again (q_replay: same seed, same "
        "counts); qmk audit verify names every such job",
    ),
    (
        "QK309",
        "checkpoint-tampered",
        "a checkpoint file does not carry the kernel's seal: edited, or not the kernel's",
        "restore the job from another checkpoint, or run it again from its start",
    ),
    (
        "QK310",
        "program-tampered",
        "a job's stored program does not match the seal the kernel wrote when it stored it "
        "(edited or swapped in kernel.db, or a packed text past its sealed size): it is not run",
        "restore kernel.db from a backup, or submit the program again; qmk audit verify names "
        "every such job",
    ),
)
register(
    JobError,
    (
        "QK312",
        "worker-lost",
        "the job's worker was lost (its pool's server or node went away) more times than "
        "kernel.worker_lost_retries allows",
        "see the pool's log (the Dask bridge's, or its cluster's) for why its workers die; "
        "submit the job again, or raise kernel.worker_lost_retries",
    ),
)
REGISTRY.add(
    ErrorCode(
        code="QK311",
        name="placed-not-run",
        summary="the job was admitted and is placed on the shared machine by its program's "
        "folded totals, but the program unrolls past kernel.max_unrolled_nodes: its "
        "worker, which applies operations one at a time, will end it with QV505 "
        "unrolled-too-large once its machine schedule ends",
        fix="for its resources alone, read its footprint and machine record, or run qmk "
        "estimate; to run it, lower the REPEAT counts or raise kernel.max_unrolled_nodes "
        "within the workers' memory (kernel.worker_memory_mb)",
        exception=JobError,
        severity=Severity.WARNING,
    )
)
register(
    ExposureError,
    (
        "QK120",
        "insecure-dask",
        "the Dask scheduler's address is not tls://: anyone who reaches it runs code in "
        "the kernel's workers",
        "use a tls:// scheduler with --dask-tls-*, --dask local:N (TLS of its own), or pass "
        "--dask-insecure to accept the exposure",
    ),
    (
        "QK121",
        "lax-permissions",
        "a file or folder of the data directory may be read or written by other users",
        "chmod it 0600 (folders 0700), or start once with qmk serve --repair-perms",
    ),
)
register(
    OperationsError,
    (
        "QK401",
        "webhook-undelivered",
        "a billing webhook was refused or unreachable at every attempt: it is a dead letter",
        "fix the receiver ([billing] webhook_url), then qmk billing replay its usage ids",
    ),
)
REGISTRY.add(
    ErrorCode(
        code="QK402",
        name="plaintext-key",
        summary="a tenant's key is written in the configuration in plain text",
        fix="store its scrypt hash (qmk tenant hash-key) as key_hash, or read it from "
        "key_file or key_env (a Kubernetes Secret, a Vault agent)",
        exception=OperationsError,
        severity=Severity.WARNING,
    )
)

register(
    WorkloadError,
    (
        "QK502",
        "bad-workload",
        "a machine workload file is unreadable, or a key of it is bad, missing or unknown",
        "fix the key the message names (docs/machine.md shows the workload form)",
    ),
)
register(
    MachineError,
    (
        "QK501",
        "unplaceable",
        "no placement on the machine can ever hold the job: more tiles than any module (or "
        "its tenant's region) has, or T states or Bell pairs the machine has no factory or "
        "link for",
        "raise [machine] physical_qubits to the number the message names (the least whose "
        "floorplan holds the job in one module), or give modules factories or links, use a "
        "smaller block ([machine] block), or split the program (the message names the job; "
        "a kernel refuses it at submit as QS1007 with this code)",
    ),
    (
        "QK503",
        "bad-machine",
        "the [machine] table describes no machine the scheduler can run: a code with no "
        "patches, factories that do not fit a module, or none the estimator can build",
        "give the machine more physical qubits or fewer factories, or a surface or floquet "
        "code profile (docs/machine.md)",
    ),
    (
        "QK505",
        "over-budget",
        "the job's idle logical error passes its error budget even alone on the empty "
        "machine, and no schedule can meet it; the message names the resource its run "
        "alone waits on most (details.binds: factory, routing, link or decoder)",
        "raise the job's error_budget (qmk submit --error-budget, q_submit's policy, "
        "SET_POLICY, the workload) or [machine] error_budget, or give the machine more of "
        "what binds: faster factories ([machine.factory] protocol, copies; [machine] "
        "factory_share), more bus lanes ([machine] routing_lanes, routing_segments), "
        "faster links ([machine.links] bell_pairs_per_cycle) or a faster decoder "
        "([machine] decoder_bits_per_cycle); or a larger code distance ([machine] profile), "
        "whose idle cycles cost less",
    ),
)

REGISTRY.add(
    ErrorCode(
        code="QK504",
        name="deprecated-decoder-key",
        summary="[faults] decoder_capacity_bits_per_s is the old name of the machine's one "
        "decoder: it is read as [machine] decoder_bits_per_cycle (times the logical cycle "
        "time), in qmk serve and qmk machine alike",
        fix="write [machine] decoder_bits_per_cycle (syndrome bits a logical cycle) instead",
        exception=MachineError,
        severity=Severity.WARNING,
    )
)

#: Every QK code, by code.
CODES: Mapping[str, ErrorCode] = REGISTRY.family("QK")
