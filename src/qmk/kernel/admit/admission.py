"""Admission: every check of a submission, in order, before anything is stored.

:meth:`Admission.read` reads a job's program once, whatever its target and however it
came (a submit's graph, a replay's or a restore's stored text). It reads within the
node cap before anything of it is built, on the tenant's CPU budget, and off the event
loop when it is big or a device job. :meth:`Admission.admit` then checks the values
(shots, seed, policy) and the session's capabilities against the program's (an audited
decision). It runs the entanglement firewall and answers admission (the job's peak
physical qubits against the machine's) and the quotas (logical qubits per tenant,
``max_queued_jobs``). A job larger than the largest module up, on a machine with two or
more modules up, is placed over them with its cross-module gates teleported
(:mod:`qmk.kernel.admit.teleport`). The rewritten program passes the same checks. Only
then does it build the :class:`~qmk.kernel.records.jobs.Job`, which the supervisor
stores and queues.

Each tenant's submits may have ``verify_nodes_per_s`` graph nodes read and verified a
second (:meth:`Admission.charge`, a token bucket on the kernel's clock that holds one
``max_graph_nodes`` graph). Past it a submit is refused at once, before any reading,
with ``QS1006`` and ``retry_after_s``. It is a refusal rather than a wait, so that a
tenant pipelining big graphs holds neither memory nor a verification thread while it
waits. One ``max_graph_nodes`` graph always fits in a full bucket, so a client that
retries after ``retry_after_s`` gets in.

Three caches make a program submitted again cheap: verified programs by graph text
(:func:`qmk.kernel.records.programs.verified`), the physical-qubit figure of each (graph,
options) and the firewall's answer of each (graph, tenant) when no channel is bound.
A program submitted again with another seed (a bench's jobs, a user's sweep) takes more.
The answer its last job's checks made is kept by (graph text, tenant, target): its
policy with the program's hints, the firewall, the physics, the physical qubits, the
run request but for its seed, the footprint. It is taken while the verified program,
the parsed policy (kept by its JSON text), the configuration object, the calibrations
ingested and the shots are those it was made from. The checks that depend on the moment
run each time, in the full path's order, with its refusals: the priority, the session's
capabilities (audited), the modules up, the quotas, the queue room, the CPU budget.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import msgspec

from qmk import defaults
from qmk.errors import (
    REGISTRY,
    AdmissionError,
    CapabilityError,
    InvalidArgument,
    ProgramError,
    QMKError,
    warning,
)
from qmk.execution import targets
from qmk.execution.priced import Refused
from qmk.execution.request import (
    DEFAULT_TARGET,
    Policy,
    RunRequest,
    check_seed,
    check_shots,
    draw_seed,
    program_digest,
)
from qmk.execution.targets import TargetError, TargetSpec
from qmk.kernel.admit.budget import CpuBudget
from qmk.kernel.admit.cache import cacheable
from qmk.kernel.admit.channels import ChannelTable, check_firewall
from qmk.kernel.admit.faults import device_for
from qmk.kernel.admit.physics import job_calibration, job_noise_model
from qmk.kernel.admit.planner import Planner
from qmk.kernel.admit.quotas import WORKER_STATE_SHARE, Quotas
from qmk.kernel.admit.scheduler import FairQueue
from qmk.kernel.admit.settled import Settled, SettledAnswers, parse_kept
from qmk.kernel.clock import Clock
from qmk.kernel.config import KernelConfig
from qmk.kernel.device import LogicalMachine
from qmk.kernel.errors import JobError
from qmk.kernel.records.jobs import (
    Job,
    honour_set_policy,
    new_id,
    target_options,
)
from qmk.kernel.records.programs import (
    graph_text,
    limits_of,
    verified,
    verified_kept,
    verified_nodes,
)
from qmk.kernel.security.attest import epoch_records
from qmk.kernel.security.sessions import Session
from qmk.kernel.storage.audit import AuditLog
from qmk.kernel.storage.commit import GroupCommit
from qmk.kernel.storage.results import Results
from qmk.kernel.storage.store import GRAPH_PACKED_AHEAD, pack_graph
from qmk.memo import Memo
from qmk.qvm.graph import GraphText
from qmk.qvm.verify import operations

if TYPE_CHECKING:
    from qmk.execution.footprint import Footprint
    from qmk.execution.priced import Priced

#: A submit's capability check that allowed its program, kept for its job's QUEUED line
#: (:meth:`Admission.admit`): the tenant, the session and the capabilities required.
Allowed = tuple[str, str, list[str]]
#: Most shots one job may ask for (the one range: :data:`qmk.defaults.MAX_SHOTS`).
MAX_SHOTS = defaults.MAX_SHOTS
#: Most verifier findings copied into a ProgramError.
MAX_FINDINGS = 50
#: How many (graph, options) -> physical-qubit answers the kernel keeps.
PLAN_CACHE_SIZE = 256
#: A plan's figures as admission keeps them: peak physical qubits, decoder load
#: (syndrome bits per second) and each profile's logical error per cycle.
Planned = tuple[int, float, dict[str, float]]
_ENCODE = msgspec.json.Encoder().encode
#: The shared machine's refusal of a job no placement holds (``QK501``).
#: Graphs of at least this many nodes are read and verified in a thread, off the loop.
OFFLOAD_NODES = 2000
#: At most this many graphs are verified in threads at once (the cores of a small host).
VERIFY_THREADS = 2
#: A stored graph's text of at least this many bytes is read and verified in a thread (a
#: node is at least 16 bytes of JSON, so a graph of OFFLOAD_NODES nodes is).
OFFLOAD_BYTES = 16 * OFFLOAD_NODES


@dataclass(frozen=True, slots=True)
class Read:
    """A job's program as :meth:`Admission.read` read it.

    Attributes:
        text: its compact JSON text: what the job stores, digests and runs.
        program: the program as its target reads it (a verified QVM program, a device
            job).
        settles: a small submitted graph read on the event loop: the answer of its last
            job may serve it (:mod:`~qmk.kernel.admit.settled`).
    """

    text: str
    program: Any
    settles: bool = False


def target_named(name: Any) -> TargetSpec:
    """The target a submit names (:data:`qmk.execution.target.TARGETS`).

    Raises:
        InvalidArgument: no such target (``key``: ``target``; the closest named).
    """
    try:
        return targets.spec(name)
    except TargetError as exc:
        raise InvalidArgument(exc.message, key="target") from None


def _nodes_in(text: str) -> int:
    """An upper bound on the nodes of compact graph JSON, without parsing it.

    Each node has one ``"op":`` key, and in a JSON string a quote is escaped, so nothing
    else reads so. Only an ``args`` object's own ``op`` key would, counted twice."""
    return text.count('"op":')


class Admission:
    """The submission checks of one kernel, with their caches.

    A submit, a replay and a restore pass the same checks against the same caches, which
    a split would have to share. The checks: capabilities (audited), the firewall, the
    machine, quotas, queue room, the verification rate. The caches: verified programs,
    firewall answers, plans.

    Args:
        config: the kernel configuration (machine, tenants and their quotas).
        channels: the channel table the firewall reads.
        queue: the run queue (for ``max_queued_jobs``).
        audit: where capability decisions are recorded.
        commits: the group commit (a refusal's audit line is committed urgently).
        clock: gives a job its ``created_at``.
        device: the machine, whose largest module up bounds a job's physical qubits.
        results: the stored results (a tenant at its ``max_result_storage_mb`` queues
            nothing more: its job would run and then FAIL with ``QK307``).
    """

    def __init__(
        self,
        config: KernelConfig,
        *,
        channels: ChannelTable,
        queue: FairQueue,
        audit: AuditLog,
        commits: GroupCommit,
        clock: Clock,
        device: LogicalMachine | None = None,
        results: Results | None = None,
        planner: Planner,
    ) -> None:
        self.config = config
        self.results = results
        #: Device jobs' artifacts, made at the first ask (set by the kernel:
        #: :meth:`~qmk.kernel.running.book.JobBook.stored_artifacts`), for their quota.
        self.artifacts: Callable[[], Any] | None = None
        self.channels = channels
        self.queue = queue
        self.audit = audit
        self.commits = commits
        self.clock = clock
        self.device = device or device_for(config)
        #: Peak physical qubits, decoder load (syndrome bits per second) and each profile's
        #: logical error per cycle of programs' plans.
        self._plans: OrderedDict[tuple[Any, ...], Planned] = OrderedDict()
        #: The firewall's answers without channels bound, by (graph text, tenant).
        self._firewalled: Memo[dict[str, int]] = Memo(PLAN_CACHE_SIZE)
        #: Small programs' footprints by their run request less its seed (:meth:`_compiled`).
        self._footprints: Memo[Footprint | None] = Memo(PLAN_CACHE_SIZE)
        self._policies: Memo[Policy] = Memo(PLAN_CACHE_SIZE)  # parsed, by their JSON
        #: What admit made of a program, for its next job (:mod:`~qmk.kernel.admit.settled`).
        self.settled = SettledAnswers(PLAN_CACHE_SIZE)
        #: the tenants' limits: priority, room, queue room, verification rate
        self.quotas = Quotas(config, queue=queue, clock=clock, device=self.device, results=results)
        self.cpu = CpuBudget(
            rate=lambda tenant: self.config.tenants[tenant].cpu_s_per_s,
            burst=lambda tenant: self.config.tenants[tenant].cpu_burst_s,
            clock=clock,
            threads=VERIFY_THREADS,
        )
        #: Plans new programs in a process of their own (:mod:`~qmk.kernel.admit.planner`).
        self.planner = planner

    async def read(self, tenant: str, graph: Any, *, target: Any = DEFAULT_TARGET) -> Read:
        """The one reader of a job's program, whatever its target and however it came.

        It reads a submit's graph (JSON data, or :class:`~qmk.qvm.graph.GraphText` as
        the wires hand it), or a job's stored text (a ``str``: a replay's, a restore's).
        Every program is bounded before anything of it is built. A QVM graph's nodes
        must be within ``max_graph_nodes`` and are taken from the tenant's
        ``verify_nodes_per_s`` (:meth:`charge`; a stored text's are taken, not refused).
        A device job's items must be within ``max_graph_nodes`` (its target's reading).
        Then it is read as its target reads it, its CPU charged to the tenant. A small
        QVM graph is read on the event loop (:meth:`~qmk.kernel.admit.budget.CpuBudget.on_loop`).
        A big one, and every program of another kind (a device job), is read in a thread
        (:attr:`cpu`: one program of a tenant at a time, at most :data:`VERIFY_THREADS`
        at once). So one tenant's big submits neither freeze the kernel nor take every
        core.

        Raises:
            InvalidArgument: no such target.
            QuotaError: past ``max_graph_nodes`` or ``verify_nodes_per_s`` (before any
                reading), or past the tenant's CPU budget.
            ProgramError: the program does not read or verify (its target's code).
        """
        entry = target_named(target)
        if entry.program != "qvm":
            from qmk.kernel.admit.own import read_own

            return Read(*await read_own(self, tenant, graph, entry))
        if isinstance(graph, str):  # a stored graph: the compact JSON admit stored
            return await self._read_stored(tenant, graph)
        count = self.quotas.check_size(graph)
        self.quotas.charge(tenant, count)
        if count < OFFLOAD_NODES:
            # a wire graph's text, verified before: no program work to charge (the CPU
            # clock is read twice a block: two system calls, more than the look-ups)
            text = graph.text if type(graph) is GraphText else None
            program = None if text is None else verified_kept(text, limits_of(self.config))
            if program is None:
                with self.cpu.on_loop(tenant):
                    text = graph_text(graph)
                    program = self._verify(text)
            assert text is not None
            return Read(text, program, settles=True)

        def work() -> Read:
            text = graph_text(graph)
            program = self._verify(text)
            # what admit, the job's row and its end would work out on the event loop,
            # made here and kept for this very text and program (docs/kernel.md,
            # "Admission": a big program's share of it held the loop in long pieces)
            program_digest(text)
            if len(text) >= GRAPH_PACKED_AHEAD:  # the form its row and its task carry
                pack_graph(text)
            self._firewall(text, program, tenant, {})
            epoch_records(program)
            return Read(text, program)

        return await self.cpu.run(tenant, work)

    async def _read_stored(self, tenant: str, text: str) -> Read:
        """A stored graph's ``text``, its nodes taken from the tenant's verification rate
        first. They are the kept program's, or an upper bound counted in the text, which
        is cheap enough for the event loop at each refused replay. It is then verified in
        a thread charged to its CPU budget, unless it is small. The text is not parsed
        again: it is the compact JSON :meth:`admit` stored."""
        nodes = verified_nodes(text)  # a replay of a kept program: known, not counted
        if nodes is None:
            nodes = _nodes_in(text)
        self.quotas.charge(tenant, min(nodes, self.config.max_graph_nodes))
        if len(text) < OFFLOAD_BYTES:
            with self.cpu.on_loop(tenant):
                return Read(text, self._verify(text))
        return Read(text, await self.cpu.run(tenant, lambda: self._verify(text)))

    async def admit(
        self,
        session: Session,
        read: Read,
        shots: Any,
        seed: Any,
        policy: Any,
        *,
        target: Any = DEFAULT_TARGET,
        allowed: list[Allowed] | None = None,
    ) -> Job:
        """Check a submission whose program :meth:`read` read and build its job (not yet
        stored, not yet numbered).

        ``target`` names the target that runs it (:mod:`qmk.execution.target`). The keys
        of ``policy`` that are its options go to the request's ``target_options``, and
        the target, asked to compile the program, refuses what it cannot honour. A
        target whose programs are not QVM graphs (the neutral-atom device's jobs) is
        admitted by :meth:`_admit_own`. ``allowed``: the capability check that allows
        the program is not a ``cap`` line of its own. It is kept there for the job's
        QUEUED line (:meth:`~qmk.kernel.running.supervisor.Supervisor.accept`), or
        written by :meth:`write_allowed` if the submit is refused after it. A refusal is
        its ``cap`` line at once, as without.

        Raises:
            InvalidArgument: ``shots``, ``seed``, ``policy`` or ``target`` out of range.
            ProgramError: its target refuses the program (``details.code``: its code).
            CapabilityError: the program needs capabilities the session lacks (audited).
            FirewallError: the program would entangle tenants' qubits without a channel.
            AdmissionError: the job could never fit the machine.
            QuotaError: it holds more logical qubits of a tenant than its quota, or its
                tenant already has ``max_queued_jobs`` waiting.
        """
        tenant = session.tenant
        entry = target_named(target)
        shots = check_shots(shots)  # before any work; RunRequest.build below draws a missing seed
        given_seed = seed is not None
        if given_seed:
            seed = check_seed(seed)
        policy, options = target_options(policy, entry.options)
        parsed = parse_kept(
            self._policies,
            policy,
            self.config.job_timeout_s,
            self.config.tenants[tenant].default_priority,
        )
        if entry.program != "qvm":
            from qmk.kernel.admit.own import admit_own

            return await admit_own(
                self, session, read, shots, seed, parsed, options, entry, allowed
            )
        calibrations = self.device.calibrations  # the ingests this admission's answer saw
        text, program = read.text, read.program
        if read.settles:
            settled = self.settled.find(
                (text, tenant, entry),
                options,
                program,
                parsed,
                self.config,
                calibrations,
                shots,
            )
            if settled is not None:  # the last such job's answer, but for the moment's checks
                return self._admit_settled(session, text, settled, seed, given_seed, allowed)
        given_policy = parsed
        parsed = honour_set_policy(
            parsed,
            program.graph.nodes,
            given=set(policy) if isinstance(policy, Mapping) else set(),
            now=self.clock.now(),
            epoch_s=self.config.epoch_ms / 1000,
            machine_profile=self.config.machine.profile,
        )
        self.quotas.check_priority(tenant, parsed.priority)
        self._check_caps(session, program.required_caps, "submit", allowed)
        qubits = self._firewall(text, program, tenant, parsed.channels)
        for name, count in qubits.items():  # from its verified totals, before it is planned
            self.quotas.check_qubits(name, count)
        self.quotas.check_work(tenant, operations(program), program.counts.measurements, shots)
        warnings: tuple[dict[str, str], ...] = ()
        if parsed.profile is not None and entry.logical_machine:  # said when no qubit takes it
            from qmk.estimate.variants import profile_unused

            unused = profile_unused(program.graph, parsed.profile)
            warnings = () if unused is None else (unused,)
        if entry.logical_machine and operations(program) > self.config.max_unrolled_nodes:
            warnings = (*warnings, _placed_not_run(operations(program), self.config))
        if not entry.logical_machine:  # its own physics: the target checks it compiling
            request = self._run_request(text, entry, options, shots, seed, parsed)
            footprint = await self._compiled(tenant, text, program, request, entry)
            self.quotas.check_room(footprint.physical_qubits, qubits, footprint=footprint)
            self.quotas.check_queue_room(tenant)
            job = self._job(
                session,
                text,
                program,
                request,
                footprint.physical_qubits,
                _held(qubits),
                given_seed and _cacheable(request),
            )
            job.footprint = footprint
            return job
        if parsed.profile == "auto":
            parsed = _auto_profile(self.config.machine, program, parsed)
        machine = self.config.machine
        noise_model = job_noise_model(machine, parsed.qubit or self.device.qubit, parsed)
        calibration = job_calibration(machine, parsed)

        def request_for(text: str) -> RunRequest:
            return self._run_request(
                text,
                entry,
                options,
                shots,
                seed,
                parsed,
                noise_model=noise_model,
                calibration=calibration,
            )

        physical, load, rates = await self._physical_qubits(
            tenant,
            text,
            program,
            parsed,
            noise_model,
            calibration,
            place=lambda: request_for(text),
        )
        # larger than any module (up or not: see qmk.kernel.admit.faults.spans)
        spanning = physical > max(self.device.capacities) and len(self.device.modules_up) > 1
        if spanning:  # over several modules, its cross-module gates teleported
            self.write_allowed(allowed)  # before the rewritten program's own check
            from qmk.kernel.admit.teleport import admit_spanning

            text, program, qubits, (physical, load, rates) = await admit_spanning(
                self, session, text, program, parsed, noise_model, calibration
            )
        request = request_for(text)  # the spanning program's, where it was rewritten
        # the decoders' load, where its plan was priced with the request's physics (not
        # where the machine's qubits were ingested since: the start plans it again)
        priced = (parsed.qubit or machine.qubit, parsed.profile or machine.profile)
        decoder_load = load if (request.qubit, request.profile) == priced else None
        logical_errors = rates if (request.qubit, request.profile) == priced else None
        # what it asks of the shared machine (one module's tiles): a refusal names the
        # least machine that holds them
        placed = None if spanning else await self._compiled(tenant, text, program, request, entry)
        if (
            read.settles
            and not options
            and len(program.graph.nodes) < OFFLOAD_NODES  # a small program's, held here
            and physical <= max(self.device.capacities)  # never spans, whatever is up
            and not parsed.channels  # the firewall's answer reads no channel table
            and parsed.deadline == given_policy.deadline  # no deadline from now
        ):
            self.settled.keep(
                (text, tenant, entry.name),
                Settled(
                    program=program,
                    given=given_policy,
                    config=self.config,
                    calibrations=calibrations,
                    shots=shots,
                    policy=parsed,
                    qubits=_held(qubits),
                    warnings=warnings,
                    request=request,
                    physical=physical,
                    decoder_load=decoder_load,
                    logical_errors=logical_errors,
                    footprint=placed,
                    cacheable=_cacheable(request),
                ),
            )
        self.quotas.check_room(physical, qubits, spanning=spanning, footprint=placed)
        self.quotas.check_queue_room(tenant)
        job = self._job(
            session,
            text,
            program,
            request,
            physical,
            _held(qubits),
            given_seed and _cacheable(request),
            warnings=warnings,
        )
        job.footprint = placed
        job.decoder_load = decoder_load
        job.logical_errors = logical_errors
        return job

    def _admit_settled(
        self,
        session: Session,
        text: str,
        kept: Settled,
        seed: Any,
        given_seed: bool,
        allowed: list[Allowed] | None,
    ) -> Job:
        """:meth:`admit` of a job whose answer was ``kept`` but for its seed: the checks
        of the moment run as the full path runs them, in its order."""
        self.quotas.check_priority(session.tenant, kept.policy.priority)
        self._check_caps(session, kept.program.required_caps, "submit", allowed)
        seed = seed if given_seed else draw_seed()
        request = msgspec.structs.replace(
            kept.request, seed=seed, target_options={}, engine_options={}
        )
        self.quotas.check_room(kept.physical, kept.qubits, footprint=kept.footprint)
        self.quotas.check_queue_room(session.tenant)
        job = self._job(
            session,
            text,
            kept.program,
            request,
            kept.physical,
            kept.qubits,  # held already: one mapping for the program's jobs (never changed)
            given_seed and kept.cacheable,
        )
        if kept.warnings:
            job.warnings = tuple(dict(warning) for warning in kept.warnings)
        job.footprint = kept.footprint
        job.decoder_load = kept.decoder_load
        job.logical_errors = kept.logical_errors
        return job

    def _job(
        self,
        session: Session,
        text: str,
        program: Any,
        request: RunRequest,
        physical: int,
        qubits: Mapping[str, int],
        cache_lookup: bool,
        *,
        warnings: tuple[dict[str, str], ...] = (),
    ) -> Job:
        """The job of an admitted submission (``qubits``: the tenants whose logical
        qubits it holds, :func:`_held`; ``cache_lookup``: its seed was the submit's, and
        its run :func:`cacheable`)."""
        return Job(
            job_id=new_id("job"),
            tenant=session.tenant,
            graph=text,
            request=request,
            caps=session.caps,
            required_caps=program.required_caps,
            physical_qubits=physical,
            qubits=qubits,
            created_at=self.clock.now(),
            # a seed the kernel drew is fresh: its job is never an earlier one's again
            cache_lookup=cache_lookup,
            warnings=warnings,
        )

    async def _compiled(
        self, tenant: str, text: str, program: Any, request: RunRequest, entry: TargetSpec
    ) -> Footprint:
        """The footprint of ``program`` (QVM JSON ``text``) compiled by its target for
        ``request``.

        That is its physical qubits and what it asks of the shared machine; what the
        target refuses is a ``ProgramError`` with its code. A QVM program compiles in the
        planner process (:class:`~qmk.kernel.admit.planner.Planner`): the kernel loads no
        planner. Its footprint is kept by its request less the seed, for the next job of
        that run: a job's own seed compiles nothing again. (The request names the program
        by its digest, and no target's footprint reads the seed.) A program of a target
        that reads its own (a device job) compiles in a thread charged to ``tenant``."""
        if entry.program == "qvm":
            unseeded = _unseeded(request)
            kept = self._footprints.get(unseeded, None, _nothing)
            if kept is not None:
                return kept
            compiled = await self.planner.footprint(
                entry.name, text, request, max_unrolled_nodes=self.config.max_unrolled_nodes
            )
            if isinstance(compiled, Refused):
                raise ProgramError(compiled.message, code=compiled.code, **compiled.details)
            self._footprints.refresh(unseeded, None, compiled)
            return compiled
        from qmk.kernel.admit.own import compile_own

        return await compile_own(self, tenant, program, request, entry)

    def _run_request(
        self,
        text: str,
        entry: TargetSpec,
        options: Mapping[str, Any],
        shots: int,
        seed: Any,
        policy: Policy,
        *,
        noise_model: str | None = None,
        calibration: Any = None,
    ) -> RunRequest:
        """The run request of an admitted job, built here only: the program's digest, its
        target and options, shots and seed, the policy's engine, precision and noise,
        and its physics.

        On the logical machine (:attr:`TargetSpec.logical_machine`) the physics is the
        machine's as admit resolved it (``noise_model``, ``calibration``). A target with
        physics of its own takes the policy's settings as given and refuses those it
        cannot honour. An unset qubit or profile is the machine's for a QVM program
        (lattice surgery's ``profile`` ``auto`` is left for the target: the estimator's
        code distance). For a program of its own (a device job, whose target takes none)
        it is the shipped ones."""
        machine = self.config.machine
        qvm = entry.program == "qvm"
        profile = policy.profile or (machine.profile if qvm else defaults.PROFILE)
        if not entry.logical_machine:
            noise_model, calibration = policy.noise_model, policy.calibration
        request = RunRequest.build(
            program_digest=program_digest(text),
            target=entry.name,
            target_options=options,
            shots=shots,
            seed=seed,
            engine=policy.engine,
            precision=policy.precision,
            noise=policy.noise,
            qubit=policy.qubit or (machine.qubit if qvm else defaults.QUBIT),
            profile=machine.profile if profile == "auto" else profile,
            noise_model=noise_model,
            calibration=calibration,
            require_calibration=policy.calibration is not None,
            policy=policy,
        )
        if profile == "auto":  # left for the target
            return msgspec.structs.replace(request, profile=profile)
        return request

    def _check_caps(
        self,
        session: Session,
        required: Any,
        where: str,
        allowed: list[Allowed] | None = None,
    ) -> None:
        """The session holds every capability ``required`` (an audited decision: a
        ``cap`` line, or, allowed and ``allowed`` given, kept there for the job's QUEUED
        line: :meth:`admit`; :func:`_audit_caps`)."""
        missing = sorted(set(required).difference(session.caps))
        if missing or allowed is None:
            _audit_caps(self, session, list(required), where, missing)
        else:
            allowed.append((session.tenant, session.sid, list(required)))

    def write_allowed(self, allowed: list[Allowed] | None) -> None:
        """Write the capability checks ``allowed`` kept (:meth:`admit`) that no QUEUED
        line took, each the ``cap`` line it would have been: the submit was refused, or
        failed, after them."""
        while allowed:
            tenant, sid, required = allowed.pop(0)
            self.audit.append(
                "cap",
                where="submit",
                tenant=tenant,
                session=sid,
                required=required,
                decision="allow",
            )

    def _verify(self, text: str, *, folded: bool = True) -> Any:
        """The verified program of ``text`` under the kernel's limits: kept folded (a
        program with REPEAT rows: its totals, :func:`~qmk.kernel.records.programs.verified`),
        or unrolled (``folded=False``: for a rewrite of its nodes; ``QV505`` past
        ``max_unrolled_nodes``).

        Raises:
            ProgramError: it does not verify (the first finding's code).
        """
        from qmk.qvm.errors import VerificationError

        try:
            return verified(text, limits_of(self.config), folded=folded)
        except VerificationError as exc:
            findings = [f.to_json() for f in exc.findings[:MAX_FINDINGS]]
            first = exc.findings[0] if exc.findings else None
            # the refusal carries the first finding's code: its text without it again
            where = str(first).removeprefix(f"{first.code} {first.name} ") if first else ""
            raise ProgramError(
                f"the graph does not verify {where}".rstrip(),
                code=exc.code,
                findings=findings,
            ) from None
        except QMKError as exc:
            raise ProgramError(exc.message, code=exc.code) from None

    def _firewall(
        self, text: str, program: Any, tenant: str, bindings: Mapping[str, str]
    ) -> dict[str, int]:
        """:func:`check_firewall`'s answer; cached by (graph text, tenant) when no channel
        is bound (the answer then depends on nothing else: the tenant table is fixed)."""
        if bindings:
            return check_firewall(
                program.graph, tenant, bindings, self.channels, self.config.tenants
            )
        # by (text, tenant) alone, as before (a str keeps its hash: hashed once), never
        # holding the program (a big one's kept objects would outlive the verified-program
        # cache's bound); made in a reading thread too (prepare): a Memo is safe from
        # several threads
        answer = self._firewalled.get(
            (text, tenant),
            None,
            lambda: check_firewall(program.graph, tenant, {}, self.channels, self.config.tenants),
        )
        return dict(answer)

    async def _physical_qubits(
        self,
        tenant: str,
        text: str,
        program: Any,
        policy: Policy,
        noise_model: str | None,
        calibration: Any,
        *,
        place: Callable[[], RunRequest] | None = None,
    ) -> Planned:
        """Peak physical qubits of the program under ``policy`` and its physics, the
        syndrome bits per second its plan asks of the decoders at its peak, and each
        profile's logical error per cycle (cached by graph text). It refuses a program
        whose engine could not hold its state in a worker, and a calibration of the
        policy's that fits none of its qubits. The
        plan is built in the planner process (:class:`~qmk.kernel.admit.planner.Planner`),
        so the kernel never loads the planner, the router or the engines.

        ``place`` makes the job's run request: a plan the planner builds then comes with
        the program's footprint on the logical machine, kept for :meth:`_compiled` (one
        crossing, not two). A target's refusal is not kept: :meth:`_compiled` asks again
        and raises it where it always did."""
        qubit = policy.qubit or self.config.machine.qubit
        profile = policy.profile or self.config.machine.profile
        key = (
            text,
            policy.noise,
            qubit,
            profile,
            policy.engine,
            policy.precision,
            noise_model,
            None if calibration is None else _ENCODE(calibration),  # JSON: kept as its text
        )
        planned = self._plans.get(key)
        if planned is not None:
            self._plans.move_to_end(key)
            return planned
        budget = int(self.config.worker_memory_mb * 2**20 * WORKER_STATE_SHARE)
        request = None
        if place is not None:
            try:
                request = place()
            except QMKError:  # raised again where the request is made for the job
                request = None
        priced, placed = await self.planner.price(
            text,
            noise=policy.noise,
            qubit=qubit,
            profile=profile,
            engine=policy.engine,
            precision=policy.precision,
            noise_model=noise_model,
            calibration=calibration,
            max_bytes=budget,
            place=None if request is None else (request.target, request),
            max_unrolled_nodes=self.config.max_unrolled_nodes,
        )
        if request is not None and placed is not None and not isinstance(placed, Refused):
            kept = _unseeded(request)
            self._footprints.get(kept, None, _nothing)  # kept, then its footprint
            self._footprints.refresh(kept, None, placed)
        if priced.error_code is not None:
            if priced.error_key is not None:  # the job's own physics is the bad value
                field = f"policy.{priced.error_key}"
                raise InvalidArgument(f"{field}: {priced.error_message}", key=field)
            if _above_threshold(priced.error_code) and policy.noise_model is not None:
                # the job's own physics is the bad value, not its program (QC106 locally)
                raise InvalidArgument(
                    f"policy.noise_model: {priced.error_message}",
                    key="policy.noise_model",
                    code=priced.error_code,
                )
            raise ProgramError(priced.error_message, code=priced.error_code)
        if policy.calibration is not None and not priced.calibrated_profiles:
            raise InvalidArgument(
                f"policy.calibration is for {calibration['family']} on "
                f"{calibration['instruction_set']} qubits; no qubit of this program is "
                f"(profiles: {', '.join(priced.profiles)})",
                key="policy.calibration",
            )
        _check_worker_memory(self.config, priced, program.peak_live_qubits)
        planned = self._plans[key] = (
            priced.peak_physical_qubits,
            priced.decoder_bits_per_s,
            priced.logical_error_per_cycle,
        )
        if len(self._plans) > PLAN_CACHE_SIZE:
            self._plans.popitem(last=False)
        return planned


def _unseeded(request: RunRequest) -> bytes:
    """What a footprint is kept by: its run request less the seed (encoded)."""
    return _ENCODE(msgspec.structs.replace(request, seed=0))


def _nothing() -> None:
    """What :meth:`Admission._compiled` keeps for a footprint still being compiled."""
    return None


def _audit_caps(
    admission: Admission, session: Session, required: list[str], where: str, missing: list[str]
) -> None:
    """:meth:`Admission._check_caps`'s ``cap`` line: ``allow`` with no capability
    ``missing``; else ``deny``, committed urgently, and the refusal.

    Raises:
        CapabilityError: ``missing`` (a capability a delegation lent and no longer does
            is named so).
    """
    fields: dict[str, Any] = {"where": where, "tenant": session.tenant, "session": session.sid}
    if not missing:
        admission.audit.append("cap", fields, required=required, decision="allow")
        return
    admission.audit.append("cap", fields, required=required, decision="deny", missing=missing)
    admission.commits.dirty()
    lapsed = [cap for cap in missing if cap in session.delegated]
    ended = (
        f" ({', '.join(lapsed)}: the delegation that lent it to this session has ended)"
        if lapsed
        else ""
    )
    raise CapabilityError(
        f"the program needs {', '.join(missing)}, which this session was not granted" + ended,
        missing=missing,
    )


def _above_threshold(code: str) -> bool:
    """Whether ``code`` is the QEC layer's ``QC106 above-threshold`` (a physical error
    rate at or above a code's threshold); its family loads where a code is refused."""
    from qmk.qec.errors import QECError

    return code == REGISTRY.named(QECError, "above-threshold").code


def _check_worker_memory(config: KernelConfig, priced: Priced, qubits: int) -> None:
    """The engine the router chose holds ``qubits`` within a worker's memory cap: its
    state and one working copy in :data:`WORKER_STATE_SHARE` of it (the planner's
    ``capacity``). So a 40-qubit statevector is refused at submit, not after it was
    queued and started."""
    if qubits > priced.capacity:
        raise AdmissionError(
            f"the {priced.engine} engine holds at most {priced.capacity} qubits in a "
            f"worker's {config.worker_memory_mb} MiB (kernel.worker_memory_mb); the program "
            f"has {qubits} live at once",
            needed=qubits,
            total=priced.capacity,
        )


def _auto_profile(machine: Any, program: Any, policy: Policy) -> Policy:
    """``policy`` with ``profile = "auto"`` replaced by the cheapest code variant of the
    program on the machine's qubits (:mod:`qmk.estimate.variants`)."""
    from qmk.estimate.counts import count_graph
    from qmk.estimate.variants import plan_variants

    qubit = policy.qubit or machine.qubit
    try:
        # counted as the estimator counts: a program's REPEAT rows as often as they run
        chosen = plan_variants(count_graph(program.folded or program.graph), qubit).chosen
    except QMKError as exc:
        raise ProgramError(f"policy.profile auto: {exc.message}", code=exc.code) from None
    return msgspec.structs.replace(policy, profile=chosen.profile)


def _placed_not_run(nodes: int, config: KernelConfig) -> dict[str, str]:
    """The warning of a job the machine places but no worker can run: ``QK311``."""
    return warning(
        JobError,
        "placed-not-run",
        f"the program unrolls to {nodes} nodes, past kernel.max_unrolled_nodes "
        f"({config.max_unrolled_nodes}): it is placed on the machine by its folded totals, "
        "and its worker will end it QV505 unrolled-too-large",
    )


def _held(qubits: Mapping[str, int]) -> dict[str, int]:
    """The firewall's answer less the tenants of whom the program holds no qubit: a job's
    ``qubits``.

    >>> _held({"alice": 2, "bob": 0})
    {'alice': 2}
    """
    return {name: count for name, count in qubits.items() if count}


def _cacheable(request: RunRequest) -> bool:
    """Whether ``request``'s run may be answered from the result cache and answer others
    (:func:`~qmk.kernel.admit.cache.cacheable` of its policy and target)."""
    assert request.policy is not None
    return cacheable(request.policy, request.target)


__all__ = [
    "MAX_FINDINGS",
    "MAX_SHOTS",
    "PLAN_CACHE_SIZE",
    "Admission",
    "Allowed",
    "Read",
    "target_named",
]
