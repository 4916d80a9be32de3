"""Examples of the kernel's structs: its config file and config, a workload file, what a
worker answers (outcomes, the Dask pool's answers), what the store keeps (rows, usage,
artifacts) and an attempt.

Each is a realistic value, most fields away from their defaults; its JSON is its
struct's golden file (:mod:`support.golden`)."""

from __future__ import annotations

from qmk.kernel.admit.adjusted import Adjusted
from qmk.kernel.admit.faults import Foreseen
from qmk.kernel.config import (
    AssistTable,
    BillingTable,
    ConfigFile,
    FactoryTable,
    FaultsTable,
    HttpTable,
    KernelConfig,
    KernelTable,
    LinksTable,
    MachineConfig,
    MachineTable,
    ModuleFailure,
    PriceTable,
    TenantConfig,
    TenantQuota,
    TenantTable,
)
from qmk.kernel.device import FaultSchedule
from qmk.kernel.machine.jobs import JobRecord, JobSpec
from qmk.kernel.machine.workload import Generate, Generated, JobEntry, TenantEntry, WorkloadFile
from qmk.kernel.pools.attempt import Attempt
from qmk.kernel.pools.dask_protocol import Again, Lost, Raised, Returned
from qmk.kernel.records.outcome import Done, Failed, Failure, Ran, Yielded
from qmk.kernel.records.stored import ResultFacts, TelemetryFacts
from qmk.kernel.records.usage import Usage
from qmk.kernel.storage.artifacts import Entry, Index
from qmk.kernel.storage.job_row import JobRow
from qmk.kernel.storage.trigger_rows import RunRow, TriggerRow
from support.golden.execution import FOOTPRINT, REWRITE, RUN_REQUEST

CONFIG_FILE = ConfigFile(
    machine=MachineTable(
        physical_qubits=2000000,
        modules=2,
        profile="logical:surface_code(d=11)",
        qubit="qubit_gate_ns_e4",
        noise_model="depolarizing(p=0.0005)",
        job_noise_models=("depolarizing", "idle"),
        job_max_error_rate=0.01,
        job_calibration=False,
        block="compact",
        epoch_cycles=50,
        policy="backfill",
        factory_share=0.2,
        storage_tiles=40,
        storage_move_cycles=3,
        fence_cycles=5_000,
        routing_lanes=4,
        decoder_bits_per_cycle=250000.0,
        cycles_per_s=1000.0,
        factory=FactoryTable(
            protocol="litinski-15to1",
            copies=6,
            states_per_run=1.0,
            duration_cycles=12,
            tiles=33,
            output_error_rate=5.4e-09,
            store=24,
        ),
        links=LinksTable(bell_pairs_per_cycle=0.5, fidelity=0.97, latency_cycles=2),
    ),
    kernel=KernelTable(
        session_ttl_s=7200.0,
        job_timeout_s=1800.0,
        worker_memory_mb=4096,
        worker_cpu_s=3600,
        epoch_ms=20,
        checkpoints_per_job=4,
        max_result_mb=128.0,
        result_keep_s=1209600.0,
        synchronous="full",
    ),
    tenants={
        "alice": TenantTable(
            max_logical_qubits=128,
            max_concurrent_jobs=8,
            max_queued_jobs=200,
            max_channels=4,
            max_priority=7,
            key_hash=(
                "scrypt$n=16384,r=8,p=1$ozLUTlE9bX7qB5jeOoDjVg$aQ"
                "-6IiDFSKdRql6PHMiMXWf2-rjyUtQybTmEfAVMs7Y"
            ),
            caps=("CAP_ALLOC", "CAP_TELEPORT", "CAP_LINK", "CAP_MAGIC"),
            operator=True,
        )
    },
    faults=FaultsTable(
        drift_per_epoch=0.002,
        drift_start_epoch=10,
        link_fidelity=0.92,
        link_drop_per_epoch=0.001,
        link_target=0.97,
        max_purification_rounds=4,
        module_failures=(ModuleFailure(module=1, epoch=500),),
        distance_budget=4,
    ),
    assist=AssistTable(
        url="http://127.0.0.1:11434",
        model="qwen2.5-coder",
        api="ollama",
        structured=True,
        max_steps=8,
    ),
    server={"max_request_bytes": 4194304},
    http=HttpTable(
        metrics_tenants="names",
        allowed_hosts=("qmk.example.org", "localhost"),
    ),
    billing=BillingTable(
        currency="EUR",
        prices=PriceTable(shots=0.0001, logical_qubit_seconds=0.002, device_seconds=0.5),
        webhook_url="https://billing.example.com/qmk",
        webhook_secret_env="QMK_WEBHOOK_SECRET",
        webhook_attempts=6,
    ),
)

MACHINE_TABLE = MachineTable(
    physical_qubits=2000000,
    modules=2,
    profile="logical:surface_code(d=11)",
    qubit="qubit_gate_ns_e4",
    noise_model="depolarizing(p=0.0005)",
    job_noise_models=("depolarizing", "idle"),
    job_max_error_rate=0.01,
    job_calibration=False,
    block="compact",
    epoch_cycles=50,
    policy="backfill",
    factory_share=0.2,
    storage_tiles=40,
    storage_move_cycles=3,
    fence_cycles=5_000,
    routing_lanes=4,
    decoder_bits_per_cycle=250000.0,
    cycles_per_s=1000.0,
    factory=FactoryTable(
        protocol="litinski-15to1",
        copies=6,
        states_per_run=1.0,
        duration_cycles=12,
        tiles=33,
        output_error_rate=5.4e-09,
        store=24,
    ),
    links=LinksTable(bell_pairs_per_cycle=0.5, fidelity=0.97, latency_cycles=2),
)

FACTORY_TABLE = FactoryTable(
    protocol="litinski-15to1",
    copies=6,
    states_per_run=1.0,
    duration_cycles=12,
    tiles=33,
    output_error_rate=5.4e-09,
    store=24,
)

LINKS_TABLE = LinksTable(bell_pairs_per_cycle=0.5, fidelity=0.97, latency_cycles=2)

KERNEL_TABLE = KernelTable(
    session_ttl_s=7200.0,
    job_timeout_s=1800.0,
    worker_memory_mb=4096,
    worker_cpu_s=3600,
    epoch_ms=20,
    checkpoints_per_job=4,
    max_result_mb=128.0,
    result_keep_s=1209600.0,
    synchronous="full",
)

TENANT_TABLE = TenantTable(
    max_logical_qubits=128,
    max_concurrent_jobs=8,
    max_queued_jobs=200,
    max_channels=4,
    max_priority=7,
    key_hash=(
        "scrypt$n=16384,r=8,p=1$ozLUTlE9bX7qB5jeOoDjVg$aQ-6IiDFSKdRql6PHMiMXWf2-rjyUtQybTmEfAVMs7Y"
    ),
    caps=("CAP_ALLOC", "CAP_TELEPORT", "CAP_LINK", "CAP_MAGIC"),
    operator=True,
)

TENANT_QUOTA = TenantQuota(
    max_logical_qubits=128,
    max_concurrent_jobs=8,
    max_queued_jobs=200,
    max_channels=4,
    max_priority=7,
)

FAULTS_TABLE = FaultsTable(
    drift_per_epoch=0.002,
    drift_start_epoch=10,
    link_fidelity=0.92,
    link_drop_per_epoch=0.001,
    link_target=0.97,
    max_purification_rounds=4,
    module_failures=(ModuleFailure(module=1, epoch=500),),
    distance_budget=4,
)

MODULE_FAILURE = ModuleFailure(module=1, epoch=500)

ASSIST_TABLE = AssistTable(
    url="http://127.0.0.1:11434", model="qwen2.5-coder", api="ollama", structured=True, max_steps=8
)

HTTP_TABLE = HttpTable(
    metrics_tenants="names",
    allowed_hosts=("qmk.example.org", "localhost"),
)

BILLING_TABLE = BillingTable(
    currency="EUR",
    prices=PriceTable(shots=0.0001, logical_qubit_seconds=0.002, device_seconds=0.5),
    webhook_url="https://billing.example.com/qmk",
    webhook_secret_env="QMK_WEBHOOK_SECRET",
    webhook_attempts=6,
)

PRICE_TABLE = PriceTable(shots=0.0001, logical_qubit_seconds=0.002, device_seconds=0.5)

KERNEL_CONFIG = KernelConfig(
    session_ttl_s=7200.0,
    job_timeout_s=1800.0,
    worker_memory_mb=4096,
    worker_cpu_s=3600,
    epoch_ms=20,
    checkpoints_per_job=4,
    max_result_mb=128.0,
    result_keep_s=1209600.0,
    synchronous="full",
    machine=MachineConfig(
        physical_qubits=2000000,
        modules=2,
        profile="logical:surface_code(d=11)",
        qubit="qubit_gate_ns_e4",
        noise_model="depolarizing(p=0.0005)",
        job_noise_models=("depolarizing", "idle"),
        job_max_error_rate=0.01,
        job_calibration=False,
        block="compact",
        epoch_cycles=50,
        policy="backfill",
        factory_share=0.2,
        storage_tiles=40,
        storage_move_cycles=3,
        fence_cycles=5_000,
        routing_lanes=4,
        decoder_bits_per_cycle=250000.0,
        cycles_per_s=1000.0,
        factory=FactoryTable(
            protocol="litinski-15to1",
            copies=6,
            states_per_run=1.0,
            duration_cycles=12,
            tiles=33,
            output_error_rate=5.4e-09,
            store=24,
        ),
        links=LinksTable(bell_pairs_per_cycle=0.5, fidelity=0.97, latency_cycles=2),
    ),
    tenants={
        "alice": TenantConfig(
            max_logical_qubits=128,
            max_concurrent_jobs=8,
            max_queued_jobs=200,
            max_channels=4,
            max_priority=7,
            key_hash=(
                "scrypt$n=16384,r=8,p=1$ozLUTlE9bX7qB5jeOoDjVg$aQ"
                "-6IiDFSKdRql6PHMiMXWf2-rjyUtQybTmEfAVMs7Y"
            ),
            caps=("CAP_ALLOC", "CAP_TELEPORT", "CAP_LINK", "CAP_MAGIC"),
            operator=True,
            name="alice",
            stored_key=(
                "scrypt$n=16384,r=8,p=1$ozLUTlE9bX7qB5jeOoDjVg$aQ"
                "-6IiDFSKdRql6PHMiMXWf2-rjyUtQybTmEfAVMs7Y"
            ),
        )
    },
    faults=FaultSchedule(
        drift_per_epoch=0.002,
        drift_start_epoch=10,
        link_fidelity=0.92,
        link_drop_per_epoch=0.001,
        link_target=0.97,
        max_purification_rounds=4,
        module_failures=((1, 500),),
        distance_budget=4,
    ),
    assist=AssistTable(
        url="http://127.0.0.1:11434",
        model="qwen2.5-coder",
        api="ollama",
        structured=True,
        max_steps=8,
    ),
    server={"max_request_bytes": 4194304},
    http=HttpTable(
        metrics_tenants="names",
        allowed_hosts=("qmk.example.org", "localhost"),
    ),
    billing=BillingTable(
        currency="EUR",
        prices=PriceTable(shots=0.0001, logical_qubit_seconds=0.002, device_seconds=0.5),
        webhook_url="https://billing.example.com/qmk",
        webhook_secret="whsec-example-change-me",
        webhook_secret_env="QMK_WEBHOOK_SECRET",
        webhook_attempts=6,
    ),
)

MACHINE_CONFIG = MachineConfig(
    physical_qubits=2000000,
    modules=2,
    profile="logical:surface_code(d=11)",
    qubit="qubit_gate_ns_e4",
    noise_model="depolarizing(p=0.0005)",
    job_noise_models=("depolarizing", "idle"),
    job_max_error_rate=0.01,
    job_calibration=False,
    block="compact",
    epoch_cycles=50,
    policy="backfill",
    factory_share=0.2,
    storage_tiles=40,
    storage_move_cycles=3,
    fence_cycles=5_000,
    routing_lanes=4,
    decoder_bits_per_cycle=250000.0,
    cycles_per_s=1000.0,
    factory=FactoryTable(
        protocol="litinski-15to1",
        copies=6,
        states_per_run=1.0,
        duration_cycles=12,
        tiles=33,
        output_error_rate=5.4e-09,
        store=24,
    ),
    links=LinksTable(bell_pairs_per_cycle=0.5, fidelity=0.97, latency_cycles=2),
)

TENANT_CONFIG = TenantConfig(
    max_logical_qubits=128,
    max_concurrent_jobs=8,
    max_queued_jobs=200,
    max_channels=4,
    max_priority=7,
    key_hash=(
        "scrypt$n=16384,r=8,p=1$ozLUTlE9bX7qB5jeOoDjVg$aQ-6IiDFSKdRql6PHMiMXWf2-rjyUtQybTmEfAVMs7Y"
    ),
    caps=("CAP_ALLOC", "CAP_TELEPORT", "CAP_LINK", "CAP_MAGIC"),
    operator=True,
    name="alice",
    stored_key=(
        "scrypt$n=16384,r=8,p=1$ozLUTlE9bX7qB5jeOoDjVg$aQ-6IiDFSKdRql6PHMiMXWf2-rjyUtQybTmEfAVMs7Y"
    ),
)

WORKLOAD_FILE = WorkloadFile(
    machine={"physical_qubits": 1000000, "epoch_cycles": 10},
    tenants=[
        TenantEntry(
            name="big",
            generate=Generate(
                count=6,
                programs=[Generated(random=600, gates=3000, seed=5)],
                mean_gap_cycles=3000.0,
            ),
        ),
        TenantEntry(
            name="small",
            generate=Generate(count=300, programs=[Generated(adder=4)], mean_gap_cycles=60.0),
        ),
        TenantEntry(
            name="tiny",
            generate=Generate(count=300, programs=[Generated(qft=4)], mean_gap_cycles=60.0),
        ),
    ],
    seed=12,
)

GENERATE = Generate(
    count=6, programs=[Generated(random=600, gates=3000, seed=5)], mean_gap_cycles=3000.0
)

GENERATED = Generated(random=600, gates=3000, seed=5)

TENANT_ENTRY = TenantEntry(
    name="alice",
    share=2.0,
    jobs=[
        JobEntry(program="adder.qasm", priority=5, shots=100, copies=3),
        JobEntry(
            program=Generated(qft=8), arrival_cycle=1200, priority=2, shots=50, id="qft8-late"
        ),
    ],
)

JOB_ENTRY = JobEntry(
    program="adder.qasm", arrival_cycle=400, priority=5, shots=100, copies=3, id="adder-batch"
)

RETURNED = Returned(
    notes=2,
    value={"kind": "ran", "spans": [], "result": {"counts": {"00": 51, "11": 49}, "shots": 100}},
)

RAISED = Raised(
    notes=1,
    kind="memory",
    message="the job's process went over its memory cap (4096 MiB)",
    data={"memory_mb": 4096},
)

LOST = Lost(notes=3, why="its Dask worker closed")

AGAIN = Again(
    why=(
        "cannot fetch the job's program from tls://10.0.0"
        ".7:40123: OSError('Timed out trying to connect')"
    )
)

USAGE = Usage(
    shots=2000,
    logical_qubit_seconds=0.0125,
    physical_qubit_cycles=6480000.0,
    device_seconds=0.84,
    result_bytes=412,
)

ENTRY = Entry(
    name="pulses",
    kind="pulses",
    records=0,
    bytes=0,
    reason="over the tenant's artifact quota (64 MiB)",
)

INDEX = Index(
    job_id="job_Jx3kQ9s1T0aVbq2Ym7cEo4Lu",
    tenant="alice",
    stored_at=1800000000.5,
    expires_at=1802592000.5,
    artifacts=(
        Entry(name="measurements", kind="measurements", records=2000, bytes=98304),
        Entry(name="snapshots", kind="snapshots", records=2, bytes=8192),
    ),
    dropped=(
        Entry(
            name="pulses",
            kind="pulses",
            records=0,
            bytes=0,
            reason="over the tenant's artifact quota (64 MiB)",
        ),
    ),
)

TRIGGER_ROW = TriggerRow(
    trigger_id="trg_x",
    tenant="alice",
    name="hourly bell",
    spec=(
        '{"name": "hourly bell", "on": "schedule", "every_s": 3600.0, "cron": null, "states": []}'
    ),
    workflow=(
        '{"name": "bell", "steps": [{"name": "bell", "sou'
        'rce": "OPENQASM 2.0;\\ninclude \\"qelib1.inc\\";\\nq'
        "reg q[2];\\ncreg c[2];\\nh q[0];\\ncx q[0], q[1];\\n"
        'measure q -> c;\\n", "shots": 100, "seed": 5, "no'
        'ise": true, "policy": {}, "retries": 0, "after":'
        ' [], "sweep": {}}]}'
    ),
    caps='["CAP_ALLOC"]',
    created_at=1700000000.0,
    next_at=1700003600.0,
)

RUN_ROW = RunRow(
    run_id="run_x",
    trigger_id="trg_x",
    tenant="alice",
    reason="catch-up",
    detail='{"missed": 3}',
    state="COMPLETED",
    started_at=1700003600.0,
    finished_at=1700003601.5,
    jobs='["job_x"]',
    summary='{"COMPLETED": 1}',
    error=None,
)

DONE = Done(
    spans=[
        {
            "name": "qmk.worker",
            "span_id": "a1",
            "parent_id": None,
            "start_ns": 1,
            "end_ns": 2,
            "attributes": {"qmk.shots": 8},
        }
    ],
    result_json=(
        b'{"counts":{"00":3,"11":5},"shots":8,"seed":7,"engine":"stabilizer","events":["m0","m1"]}'
    ),
    result_meta={  # the index as the store keeps it: the head is the text's
        "entries": 2,
        "counts_at": [10, 25],
        "marks": [11],
        "counts_sha256": "6f52fdc4800109549ea1fbedf4843408ea8d747c44ca4e38f6b3023c2a9e0442",
    },
    result_sha256="d7436f28abb828c4114b6450499d317963aa3bd9aeb18e74a3758ae5fcadef2b",
    result_meta_text=(
        '{"entries":2,"counts_at":[10,25],"marks":[11],'
        '"counts_sha256":"6f52fdc4800109549ea1fbedf4843408ea8d747c44ca4e38f6b3023c2a9e0442"}'
    ),
    result_meta_sha256="04e7ed5de416c28ef6d4513ab7020eda0378081120d8f2286ed4c895f08576cc",
)

#: What the kernel reads of a small job's result head at its end.
TELEMETRY_FACTS = TelemetryFacts(
    logical_cycles=4.0,
    logical_time_ns=14400.0,
    injected_logical_errors=0,
    mode="stim-batch",
    cache_hit=False,
)
RESULT_FACTS = ResultFacts(engine="stabilizer", telemetry=TELEMETRY_FACTS)

#: The spans of a traced attempt, as its worker recorded them.
_SPANS = [
    {
        "name": "qmk.worker",
        "span_id": "5f2c6a1d9e0b4c37",
        "parent_id": "0af7651916cd43dd",
        "start_ns": 1800000000000000000,
        "end_ns": 1800000000041596000,
        "attributes": {"qmk.shots": 8, "qmk.engine": "stabilizer"},
    }
]

FAILED = Failed(
    spans=_SPANS,
    error=Failure(
        code="QK305",
        name="result-too-large",
        message="the result is 99 bytes of JSON; the kernel keeps at most 10 per job",
    ),
)

FAILURE = Failure(
    code="QS1004", name="capability-denied", message="refused at execution: the job lacks CAP_MAGIC"
)

JOB_ROW = JobRow(
    job_id="job_x",
    tenant="alice",
    seq=1,
    state="COMPLETED",
    graph='{"version":"0.2"}',
    shots=10,
    seed=7,
    policy='{"priority":5}',
    caps='["CAP_ALLOC"]',
    required_caps='["CAP_ALLOC"]',
    physical_qubits=4000,
    qubits='{"alice":2}',
    created_at=1700000000.0,
    started_at=1700000001.0,
    finished_at=1700000002.0,
    result=b'{"counts":{"00":10}}',
    error=None,
    attempts=1,
    preemptions=0,
    epoch=3,
    checkpoint_id=None,
    result_meta='{"entries":1}',
    result_expired_at=None,
    request='{"program_digest":"ab"}',
    cache_key=None,
    cached_from=None,
    result_seal="seal",
    program_seal="17:seal",
)

RAN = Ran(
    spans=_SPANS,
    result={
        "counts": {"00": 3, "11": 5},
        "shots": 8,
        "seed": 7,
        "engine": "stabilizer",
        "events": ["m0", "m1"],
    },
)

YIELDED = Yielded(spans=_SPANS, epoch=2)

ATTEMPT = Attempt(
    request=RUN_REQUEST,
    program=(
        '{\n  "version": "0.2",\n  "description": "Bell pai'
        "r: H and CNOT prepare (|00> + |11>)/sqrt2; the t"
        'wo Z measurements agree",\n  "program": {\n    "no'
        'des": [\n      {"id": "alloc", "op": "ALLOC_LQ", '
        '"args": {"n": 2, "profile": "logical:surface_cod'
        'e(d=9)"}, "vqs": ["q0", "q1"]},\n      {"id": "h_'
        'q0", "op": "APPLY_H", "vqs": ["q0"]},\n      {"id'
        '": "cnot", "op": "APPLY_CNOT", "vqs": ["q0", "q1'
        '"]},\n      {"id": "meas_q0", "op": "MEASURE_Z", '
        '"vqs": ["q0"], "produces": ["m0"]},\n      {"id":'
        ' "meas_q1", "op": "MEASURE_Z", "vqs": ["q1"], "p'
        'roduces": ["m1"]},\n      {"id": "free", "op": "F'
        'REE_LQ", "vqs": ["q0", "q1"]}\n    ]\n  },\n  "reso'
        'urces": {"vqs": ["q0", "q1"], "chs": [], "events'
        '": ["m0", "m1"]},\n  "caps": ["CAP_ALLOC"]\n}\n'
    ),
    caps=("CAP_ALLOC",),
    checkpoint_dir="/var/lib/qmk/checkpoints/job_AFuQW7eHc26uKbFp1MABOViI",
    resume=(
        "/var/lib/qmk/checkpoints/job_AFuQW7eHc26uKbFp1MA"
        "BOViI/ckpt_YtqIsVEWjPXEyHRx8NUmHgdv.qmkstate"
    ),
    max_result_bytes=67108864,
    state_key=bytes.fromhex("8cf8ef6aa8f146ebb2c037089110992231d16d52897bac0cdf20dec544f4b51d"),
)


#: Every example of this room.
#: A job of the shared machine, as a workload file or a kernel's admission gives it.
JOB_SPEC = JobSpec(
    id="job-7",
    tenant="alice",
    footprint=FOOTPRINT,
    arrival_cycle=1200,
    priority=2,
    program="examples/bell.qvm.asm",
    shots=1000,
    runtime_alone_cycles=480.0,
)

#: Its record once its schedule ended: waits by cause and where they fell.
JOB_RECORD = JobRecord(
    id="job-7",
    tenant="alice",
    program="examples/bell.qvm.asm",
    priority=2,
    arrival_cycle=1200.0,
    start_cycle=1350.0,
    end_cycle=1890.5,
    tiles=12,
    module=1,
    logical_qubits=2,
    wait_cycles={
        "queue": 150.0,
        "factory": 40.5,
        "routing": 0.0,
        "link": 0.0,
        "decoder": 20.0,
        "preempted": 0.0,
    },
    idle_logical_error=1.2e-6,
    runtime_alone_cycles=480.0,
    waits_at={3: 40.5, 5: 20.0},
    code_distance=11,
    block="compact",
    own_logical_error=3.4e-5,
)

#: The fault policies' answer for a job when it was accepted, which its start reuses (held
#: in memory only; its JSON is pinned like any struct's).
FORESEEN = Foreseen(
    given=RUN_REQUEST,
    epoch=3,
    calibrations=2,
    physical_qubits=4860,
    request=RUN_REQUEST,
    adjusted=Adjusted(
        actions=({"action": "raise-distance", "profile": "logical:surface_code(d=9)", "to": 11},),
        rewrite=REWRITE,
        physical_qubits=5940,
        decoder_load=0.35,
        logical_error_per_cycle={"logical:surface_code(d=11)": 2.5e-9},
    ),
)

EXAMPLES = (
    CONFIG_FILE,
    FORESEEN,
    MACHINE_TABLE,
    FACTORY_TABLE,
    LINKS_TABLE,
    KERNEL_TABLE,
    TENANT_TABLE,
    TENANT_QUOTA,
    FAULTS_TABLE,
    MODULE_FAILURE,
    ASSIST_TABLE,
    HTTP_TABLE,
    BILLING_TABLE,
    PRICE_TABLE,
    KERNEL_CONFIG,
    MACHINE_CONFIG,
    TENANT_CONFIG,
    WORKLOAD_FILE,
    GENERATE,
    GENERATED,
    TENANT_ENTRY,
    JOB_ENTRY,
    RETURNED,
    RAISED,
    LOST,
    AGAIN,
    USAGE,
    ENTRY,
    INDEX,
    TRIGGER_ROW,
    RUN_ROW,
    DONE,
    RESULT_FACTS,
    TELEMETRY_FACTS,
    FAILED,
    FAILURE,
    JOB_ROW,
    RAN,
    YIELDED,
    ATTEMPT,
    JOB_SPEC,
    JOB_RECORD,
)
