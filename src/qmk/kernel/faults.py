"""Failure handling: where a job runs (placement on a module) and what the kernel changes
in a job it starts on a faulty machine (:func:`adjust`).

The device (:class:`~qmk.devices.logical.LogicalMachine`) holds the fault schedule of the
kernel's ``[faults]`` table. When the supervisor starts a job it calls :func:`adjust`
once, which applies the policies in this order:

1. **ingest**: the job runs with the device's current qubit parameters (unless its policy
   names its own) and calibration;
2. **drift**: the drifted physical error rates reach the job's logical model (a
   ``drift(factor=F)`` noise model stacked on the machine's); when noise is on, every
   code profile the job uses has its distance raised by 2 until its logical error per
   cycle is back within the undrifted machine's, or ``distance_budget`` is spent, or the
   job would no longer fit its module (telemetry says ``restored: false`` then); and
   fences tighten: ``FENCE_EPOCH`` nodes are added so that no epoch of the job runs more
   than ``drift_fence_cycles`` logical cycles, and the job saves its state at a fence
   whenever that many operations ran since its last save (a checkpoint the kernel
   resumes it from after a preemption, a module failure or a crash: less work lost while
   the machine degrades);
3. **link**: each ``OPEN_CHAN`` whose fidelity the link no longer delivers gets BBPSSW
   purified pairs (:mod:`qmk.devices.purification`) of at least ``min(requested,
   link_target)``; when purification cannot reach it, the pair is made inside the job's
   module instead (**local decomposition**: a logical H and CNOT; the pair is exact, and
   its two qubits are charged the logical noise of those cycles, written into the program
   as idle cycles like the decoder's), unless ``local_decomposition = false``, when the
   job FAILs with ``QK304 link-degraded``;
4. **decoder**: when the job's syndrome bits per second exceed the decoders' capacity,
   each measurement's logical time is stretched by load/capacity: the extra logical
   cycles are idle cycles of the measured qubits right after the measurement, written
   into the program as ``APPLY_RZ(theta=0)`` nodes (one logical cycle each, the identity),
   so the logical model charges them the noise of one cycle each.

Changes to the program are a :class:`Rewrite` (plain JSON), applied to the submitted
graph text; the attestation records it, so ``qmk audit replay`` applies it again.

**A resumed attempt keeps its checkpoint's physics.** The logical-error patterns of a
whole run are drawn when it starts, from the physics it starts with, so an execution
state only continues under that physics. A checkpoint records it (:func:`physics_of`:
the qubit, profile, noise model, calibration and rewrite of the attempt that saved it),
and an attempt that resumes from it runs with it again (:func:`resumed`). When the
policies' answer at the new epoch differs, telemetry and the audit log say
``keep-physics`` and which parts differ; the policies apply again when the job starts
from its beginning.
"""

from __future__ import annotations

import json
import math
from collections import Counter
from collections.abc import Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any

from qmk.devices.logical import LogicalMachine
from qmk.devices.purification import purify
from qmk.errors import QMKError
from qmk.kernel.config import KernelConfig
from qmk.kernel.errors import JobError
from qmk.qec.errors import QECError
from qmk.qec.logical import op_cycles
from qmk.qvm.ops import OPS, Exec
from qmk.qvm.profiles import parse_profile

#: The op that stands for one idle logical cycle in a throttled program (the identity).
IDLE_OP = "APPLY_RZ"
_MEASURES = frozenset(
    name for name, spec in OPS.items() if spec.kind in (Exec.MEASURE, Exec.MEASURE_ANGLE, Exec.BELL)
)


def device_for(config: KernelConfig) -> LogicalMachine:
    """The simulated logical machine of a kernel configuration."""
    machine = config.machine
    return LogicalMachine(
        physical_qubits=machine.physical_qubits,
        modules=machine.modules,
        profile=machine.profile,
        qubit=machine.qubit,
        noise_model=machine.noise_model,
        calibration=machine.calibration,
        faults=config.faults,
    )


def canonical(profile: str) -> str:
    parsed = parse_profile(profile)
    return f"logical:{parsed.family}(d={parsed.distance})"


def _with_distance(profile: str, distance: int) -> str:
    return f"logical:{parse_profile(profile).family}(d={distance})"


# --------------------------------------------------------------------------- rewrites


@dataclass(frozen=True, slots=True, kw_only=True)
class Rewrite:
    """What the kernel changed in a job's program; empty when nothing.

    Attributes:
        profiles: canonical profile -> the one ALLOC_LQ nodes naming it run with.
        channels: OPEN_CHAN node id -> the Werner fidelity its Bell pair is delivered at.
        idle: measurement node id -> idle logical cycles added after it (per qubit).
        fences: the ids of the nodes a ``FENCE_EPOCH`` is added after.
    """

    profiles: Mapping[str, str] = field(default_factory=dict)
    channels: Mapping[str, float] = field(default_factory=dict)
    idle: Mapping[str, int] = field(default_factory=dict)
    fences: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        for name in ("profiles", "channels", "idle"):
            object.__setattr__(self, name, MappingProxyType(dict(getattr(self, name))))
        object.__setattr__(self, "fences", tuple(self.fences))

    def __bool__(self) -> bool:
        return bool(self.profiles or self.channels or self.idle or self.fences)

    def apply(self, text: str) -> str:
        """The QVM JSON ``text`` with these changes (the same text when there are none)."""
        if not self:
            return text
        graph = json.loads(text)
        nodes = graph["program"]["nodes"]
        ids = {node["id"] for node in nodes}
        out: list[dict[str, Any]] = []
        fences = set(self.fences)
        for node in nodes:
            op, args = node["op"], node.get("args") or {}
            if op == "ALLOC_LQ" and args.get("profile"):
                raised = self.profiles.get(canonical(args["profile"]))
                if raised is not None:
                    node = {**node, "args": {**args, "profile": raised}}
            elif op == "OPEN_CHAN" and node["id"] in self.channels:
                opts = {**(args.get("opts") or {}), "fidelity": self.channels[node["id"]]}
                node = {**node, "args": {**args, "opts": opts}}
            out.append(node)
            for i in range(self.idle.get(node["id"], 0)):
                for q in node.get("vqs", ()):
                    out.append(_idle_node(node, q, i, ids))
            if node["id"] in fences:
                out.append({"id": _fresh(f"{node['id']}__fence", ids), "op": "FENCE_EPOCH"})
        graph["program"]["nodes"] = out
        return json.dumps(graph, separators=(",", ":"), ensure_ascii=False, allow_nan=False)

    def to_json(self) -> dict[str, Any]:
        return {
            "profiles": dict(self.profiles),
            "channels": dict(self.channels),
            "idle": dict(self.idle),
            "fences": list(self.fences),
        }

    @classmethod
    def from_json(cls, data: Mapping[str, Any] | None) -> Rewrite:
        data = data or {}
        return cls(
            profiles=data.get("profiles", {}),
            channels=data.get("channels", {}),
            idle=data.get("idle", {}),
            fences=tuple(data.get("fences", ())),
        )


def _fresh(node_id: str, ids: set[str]) -> str:
    """``node_id``, made unique among ``ids`` (and added to them)."""
    while node_id in ids:
        node_id += "_"
    ids.add(node_id)
    return node_id


def _idle_node(after: Mapping[str, Any], qubit: str, index: int, ids: set[str]) -> dict[str, Any]:
    node_id = _fresh(f"{after['id']}__idle{index}_{qubit}", ids)
    node: dict[str, Any] = {"id": node_id, "op": IDLE_OP, "args": {"theta": 0.0}, "vqs": [qubit]}
    if after.get("guard") is not None:  # idle only when the measurement ran
        node["guard"] = after["guard"]
    return node


# --------------------------------------------------------------------------- placement


class Placement:
    """Which module each running job holds, and how full each module is.

    A job is placed on one module that is up and has room for its peak physical qubits
    (the one with the most room; the lowest id among equals).
    """

    def __init__(self, device: LogicalMachine) -> None:
        self.device = device
        self.module_of: dict[str, int] = {}
        self.used: Counter[int] = Counter()
        #: Syndrome bits per second of each placed job (the device's decoder load).
        self.load: dict[str, float] = {}

    def choose(self, physical: int) -> int | None:
        best, room = None, -1
        for module, capacity in enumerate(self.device.capacities):
            free = capacity - self.used[module]
            if module not in self.device.down and free >= physical and free > room:
                best, room = module, free
        return best

    def fits(self, job: Any) -> bool:
        return self.choose(job.physical_qubits) is not None

    def reserve(self, job: Any) -> None:
        module = self.choose(job.physical_qubits)
        assert module is not None, "reserve() after fits()"
        self.module_of[job.job_id] = module
        self.used[module] += job.physical_qubits

    def release(self, job: Any) -> None:
        module = self.module_of.pop(job.job_id, None)
        if module is not None:
            self.used[module] -= job.physical_qubits
        self.load.pop(job.job_id, None)

    def room(self, job: Any) -> int:
        """Physical qubits ``job`` may grow to on its module."""
        module = self.module_of[job.job_id]
        return self.device.capacities[module] - self.used[module] + job.physical_qubits

    def resize(self, job: Any, physical: int) -> None:
        self.used[self.module_of[job.job_id]] += physical - job.physical_qubits

    def jobs_on(self, module: int) -> list[str]:
        return [job_id for job_id, m in self.module_of.items() if m == module]

    @property
    def decoder_load(self) -> float:
        return sum(self.load.values())


# --------------------------------------------------------------------------- the policies


@dataclass(frozen=True, slots=True, kw_only=True)
class Adjusted:
    """What :func:`adjust` decided for one start of a job."""

    actions: tuple[Mapping[str, Any], ...]
    rewrite: Rewrite
    physical_qubits: int
    decoder_load: float
    logical_error_per_cycle: Mapping[str, float]


def adjust(
    spec: Mapping[str, Any], job: Any, device: LogicalMachine, epoch: int, *, room: int
) -> tuple[dict[str, Any], Adjusted]:
    """The worker spec of ``job`` on ``device`` at ``epoch``, and what was done (see the
    module docstring); ``room`` is the most physical qubits the job may use on its module.

    Raises:
        QMKError: ``QK304 link-degraded``, or the QEC layer's refusal of the drifted rates
            (e.g. ``QC106 above-threshold``); the job FAILs with it.
    """
    from qmk.kernel.programs import verified

    spec = dict(spec)
    if job.policy.qubit is None:
        spec["qubit"] = device.qubit
    spec["calibration"] = None if device.calibration is None else device.calibration.to_json()
    spec["noise_model"] = device.noise_model_at(epoch)
    program = verified(job.graph)
    actions: list[dict[str, Any]] = []
    profiles: dict[str, str] = {}
    channels: dict[str, float] = {}
    idle: dict[str, int] = {}
    faults = device.faults
    used = _profiles_of(program, spec["profile"])
    noise_on = bool(spec["noise"])
    fences: tuple[str, ...] = ()
    if noise_on and faults.drift_factor(epoch) != 1.0:
        profiles = _drift(actions, device, epoch, used, job, spec, room)
        spec["profile"] = profiles.get(canonical(spec["profile"]), spec["profile"])
        if faults.drift_fence_cycles:
            fences = _tighten(actions, program, epoch, faults.drift_fence_cycles)
            spec["checkpoint_every_ops"] = faults.drift_fence_cycles
    _link(actions, channels, idle, program, faults, epoch, job.shots)
    rewrite = Rewrite(profiles=profiles, channels=channels, idle=idle, fences=fences)
    physical, load, plan = job.physical_qubits, 0.0, None
    if profiles or faults.decoder_capacity is not None:
        plan, load = _plan(rewrite.apply(job.graph), spec)
        physical = plan.peak_physical_qubits
    capacity = faults.decoder_capacity
    if capacity is not None and load > capacity:
        stretch = load / capacity
        added = throttled = 0
        for node in program.graph.nodes:
            if node.op in _MEASURES:
                cycles = op_cycles(node.op)
                extra = math.ceil(cycles * stretch - 1e-9) - int(cycles)
                if extra > 0:
                    idle[node.id] = extra
                    added += extra * len(node.vqs)
                    throttled += 1
        actions.append(
            {
                "epoch": epoch,
                "kind": "decoder",
                "action": "throttle",
                "decoder_bits_per_second": load,
                "capacity_bits_per_second": capacity,
                "stretch": stretch,
                "measurements": throttled,
                "idle_cycles_added": added,
            }
        )
        rewrite = Rewrite(profiles=profiles, channels=channels, idle=idle, fences=fences)
    if rewrite:
        spec["graph"] = rewrite.apply(job.graph)
        spec["rewrite"] = rewrite.to_json()
    rates = {p: device_model(device, p, epoch, spec).logical_error_per_cycle for p in used}
    if profiles:
        rates = {
            profiles.get(p, p): device_model(
                device, profiles.get(p, p), epoch, spec
            ).logical_error_per_cycle
            for p in used
        }
    return spec, Adjusted(
        actions=tuple(actions),
        rewrite=rewrite,
        physical_qubits=physical,
        decoder_load=load,
        logical_error_per_cycle=rates,
    )


#: The keys of a worker spec that decide a run's physics (what a checkpoint keeps).
PHYSICS_KEYS = ("qubit", "profile", "noise_model", "calibration", "rewrite")


def physics_of(spec: Mapping[str, Any]) -> dict[str, Any]:
    """The physics of the attempt ``spec`` starts (plain JSON), for its checkpoints."""
    return {key: spec.get(key) for key in PHYSICS_KEYS}


def resumed(
    spec: Mapping[str, Any],
    job: Any,
    device: LogicalMachine,
    epoch: int,
    *,
    room: int,
    checkpoint: Mapping[str, Any],
) -> tuple[dict[str, Any], Adjusted]:
    """The worker spec of ``job`` resuming from ``checkpoint`` (a store row with the
    ``physics`` it was saved under, :func:`physics_of`): :func:`adjust`'s answer when it
    gives that physics again, else that physics kept (a ``keep-physics`` action)."""
    physics = checkpoint["physics"]
    try:
        now, adjusted = adjust(spec, job, device, epoch, room=room)
    except QMKError as exc:  # e.g. the link no longer delivers: the saved run goes on
        differs = [f"refused ({exc.code})"]
    else:
        found = json.loads(json.dumps(physics_of(now), sort_keys=True))
        if found == physics:
            return now, adjusted
        differs = [key for key in PHYSICS_KEYS if found.get(key) != physics.get(key)]
    return _keep(spec, physics, job, device, epoch, checkpoint=checkpoint, differs=differs)


def _keep(
    spec: Mapping[str, Any],
    physics: Mapping[str, Any],
    job: Any,
    device: LogicalMachine,
    epoch: int,
    *,
    checkpoint: Mapping[str, Any],
    differs: list[str],
) -> tuple[dict[str, Any], Adjusted]:
    spec = {**spec, **{key: physics.get(key) for key in PHYSICS_KEYS}}
    faults = device.faults
    if spec["noise"] and faults.drift_factor(epoch) != 1.0 and faults.drift_fence_cycles:
        spec["checkpoint_every_ops"] = faults.drift_fence_cycles  # the policy's saves go on
    rewrite = Rewrite.from_json(physics.get("rewrite"))
    spec.pop("rewrite", None)
    if rewrite:
        spec["graph"] = rewrite.apply(job.graph)
        spec["rewrite"] = rewrite.to_json()
    physical, load = job.physical_qubits, 0.0
    if rewrite.profiles or device.faults.decoder_capacity is not None:
        plan, load = _plan(spec["graph"], spec)
        physical = plan.peak_physical_qubits
    from qmk.kernel.programs import verified

    used = _profiles_of(verified(spec["graph"]), spec["profile"])
    action = {
        "epoch": epoch,
        "kind": "resume",
        "action": "keep-physics",
        "checkpoint_id": checkpoint.get("checkpoint_id"),
        "program_epoch": checkpoint.get("program_epoch"),
        "differs_now": differs,
        "noise_model": spec.get("noise_model"),
        "profiles": list(used),
    }
    rates = {p: device_model(device, p, epoch, spec).logical_error_per_cycle for p in used}
    return spec, Adjusted(
        actions=(action,),
        rewrite=rewrite,
        physical_qubits=physical,
        decoder_load=load,
        logical_error_per_cycle=rates,
    )


def device_model(device: LogicalMachine, profile: str, epoch: int, spec: Mapping[str, Any]) -> Any:
    """The logical model ``profile`` runs with in ``spec`` (its qubit, its noise model when
    noise is on, drifted at ``epoch`` already, and its calibration, else the device's)."""
    from qmk.qec.logical import Calibration, logical_model
    from qmk.qec.noise import parse_noise_model

    text = spec.get("noise_model") if spec["noise"] else None
    noise = None if text is None else parse_noise_model(text)
    calibration = device.calibration
    if "calibration" in spec:
        saved = spec["calibration"]
        calibration = None if saved is None else Calibration.from_json(saved)
    return logical_model(profile, spec["qubit"], noise=noise, calibration=calibration)


def _profiles_of(program: Any, default: str) -> tuple[str, ...]:
    """The canonical profiles of a program's qubits (``default`` for those naming none)."""
    found: dict[str, None] = {}
    for node in program.graph.nodes:
        if node.op == "ALLOC_LQ":
            found[canonical(node.args.get("profile") or default)] = None
    return tuple(found) or (canonical(default),)


def _drift(
    actions: list[dict[str, Any]],
    device: LogicalMachine,
    epoch: int,
    used: tuple[str, ...],
    job: Any,
    spec: Mapping[str, Any],
    room: int,
) -> dict[str, str]:
    """Raise each profile's distance until the drifted P_L is back within the undrifted."""
    factor = device.faults.drift_factor(epoch)
    undrifted = {**spec, "noise_model": device.noise_model}
    raised: dict[str, str] = {}
    steps: dict[str, tuple[float, float, float, bool]] = {}
    for profile in used:
        target = device_model(device, profile, epoch, undrifted).logical_error_per_cycle
        drifted = device_model(device, profile, epoch, spec).logical_error_per_cycle
        base = parse_profile(profile).distance
        distance, rate = base, drifted
        while rate > target and distance + 2 <= base + device.faults.distance_budget:
            candidate = _with_distance(profile, distance + 2)
            try:
                rate = device_model(device, candidate, epoch, spec).logical_error_per_cycle
            except QECError:  # beyond the scheme's largest distance: the budget ends here
                break
            distance += 2
        if distance != base:
            raised[profile] = _with_distance(profile, distance)
        steps[profile] = (target, drifted, rate, rate <= target)
    # the raised distances must fit the job's module: give back steps until they do
    while raised and _physical(job, raised, spec) > room:
        for profile in list(raised):
            distance = parse_profile(raised[profile]).distance - 2
            if distance <= parse_profile(profile).distance:
                del raised[profile]
            else:
                raised[profile] = _with_distance(profile, distance)
        for profile in used:
            now = raised.get(profile, profile)
            rate = device_model(device, now, epoch, spec).logical_error_per_cycle
            target, drifted, _, _ = steps[profile]
            steps[profile] = (target, drifted, rate, rate <= target)
    for profile in used:
        target, drifted, rate, restored = steps[profile]
        actions.append(
            {
                "epoch": epoch,
                "kind": "drift",
                "action": "raise-distance" if profile in raised else "keep-distance",
                "drift_factor": factor,
                "profile": profile,
                "from_distance": parse_profile(profile).distance,
                "to_distance": parse_profile(raised.get(profile, profile)).distance,
                "logical_error_per_cycle": {
                    "undrifted": target,
                    "drifted": drifted,
                    "adjusted": rate,
                },
                "restored": restored,
            }
        )
    return raised


def _tighten(
    actions: list[dict[str, Any]], program: Any, epoch: int, limit: int
) -> tuple[str, ...]:
    """The nodes to add a fence after so that no epoch runs more than ``limit`` logical
    cycles (in program order; a fence never ends the program)."""
    nodes = program.graph.nodes
    after: list[str] = []
    cycles = stretch = longest = 0.0  # since the last fence; since the last of the program's
    for i, node in enumerate(nodes):
        if node.op == "FENCE_EPOCH":
            cycles = stretch = 0.0
            continue
        cycles += op_cycles(node.op)
        stretch += op_cycles(node.op)
        longest = max(longest, stretch)
        rest = nodes[i + 1 :]
        if cycles >= limit and rest and rest[0].op != "FENCE_EPOCH":
            after.append(node.id)
            cycles = 0.0
    existing = sum(node.op == "FENCE_EPOCH" for node in nodes)
    actions.append(
        {
            "epoch": epoch,
            "kind": "drift",
            "action": "tighten-fences",
            "max_epoch_cycles": limit,
            "longest_epoch_cycles": longest,
            "fences_added": len(after),
            "fences": existing + len(after),
            "checkpoint_every_ops": limit,
        }
    )
    return tuple(after)


def _physical(job: Any, raised: Mapping[str, str], spec: Mapping[str, Any]) -> int:
    adjusted = {**spec, "profile": raised.get(canonical(spec["profile"]), spec["profile"])}
    plan, _ = _plan(Rewrite(profiles=raised).apply(job.graph), adjusted)
    return int(plan.peak_physical_qubits)


def _plan(text: str, spec: Mapping[str, Any]) -> tuple[Any, float]:
    """The plan of ``text`` with ``spec``'s qubit and default profile, and its decoder
    load (syndrome bits per second at its peak, as the executor's telemetry reports)."""
    from qmk.execution.plan import build_plan, decoder_load
    from qmk.kernel.programs import verified

    plan = build_plan(
        verified(text), noise=False, qubit=spec["qubit"], default_profile=spec["profile"]
    )
    return plan, decoder_load(plan, spec["qubit"], spec["profile"])[1]


#: The logical cycles of a Bell pair made inside a module: H on one qubit, then CNOT.
LOCAL_PAIR_CYCLES = int(op_cycles("APPLY_H") + op_cycles("APPLY_CNOT"))


def _link(
    actions: list[dict[str, Any]],
    channels: dict[str, float],
    idle: dict[str, int],
    program: Any,
    faults: Any,
    epoch: int,
    shots: int,
) -> None:
    """Purify each channel's pairs the link no longer delivers at the requested fidelity."""
    raw = faults.link_fidelity_at(epoch)
    for node in program.graph.nodes:
        if node.op != "OPEN_CHAN":
            continue
        requested = float((node.args.get("opts") or {}).get("fidelity", 1.0))
        if raw >= requested:
            continue
        target = min(requested, faults.link_target)
        found = purify(raw, target=target, max_rounds=faults.max_purification_rounds)
        if not found.reached and faults.local_decomposition:
            channels[node.id] = 1.0
            idle[node.id] = LOCAL_PAIR_CYCLES
            actions.append(
                {
                    "epoch": epoch,
                    "kind": "link",
                    "action": "local-decomposition",
                    "node": node.id,
                    "requested_fidelity": requested,
                    "link_fidelity": raw,
                    "purified_fidelity": found.fidelity,
                    "delivered_fidelity": 1.0,
                    "logical_cycles_added": LOCAL_PAIR_CYCLES,
                }
            )
            continue
        if not found.reached:
            raise JobError.of(
                "link-degraded",
                f"OPEN_CHAN node {node.id!r}: the link delivers fidelity {raw:.4f} at epoch "
                f"{epoch}; {found.rounds} BBPSSW rounds reach {found.fidelity:.4f}, below the "
                f"target {target:.4f}",
                node=node.id,
            )
        delivered = min(requested, found.fidelity)
        channels[node.id] = delivered
        actions.append(
            {
                "epoch": epoch,
                "kind": "link",
                "action": "purify" if found.rounds else "accept",
                "node": node.id,
                "requested_fidelity": requested,
                "delivered_fidelity": delivered,
                "purification": found.to_json(),
                "bell_pairs_consumed": found.raw_pairs_per_pair * shots,
            }
        )


__all__ = [
    "IDLE_OP",
    "PHYSICS_KEYS",
    "Adjusted",
    "Placement",
    "Rewrite",
    "adjust",
    "canonical",
    "device_for",
    "device_model",
    "physics_of",
    "resumed",
]
