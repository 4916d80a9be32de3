"""The defaults QMK's layers share, and the names they must agree on, as named constants
in one place.

The command line, the executor, the kernel and its configuration, the qSyscall method
table, the client, the Qiskit backend, the workflows and the web console read their
defaults here. So a default is changed once and every layer (and every generated table
and ``--help`` text) follows. So are the engines' names and a job's states. This module
imports nothing else of QMK, so every layer may read it.

As in httpx, ``None`` means "no limit" where a limit applies, and "let QMK choose" for
the engine.

>>> SHOTS, PROFILE, QUBIT
(1024, 'logical:surface_code(d=9)', 'qubit_gate_ns_e3')
>>> ENGINES[:3], ENGINE
(('statevector', 'stabilizer', 'qsim'), None)
>>> FINAL_JOB_STATES
('COMPLETED', 'FAILED', 'CANCELLED', 'TIMED_OUT')
"""

from __future__ import annotations

from types import MappingProxyType
from typing import Final

# --------------------------------------------------------------------------- the machine

#: Seconds a computed speedup over ``exclusive`` (``q_machine_status(speedup=true)``)
#: is served before the next ask computes it again: at most one computation a window.
SPEEDUP_WINDOW_S: Final = 5.0
#: The code profile of logical qubits allocated without one.
PROFILE: Final = "logical:surface_code(d=9)"
#: The physical qubit parameter set (one of QRE's six predefined sets).
QUBIT: Final = "qubit_gate_ns_e3"
#: The machine scheduler's policies ([machine] policy, ``qmk machine simulate --policy``),
#: in the order of the policy registry (``qmk.kernel.machine.policies.POLICIES``, which a
#: test compares with this list): the baseline first.
MACHINE_POLICIES: Final = (
    "exclusive",
    "partition",
    "fair-share",
    "priority",
    "backfill",
    "fidelity",
    "tetris",
)
#: The policy of a machine whose [machine] table names none: sharing that keeps every
#: job within its error budget.
MACHINE_POLICY: Final = "fidelity"
#: The idle logical error a job on the shared machine may be given at most, where its
#: submit, its program and the workload name none ([machine] error_budget).
ERROR_BUDGET: Final = 0.01
#: The magic-state factory protocols ([machine.factory] protocol), in the order of
#: ``qmk.kernel.machine.factories.PROTOCOLS`` (a test compares the two), and the default.
FACTORY_PROTOCOLS: Final = ("estimator", "litinski-15to1", "cultivation")
FACTORY_PROTOCOL: Final = "estimator"
#: Logical cycles of one machine epoch: the scheduler decides only at its boundaries.
EPOCH_CYCLES: Final = 100
#: The most logical cycles a kernel's job runs on the shared machine without a fence, a
#: point where the machine may preempt it: the kernel adds fences to longer stretches
#: ([machine] fence_cycles), so no job holds its tiles past a preemption by longer.
FENCE_CYCLES: Final = 10_000

# --------------------------------------------------------------------------- running

#: Shots of a run or a job that names none.
SHOTS: Final = 1024
#: The most shots one run takes, a kernel job's (QVM or device) or an in-process one's
#: (``qmk run``, ``qmk.run``, ``qmk device run``): a run keeps every shot's outcomes
#: (a byte an event a shot), and numpy's samplers count shots in 64-bit integers.
MAX_SHOTS: Final = 10_000_000
#: A seed has this many bits: it is an integer in ``[0, SEED_BOUND)`` wherever a run or a
#: job takes one, and a run that names none draws one of this many bits
#: (:func:`qmk.execution.request.draw_seed`): numpy and stim seed from 64-bit integers,
#: and the kernel stores them as SQLite integers.
SEED_BITS: Final = 63
SEED_BOUND: Final = 2**SEED_BITS
#: The precisions a run may ask an engine for, and the numpy dtype of the amplitudes each
#: means: the one map that ``qmk run --precision``, an ``engine_options`` dtype, a job's
#: ``policy.precision``, ``QMKBackend(precision=)`` and the engine registry read.
PRECISION_DTYPES: Final = MappingProxyType({"single": "complex64", "double": "complex128"})
#: Whether a run injects the logical errors of its code profiles: the machine's one noise
#: default, read by ``qmk run``, ``qmk.run``, a kernel job and ``qmk.qiskit.QMKBackend``
#: (``--no-noise`` / ``noise=False`` gives ideal logical qubits, comparable with Aer).
NOISE: Final = True
#: The target a run names when it names none (``qmk.execution.target``): the gate-level
#: logical machine (``q_submit``'s ``target``, ``RunRequest.target``).
TARGET: Final = "logical"
#: The universal engine (numpy statevector).
STATEVECTOR: Final = "statevector"
#: The Clifford engine (stim), for programs with no non-Clifford op.
STABILIZER: Final = "stabilizer"
#: Adapters to the field's simulators (optional extras; see ``qmk engines``).
QSIM: Final = "qsim"
AER_STATEVECTOR: Final = "aer-statevector"
AER_DENSITY_MATRIX: Final = "aer-density-matrix"
AER_MPS: Final = "aer-mps"
CIRQ: Final = "cirq"
QUTIP: Final = "qutip"
LIGHTNING: Final = "lightning"
BRAKET: Final = "braket"
#: GPU engines (registered where a CUDA GPU is present).
CUSTATEVEC: Final = "custatevec"
QSIM_GPU: Final = "qsim-gpu"
#: QMK's matrix product state engine (numpy): many qubits at low entanglement.
MPS: Final = "mps"
#: Every engine name a run or a job may ask for, in the order of the engine registry
#: (``qmk.engines.registry.SPECS``, which a test compares with this list): the names live
#: here, in a leaf, so that the CLI and the kernel check a name without importing engines.
ENGINES: Final = (
    STATEVECTOR,
    STABILIZER,
    QSIM,
    AER_STATEVECTOR,
    AER_DENSITY_MATRIX,
    AER_MPS,
    CIRQ,
    QUTIP,
    LIGHTNING,
    BRAKET,
    CUSTATEVEC,
    QSIM_GPU,
    MPS,
)
#: The noise models a text spec may name (:data:`qmk.qec.noise.NOISE_MODELS` maps each to
#: its class, in this order; a test compares them): here, in a leaf, so that the kernel's
#: config checks a name without the QEC layer.
NOISE_MODEL_NAMES: Final = ("depolarizing", "gate", "measurement", "idle", "drift")
#: The languages a program file is read in (``--format``; :mod:`qmk.frontends` reads
#: them): the names live here, in a leaf, so that the CLI and the kernel's door check a
#: name without importing the front-ends.
FORMATS: Final = ("qvm-json", "qvm-asm", "qasm2", "qasm3", "qir", "stim")
#: Every language name program text may be given in: :data:`FORMATS`, and ``qasm``
#: (OpenQASM, its version read from its header).
PROGRAM_FORMATS: Final = ("qasm", *FORMATS)
#: The engine of a run that names none: None lets QMK's router choose the cheapest
#: installed engine that runs the program exactly (``qmk run --explain`` says which).
ENGINE: Final[str | None] = None

# --------------------------------------------------------------------------- a job's states

#: A job's states, in lifecycle order: ``QUEUED -> VALIDATING -> RUNNING ->`` one of the
#: final states (a preempted or recovered job goes back to QUEUED). The names live here,
#: in a leaf, so that the kernel's job record, the workflows' runner (which may not import
#: the kernel) and the web console (which the HTTP layer serves them to) read one table.
QUEUED: Final = "QUEUED"
VALIDATING: Final = "VALIDATING"
RUNNING: Final = "RUNNING"
COMPLETED: Final = "COMPLETED"
FAILED: Final = "FAILED"
CANCELLED: Final = "CANCELLED"
TIMED_OUT: Final = "TIMED_OUT"
JOB_STATES: Final = (QUEUED, VALIDATING, RUNNING, COMPLETED, FAILED, CANCELLED, TIMED_OUT)
#: The states a job ends in: it never leaves them.
FINAL_JOB_STATES: Final = (COMPLETED, FAILED, CANCELLED, TIMED_OUT)

# --------------------------------------------------------------------------- the kernel

#: A job's priority (0..9, higher first) when its policy names none.
PRIORITY: Final = 5
#: Longest a ``q_wait`` waits for a job, in milliseconds (0 answers at once).
WAIT_TIMEOUT_MS: Final = 30_000
#: Most jobs one ``q_jobs`` call lists.
JOBS_LIMIT: Final = 100
#: Most records one ``q_events`` call gives, and its default: the kernel keeps the last
#: this many audit records of all tenants in memory for the feed and ``q_audit``.
EVENTS_LIMIT: Final = 4096
#: Records ``q_audit`` gives by default, and at most.
AUDIT_LIMIT: Final = 100
AUDIT_LIMIT_MAX: Final = 1000
#: A session's lifetime, in seconds.
SESSION_TTL_S: Final = 3600.0
#: A job's run-time limit when its policy names none, in seconds.
JOB_TIMEOUT_S: Final = 600.0
#: Memory (RLIMIT_AS) of each worker process, in MiB.
WORKER_MEMORY_MB: Final = 2048
#: Environment variable a confined kernel worker sets (:func:`qmk.kernel.pools.confine.confine`)
#: to the sandbox layers it closed, comma-separated (``network``, ``filesystem``); the
#: router reads it (:mod:`qmk.engines.limits`).
WORKER_SANDBOX_ENV: Final = "QMK_WORKER_SANDBOX"
#: CPU seconds one job may use in its worker (RLIMIT_CPU, all its threads together): a
#: backstop behind the job's own timeout, for a worker that outlives its kernel's watch.
WORKER_CPU_S: Final = 86_400
#: The largest file a worker may write, in MiB (RLIMIT_FSIZE); None: the worker's memory
#: cap (a worker cannot write a checkpoint bigger than what it holds).
WORKER_FILE_MB: Final[int | None] = None
#: The user workers run as when the kernel runs as root.
WORKER_USER: Final = "nobody"
#: Times a job goes back to the queue because its worker was lost (its pool's server or
#: node went away) before the next loss fails it (``QK312 worker-lost``).
WORKER_LOST_RETRIES: Final = 3
#: Length of a scheduling epoch, in milliseconds.
EPOCH_MS: Final = 10
#: A queued job preempts a running one whose priority is at least this much lower (0: never).
PREEMPT_GAP: Final = 3
#: A preemption whose urgent job's priority is at least this much higher than its
#: victim's stops the victim at once, rolling back its open REV segment, instead of
#: waiting for its next fence (0: always at once).
ROLLBACK_GAP: Final = 6
#: The longest a job's policy timeout or a q_wait may ask for, in milliseconds (a year):
#: larger numbers (10**400, say) are refused as invalid arguments, never overflow.
MAX_TIMEOUT_MS: Final = 365 * 24 * 3600 * 1000
#: The largest result (JSON) the kernel keeps for one job, in MiB.
MAX_RESULT_MB: Final = 16.0
#: Seconds a job's result is kept after the job ends; then it is deleted (the job stays).
RESULT_KEEP_S: Final = 30 * 86_400.0
#: The most bytes of stored results one tenant holds (MiB), unless its config says more.
MAX_RESULT_STORAGE_MB: Final = 1024.0
#: Counts entries one ``q_get_result`` page holds by default, and at most.
RESULT_PAGE_ENTRIES: Final = 10_000
MAX_RESULT_PAGE_ENTRIES: Final = 100_000
#: Most nodes one submitted graph may have (bigger ones are refused before being read).
MAX_GRAPH_NODES: Final = 100_000
#: Most operations one job runs, unless its tenant's config says more: its program's
#: unrolled operations (a stim circuit's ``REPEAT`` blocks as often as they repeat) times
#: its shots. A MAX_GRAPH_NODES program at 10^5 shots is within it.
MAX_JOB_OPERATIONS: Final = 10_000_000_000
#: Graph nodes one tenant's submits may have verified per second (a token bucket that
#: holds one MAX_GRAPH_NODES graph): verification runs at ~36k nodes/s on one loaded core,
#: so one tenant's big graphs, valid or not, take at most about a third of a core.
VERIFY_NODES_PER_S: Final = 10_000.0
#: CPU seconds a second one tenant's program work (reading, verifying, planning and
#: lowering its submits, replays, restores and REST program text) may take on average,
#: and at once after a rest: a token bucket that holds a max_graph_nodes graph's work.
CPU_S_PER_S: Final = 0.5
CPU_BURST_S: Final = 20.0
#: Free space (MiB) the data directory's disk must keep: below it, submits are refused
#: (QS1011) before anything is written, so commits do not run out of room.
MIN_FREE_DISK_MB: Final = 64
#: Seconds a channel proposal waits to be accepted before it is closed (frees the quota).
CHANNEL_PROPOSAL_TTL_S: Final = 3600.0
#: The longest a capability delegation (q_delegate_caps) may last, in seconds, unless the
#: config says otherwise (``[kernel] max_delegation_s``).
MAX_DELEGATION_S: Final = 86_400.0
#: Live delegations one tenant may have made at once (more are QS1006 quota-exceeded).
MAX_LIVE_DELEGATIONS: Final = 64
#: Seconds an ended delegation (revoked or expired) is kept, listed and readable before
#: retention deletes it (``[kernel] delegation_keep_s``); the audit log keeps its story.
DELEGATION_KEEP_S: Final = 30 * 86_400.0
#: Execution states (checkpoint files) a job keeps: saving one more deletes its oldest.
CHECKPOINTS_PER_JOB: Final = 3
#: Seconds a job's execution states are kept after it ends (a final state), for q_restore.
CHECKPOINT_KEEP_S: Final = 86_400.0
#: SQLite's ``synchronous`` pragma: "normal" survives a kernel crash, "full" also power loss.
SYNCHRONOUS: Final = "normal"
#: Seconds ``qmk serve --dask`` gives a Dask scheduler to answer at the start (past it the
#: start fails, QS1011), and then at most its first worker to join (``--dask-connect-s``).
DASK_CONNECT_S: Final = 10.0

# --------------------------------------------------------------------------- the wire

#: Longest request line a server reads, in bytes.
MAX_LINE_BYTES: Final = 16 * 1024 * 1024
#: Longest request line of a connection that has not authenticated yet, in bytes.
MAX_LINE_UNAUTHENTICATED_BYTES: Final = 64 * 1024
#: Deepest nesting of arrays and objects in a request line (a request object is 1).
MAX_JSON_DEPTH: Final = 64
#: The listen backlog of a server's socket (Unix or TCP).
LISTEN_BACKLOG: Final = 512
#: Most connections a server holds at once.
MAX_CONNECTIONS: Final = 1024
#: Most connections one peer (an IP address; a process on the Unix socket) holds at once.
MAX_CONNECTIONS_PER_PEER: Final = 64
#: Most signed-in connections one tenant holds at once, on every listener together.
MAX_CONNECTIONS_PER_TENANT: Final = 256
#: File descriptors a server keeps free for workers and the database; None: the larger
#: of 64 and an eighth of RLIMIT_NOFILE.
FD_RESERVE: Final[int | None] = None
#: Most requests of one connection handled at once.
MAX_INFLIGHT: Final = 256
#: Most bytes of requests of one connection handled at once (one line always may run).
MAX_INFLIGHT_BYTES: Final = 64 * 1024 * 1024
#: Unsent reply bytes of a connection past which the server stops reading its requests.
MAX_UNSENT_BYTES: Final = 1024 * 1024
#: Seconds a stopping server gives requests in flight and unsent replies, then closes.
DRAIN_TIMEOUT_S: Final = 2.0
#: Seconds a connection may stay without a successful request (sent nothing, or no
#: q_negotiate_caps yet) before the server closes it with a coded line.
AUTH_TIMEOUT_S: Final = 10.0
#: Seconds a signed-in connection may stay idle (no request under way or answered, no
#: byte sent to it, no live watch) before the server closes it with a coded line.
IDLE_TIMEOUT_S: Final = 600.0
#: Connections a server accepts per second from all peers (bursts up to MAX_CONNECTIONS):
#: a connect flood costs it at most this many accepts a second.
ACCEPT_RATE: Final = 200.0
#: Connections a server accepts per second from one peer (bursts up to the larger of
#: this and MAX_CONNECTIONS_PER_PEER).
ACCEPT_RATE_PER_PEER: Final = 100.0
#: Seconds a client waits to connect; None: no limit.
CONNECT_TIMEOUT_S: Final[float | None] = 5.0
#: Seconds a client waits for one reply (``q_wait`` adds its own wait); None: no limit.
CALL_TIMEOUT_S: Final[float | None] = 60.0

# --------------------------------------------------------------------------- connections

#: Seconds a connection's unsent replies may stay above its write buffer's bound (its
#: client reads nothing, or too slowly) before the server drops it.
WRITE_TIMEOUT_S: Final = 30.0
#: Seconds an HTTP connection may take to send a request's line and headers (counted from
#: the connection, or from the first byte of a request on a kept-alive one).
HTTP_HEADER_TIMEOUT_S: Final = 10.0
#: Seconds an HTTP request's body may take to arrive once its headers are read.
HTTP_BODY_TIMEOUT_S: Final = 60.0
#: Seconds an idle kept-alive HTTP connection stays open after its last response.
HTTP_KEEP_ALIVE_S: Final = 5.0
#: Longest URL (path and query) of an HTTP request, in bytes.
HTTP_MAX_URL_BYTES: Final = 8 * 1024
#: Most bytes of an HTTP request's line and headers together.
HTTP_MAX_HEAD_BYTES: Final = 64 * 1024
#: Live event streams (Server-Sent Events) one session, and one tenant, may hold at once.
MAX_STREAMS_PER_SESSION: Final = 8
MAX_STREAMS_PER_TENANT: Final = 32

# --------------------------------------------------------------------------- the door

#: Failed logins (a wrong key, an unknown tenant) one peer may make in a burst on every
#: wire together, and how many more a second it gains: each costs a key check (scrypt).
FAILED_LOGINS_PER_PEER: Final = 20
FAILED_LOGIN_RATE_PER_PEER: Final = 0.5
#: Calls that write audit lines (sessions, delegations, channels, checkpoints, cancels,
#: replays, calibrations, the assistant) one tenant may make a second, and in a burst.
AUDIT_RATE_PER_TENANT: Final = 50.0
AUDIT_BURST_PER_TENANT: Final = 1000
#: Bytes of answers that a wire holds whole until they are sent (a gRPC message), all
#: calls together: a bigger answer waits until the others have gone.
MAX_HELD_ANSWER_BYTES: Final = 64 * 1024 * 1024
#: Bytes one GraphQL answer may take: the largest result a job keeps, so any one result
#: fits, and aliases of it cannot multiply a short query into a much longer answer.
GRAPHQL_MAX_ANSWER_BYTES: Final = int(MAX_RESULT_MB * 1024 * 1024)
#: What one GraphQL query may ask for (docs/graphql.md): the deepest nesting of its
#: fields, its cost (each field 1, each field that makes a syscall 10, times the lists
#: above it), its aliases, tokens and fields (every fragment spread expanded) and its
#: fragment spreads; how long it may run, and how many may run or wait at once.
GRAPHQL_MAX_DEPTH: Final = 6
GRAPHQL_MAX_COST: Final = 20_000
GRAPHQL_MAX_ALIASES: Final = 30
GRAPHQL_MAX_TOKENS: Final = 2_000
GRAPHQL_MAX_FIELDS: Final = 2_000
GRAPHQL_MAX_SPREADS: Final = 200
GRAPHQL_MAX_TIME_S: Final = 30.0
GRAPHQL_MAX_QUERIES: Final = 16

# --------------------------------------------------------------------------- the assistant

#: Model replies per question, at most (``qmk assist --max-steps``, ``[assist] max_steps``).
ASSIST_MAX_STEPS: Final = 6
#: Refused drafts sent back to the model, at most (``--max-retries``, ``[assist]``).
ASSIST_MAX_RETRIES: Final = 2
#: Seconds one request to the model's server may take.
ASSIST_TIMEOUT_S: Final = 120.0
#: Shots the ``run`` tool takes at most (``[assist] max_shots`` on a kernel).
ASSIST_MAX_SHOTS: Final = 1000
#: Questions a tenant may ask a kernel's assistant a minute (after a burst).
ASSIST_CALLS_PER_MINUTE: Final = 6.0
#: Questions a kernel's assistant answers at once (``[assist] max_concurrent``).
ASSIST_MAX_CONCURRENT: Final = 4

#: The cyclic garbage collector's thresholds in a ``qmk`` process and the kernel's
#: (``qmk.cli.entry``, ``qmk.serve.entry``): a young collection every 10,000
#: allocations net of frees, not CPython's 700. A command's imports and its program's
#: values are nearly all kept to its end, so the default's many collections find little
#: to free and cost a fresh ``qmk run`` much of its CPU (``docs/engines.md`` has the
#: figures). Cycles are still collected: a long ``qmk serve`` holds at most this many
#: more objects meanwhile.
GC_THRESHOLDS: Final = (10_000, 10, 10)
#: Whether NumPy asks for transparent huge pages for its large arrays in a ``qmk``
#: command's process (``qmk.cli.prepare_process`` sets ``NUMPY_MADVISE_HUGEPAGE`` unless
#: the user has). A fresh command writes each large array once; on a virtual machine
#: whose host backs memory lazily, such as Firecracker's, each fresh huge page's fault
#: is slow, most of a second of system CPU in a million-gate ``qmk run``
#: (``docs/engines.md``, "Huge pages").
HUGE_PAGES: Final = False
#: glibc's malloc thresholds in a ``qmk`` command's process, in bytes (set by
#: ``qmk.cli.keep_freed_heap``; nothing where the C library is not glibc): blocks up to
#: the first come from the heap, not a mapping of their own, and up to the second freed
#: at the heap's top is kept. glibc's defaults map a large array afresh and hand freed
#: heap back, so each stage's arrays fault their pages in again, several thousand minor
#: faults a Clifford run (``docs/engines.md``, "Page faults"). The cost: freed memory up
#: to the second figure stays with the process until it ends.
HEAP_THRESHOLDS: Final = (32 << 20, 256 << 20)
