"""The kernel's configuration: the machine, kernel settings and tenants, from TOML.

:func:`load_config` reads a file, :func:`config_from_dict` the same data already parsed.
The file's schema is :class:`ConfigFile`: each table is a frozen ``msgspec.Struct`` that
states its keys' types, ranges and choices and refuses unknown keys, read through
:func:`qmk.values.convert`; what one table cannot say (a module index against
``machine.modules``, a profile that parses, a calibration file that loads) is checked
after it. ``qmk schema --kind config`` prints the JSON Schema (shipped as
``config.schema.json`` next to this module, :data:`SCHEMA_PATH`). Every bad, missing or
unknown key is a :class:`ConfigError` whose one-line message names the key
(``QK101 bad-config``, exit 2).

>>> cfg = config_from_dict({
...     "machine": {"physical_qubits": 100_000},
...     "tenants": {"alice": {"key": "secret-a", "caps": ["CAP_ALLOC"]}},
... })
>>> cfg.machine.profile, cfg.tenants["alice"].max_concurrent_jobs, cfg.epoch_ms
('logical:surface_code(d=9)', 4, 10)
>>> try:
...     config_from_dict({"machine": {"physical_qubits": -1}})
... except ConfigError as exc:
...     print(exc)
QK101 bad-config: machine.physical_qubits: Expected `int` >= 1
>>> try:
...     config_from_dict({"machine": {}})
... except ConfigError as exc:
...     print(exc, exc.details)
QK101 bad-config: machine.physical_qubits is missing {'key': 'machine.physical_qubits'}
"""

from __future__ import annotations

import json
import os
import re
import sys
from collections.abc import Mapping
from pathlib import Path
from types import MappingProxyType
from typing import TYPE_CHECKING, Annotated, Any, Literal

import msgspec
from msgspec import Meta

from qmk import defaults, values
from qmk.errors import QMKError
from qmk.kernel.device import FaultSchedule
from qmk.kernel.errors import ConfigError
from qmk.kernel.records.usage import UNITS as USAGE_UNITS
from qmk.qvm.limits import DEFAULT_MAX_UNROLLED_NODES as DEFAULT_MAX_UNROLLED_OPS
from qmk.qvm.ops import CAPABILITIES

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover - exercised on 3.10 only
    import tomli as tomllib

#: The shipped JSON Schema of the file (package data; ``qmk schema --kind config --write``).
SCHEMA_PATH = Path(__file__).with_name("config.schema.json")

#: Defaults of the ``[kernel]`` table (from :mod:`qmk.defaults`).
DEFAULT_SESSION_TTL_S = defaults.SESSION_TTL_S
DEFAULT_JOB_TIMEOUT_S = defaults.JOB_TIMEOUT_S
DEFAULT_WORKER_MEMORY_MB = defaults.WORKER_MEMORY_MB
DEFAULT_WORKER_CPU_S = defaults.WORKER_CPU_S
DEFAULT_WORKER_FILE_MB = defaults.WORKER_FILE_MB
DEFAULT_WORKER_USER = defaults.WORKER_USER
DEFAULT_EPOCH_MS = defaults.EPOCH_MS
DEFAULT_PREEMPT_GAP = defaults.PREEMPT_GAP
DEFAULT_WORKER_LOST_RETRIES = defaults.WORKER_LOST_RETRIES
DEFAULT_ROLLBACK_GAP = defaults.ROLLBACK_GAP
DEFAULT_CHECKPOINTS_PER_JOB = defaults.CHECKPOINTS_PER_JOB
DEFAULT_CHECKPOINT_KEEP_S = defaults.CHECKPOINT_KEEP_S
DEFAULT_CHANNEL_PROPOSAL_TTL_S = defaults.CHANNEL_PROPOSAL_TTL_S
DEFAULT_MAX_DELEGATION_S = defaults.MAX_DELEGATION_S
DEFAULT_DELEGATION_KEEP_S = defaults.DELEGATION_KEEP_S
DEFAULT_MIN_FREE_DISK_MB = defaults.MIN_FREE_DISK_MB
DEFAULT_MAX_GRAPH_NODES = defaults.MAX_GRAPH_NODES
DEFAULT_MAX_UNROLLED_NODES = DEFAULT_MAX_UNROLLED_OPS
DEFAULT_MAX_RESULT_MB = defaults.MAX_RESULT_MB
DEFAULT_RESULT_KEEP_S = defaults.RESULT_KEEP_S
DEFAULT_MAX_RESULT_STORAGE_MB = defaults.MAX_RESULT_STORAGE_MB

#: Defaults of the ``[machine]`` table (the executor's own defaults).
DEFAULT_PROFILE = defaults.PROFILE
DEFAULT_QUBIT = defaults.QUBIT

#: A tenant's name: 1-64 letters, digits, '-' or '_', at least one a letter or digit.
TENANT_NAME = r"^[\w-]*[^\W_][\w-]*$"

if TYPE_CHECKING:
    Capability = str
    NoiseFamily = str
else:  # the capabilities of the op table, the noise models' names: the schema's choices
    Capability = Literal[tuple(CAPABILITIES)]
    NoiseFamily = Literal[defaults.NOISE_MODEL_NAMES]

_NO_FAULTS = FaultSchedule()

#: A non-empty string.
_Text = Annotated[str, Meta(min_length=1)]


def _error(message: str, key: str) -> ConfigError:
    """A :class:`ConfigError` naming the key: a missing key itself (``x.y is missing``),
    a list's item by the list's key (the message keeps the index)."""
    missing = _MISSING.fullmatch(message)
    if missing is not None:
        key = f"{key}.{missing['field']}" if key else missing["field"]
        return ConfigError(f"{key} is missing", key=key)
    return ConfigError(message, key=_INDEX.sub("", key))


_MISSING = re.compile(r"(?:.*: )?Object missing required field `(?P<field>[^`]+)`")
_INDEX = re.compile(r"\[\d+\]$")


class _Table(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """A table of the file: frozen, keyword-only, no keys but its own."""


# --------------------------------------------------------------------------- [machine]

if TYPE_CHECKING:
    MachinePolicy = str
else:  # the scheduler's policies: the schema's choices
    MachinePolicy = Literal[defaults.MACHINE_POLICIES]


if TYPE_CHECKING:
    FactoryProtocol = str
else:  # the factory protocols (qmk.kernel.machine.factories.PROTOCOLS): the schema's choices
    FactoryProtocol = Literal[defaults.FACTORY_PROTOCOLS]


class FactoryTable(_Table, frozen=True, kw_only=True):
    """The [machine.factory] table: each module's T factories. A key left out is its
    protocol's (docs/machine.md: the estimator's least-volume distillation factory whose
    output error is at most a patch's logical error per cycle, Litinski's 15-to-1, or
    magic-state cultivation)."""

    protocol: Annotated[
        FactoryProtocol | None,
        Meta(
            description="the factories' protocol and its published figures: estimator "
            "(default), litinski-15to1 or cultivation",
        ),
    ] = None
    copies: Annotated[
        Annotated[int, Meta(ge=0)] | None,
        Meta(description="factory copies per module (default: machine.factory_share of it)"),
    ] = None
    states_per_run: Annotated[
        Annotated[float, Meta(gt=0)] | None,
        Meta(description="T states one run of one copy delivers on average"),
    ] = None
    duration_cycles: Annotated[
        Annotated[int, Meta(ge=1)] | None, Meta(description="logical cycles one run takes")
    ] = None
    tiles: Annotated[
        Annotated[int, Meta(ge=1)] | None, Meta(description="tiles one copy covers")
    ] = None
    output_error_rate: Annotated[
        Annotated[float, Meta(gt=0, lt=1)] | None,
        Meta(description="a delivered state's error probability"),
    ] = None
    store: Annotated[
        Annotated[int, Meta(ge=0)] | None,
        Meta(
            description="T states a module's store holds (default: one run of all its copies)",
        ),
    ] = None


class LinksTable(_Table, frozen=True, kw_only=True):
    """The [machine.links] table: the links between modules (one pool all jobs share).
    A key left out is read from [faults] (link_latency_ns, link_fidelity)."""

    bell_pairs_per_cycle: Annotated[
        Annotated[float, Meta(gt=0)] | None,
        Meta(description="Bell pairs the links deliver per logical cycle, in all"),
    ] = None
    fidelity: Annotated[
        Annotated[float, Meta(ge=0.25, le=1)] | None,
        Meta(description="Werner fidelity of a delivered pair"),
    ] = None
    latency_cycles: Annotated[
        Annotated[int, Meta(ge=0)] | None, Meta(description="logical cycles a pair takes to arrive")
    ] = None


class _Machine(_Table, frozen=True, kw_only=True):
    physical_qubits: Annotated[int, Meta(ge=1, description="the machine's physical qubits")]
    modules: Annotated[
        int,
        Meta(ge=1, description="modules the physical qubits are split into (a job runs on one)"),
    ] = 1
    profile: Annotated[
        str, Meta(min_length=1, description="the code profile of jobs that name none")
    ] = DEFAULT_PROFILE
    qubit: Annotated[
        str, Meta(min_length=1, description="the qubit parameter set of jobs that name none")
    ] = DEFAULT_QUBIT
    noise_model: Annotated[
        _Text | None,
        Meta(
            description="physical error rates in place of the qubit's (qmk.qec.noise text, "
            "e.g. depolarizing(p=1e-3))"
        ),
    ] = None
    job_noise_models: Annotated[
        tuple[NoiseFamily, ...],
        Meta(
            description="the noise-model families a job's policy.noise_model may use "
            "([]: jobs run with the machine's noise model only)"
        ),
    ] = defaults.NOISE_MODEL_NAMES
    job_max_error_rate: Annotated[
        float,
        Meta(
            gt=0,
            le=1,
            description="the highest physical error rate (the QEC formula's p) a job's "
            "policy.noise_model may give its qubits (1: no limit)",
        ),
    ] = 1.0
    job_calibration: Annotated[
        bool,
        Meta(
            description="whether a job's policy may give its own calibration "
            "(qmk qec calibrate's fit) in place of the machine's"
        ),
    ] = True
    # the machine in machine time (docs/machine.md): its floorplan and its scheduler
    block: Annotated[
        Literal["compact", "intermediate", "fast"],
        Meta(description="the block layout jobs' patches and routing are counted in"),
    ] = "fast"
    epoch_cycles: Annotated[
        int,
        Meta(ge=1, description="logical cycles of an epoch: the scheduler decides at its ends"),
    ] = defaults.EPOCH_CYCLES
    policy: Annotated[
        MachinePolicy, Meta(description="the machine scheduler's policy (docs/machine.md)")
    ] = defaults.MACHINE_POLICY
    factory_share: Annotated[
        float,
        Meta(
            ge=0,
            lt=1,
            description="the share of each module's physical qubits given to T factories "
            "when machine.factory.copies is not set (at least one copy where it takes at "
            "most half the module; 0: none)",
        ),
    ] = 0.25
    storage_tiles: Annotated[
        int, Meta(ge=0, description="storage tiles per module, where preempted patches wait")
    ] = 0
    storage_move_cycles: Annotated[
        int, Meta(ge=0, description="logical cycles a move into or out of storage takes")
    ] = 1
    fence_cycles: Annotated[
        int,
        Meta(
            ge=1,
            description="the most logical cycles a job runs without a fence, where the "
            "machine may preempt it: the kernel adds fences to longer stretches",
        ),
    ] = defaults.FENCE_CYCLES
    routing_lanes: Annotated[
        Annotated[int, Meta(ge=1)] | None,
        Meta(
            description="T states per logical cycle a module's routing bus carries from "
            "its factories to the jobs (default: one per bus tile)",
        ),
    ] = None
    routing_segments: Annotated[
        Annotated[int, Meta(ge=1)] | None,
        Meta(
            description="stretches a module's routing bus is cut into, each shared by the "
            "jobs beside it (default: one per bus tile, at most routing_lanes)",
        ),
    ] = None
    error_budget: Annotated[
        Annotated[float, Meta(gt=0, le=1)] | None,
        Meta(
            description="the whole logical error (its own at its placement, and what "
            "waiting adds) a job on the shared machine may end with at most, where its "
            "submit and its program name none",
        ),
    ] = defaults.ERROR_BUDGET
    decoder_bits_per_cycle: Annotated[
        Annotated[float, Meta(gt=0)] | None,
        Meta(
            description="syndrome bits per logical cycle the machine's decoders keep up with, "
            "shared by every job on the machine (default: the deprecated "
            "faults.decoder_capacity_bits_per_s times the logical cycle time, else no limit)",
        ),
    ] = None
    cycles_per_s: Annotated[
        Annotated[float, Meta(gt=0)] | None,
        Meta(
            description="the machine clock's rate: logical cycles of machine time a second "
            "from the kernel's start; a job's arrival is stamped with it (default: real "
            "time, one second over the logical cycle time)",
        ),
    ] = None
    factory: FactoryTable = msgspec.field(default_factory=FactoryTable)
    links: LinksTable = msgspec.field(default_factory=LinksTable)

    def __post_init__(self) -> None:
        if self.modules > self.physical_qubits:
            raise ConfigError(
                f"machine.modules ({self.modules}) must not exceed machine.physical_qubits "
                f"({self.physical_qubits})",
                key="machine.modules",
            )


class MachineTable(_Machine, frozen=True, kw_only=True):
    """The [machine] table as written (its calibration is a file's path)."""

    calibration: Annotated[
        _Text | None,
        Meta(
            description="a JSON file of qmk qec calibrate: its fitted (a, p*) serve the "
            "profiles of its family and instruction set"
        ),
    ] = None


class MachineConfig(_Machine, frozen=True, kw_only=True):
    """The machine the kernel runs: its physical-qubit inventory and defaults."""

    #: A fitted (a, p*) from ``qmk qec calibrate`` (read and checked from the file
    #: ``calibration`` names), used for the profiles of its family and instruction set:
    #: its JSON (:meth:`~qmk.qec.values.Calibration.to_json`), as a run request holds it.
    calibration: dict[str, Any] | None = None


# --------------------------------------------------------------------------- [kernel]


class KernelTable(_Table, frozen=True, kw_only=True):
    """The [kernel] table: the service's limits and clocks."""

    session_ttl_s: Annotated[float, Meta(gt=0, description="lifetime of a session token (s)")] = (
        DEFAULT_SESSION_TTL_S
    )
    job_timeout_s: Annotated[
        float, Meta(gt=0, description="a job's run-time limit when its policy names none (s)")
    ] = DEFAULT_JOB_TIMEOUT_S
    worker_memory_mb: Annotated[
        int, Meta(ge=64, description="address-space cap of each worker process (MiB)")
    ] = DEFAULT_WORKER_MEMORY_MB
    worker_cpu_s: Annotated[
        int, Meta(ge=1, description="CPU seconds one job may use in its worker (RLIMIT_CPU)")
    ] = DEFAULT_WORKER_CPU_S
    worker_file_mb: Annotated[
        Annotated[int, Meta(ge=1)] | None,
        Meta(
            description="the largest file a worker may write (MiB, RLIMIT_FSIZE); "
            "absent: worker_memory_mb"
        ),
    ] = DEFAULT_WORKER_FILE_MB
    worker_user: Annotated[
        _Text | Annotated[int, Meta(ge=0)],
        Meta(description="the user (name or uid) workers run as when the kernel runs as root"),
    ] = DEFAULT_WORKER_USER
    worker_lost_retries: Annotated[
        int,
        Meta(
            ge=0,
            le=1000,
            description="times a job whose worker was lost (its pool's server or node went "
            "away) is queued again to resume from its checkpoint; the next loss fails it "
            "(QK312)",
        ),
    ] = DEFAULT_WORKER_LOST_RETRIES
    epoch_ms: Annotated[
        int,
        Meta(ge=1, description="the scheduler's tick (deadlines, timeouts, preemption, ms)"),
    ] = DEFAULT_EPOCH_MS
    preempt_gap: Annotated[
        int,
        Meta(
            ge=0,
            description="a queued job preempts a running one whose priority is at least this "
            "much lower (0: no preemption)",
        ),
    ] = DEFAULT_PREEMPT_GAP
    rollback_gap: Annotated[
        int,
        Meta(
            ge=0,
            description="a preemption by a job at least this much more urgent stops its victim "
            "at once, rolling back its open REV segment, instead of at its next fence",
        ),
    ] = DEFAULT_ROLLBACK_GAP
    checkpoints_per_job: Annotated[
        int,
        Meta(ge=1, description="execution states a job keeps; one more deletes the oldest"),
    ] = DEFAULT_CHECKPOINTS_PER_JOB
    checkpoint_keep_s: Annotated[
        float, Meta(gt=0, description="how long a job's execution states outlive it (s)")
    ] = DEFAULT_CHECKPOINT_KEEP_S
    channel_proposal_ttl_s: Annotated[
        float, Meta(gt=0, description="how long a channel proposal waits to be accepted (s)")
    ] = DEFAULT_CHANNEL_PROPOSAL_TTL_S
    max_delegation_s: Annotated[
        float,
        Meta(
            gt=0,
            description="the longest a capability delegation (q_delegate_caps) may last (s)",
        ),
    ] = DEFAULT_MAX_DELEGATION_S
    delegation_keep_s: Annotated[
        float,
        Meta(
            gt=0,
            description="how long an ended (revoked or expired) delegation is kept and listed "
            "before it is deleted (s; the audit log keeps its story)",
        ),
    ] = DEFAULT_DELEGATION_KEEP_S
    min_free_disk_mb: Annotated[
        int,
        Meta(
            ge=0,
            description="free space the data directory's disk keeps for the kernel's own "
            "writes: submits, logins and delegations are refused below it, and the database's "
            "log keeps clear of it (MiB; 0: no reserve)",
        ),
    ] = DEFAULT_MIN_FREE_DISK_MB
    max_graph_nodes: Annotated[
        int,
        Meta(
            ge=1,
            description="the most rows one submitted graph may store (REPEAT rows and "
            "their bodies' rows counted once: its folded size)",
        ),
    ] = DEFAULT_MAX_GRAPH_NODES
    max_unrolled_nodes: Annotated[
        int,
        Meta(
            ge=1,
            description="the most nodes a worker unrolls one program's REPEAT rows to, to "
            "run it a gate at a time; a program past it is admitted by its folded totals "
            "and its job ends QV505 unrolled-too-large in the worker",
        ),
    ] = DEFAULT_MAX_UNROLLED_NODES
    max_result_mb: Annotated[
        float,
        Meta(gt=0, description="the largest result (JSON) kept for one job; a bigger one FAILs"),
    ] = DEFAULT_MAX_RESULT_MB
    result_keep_s: Annotated[
        float,
        Meta(
            gt=0,
            description="how long a job's result outlives the job (s; then deleted, the job "
            "marked QK306 result-expired)",
        ),
    ] = DEFAULT_RESULT_KEEP_S
    synchronous: Annotated[
        Literal["normal", "full"],
        Meta(
            description="SQLite's synchronous pragma: normal survives a crash of the kernel, "
            "full also power loss (slower)"
        ),
    ] = defaults.SYNCHRONOUS
    artifact_keep_s: Annotated[
        float,
        Meta(
            gt=0,
            description="how long a device job's artifacts (streamed measurements, pulse "
            "logs, snapshots) are kept after they are stored (s)",
        ),
    ] = 86400.0

    # --------------------------------------------------------------------------- [tenants.NAME]

    @property
    def max_result_bytes(self) -> int:
        """``max_result_mb`` in bytes: the largest result kept for one job, which a
        worker holds a result to and admission a stim job's least result."""
        return int(self.max_result_mb * 2**20)


class TenantQuota(_Table, frozen=True, kw_only=True):
    """A tenant's quotas (what q_resource_query shows it)."""

    max_logical_qubits: Annotated[int, Meta(ge=1)] = 64
    max_concurrent_jobs: Annotated[int, Meta(ge=1)] = 4
    max_queued_jobs: Annotated[int, Meta(ge=1)] = 100
    max_channels: Annotated[int, Meta(ge=0)] = 2
    max_priority: Annotated[
        int,
        Meta(
            ge=0,
            le=9,
            description="the highest priority its jobs may ask for (priorities order a "
            "tenant's own jobs); a job that asks for none runs at the default, 5, or at "
            "this when it is lower",
        ),
    ] = 9
    max_atoms: Annotated[
        int, Meta(ge=1, description="the most atoms one neutral-atom device job allocates")
    ] = 256
    machine_share: Annotated[
        float,
        Meta(
            gt=0,
            description="the tenant's weight on the shared machine: its share of the tiles "
            "under fair-share and partition, and of Jain's index (docs/machine.md)",
        ),
    ] = 1.0
    max_job_operations: Annotated[
        int,
        Meta(
            ge=1,
            description="the most operations one job runs: its program's unrolled "
            "operations (a stim circuit's REPEAT blocks as often as they repeat) x its "
            "shots; past it a submit is QS1006",
        ),
    ] = defaults.MAX_JOB_OPERATIONS
    max_device_time_s: Annotated[
        float,
        Meta(
            gt=0,
            description="the most device time one neutral-atom job takes (its scheduled "
            "program time x its shots, s)",
        ),
    ] = 60.0
    max_result_storage_mb: Annotated[
        float,
        Meta(
            gt=0,
            description="results (MiB) the kernel stores for it at once; a job whose result "
            "would pass it FAILs with QK307 result-storage-quota",
        ),
    ] = DEFAULT_MAX_RESULT_STORAGE_MB
    verify_nodes_per_s: Annotated[
        float,
        Meta(
            gt=0,
            description="graph nodes its submits may have verified per second, on average; "
            "past it a submit is QS1006",
        ),
    ] = defaults.VERIFY_NODES_PER_S
    max_artifact_storage_mb: Annotated[
        float,
        Meta(
            gt=0,
            description="device-job artifacts (MiB) the kernel stores for it at once; an "
            "artifact past it is not stored, and a job asking for streams is refused "
            "(QS1006) while they fill it",
        ),
    ] = 64.0
    cpu_s_per_s: Annotated[
        float,
        Meta(
            gt=0,
            description="CPU seconds a second its program work (reading, verifying and "
            "planning submits, replays and restores; lowering REST program text) may take, "
            "on average; past it such a request is QS1006 with retry_after_s",
        ),
    ] = defaults.CPU_S_PER_S
    cpu_burst_s: Annotated[
        float,
        Meta(gt=0, description="CPU seconds its program work may take at once after a rest"),
    ] = defaults.CPU_BURST_S

    def quota(self) -> dict[str, int | float]:
        """The quotas as plain JSON."""
        return {name: getattr(self, name) for name in TenantQuota.__struct_fields__}

    @property
    def default_priority(self) -> int:
        """The priority of a job that asks for none: the kernel's default
        (:data:`qmk.defaults.PRIORITY`), within ``max_priority``, so that a plain submit
        is never refused for a priority it did not ask for."""
        return min(defaults.PRIORITY, self.max_priority)


class TenantTable(TenantQuota, frozen=True, kw_only=True):
    """A [tenants.NAME] table: the tenant's shared key, capabilities and quotas.

    The key is one of ``key_hash``, ``key_file``, ``key_env`` or ``key`` (plain text,
    read with the warning QK402; docs/secrets.md)."""

    key: Annotated[
        _Text | None,
        Meta(description="the tenant's shared secret in plain text (warns QK402; prefer key_hash)"),
    ] = None
    key_hash: Annotated[
        _Text | None,
        Meta(description="the scrypt hash of the tenant's key (qmk tenant hash-key)"),
    ] = None
    key_file: Annotated[
        _Text | None,
        Meta(
            description="a file holding the key or its hash (a mounted Kubernetes Secret, "
            "a Vault agent's file)"
        ),
    ] = None
    key_env: Annotated[
        _Text | None,
        Meta(description="an environment variable holding the key or its hash"),
    ] = None
    caps: tuple[Capability, ...] = ()
    operator: Annotated[
        bool,
        Meta(description="may ingest calibrations and qubit parameters (q_calibrate)"),
    ] = False


class TenantConfig(TenantTable, frozen=True, kw_only=True):
    """One tenant: its name, shared key, the capabilities it may hold, and its quotas.

    ``stored_key`` is what a given key is checked against (:mod:`qmk.kernel.security.keys`): a
    scrypt hash, or the key itself where it was configured in plain text or a file or
    variable holds it so."""

    name: str
    stored_key: str = ""

    def __rich_repr__(self) -> Any:
        # The key stays out of every repr (logs, tracebacks).
        for name in self.__struct_fields__:
            if name not in ("key", "stored_key"):
                yield name, getattr(self, name)

    def __repr__(self) -> str:
        fields = ", ".join(f"{name}={value!r}" for name, value in self.__rich_repr__())
        return f"TenantConfig({fields})"


# --------------------------------------------------------------------------- [faults]


class ModuleFailure(_Table, frozen=True, kw_only=True):
    """One module's failure: the module fails at the epoch."""

    module: Annotated[int, Meta(ge=0, description="the module (0 .. machine.modules - 1)")]
    epoch: Annotated[int, Meta(ge=1)]


class FaultsTable(_Table, frozen=True, kw_only=True):
    """The [faults] table: faults injected into the machine (see kernel.device.FaultSchedule)."""

    drift_per_epoch: Annotated[float, Meta(ge=0, le=1e6)] = _NO_FAULTS.drift_per_epoch
    drift_start_epoch: Annotated[int, Meta(ge=0)] = _NO_FAULTS.drift_start_epoch
    link_fidelity: Annotated[float, Meta(ge=0.25, le=1)] = _NO_FAULTS.link_fidelity
    link_drop_per_epoch: Annotated[float, Meta(ge=0, le=1)] = _NO_FAULTS.link_drop_per_epoch
    link_latency_ns: Annotated[
        float,
        Meta(ge=0, le=1e12, description="time the link takes to deliver one Bell pair (ns)"),
    ] = _NO_FAULTS.link_latency_ns
    link_target: Annotated[float, Meta(ge=0.5, le=1)] = _NO_FAULTS.link_target
    max_purification_rounds: Annotated[int, Meta(ge=0)] = _NO_FAULTS.max_purification_rounds
    module_failures: tuple[ModuleFailure, ...] = ()
    decoder_capacity_bits_per_s: Annotated[
        Annotated[float, Meta(gt=0)] | None,
        Meta(
            description="deprecated (QK504): the machine's decoder, read as machine."
            "decoder_bits_per_cycle = this times the logical cycle time",
        ),
    ] = None
    distance_budget: Annotated[int, Meta(ge=0)] = _NO_FAULTS.distance_budget
    drift_fence_cycles: Annotated[int, Meta(ge=0)] = _NO_FAULTS.drift_fence_cycles
    local_decomposition: bool = _NO_FAULTS.local_decomposition

    def schedule(self) -> FaultSchedule:
        """The fault schedule this table describes."""
        known = {name: getattr(self, name) for name in self.__struct_fields__}
        known["module_failures"] = tuple((f.module, f.epoch) for f in self.module_failures)
        known["decoder_capacity"] = known.pop("decoder_capacity_bits_per_s")
        return FaultSchedule(**known)


class AssistTable(_Table, frozen=True, kw_only=True):
    """The [assist] table: the assistant behind ``q_assist`` and ``POST /v1/assist``
    (docs/assistant.md). With no ``url`` and ``model`` no network call is made: the
    kernel answers with QMK's deterministic advice."""

    enabled: Annotated[
        bool, Meta(description="false: the operator turned the assistant off (QS1011)")
    ] = True
    url: Annotated[str, Meta(min_length=1, max_length=2048)] | None = None
    model: Annotated[str, Meta(min_length=1, max_length=256)] | None = None
    api: Literal["openai", "ollama"] = "openai"
    structured: bool = False
    calls_per_minute: Annotated[
        float, Meta(gt=0, le=6000, description="per tenant (QS1006 with retry_after_s)")
    ] = defaults.ASSIST_CALLS_PER_MINUTE
    max_steps: Annotated[int, Meta(ge=1, le=50)] = defaults.ASSIST_MAX_STEPS
    max_retries: Annotated[int, Meta(ge=0, le=10)] = defaults.ASSIST_MAX_RETRIES
    max_shots: Annotated[int, Meta(ge=1, le=100_000, description="the run tool's cap")] = (
        defaults.ASSIST_MAX_SHOTS
    )
    timeout_s: Annotated[
        float,
        Meta(gt=0, le=3600, description="a model request's limit, and a run tool's job's"),
    ] = defaults.ASSIST_TIMEOUT_S
    max_concurrent: Annotated[
        int,
        Meta(
            ge=1,
            le=256,
            description="questions answered at once (one thread each; QS1011 past it); a "
            "tenant may have half of them",
        ),
    ] = defaults.ASSIST_MAX_CONCURRENT


# --------------------------------------------------------------------------- [http]


class HttpTable(_Table, frozen=True, kw_only=True):
    """The [http] table: how ``/metrics`` labels tenants (its scraper is a tenant holding
    ``CAP_OBSERVE``), and which Host names the HTTP API answers (``qmk serve --http``;
    docs/http.md, Exposure)."""

    metrics_tenants: Annotated[
        Literal["names", "hashed"] | None,
        Meta(
            description="tenant labels of /metrics (read by a tenant holding CAP_OBSERVE): "
            "their names, or a keyed hash of each (default: names)"
        ),
    ] = None
    allowed_hosts: Annotated[
        tuple[Annotated[str, Meta(min_length=1, max_length=253)], ...],
        Meta(
            description="Host names (and addresses) the HTTP API answers besides the "
            "loopback names and the --http host as written; others get 421 (GET /healthz "
            "excepted)"
        ),
    ] = ()


# --------------------------------------------------------------------------- [billing]

#: ``[billing.prices]``: a unit price (in ``billing.currency``) per usage quantity, one
#: key per field of :class:`qmk.kernel.records.usage.Usage` (0: not invoiced).
PriceTable: Any = msgspec.defstruct(
    "PriceTable",
    [
        (name, Annotated[float, Meta(ge=0, description=f"price of one {unit}")], 0.0)
        for name, unit in USAGE_UNITS.items()
    ],
    bases=(_Table,),
    module=__name__,
    frozen=True,
    kw_only=True,
    forbid_unknown_fields=True,
)


class BillingTable(_Table, frozen=True, kw_only=True):
    """The [billing] table: the price table of invoices, and the webhook that hears of
    every job's end (docs/billing.md)."""

    currency: Annotated[
        str, Meta(pattern=r"^[A-Z]{3}$", description="the prices' currency (ISO 4217 code)")
    ] = "USD"
    prices: PriceTable = msgspec.field(default_factory=PriceTable)
    webhook_url: Annotated[
        Annotated[str, Meta(pattern=r"^https?://[^\s/?#]+[^\s]*$", max_length=2048)] | None,
        Meta(description="POSTed a JSON record of each job's usage when the job ends"),
    ] = None
    webhook_secret: Annotated[
        _Text | None,
        Meta(description="the key of the X-QMK-Signature HMAC (plain text)"),
    ] = None
    webhook_secret_file: Annotated[
        _Text | None, Meta(description="a file holding webhook_secret")
    ] = None
    webhook_secret_env: Annotated[
        _Text | None, Meta(description="an environment variable holding webhook_secret")
    ] = None
    webhook_timeout_s: Annotated[
        float, Meta(gt=0, le=600, description="how long one delivery may take (s)")
    ] = 10.0
    webhook_attempts: Annotated[
        int,
        Meta(ge=1, le=100, description="deliveries tried before a record is a dead letter"),
    ] = 12
    webhook_backoff_s: Annotated[
        float,
        Meta(
            gt=0,
            le=3600,
            description="the wait after the first failed delivery (s); doubled after each",
        ),
    ] = 1.0
    webhook_backoff_max_s: Annotated[
        float, Meta(gt=0, description="the longest wait between two deliveries (s)")
    ] = 600.0
    webhook_concurrency: Annotated[
        int,
        Meta(
            ge=1,
            le=64,
            description="deliveries in flight at once (each its own connection; a slow "
            "receiver holds one of them, not the others)",
        ),
    ] = 8


# --------------------------------------------------------------------------- the file


class ConfigFile(_Table, frozen=True, kw_only=True):
    """A kernel.toml as written: its tables."""

    machine: MachineTable
    kernel: KernelTable = msgspec.field(default_factory=KernelTable)
    tenants: dict[
        Annotated[str, Meta(min_length=1, max_length=64, pattern=TENANT_NAME)], TenantTable
    ] = {}
    faults: FaultsTable = msgspec.field(default_factory=FaultsTable)
    assist: AssistTable = msgspec.field(default_factory=AssistTable)
    server: Annotated[
        dict[str, Any],
        Meta(description="the wire's limits, checked when qmk serve starts (docs/kernel.md)"),
    ] = {}
    http: HttpTable = msgspec.field(default_factory=HttpTable)
    billing: BillingTable = msgspec.field(default_factory=BillingTable)


class KernelConfig(KernelTable, frozen=True, kw_only=True):
    """Everything a kernel needs to know before it opens its data directory.

    It holds the ``[kernel]`` table's settings (:class:`KernelTable`, by their keys:
    ``config.epoch_ms``) and:

    Attributes:
        machine: the machine's inventory and defaults.
        tenants: tenant name -> its configuration.
        faults: the faults injected into the simulated machine (``[faults]``; none).
        assist: the assistant (``[assist]``).
        server: the ``[server]`` table as written: the wire's limits, which
            ``qmk.abi.server.ServerConfig.from_table`` checks when ``qmk serve`` starts.
        http: the ``[http]`` table: ``/metrics``' token and labels, allowed Host names.
    """

    machine: MachineConfig
    tenants: Mapping[str, TenantConfig] = {}
    faults: FaultSchedule = msgspec.field(default_factory=FaultSchedule)
    assist: AssistTable = msgspec.field(default_factory=AssistTable)
    server: Mapping[str, Any] = {}
    http: HttpTable = msgspec.field(default_factory=HttpTable)
    #: The ``[billing]`` table, its webhook secret read from its file or variable.
    billing: BillingTable = msgspec.field(default_factory=BillingTable)

    def __post_init__(self) -> None:
        msgspec.structs.force_setattr(self, "tenants", MappingProxyType(dict(self.tenants)))
        msgspec.structs.force_setattr(self, "server", MappingProxyType(dict(self.server)))


def _tenant(name: str, table: Any) -> TenantConfig:
    where = f"tenants.{name}"
    if len(name) > 64 or re.fullmatch(TENANT_NAME, name) is None:
        raise ConfigError(f"{where}: a tenant name is 1-64 letters, digits, '-' or '_'", key=where)
    read: TenantTable = values.convert(table, TenantTable, where=where, error=_error)
    fields = {field: getattr(read, field) for field in TenantTable.__struct_fields__}
    return TenantConfig(
        **{**fields, "caps": tuple(dict.fromkeys(read.caps))},
        name=name,
        stored_key=_stored_key(read, where),
    )


_KEY_SOURCES = ("key_hash", "key_file", "key_env", "key")


def _stored_key(table: TenantTable, where: str) -> str:
    """The key or hash a tenant's table gives, read from its file or variable.

    Raises:
        ConfigError: none or more than one of the sources, a hash that is none, an
            unreadable file, an unset variable, or an empty key.
    """
    from qmk.kernel.security.keys import is_hash

    given = [source for source in _KEY_SOURCES if getattr(table, source) is not None]
    if not given:
        raise ConfigError(
            f"{where}.key is missing (or key_hash, key_file, key_env)", key=f"{where}.key"
        )
    if len(given) > 1:
        raise ConfigError(
            f"{where} takes one of {', '.join(_KEY_SOURCES)}, not {' and '.join(given)}",
            key=f"{where}.{given[-1]}",
        )
    source = given[0]
    key = f"{where}.{source}"
    value = getattr(table, source)
    if source == "key_file":
        try:
            value = Path(value).read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError) as exc:
            reason = exc.strerror if isinstance(exc, OSError) else "not UTF-8 text"
            raise ConfigError(f"{key}: cannot read {value}: {reason}", key=key) from None
        value = value.strip("\r\n")
    elif source == "key_env":
        if value not in os.environ:
            raise ConfigError(f"{key}: the environment variable {value} is not set", key=key)
        value = os.environ[value]
    if not value:
        raise ConfigError(f"{key}: the key is empty", key=key)
    if source == "key_hash" and not is_hash(value):
        raise ConfigError(
            f"{key} must be a hash of qmk tenant hash-key (scrypt$n=...,r=...,p=...$SALT$HASH)",
            key=key,
        )
    return str(value)


def config_warnings(config: KernelConfig) -> list[dict[str, str]]:
    """The coded warnings of a configuration that loads: each tenant whose key is
    written in plain text (QK402), and :func:`machine_warnings`."""
    from qmk.errors import warning
    from qmk.kernel.errors import OperationsError

    return [
        warning(
            OperationsError,
            "plaintext-key",
            f"tenants.{name}.key holds the key in plain text; store its hash "
            "(qmk tenant hash-key) as key_hash, or read it from key_file or key_env",
        )
        for name, tenant in config.tenants.items()
        if tenant.key is not None
    ] + machine_warnings(config)


def machine_warnings(config: KernelConfig) -> list[dict[str, str]]:
    """The coded warnings of a configuration's machine: ``[faults]
    decoder_capacity_bits_per_s``, the machine's decoder under its old name (QK504), which
    ``qmk serve`` and ``qmk machine`` alike read as ``[machine] decoder_bits_per_cycle``
    (:func:`qmk.kernel.machine.derive.machine_spec`)."""
    from qmk.errors import warning
    from qmk.kernel.errors import MachineError

    capacity = config.faults.decoder_capacity
    if capacity is None:
        return []
    return [
        warning(
            MachineError,
            "deprecated-decoder-key",
            f"faults.decoder_capacity_bits_per_s = {capacity:g} is read as the machine's "
            f"decoder, machine.decoder_bits_per_cycle = {capacity:g} x the logical cycle "
            "time; write that key instead",
        )
    ]


#: Keys a kernel no longer reads, and what the operator does instead: refused by name
#: (an unknown key's error would not say where the setting went).
RETIRED_KEYS: dict[tuple[str, str], str] = {
    ("http", "metrics_token"): "/metrics is an operator's read-only view, which takes the "
    'capability CAP_OBSERVE: give the scraper a tenant whose caps hold "CAP_OBSERVE" and '
    "scrape with Authorization: Basic <tenant:key> (docs/http.md, Metrics); remove the key",
}


def _refuse_retired(data: Mapping[str, Any]) -> None:
    """Refuse a key of :data:`RETIRED_KEYS`, naming it and what replaced it.

    Raises:
        ConfigError: a retired key is set.
    """
    for (table, key), instead in RETIRED_KEYS.items():
        found = data.get(table)
        if isinstance(found, Mapping) and key in found:
            raise ConfigError(f"{table}.{key} is retired: {instead}", key=f"{table}.{key}")


def config_from_dict(data: Mapping[str, Any], *, physics: bool = True) -> KernelConfig:
    """A :class:`KernelConfig` from parsed TOML data; with ``physics``, its machine's
    physics checked too (:func:`qmk.kernel.machine_physics.check_machine`: the QEC
    layer loads then).

    Raises:
        ConfigError: a bad, missing or unknown key (the message names it).
    """
    data = values.convert(data, dict[str, Any], where="", error=_error)
    _refuse_retired(data)
    # Tenants are read one by one: an error inside a table of tables would name it
    # ``tenants[...]``, not the tenant.
    tenants_t: dict[str, Any] = values.convert(
        data.get("tenants", {}), dict[str, Any], where="tenants", error=_error
    )
    file: ConfigFile = values.convert({**data, "tenants": {}}, ConfigFile, error=_error)
    modules = file.machine.modules
    if (
        file.faults.decoder_capacity_bits_per_s is not None
        and file.machine.decoder_bits_per_cycle is not None
    ):
        raise ConfigError(
            "faults.decoder_capacity_bits_per_s is the deprecated name of "
            "machine.decoder_bits_per_cycle (the machine's one decoder): give only "
            "machine.decoder_bits_per_cycle",
            key="faults.decoder_capacity_bits_per_s",
        )
    for i, failure in enumerate(file.faults.module_failures):
        if failure.module >= modules:
            raise ConfigError(
                f"faults.module_failures[{i}].module must name a module 0..{modules - 1} "
                f"(machine.modules = {modules}), got {failure.module}",
                key=f"faults.module_failures[{i}].module",
            )
    machine_fields = {name: getattr(file.machine, name) for name in MachineTable.__struct_fields__}
    machine = MachineConfig(
        **{**machine_fields, "calibration": _calibration(file.machine.calibration)}
    )
    if physics:
        from qmk.kernel.machine_physics import check_machine

        check_machine(machine)
    settings = {name: getattr(file.kernel, name) for name in KernelTable.__struct_fields__}
    return KernelConfig(
        **settings,
        machine=machine,
        tenants={name: _tenant(name, table) for name, table in tenants_t.items()},
        faults=file.faults.schedule(),
        assist=file.assist,
        server=file.server,
        http=file.http,
        billing=_billing(file.billing),
    )


def _billing(table: BillingTable) -> BillingTable:
    """``table`` with ``webhook_secret`` read from its file or variable.

    Raises:
        ConfigError: more than one source of the secret, an unreadable file or unset
            variable, or a webhook without a secret.
    """
    sources = [
        name
        for name in ("webhook_secret", "webhook_secret_file", "webhook_secret_env")
        if getattr(table, name) is not None
    ]
    if len(sources) > 1:
        raise ConfigError(
            f"billing needs one of {' and '.join(sources)}", key=f"billing.{sources[-1]}"
        )
    secret = table.webhook_secret
    if table.webhook_secret_file is not None:
        key = "billing.webhook_secret_file"
        try:
            secret = Path(table.webhook_secret_file).read_text(encoding="utf-8").strip("\r\n")
        except (OSError, UnicodeDecodeError) as exc:
            reason = exc.strerror if isinstance(exc, OSError) else "not UTF-8 text"
            raise ConfigError(
                f"{key}: cannot read {table.webhook_secret_file}: {reason}", key=key
            ) from None
    elif table.webhook_secret_env is not None:
        key = "billing.webhook_secret_env"
        secret = os.environ.get(table.webhook_secret_env)
        if secret is None:
            raise ConfigError(
                f"{key}: the environment variable {table.webhook_secret_env} is not set", key=key
            )
    if table.webhook_url is not None and not secret:
        raise ConfigError(
            "billing.webhook_url needs a webhook_secret (or webhook_secret_file, "
            "webhook_secret_env) to sign its deliveries",
            key="billing.webhook_secret",
        )
    return msgspec.structs.replace(table, webhook_secret=secret or None)


def json_schema() -> dict[str, Any]:
    """The JSON Schema of a ``kernel.toml`` (TOML read as JSON), from :class:`ConfigFile`.

    >>> json_schema()["$defs"]["KernelTable"]["properties"]["synchronous"]["enum"]
    ['full', 'normal']
    """
    schema = values.json_schema(ConfigFile)
    # a tenant's key: exactly one of its sources (what _stored_key checks)
    schema["$defs"]["TenantTable"]["oneOf"] = [{"required": [key]} for key in _KEY_SOURCES]
    return {
        "$schema": schema.pop("$schema"),
        "$id": "https://qmk.dev/schemas/kernel-config.json",
        "title": "QMK kernel configuration (kernel.toml)",
        **schema,
    }


def schema_text() -> str:
    """:func:`json_schema` as the shipped file's text."""
    return json.dumps(json_schema(), indent=2, ensure_ascii=False) + "\n"


def _calibration(path: str | None) -> dict[str, Any] | None:
    """The calibration file's JSON, checked (the QEC layer's values load where a
    machine names one)."""
    if path is None:
        return None
    from qmk.qec.values import Calibration

    try:
        return Calibration.load(path).to_json()
    except QMKError as exc:
        raise ConfigError(
            f"machine.calibration: {exc.message}", key="machine.calibration"
        ) from None


def load_config(path: str | os.PathLike[str], *, physics: bool = True) -> KernelConfig:
    """Read a kernel configuration from a TOML file (``physics``: as
    :func:`config_from_dict` checks it).

    Raises:
        ConfigError: unreadable file, bad TOML, or a bad, missing or unknown key.
    """
    try:
        with open(path, "rb") as handle:
            data = tomllib.load(handle)
    except OSError as exc:
        raise ConfigError(f"{os.fspath(path)}: cannot read: {exc.strerror}") from None
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{os.fspath(path)}: not valid TOML: {exc}") from None
    except UnicodeDecodeError:
        raise ConfigError(f"{os.fspath(path)}: not UTF-8 text") from None
    try:
        return config_from_dict(data, physics=physics)
    except ConfigError as exc:
        raise ConfigError(f"{os.fspath(path)}: {exc.message}", **exc.details) from None


__all__ = [
    "SCHEMA_PATH",
    "BillingTable",
    "ConfigError",
    "ConfigFile",
    "FactoryTable",
    "FaultsTable",
    "HttpTable",
    "KernelConfig",
    "KernelTable",
    "LinksTable",
    "MachineConfig",
    "MachineTable",
    "ModuleFailure",
    "PriceTable",
    "TenantConfig",
    "TenantQuota",
    "TenantTable",
    "config_from_dict",
    "config_warnings",
    "json_schema",
    "load_config",
    "machine_warnings",
    "schema_text",
]
