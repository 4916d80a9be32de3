"""Jobs that span modules: the kernel's use of :mod:`qmk.qvm.teleport`.

A job whose peak physical qubits exceed every module is not refused where the machine
has two or more modules up. Admission places its logical qubits over them (:func:`span`)
and stores the rewritten program, in which each cross-module gate is a teleported gate
over a Bell pair between the modules. The modules' capacities are counted in logical
qubits of the program's largest profile. The placement is the one the program declares
(an integer ``metadata.module`` on its ``ALLOC_LQ`` nodes, on the machine's module ids),
or else automatic placement, fewest cross-module two-qubit gates. The pairs
are asked at the link's fidelity (``[faults] link_fidelity``) and each teleported gate
waits ``link_latency_ns`` for its pair; at the start the link policy of
:mod:`qmk.kernel.admit.faults` purifies them if the link has degraded since.

The rewritten program goes through every check a submitted one does: its capabilities
(its pairs need ``CAP_LINK``: a session without it is refused ``QS1004``), the
entanglement firewall, and the quotas (``max_logical_qubits`` with the pairs' halves;
``max_channels``: the pairs open at once count against the tenant's channels). A job
that spans holds every module up while it runs (:class:`~qmk.kernel.admit.faults.Placement`).
"""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Any

from qmk.errors import AdmissionError, QMKError, QuotaError

if TYPE_CHECKING:
    from qmk.execution.request import Policy
    from qmk.kernel.admit.admission import Admission, Planned
    from qmk.kernel.device import LogicalMachine
    from qmk.kernel.security.sessions import Session
    from qmk.qvm.graph import Graph
    from qmk.qvm.teleport import Teleported

# The rewrite itself (qmk.qvm.teleport) is imported by the functions that use it, and
# this module where a job spans modules, holds channels or its telemetry is asked: a
# kernel of one-module jobs loads neither. Whether a job spans is the placement's
# (:func:`qmk.kernel.admit.faults.spans`), which modules are up the device's.


def span(graph: Graph, device: LogicalMachine, *, profile: str, qubit: Any) -> Teleported:
    """``graph`` placed over the modules up of ``device`` with its cross-module gates
    teleported (module docstring); ``profile`` is the default profile of its qubits.

    Raises:
        AdmissionError: fewer than two modules up, or the qubits (with the pairs' halves)
            fit no placement over them.
    """
    from qmk.qec.logical import logical_model
    from qmk.qvm.teleport import (
        Placement,
        auto_placement,
        declared_placement,
        explicit_placement,
        teleport,
    )

    up = device.modules_up
    if len(up) < 2:
        raise AdmissionError(
            "the job does not fit one module and the machine has no other module up to "
            "teleport its gates to",
            total=device.largest_module_up,
        )
    profiles = {
        node.args.get("profile") or profile for node in graph.nodes if node.op == "ALLOC_LQ"
    } or {profile}
    per_logical = max(logical_model(p, qubit).physical_qubits_per_logical for p in profiles)
    capacities = [device.capacities[m] // per_logical for m in up]
    try:
        declared = declared_placement(graph)
        if declared is None:
            placement = auto_placement(graph, capacities)
            placement = Placement(  # numbered by module id, not by rank among those up
                module_of={q: up[i] for q, i in placement.module_of.items()},
                capacities=tuple(
                    device.capacities[m] // per_logical if m in up else 0
                    for m in range(len(device.capacities))
                ),
                automatic=True,
                cut=placement.cut,
            )
        else:  # the program's own, on the machine's module ids (a module down holds 0)
            placement = explicit_placement(
                graph,
                declared,
                capacities=[
                    device.capacities[m] // per_logical if m in up else 0
                    for m in range(len(device.capacities))
                ],
            )
        return teleport(
            graph,
            placement,
            fidelity=device.faults.link_fidelity,
            latency_ns=device.faults.link_latency_ns,
        )
    except QMKError as exc:
        raise AdmissionError(
            f"the job does not fit one module, nor the {len(up)} modules up "
            f"({', '.join(map(str, capacities))} logical qubits of {per_logical} physical): "
            f"{exc.message}",
            total=sum(device.capacities[m] for m in up),
        ) from None


async def admit_spanning(
    admission: Admission,
    session: Session,
    text: str,
    program: Any,
    policy: Policy,
    noise_model: str | None,
    calibration: Any,
) -> tuple[str, Any, dict[str, int], Planned]:
    """The program of a job that spans modules placed over the modules up (:func:`span`),
    and checked again as a submitted one is: its capabilities (an audited decision: its
    pairs need CAP_LINK), the firewall, the tenant's ``max_channels`` (the pairs open at
    once) and its physical qubits (:meth:`~qmk.kernel.admit.admission.Admission.admit`'s
    checks, made by the admission).

    Raises:
        AdmissionError: no placement over the modules up holds it.
        CapabilityError, FirewallError, QuotaError: as a submit's.
    """
    from qmk.qvm.verify import FoldedProgram

    machine = admission.config.machine
    if isinstance(program, FoldedProgram):  # kept folded: rewritten unrolled
        program = admission._verify(text, folded=False)
    done = span(
        program.graph,
        admission.device,
        profile=policy.profile or machine.profile,
        qubit=policy.qubit or admission.device.qubit,
    )
    text = json.dumps(
        done.graph.to_json(), separators=(",", ":"), ensure_ascii=False, allow_nan=False
    )
    program = admission._verify(text)
    admission._check_caps(session, program.required_caps, "submit")
    qubits = admission._firewall(text, program, session.tenant, policy.channels)
    pairs = pairs_open_at_once(program.graph)
    limit = admission.config.tenants[session.tenant].max_channels
    held = admission.channels.count(session.tenant)
    if held + pairs > limit:
        raise QuotaError(
            f"the job spans modules and holds {pairs} teleportation channels open at "
            f"once; tenant {session.tenant!r} has {held} of its max_channels {limit}",
            limit="max_channels",
            needed=pairs,
            value=limit,
        )
    planned = await admission._physical_qubits(
        session.tenant, text, program, policy, noise_model, calibration
    )
    return text, program, qubits, planned


def teleport_channels(graph: Graph) -> frozenset[str]:
    """The channels of the program's teleported gates (used as :data:`SEMANTIC`): each
    joins two modules, so no policy may make its pair inside one."""
    if not graph.resources.chs:  # no channel at all: no walk over a big graph's nodes
        return frozenset()
    from qmk.qvm.teleport import SEMANTIC

    return frozenset(
        ch
        for node in graph.nodes
        if node.op == "USE_CHAN" and node.args.get("semantic") == SEMANTIC
        for ch in node.chs
    )


def pairs_open_at_once(graph: Graph) -> int:
    """Most of the program's teleportation pairs open at once (a ``max_channels`` charge)."""
    teleporting = teleport_channels(graph)
    if not teleporting:
        return 0
    live = peak = 0
    for node in graph.nodes:
        if node.op in ("OPEN_CHAN", "CLOSE_CHAN") and set(node.chs) & teleporting:
            live += 1 if node.op == "OPEN_CHAN" else -1
            peak = max(peak, live)
    return peak


def telemetry_of(graph: Graph) -> dict[str, Any] | None:
    """What the teleportation did to a job's program, for ``q_get_telemetry``
    (``teleported_gates``, ``epr_pairs`` per shot, ``link_fidelity``,
    ``link_latency_ns``, ``latency_added_ns``, ``modules``), or None."""
    from qmk.qvm.teleport import summary_of

    found = summary_of(graph)
    return None if found is None else dict(found)


__all__ = [
    "admit_spanning",
    "pairs_open_at_once",
    "span",
    "telemetry_of",
    "teleport_channels",
]
