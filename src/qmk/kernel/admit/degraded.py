"""The fault policies that change a job's program or physics on a degraded machine, and
a start's own figures (see :mod:`qmk.kernel.admit.adjusted`, whose
:func:`~qmk.kernel.admit.adjusted.adjust` applies them in order).

- **drift** (:func:`drift`, :func:`tighten`): each code profile's distance raised by 2
  until its drifted logical error per cycle is back within the undrifted machine's, or
  the distance budget is spent, or the job would no longer fit its module; and fences
  added so that no epoch runs more than ``drift_fence_cycles`` logical cycles;
- **link** (:func:`link`): each ``OPEN_CHAN`` whose fidelity the link no longer delivers
  gets purified pairs, or a pair made inside the module (local decomposition), or the
  job fails with ``QK304 link-degraded``;
- **a start's own figures** (:func:`plan`, :func:`device_model`): the physical qubits,
  decoder load and logical models of a job whose profiles or physics changed since the
  planner priced it.

The kernel imports this module only where it needs it: under drift, for a job that
holds channels, or for a start the planner's figures no longer describe. A plain
start on a healthy machine loads none of it (nor the QEC layer's models, nor the plan).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from msgspec.structs import replace

from qmk.execution.request import Rewrite, RunRequest
from qmk.execution.request import canonical_profile as canonical
from qmk.execution.rewritten import rewritten
from qmk.kernel.admit.teleport import teleport_channels
from qmk.kernel.device import LogicalMachine
from qmk.kernel.errors import JobError
from qmk.kernel.records.programs import verified
from qmk.memo import Memo
from qmk.qec.errors import QECError
from qmk.qvm.limits import Limits
from qmk.qvm.profiles import Profile, parse_profile

#: The models the starts of jobs keep (:func:`device_model`): a kernel runs a few
#: physics many times.
_MODELS: Memo[Any] = Memo(256)


def device_model(device: LogicalMachine, profile: str, epoch: int, request: RunRequest) -> Any:
    """The logical model ``profile`` runs with under ``request`` (its qubit, its noise
    model when noise is on, drifted at ``epoch`` already, and its calibration): a
    start's own, where the planner did not price its physics."""
    text = request.noise_model if request.noise else None

    def make() -> Any:
        from qmk.qec.logical import logical_model
        from qmk.qec.noise import parse_noise_model

        noise = None if text is None else parse_noise_model(text)
        return logical_model(profile, request.qubit, noise=noise, calibration=request.calibration)

    key = (profile, request.qubit, text, request.calibration)
    try:
        hash(key)
    except TypeError:  # a value of the request that cannot be hashed
        return make()
    return _MODELS.get(key, None, make)  # every start asks: the same physics, the same model


def _with_distance(profile: str, distance: int) -> str:
    return str(Profile(family=parse_profile(profile).family, distance=distance))


def drift(
    actions: list[dict[str, Any]],
    device: LogicalMachine,
    epoch: int,
    used: tuple[str, ...],
    job: Any,
    request: RunRequest,
    room: int,
    limits: Limits | None = None,
    *,
    undrifted: RunRequest,
) -> dict[str, str]:
    """Raise each profile's distance until the drifted P_L (under ``request``) is back
    within the undrifted one (under ``undrifted``), as :func:`device_model` gives each."""
    factor = device.faults.drift_factor(epoch)
    raised: dict[str, str] = {}
    steps: dict[str, tuple[float, float, float, bool]] = {}
    for profile in used:
        target = device_model(device, profile, epoch, undrifted).logical_error_per_cycle
        drifted = device_model(device, profile, epoch, request).logical_error_per_cycle
        base = parse_profile(profile).distance
        distance, rate = base, drifted
        while rate > target and distance + 2 <= base + device.faults.distance_budget:
            candidate = _with_distance(profile, distance + 2)
            try:
                rate = device_model(device, candidate, epoch, request).logical_error_per_cycle
            except QECError:  # beyond the scheme's largest distance: the budget ends here
                break
            distance += 2
        if distance != base:
            raised[profile] = _with_distance(profile, distance)
        steps[profile] = (target, drifted, rate, rate <= target)
    # the raised distances must fit the job's module: give back steps until they do
    while raised and _physical(job, raised, request, limits) > room:
        for profile in list(raised):
            distance = parse_profile(raised[profile]).distance - 2
            if distance <= parse_profile(profile).distance:
                del raised[profile]
            else:
                raised[profile] = _with_distance(profile, distance)
        for profile in used:
            now = raised.get(profile, profile)
            rate = device_model(device, now, epoch, request).logical_error_per_cycle
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


def tighten(actions: list[dict[str, Any]], program: Any, epoch: int, limit: int) -> tuple[str, ...]:
    """The nodes to add a fence after so that no epoch runs more than ``limit`` logical
    cycles (in program order; a fence never ends the program)."""
    from qmk.qec.logical import op_cycles  # only under drift

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


def _physical(
    job: Any, raised: Mapping[str, str], request: RunRequest, limits: Limits | None
) -> int:
    profile = raised.get(canonical(request.profile), request.profile)
    planned, _ = plan(
        job.graph, Rewrite(profiles=dict(raised)), replace(request, profile=profile), limits
    )
    return int(planned.peak_physical_qubits)


def plan(
    text: str, rewrite: Rewrite | None, request: RunRequest, limits: Limits | None
) -> tuple[Any, float]:
    """The plan of ``text`` changed by ``rewrite``, with ``request``'s qubit and default
    profile, and its decoder load (syndrome bits per second at its peak, as the
    executor's telemetry reports)."""
    from qmk.execution.plan import build_plan, decoder_load
    from qmk.qec.values import qubit_of

    qubit = qubit_of(request.qubit)
    planned = build_plan(
        verified(rewritten(text, rewrite), limits),
        noise=False,
        qubit=qubit,
        default_profile=request.profile,
    )
    return planned, decoder_load(planned, qubit, request.profile)[1]


def local_pair_cycles() -> int:
    """The logical cycles of a Bell pair made inside a module: H on one qubit, then CNOT
    (the QEC layer's op cycles, loaded only where a link degraded)."""
    from qmk.qec.logical import op_cycles

    return int(op_cycles("APPLY_H") + op_cycles("APPLY_CNOT"))


def link(
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
    if not program.graph.resources.chs:  # nothing to purify: no walk over the nodes
        return
    across = teleport_channels(program.graph)  # their halves are on two modules
    for node in program.graph.nodes:
        if node.op != "OPEN_CHAN":
            continue
        requested = float((node.args.get("opts") or {}).get("fidelity", 1.0))
        if raw >= requested:
            continue
        target = min(requested, faults.link_target)
        from qmk.devices.purification import purify  # only where the link degraded

        found = purify(raw, target=target, max_rounds=faults.max_purification_rounds)
        local = faults.local_decomposition and not set(node.chs) & across
        if not found.reached and local:
            cycles = local_pair_cycles()
            channels[node.id] = 1.0
            idle[node.id] = cycles
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
                    "logical_cycles_added": cycles,
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


__all__ = ["device_model", "drift", "link", "local_pair_cycles", "plan", "tighten"]
