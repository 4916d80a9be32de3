"""The kernel's configuration: the machine, kernel settings and tenants, from TOML.

:func:`load_config` reads a file, :func:`config_from_dict` the same data already parsed.
Every bad, missing or unknown key is a :class:`ConfigError` whose one-line message names
the key (``QK101 bad-config``, exit 2).

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
QK101 bad-config: machine.physical_qubits must be an integer >= 1, got -1
"""

from __future__ import annotations

import os
import sys
from collections.abc import Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import TYPE_CHECKING, Any

from qmk import defaults
from qmk.devices.logical import FaultSchedule
from qmk.errors import QMKError
from qmk.kernel.errors import ConfigError
from qmk.qvm.ops import CAPABILITIES

if TYPE_CHECKING:
    from qmk.qec.logical import Calibration

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover - exercised on 3.10 only
    import tomli as tomllib

#: Defaults of the ``[kernel]`` table (from :mod:`qmk.defaults`).
DEFAULT_SESSION_TTL_S = defaults.SESSION_TTL_S
DEFAULT_JOB_TIMEOUT_S = defaults.JOB_TIMEOUT_S
DEFAULT_WORKER_MEMORY_MB = defaults.WORKER_MEMORY_MB
DEFAULT_WORKER_CPU_S = defaults.WORKER_CPU_S
DEFAULT_WORKER_FILE_MB = defaults.WORKER_FILE_MB
DEFAULT_WORKER_USER = defaults.WORKER_USER
DEFAULT_EPOCH_MS = defaults.EPOCH_MS
DEFAULT_PREEMPT_GAP = defaults.PREEMPT_GAP
DEFAULT_ROLLBACK_GAP = defaults.ROLLBACK_GAP
DEFAULT_SYNCHRONOUS = defaults.SYNCHRONOUS
DEFAULT_CHECKPOINTS_PER_JOB = defaults.CHECKPOINTS_PER_JOB
DEFAULT_CHECKPOINT_KEEP_S = defaults.CHECKPOINT_KEEP_S
DEFAULT_CHANNEL_PROPOSAL_TTL_S = defaults.CHANNEL_PROPOSAL_TTL_S
DEFAULT_MIN_FREE_DISK_MB = defaults.MIN_FREE_DISK_MB
DEFAULT_MAX_GRAPH_NODES = defaults.MAX_GRAPH_NODES
DEFAULT_MAX_RESULT_MB = defaults.MAX_RESULT_MB
DEFAULT_RESULT_KEEP_S = defaults.RESULT_KEEP_S
DEFAULT_MAX_RESULT_STORAGE_MB = defaults.MAX_RESULT_STORAGE_MB

#: Defaults of the ``[machine]`` table (the executor's own defaults).
DEFAULT_PROFILE = defaults.PROFILE
DEFAULT_QUBIT = defaults.QUBIT


@dataclass(frozen=True, slots=True, kw_only=True)
class MachineConfig:
    """The machine the kernel runs: its physical-qubit inventory and defaults."""

    physical_qubits: int
    #: Modules the physical qubits are split into (a job runs on one module).
    modules: int = 1
    profile: str = DEFAULT_PROFILE
    qubit: str = DEFAULT_QUBIT
    #: Physical error rates in place of the qubit's (``qmk.qec.noise.parse_noise_model`` text).
    noise_model: str | None = None
    #: A fitted (a, p*) from ``qmk qec calibrate`` (read from the file ``calibration`` names),
    #: used for the profiles of its family and instruction set.
    calibration: Calibration | None = None


@dataclass(frozen=True, slots=True, kw_only=True)
class TenantConfig:
    """One tenant: its shared key, the capabilities it may hold, and its quotas."""

    name: str
    key: str = field(repr=False)
    caps: tuple[str, ...] = ()
    max_logical_qubits: int = 64
    max_concurrent_jobs: int = 4
    max_queued_jobs: int = 100
    max_channels: int = 2
    #: The highest priority its jobs may ask for (priorities order a tenant's own jobs).
    max_priority: int = 9
    #: May ingest calibrations and qubit parameters into the device (``q_calibrate``).
    operator: bool = False
    #: Neutral-atom device jobs (``q_device_submit``): the most atoms one job allocates,
    #: and the most device time one job takes (its scheduled program time x its shots).
    max_atoms: int = 256
    max_device_time_s: float = 60.0
    #: The most bytes (MiB) of results the kernel stores for it at once; a job whose
    #: result would take it past this FAILs with ``QK307 result-storage-quota``.
    max_result_storage_mb: float = DEFAULT_MAX_RESULT_STORAGE_MB
    #: Graph nodes its submits may have verified per second, on average (a token bucket
    #: that holds one ``kernel.max_graph_nodes`` graph); past it a submit is QS1006.
    verify_nodes_per_s: float = defaults.VERIFY_NODES_PER_S

    def quota(self) -> dict[str, int | float]:
        """The quotas as plain JSON."""
        return {
            "max_logical_qubits": self.max_logical_qubits,
            "max_concurrent_jobs": self.max_concurrent_jobs,
            "max_queued_jobs": self.max_queued_jobs,
            "max_channels": self.max_channels,
            "max_priority": self.max_priority,
            "max_atoms": self.max_atoms,
            "max_device_time_s": self.max_device_time_s,
            "max_result_storage_mb": self.max_result_storage_mb,
            "verify_nodes_per_s": self.verify_nodes_per_s,
        }


@dataclass(frozen=True, slots=True, kw_only=True)
class KernelConfig:
    """Everything a kernel needs to know before it opens its data directory.

    Attributes:
        machine: the machine's inventory and defaults.
        tenants: tenant name -> its configuration.
        session_ttl_s: lifetime of a session token.
        job_timeout_s: a job's run-time limit when its policy names none.
        worker_memory_mb: address-space cap of each worker process.
        worker_cpu_s: CPU seconds one job may use in its worker (``RLIMIT_CPU``).
        worker_file_mb: the largest file a worker may write (``RLIMIT_FSIZE``); None:
            ``worker_memory_mb``.
        worker_user: the user (name or uid) workers run as when the kernel runs as root.
        epoch_ms: the scheduler's tick (deadlines, timeouts, preemption, checkpoints).
        preempt_gap: a queued job preempts a running one whose priority is at least this
            much lower (0 turns preemption off).
        rollback_gap: a preemption by a job at least this much more urgent stops its
            victim at once (rolling back its open REV segment) instead of at its next fence.
        checkpoints_per_job: execution states a job keeps; saving one more deletes the
            oldest (file and checkpoint).
        checkpoint_keep_s: how long a job's execution states are kept after it ends.
        channel_proposal_ttl_s: how long a channel proposal waits to be accepted.
        min_free_disk_mb: free space the data directory's disk keeps (submits refused
            below it; 0: no reserve).
        max_graph_nodes: the most nodes one submitted graph may have.
        max_result_mb: the largest result (JSON) kept for one job; a bigger one FAILs it.
        result_keep_s: how long a job's result is kept after the job ends (then deleted;
            the job's record stays, marked ``QK306 result-expired``).
        synchronous: SQLite ``synchronous`` pragma: "normal" (survives a crash of the
            kernel process) or "full" (also survives power loss; slower).
        faults: the faults injected into the simulated machine (``[faults]``; none).
        server: the ``[server]`` table as written: the wire's limits, which
            ``qmk.abi.server.ServerConfig.from_table`` checks when ``qmk serve`` starts.
    """

    machine: MachineConfig
    tenants: Mapping[str, TenantConfig] = field(default_factory=dict)
    session_ttl_s: float = DEFAULT_SESSION_TTL_S
    job_timeout_s: float = DEFAULT_JOB_TIMEOUT_S
    worker_memory_mb: int = DEFAULT_WORKER_MEMORY_MB
    worker_cpu_s: int = DEFAULT_WORKER_CPU_S
    worker_file_mb: int | None = DEFAULT_WORKER_FILE_MB
    worker_user: str | int = DEFAULT_WORKER_USER
    epoch_ms: int = DEFAULT_EPOCH_MS
    preempt_gap: int = DEFAULT_PREEMPT_GAP
    rollback_gap: int = DEFAULT_ROLLBACK_GAP
    checkpoints_per_job: int = DEFAULT_CHECKPOINTS_PER_JOB
    checkpoint_keep_s: float = DEFAULT_CHECKPOINT_KEEP_S
    channel_proposal_ttl_s: float = DEFAULT_CHANNEL_PROPOSAL_TTL_S
    min_free_disk_mb: int = DEFAULT_MIN_FREE_DISK_MB
    max_graph_nodes: int = DEFAULT_MAX_GRAPH_NODES
    max_result_mb: float = DEFAULT_MAX_RESULT_MB
    result_keep_s: float = DEFAULT_RESULT_KEEP_S
    synchronous: str = DEFAULT_SYNCHRONOUS
    faults: FaultSchedule = field(default_factory=FaultSchedule)
    server: Mapping[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        object.__setattr__(self, "tenants", MappingProxyType(dict(self.tenants)))
        object.__setattr__(self, "server", MappingProxyType(dict(self.server)))


def _table(value: Any, where: str) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise ConfigError(f"{where} must be a table, got {type(value).__name__}", key=where)
    return value


def _unknown(table: Mapping[str, Any], allowed: tuple[str, ...], where: str) -> None:
    for key in table:
        if key not in allowed:
            path = f"{where}.{key}" if where else key
            raise ConfigError(
                f"unknown key {path!r}; expected one of {', '.join(allowed)}", key=path
            )


def _int(table: Mapping[str, Any], key: str, where: str, default: int | None, low: int) -> int:
    path = f"{where}.{key}"
    if key not in table:
        if default is None:
            raise ConfigError(f"{path} is missing", key=path)
        return default
    value = table[key]
    if isinstance(value, bool) or not isinstance(value, int) or value < low:
        raise ConfigError(f"{path} must be an integer >= {low}, got {value!r}", key=path)
    return value


def _number(table: Mapping[str, Any], key: str, where: str, default: float) -> float:
    path = f"{where}.{key}"
    value = table.get(key, default)
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not value > 0:
        raise ConfigError(f"{path} must be a number > 0, got {value!r}", key=path)
    return float(value)


def _str(table: Mapping[str, Any], key: str, where: str, default: str | None) -> str:
    path = f"{where}.{key}"
    if key not in table:
        if default is None:
            raise ConfigError(f"{path} is missing", key=path)
        return default
    value = table[key]
    if not isinstance(value, str) or not value:
        raise ConfigError(f"{path} must be a non-empty string, got {value!r}", key=path)
    return value


def _optional_str(table: Mapping[str, Any], key: str, where: str) -> str | None:
    return _str(table, key, where, None) if key in table else None


_MACHINE_KEYS = ("physical_qubits", "modules", "profile", "qubit", "noise_model", "calibration")
_KERNEL_KEYS = (
    "session_ttl_s",
    "job_timeout_s",
    "worker_memory_mb",
    "worker_cpu_s",
    "worker_file_mb",
    "worker_user",
    "epoch_ms",
    "preempt_gap",
    "rollback_gap",
    "checkpoints_per_job",
    "checkpoint_keep_s",
    "channel_proposal_ttl_s",
    "min_free_disk_mb",
    "max_graph_nodes",
    "max_result_mb",
    "result_keep_s",
    "synchronous",
)
_TENANT_KEYS = (
    "key",
    "caps",
    "max_logical_qubits",
    "max_concurrent_jobs",
    "max_queued_jobs",
    "max_channels",
    "max_priority",
    "operator",
    "max_atoms",
    "max_device_time_s",
    "max_result_storage_mb",
    "verify_nodes_per_s",
)
_FAULT_KEYS = (
    "drift_per_epoch",
    "drift_start_epoch",
    "link_fidelity",
    "link_drop_per_epoch",
    "link_target",
    "max_purification_rounds",
    "module_failures",
    "decoder_capacity_bits_per_s",
    "distance_budget",
    "drift_fence_cycles",
    "local_decomposition",
)


def _tenant(name: str, table: Mapping[str, Any]) -> TenantConfig:
    where = f"tenants.{name}"
    _unknown(table, _TENANT_KEYS, where)
    caps = table.get("caps", [])
    if not isinstance(caps, list) or not all(isinstance(c, str) for c in caps):
        raise ConfigError(f"{where}.caps must be a list of strings", key=f"{where}.caps")
    for cap in caps:
        if cap not in CAPABILITIES:
            raise ConfigError(
                f"{where}.caps: unknown capability {cap!r}; expected one of "
                f"{', '.join(CAPABILITIES)}",
                key=f"{where}.caps",
            )
    return TenantConfig(
        name=name,
        key=_str(table, "key", where, None),
        caps=tuple(dict.fromkeys(caps)),
        max_logical_qubits=_int(table, "max_logical_qubits", where, 64, 1),
        max_concurrent_jobs=_int(table, "max_concurrent_jobs", where, 4, 1),
        max_queued_jobs=_int(table, "max_queued_jobs", where, 100, 1),
        max_channels=_int(table, "max_channels", where, 2, 0),
        max_priority=_max_priority(table, where),
        operator=_bool(table, "operator", where, False),
        max_atoms=_int(table, "max_atoms", where, 256, 1),
        max_device_time_s=_number(table, "max_device_time_s", where, 60.0),
        max_result_storage_mb=_number(
            table, "max_result_storage_mb", where, DEFAULT_MAX_RESULT_STORAGE_MB
        ),
        verify_nodes_per_s=_number(table, "verify_nodes_per_s", where, defaults.VERIFY_NODES_PER_S),
    )


def _max_priority(table: Mapping[str, Any], where: str) -> int:
    value = _int(table, "max_priority", where, 9, 0)
    if value > 9:
        raise ConfigError(
            f"{where}.max_priority must be an integer 0..9, got {value}",
            key=f"{where}.max_priority",
        )
    return value


def _bool(table: Mapping[str, Any], key: str, where: str, default: bool) -> bool:
    path = f"{where}.{key}"
    value = table.get(key, default)
    if not isinstance(value, bool):
        raise ConfigError(f"{path} must be true or false, got {value!r}", key=path)
    return value


def _real(table: Mapping[str, Any], key: str, default: float, low: float, high: float) -> float:
    """A number in [low, high] of the ``[faults]`` table."""
    path = f"faults.{key}"
    value = table.get(key, default)
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not low <= value <= high:
        raise ConfigError(
            f"{path} must be a number in [{low:g}, {high:g}], got {value!r}", key=path
        )
    return float(value)


def _faults(table: Mapping[str, Any], modules: int) -> FaultSchedule:
    _unknown(table, _FAULT_KEYS, "faults")
    failures = table.get("module_failures", [])
    path = "faults.module_failures"
    if not isinstance(failures, list):
        raise ConfigError(f"{path} must be a list of {{module, epoch}} tables", key=path)
    pairs = []
    for i, entry in enumerate(failures):
        where = f"{path}[{i}]"
        entry = _table(entry, where)
        _unknown(entry, ("module", "epoch"), where)
        module = _int(entry, "module", where, None, 0)
        if module >= modules:
            raise ConfigError(
                f"{where}.module must name a module 0..{modules - 1} (machine.modules = "
                f"{modules}), got {module}",
                key=f"{where}.module",
            )
        pairs.append((module, _int(entry, "epoch", where, None, 1)))
    capacity = table.get("decoder_capacity_bits_per_s")
    if capacity is not None:
        capacity = _number(table, "decoder_capacity_bits_per_s", "faults", 1.0)
    return FaultSchedule(
        drift_per_epoch=_real(table, "drift_per_epoch", 0.0, 0.0, 1e6),
        drift_start_epoch=_int(table, "drift_start_epoch", "faults", 0, 0),
        link_fidelity=_real(table, "link_fidelity", 1.0, 0.25, 1.0),
        link_drop_per_epoch=_real(table, "link_drop_per_epoch", 0.0, 0.0, 1.0),
        link_target=_real(table, "link_target", 0.95, 0.5, 1.0),
        max_purification_rounds=_int(table, "max_purification_rounds", "faults", 3, 0),
        module_failures=tuple(pairs),
        decoder_capacity=capacity,
        distance_budget=_int(table, "distance_budget", "faults", 6, 0),
        drift_fence_cycles=_int(table, "drift_fence_cycles", "faults", 1000, 0),
        local_decomposition=_bool(table, "local_decomposition", "faults", True),
    )


def config_from_dict(data: Mapping[str, Any]) -> KernelConfig:
    """A :class:`KernelConfig` from parsed TOML data.

    Raises:
        ConfigError: a bad, missing or unknown key (the message names it).
    """
    data = _table(data, "the configuration")
    _unknown(data, ("machine", "kernel", "tenants", "faults", "server"), "")
    if "machine" not in data:
        raise ConfigError("machine is missing: add a [machine] table", key="machine")
    machine_t = _table(data["machine"], "machine")
    _unknown(machine_t, _MACHINE_KEYS, "machine")
    machine = MachineConfig(
        physical_qubits=_int(machine_t, "physical_qubits", "machine", None, 1),
        modules=_int(machine_t, "modules", "machine", 1, 1),
        profile=_str(machine_t, "profile", "machine", DEFAULT_PROFILE),
        qubit=_str(machine_t, "qubit", "machine", DEFAULT_QUBIT),
        noise_model=_optional_str(machine_t, "noise_model", "machine"),
        calibration=_calibration(_optional_str(machine_t, "calibration", "machine")),
    )
    _check_machine(machine)
    if machine.modules > machine.physical_qubits:
        raise ConfigError(
            f"machine.modules ({machine.modules}) must not exceed machine.physical_qubits "
            f"({machine.physical_qubits})",
            key="machine.modules",
        )
    faults = _faults(_table(data.get("faults", {}), "faults"), machine.modules)
    kernel_t = _table(data.get("kernel", {}), "kernel")
    _unknown(kernel_t, _KERNEL_KEYS, "kernel")
    synchronous = _str(kernel_t, "synchronous", "kernel", DEFAULT_SYNCHRONOUS)
    if synchronous not in ("normal", "full"):
        raise ConfigError(
            f"kernel.synchronous must be 'normal' or 'full', got {synchronous!r}",
            key="kernel.synchronous",
        )
    tenants_t = _table(data.get("tenants", {}), "tenants")
    tenants = {}
    for name, table in tenants_t.items():
        if not name or len(name) > 64 or not name.replace("-", "").replace("_", "").isalnum():
            raise ConfigError(
                f"tenants.{name}: a tenant name is 1-64 letters, digits, '-' or '_'",
                key=f"tenants.{name}",
            )
        tenants[name] = _tenant(name, _table(table, f"tenants.{name}"))
    return KernelConfig(
        machine=machine,
        tenants=tenants,
        session_ttl_s=_number(kernel_t, "session_ttl_s", "kernel", DEFAULT_SESSION_TTL_S),
        job_timeout_s=_number(kernel_t, "job_timeout_s", "kernel", DEFAULT_JOB_TIMEOUT_S),
        worker_memory_mb=_int(kernel_t, "worker_memory_mb", "kernel", DEFAULT_WORKER_MEMORY_MB, 64),
        worker_cpu_s=_int(kernel_t, "worker_cpu_s", "kernel", DEFAULT_WORKER_CPU_S, 1),
        worker_file_mb=_int(kernel_t, "worker_file_mb", "kernel", 0, 1)
        if "worker_file_mb" in kernel_t
        else DEFAULT_WORKER_FILE_MB,
        worker_user=_user(kernel_t),
        epoch_ms=_int(kernel_t, "epoch_ms", "kernel", DEFAULT_EPOCH_MS, 1),
        preempt_gap=_int(kernel_t, "preempt_gap", "kernel", DEFAULT_PREEMPT_GAP, 0),
        rollback_gap=_int(kernel_t, "rollback_gap", "kernel", DEFAULT_ROLLBACK_GAP, 0),
        checkpoints_per_job=_int(
            kernel_t, "checkpoints_per_job", "kernel", DEFAULT_CHECKPOINTS_PER_JOB, 1
        ),
        checkpoint_keep_s=_number(
            kernel_t, "checkpoint_keep_s", "kernel", DEFAULT_CHECKPOINT_KEEP_S
        ),
        channel_proposal_ttl_s=_number(
            kernel_t, "channel_proposal_ttl_s", "kernel", DEFAULT_CHANNEL_PROPOSAL_TTL_S
        ),
        min_free_disk_mb=_int(kernel_t, "min_free_disk_mb", "kernel", DEFAULT_MIN_FREE_DISK_MB, 0),
        max_graph_nodes=_int(kernel_t, "max_graph_nodes", "kernel", DEFAULT_MAX_GRAPH_NODES, 1),
        max_result_mb=_number(kernel_t, "max_result_mb", "kernel", DEFAULT_MAX_RESULT_MB),
        result_keep_s=_number(kernel_t, "result_keep_s", "kernel", DEFAULT_RESULT_KEEP_S),
        synchronous=synchronous,
        faults=faults,
        server=_table(data.get("server", {}), "server"),
    )


def _user(table: Mapping[str, Any]) -> str | int:
    """``kernel.worker_user``: a user name or a uid (found when the kernel starts)."""
    value = table.get("worker_user", DEFAULT_WORKER_USER)
    if isinstance(value, int) and not isinstance(value, bool) and value >= 0:
        return value
    if isinstance(value, str) and value:
        return value
    raise ConfigError(
        f"kernel.worker_user must be a user name or a uid >= 0, got {value!r}",
        key="kernel.worker_user",
    )


def _calibration(path: str | None) -> Calibration | None:
    from qmk.qec.logical import Calibration

    if path is None:
        return None
    try:
        return Calibration.load(path)
    except QMKError as exc:
        raise ConfigError(
            f"machine.calibration: {exc.message}", key="machine.calibration"
        ) from None


def _check_machine(machine: MachineConfig) -> None:
    from qmk.qec.logical import logical_model
    from qmk.qec.noise import parse_noise_model

    try:
        noise = None if machine.noise_model is None else parse_noise_model(machine.noise_model)
    except QMKError as exc:
        raise ConfigError(
            f"machine.noise_model: {exc.message}", key="machine.noise_model"
        ) from None
    try:
        model = logical_model(
            machine.profile, machine.qubit, noise=noise, calibration=machine.calibration
        )
    except QMKError as exc:
        raise ConfigError(
            f"machine.profile/machine.qubit: {exc.message}", key="machine.profile"
        ) from None
    if machine.calibration is not None and model.calibration is None:
        raise ConfigError(
            f"machine.calibration is for {machine.calibration.family} on "
            f"{machine.calibration.instruction_set} qubits; the machine's profile "
            f"{machine.profile} on {machine.qubit} is not",
            key="machine.calibration",
        )


def load_config(path: str | os.PathLike[str]) -> KernelConfig:
    """Read a kernel configuration from a TOML file.

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
        return config_from_dict(data)
    except ConfigError as exc:
        raise ConfigError(f"{os.fspath(path)}: {exc.message}", **exc.details) from None


__all__ = [
    "ConfigError",
    "KernelConfig",
    "MachineConfig",
    "TenantConfig",
    "config_from_dict",
    "load_config",
]
