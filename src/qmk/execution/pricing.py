"""What admission needs of a plan, computed where plans are built: out of the kernel.

The kernel admits a program by its peak physical qubits and refuses one whose routed
engine could not hold its state in a worker. Both need a plan and the router, which load
the engines; the kernel process is the trusted core and loads neither (issue 79). So the
kernel sends the program's text and the job's physics here, in a planner process of its
own (:class:`qmk.kernel.admit.planner.Planner`), and gets back plain figures. A refusal
comes back as its code and message: the kernel words it. What these functions return is
plain data (dicts, lists, strings and numbers): the kernel reads a worker's answer as
nothing else, and makes :class:`~qmk.execution.priced.Priced`,
:class:`~qmk.execution.priced.Refused` and the footprint of it.

The planner is capped at a worker's memory for its own sake; that cap is not the room of
the worker that will run the job. So the router routes here without the address cap of
this process (:func:`planning_limits`), and a worker's memory is priced by ``max_bytes``
(the kernel's ``worker_memory_mb``), whose refusal names that setting.
"""

from __future__ import annotations

from dataclasses import asdict, replace
from typing import TYPE_CHECKING, Any

from qmk.errors import QMKError
from qmk.execution.priced import Priced, Refused
from qmk.qvm.codes import BY_NAME
from qmk.qvm.verify import FoldedProgram, VerifiedProgram, verify_folded

if TYPE_CHECKING:
    from qmk.engines.limits import WorkerLimits
    from qmk.execution.footprint import Footprint
    from qmk.execution.request import RunRequest


def price(
    text: str,
    *,
    noise: bool,
    qubit: Any,
    profile: str,
    engine: str | None,
    precision: Any,
    noise_model: Any,
    calibration: Any,
    max_bytes: int,
    place: tuple[str, RunRequest] | None = None,
    max_unrolled_nodes: int | None = None,
) -> dict[str, Any]:
    """Verify QVM JSON ``text``, plan it with this physics, route it, and say what
    admission needs: peak physical qubits, profiles and the chosen engine's capacity
    within ``max_bytes``: ``{"priced": a Priced's fields}``. A QMK error is returned, not
    raised (it crosses a process).

    With ``place`` (a target's name and the job's run request), a program it priced is
    also compiled for its footprint, as :func:`footprint` answers (``"footprint"`` or
    ``"refused"``): admission asks both of a new program, and one crossing costs less
    than two.

    A program whose unrolling is past ``max_unrolled_nodes`` (the kernel's; None: the
    verifier's default) is read folded: its one-turn view is planned (a balanced body
    holds as many qubits in every turn) and its footprint multiplied
    (:func:`qmk.execution.logical.folded_footprint`)."""
    from qmk.engines.registry import max_qubits, spec
    from qmk.execution.executor import route_plan
    from qmk.execution.plan import build_plan, decoder_load
    from qmk.qec.logical import logical_model
    from qmk.qec.noise import parse_noise_model

    if engine is not None:
        try:
            spec(engine)  # the registry's refusal, with its closest name
        except QMKError as exc:
            refused = Priced(error_code=exc.code, error_message=exc.message, error_key="engine")
            return {"priced": asdict(refused)}
    try:
        program = _verified(text, max_unrolled_nodes)
        model = None if not noise or noise_model is None else parse_noise_model(noise_model)
        plan = build_plan(
            program.turn if isinstance(program, FoldedProgram) else program,
            noise=noise,
            qubit=qubit,
            default_profile=profile,
            noise_model=model,
            calibration=calibration,
        )
        choice, _ = route_plan(plan, engine, precision=precision, limits=planning_limits())
        capacity = max_qubits(choice.engine, choice.precision, max_bytes=max_bytes)
        rates = {
            p: logical_model(p, qubit, noise=model, calibration=calibration).logical_error_per_cycle
            for p in plan.profiles
        }
    except QMKError as exc:
        return {"priced": asdict(Priced(error_code=exc.code, error_message=exc.message))}
    priced = Priced(
        peak_physical_qubits=plan.peak_physical_qubits,
        profiles=tuple(plan.profiles),
        calibrated_profiles=tuple(plan.calibrated_profiles),
        engine=choice.engine,
        precision=choice.precision,
        capacity=capacity,
        decoder_bits_per_s=decoder_load(plan, qubit, profile)[1],
        logical_error_per_cycle=rates,
    )
    answer = {"priced": asdict(priced)}
    if place is not None:
        answer.update(_placed(program, *place))
    return answer


def planning_limits() -> WorkerLimits:
    """The limits the router plans for here: this process's, but for its address cap,
    which is the planner's own and not a worker's room (the module docstring)."""
    from qmk.engines.limits import WorkerLimits

    return replace(WorkerLimits.read(), address_cap=None)


def footprint(
    target: str, text: str, request: RunRequest, *, max_unrolled_nodes: int | None = None
) -> dict[str, Any]:
    """The footprint of QVM JSON ``text`` compiled by target ``target`` for ``request``
    (its physical qubits and what it asks of the shared machine): ``{"footprint": its
    JSON}``, or ``{"refused": a Refused's fields}``. A program past
    ``max_unrolled_nodes`` is read folded, as :func:`price` reads it."""
    try:
        program = _verified(text, max_unrolled_nodes)
    except QMKError as exc:
        return {"refused": asdict(Refused(exc.code, exc.message, dict(exc.details)))}
    return _placed(program, target, request)


def _placed(program: Any, target: str, request: RunRequest) -> dict[str, Any]:
    """:func:`footprint` of a verified ``program``; a program kept folded has one on the
    logical machine only (the others run it unrolled: ``QV505``)."""
    from qmk.execution import target as targets

    if isinstance(program, FoldedProgram) and not targets.spec(target).logical_machine:
        return {
            "refused": asdict(
                Refused(
                    BY_NAME["unrolled-too-large"].code,
                    f"the program unrolls to {program.totals.nodes} nodes, past the "
                    f"kernel's max_unrolled_nodes; the {target} target runs it unrolled "
                    "(the logical target places it folded)",
                    {"size": program.totals.nodes},
                )
            )
        }
    try:
        compiled: Footprint = targets.get(target).compile(program, request).footprint
    except QMKError as exc:
        return {"refused": asdict(Refused(exc.code, exc.message, dict(exc.details)))}
    return {"footprint": compiled.to_json()}


def _verified(text: str, max_unrolled_nodes: int | None) -> VerifiedProgram | FoldedProgram:
    """The verified program of QVM JSON ``text``, kept folded past
    ``max_unrolled_nodes`` (None: the verifier's default)."""
    from qmk.qvm import graph as graph_io
    from qmk.qvm.limits import Limits

    limits = (
        Limits() if max_unrolled_nodes is None else Limits(max_unrolled_nodes=max_unrolled_nodes)
    )
    return verify_folded(graph_io.loads(text), limits=limits)
