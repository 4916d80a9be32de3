"""The machine derived from a kernel config: where the estimator is, never in the kernel.

:func:`machine_spec` derives a :class:`~qmk.kernel.machine.spec.MachineSpec` from a
``[machine]`` table (and ``[faults]``), as :mod:`qmk.kernel.machine.spec` describes: the
patch and the factories are the estimator's, which the kernel process does not load
(issue 79). A kernel asks its planner process (:func:`planned_machine`, plain data) and
reads the answer back (:func:`~qmk.kernel.machine.spec.machine_of`); ``qmk machine``,
workloads and tests derive one in their own process (:func:`config_machine`).
"""

from __future__ import annotations

import math
from dataclasses import asdict, replace
from typing import TYPE_CHECKING, Any

from qmk import defaults
from qmk.kernel.errors import MachineError
from qmk.kernel.machine.spec import (
    DISTANCE_STEPS,
    LEAST_COPY,
    FactorySpec,
    LinkSpec,
    MachineSpec,
    ModuleSpec,
    job_tiles,
    share_copies,
)

if TYPE_CHECKING:
    from qmk.kernel.config import KernelConfig, MachineConfig
    from qmk.kernel.device import FaultSchedule


def _family_distance(profile: str) -> tuple[str, int]:
    from qmk.qvm.profiles import PATCH_FAMILIES, ProfileError, parse_profile

    try:
        parsed = parse_profile(profile)
    except ProfileError as exc:
        raise MachineError.of("bad-machine", f"machine.profile: {exc}") from None
    family, distance = parsed.family, parsed.distance
    if family not in PATCH_FAMILIES:
        raise MachineError.of(
            "bad-machine",
            f"machine.profile {profile}: the floorplan is tiles of patches of "
            f"{' or '.join(PATCH_FAMILIES)} at a stated distance",
        )
    return family, distance


def _factory(
    table: MachineConfig, family: str, distance: int, module_qubits: int, patch_qubits: int
) -> FactorySpec:
    """A module's factory copies: the protocol's figures, each key given overriding its
    own (a copy's qubits follow its tiles where they are given)."""
    from qmk.kernel.machine.factories import figures

    given = table.factory
    protocol = given.protocol or defaults.FACTORY_PROTOCOL
    needed = (given.states_per_run, given.duration_cycles, given.output_error_rate, given.tiles)
    made = None
    if given.copies != 0 and any(v is None for v in needed):
        made = figures(protocol, family, table.qubit, distance, target=given.output_error_rate)
        if made is None:
            raise MachineError.of(
                "bad-machine",
                f"the estimator finds no T factory for {family} at d={distance} on "
                f"{table.qubit}; give [machine.factory] states_per_run, duration_cycles, "
                "tiles and output_error_rate",
            )
    tiles = given.tiles or (made.tiles_per_copy if made is not None else 1)
    per_copy = tiles * patch_qubits if given.tiles or made is None else made.physical_qubits
    copies = given.copies
    if copies is None:
        copies = share_copies(table.factory_share, module_qubits, per_copy)
    states = given.states_per_run or (made.states_per_run if made is not None else 1.0)
    duration = given.duration_cycles or (made.duration_cycles if made is not None else 1)
    error = given.output_error_rate or (made.output_error_rate if made is not None else 0.0)
    return FactorySpec(
        protocol=protocol,
        label=made.label if made is not None else protocol,
        copies=copies,
        states_per_run=states,
        duration_cycles=duration,
        tiles_per_copy=tiles,
        physical_qubits=per_copy,
        output_error_rate=error,
        store=given.store if given.store is not None else math.ceil(copies * states),
    )


def _patch(family: str, qubit: str, distance: int) -> Any:
    from qmk.kernel.machine.factories import patch_and_qubit

    return patch_and_qubit(family, qubit, distance)[0]


def _module(
    table: MachineConfig, index: int, qubits: int, factory: FactorySpec, patch_qubits: int
) -> ModuleSpec:
    """One module: its factories and storage taken, one routing row, the rest job tiles
    (none on a machine too small for a patch: every job is then refused, QK501)."""
    factory_qubits = factory.copies * factory.physical_qubits
    storage = table.storage_tiles
    if factory_qubits > qubits:
        raise MachineError.of(
            "bad-machine",
            f"module {index}: {factory.copies} factory copies need {factory_qubits:,} "
            f"physical qubits and the module has {qubits:,}; give fewer "
            "(machine.factory.copies) or more physical_qubits",
        )
    free = max(0, (qubits - factory_qubits) // patch_qubits - storage)
    width = math.ceil(math.sqrt(free))
    lanes = table.routing_lanes or max(1, width)
    return ModuleSpec(
        index=index,
        tiles=job_tiles(free),
        width=width,
        routing_lanes=lanes,
        storage_tiles=storage,
        factory=factory,
        physical_qubits=qubits,
        routing_segments=min(table.routing_segments or max(1, width), lanes),
    )


def machine_spec(
    table: MachineConfig, faults: FaultSchedule | None = None, *, preempt_gap: int = 1
) -> MachineSpec:
    """The machine a ``[machine]`` table (and ``[faults]``) describes (module docstring).

    Raises:
        MachineError: ``QK503 bad-machine``: a profile whose code has no patches, or a
            module with no room for jobs beside its factories and storage.
    """
    from qmk.kernel.device import FaultSchedule
    from qmk.qec.logical import syndrome_bits_per_round

    faults = faults or FaultSchedule()
    family, distance = _family_distance(table.profile)
    patch = _patch(family, table.qubit, distance)
    per_module = table.physical_qubits // table.modules
    factory = _factory(table, family, distance, per_module, patch.physical_qubits)
    modules = tuple(
        _module(table, i, per_module, factory, patch.physical_qubits) for i in range(table.modules)
    )
    links = table.links
    latency_ns = faults.link_latency_ns
    pairs = links.bell_pairs_per_cycle
    if pairs is None:
        pairs = 1.0 if latency_ns <= 0 else patch.cycle_time / latency_ns
    decoder = table.decoder_bits_per_cycle
    if decoder is None and faults.decoder_capacity is not None:
        decoder = faults.decoder_capacity * patch.cycle_time * 1e-9
    return MachineSpec(
        modules=modules,
        link=LinkSpec(
            bell_pairs_per_cycle=pairs if table.modules > 1 else 0.0,
            fidelity=links.fidelity if links.fidelity is not None else faults.link_fidelity,
            latency_cycles=links.latency_cycles
            if links.latency_cycles is not None
            else math.ceil(latency_ns / patch.cycle_time),
        ),
        decoder_bits_per_cycle=decoder,
        tile_bits_per_cycle=float(syndrome_bits_per_round(family, distance) * distance),
        epoch_cycles=table.epoch_cycles,
        policy=table.policy,
        block=table.block,
        family=family,
        distance=distance,
        qubit=table.qubit,
        patch_qubits=patch.physical_qubits,
        cycle_time_ns=patch.cycle_time,
        logical_error_rate=patch.logical_error_rate,
        larger_distances=tuple(
            (d, _patch(family, table.qubit, d).logical_error_rate)
            for d in range(distance + 2, distance + 2 * DISTANCE_STEPS + 1, 2)
        ),
        storage_move_cycles=table.storage_move_cycles,
        preempt_gap=preempt_gap,
        error_budget=table.error_budget,
        table=table,
    )


def config_machine(config: KernelConfig) -> MachineSpec:
    """The machine of a whole kernel config (its ``[faults]`` and ``preempt_gap`` too)."""
    return machine_spec(config.machine, config.faults, preempt_gap=config.preempt_gap)


def planned_machine(
    table: MachineConfig, faults: FaultSchedule, preempt_gap: int
) -> dict[str, Any]:
    """:func:`machine_spec` as plain data, made where the estimator is: the kernel's
    planner process (:meth:`qmk.kernel.admit.planner.Planner.machine`). Its answer is
    ``{"machine": the spec's fields}`` (read back by :func:`machine_of`), or the refusal
    of the table as ``{"refused": {"code", "name", "message", "details"}}``. The table's
    physics is checked here first (:func:`~qmk.kernel.machine_physics.check_machine`): the kernel
    process reads its config without the QEC layer.

    >>> from qmk.kernel.config import config_from_dict
    >>> from qmk.kernel.machine.spec import machine_of
    >>> config = config_from_dict({"machine": {"physical_qubits": 20696}})
    >>> answer = planned_machine(config.machine, config.faults, config.preempt_gap)
    >>> machine_of(answer, config.machine) == config_machine(config)
    True
    """
    from qmk.errors import QMKError
    from qmk.kernel.machine_physics import check_machine

    try:
        check_machine(table)
        spec = machine_spec(table, faults, preempt_gap=preempt_gap)
    except QMKError as exc:
        refused = {"code": exc.code, "name": exc.name, "message": exc.message}
        return {"refused": {**refused, "details": exc.details}}
    return {"machine": asdict(replace(spec, table=None))}


def factory_note(machine: MachineSpec) -> str | None:
    """How ``factory_share`` gave each module its factory copies (:func:`share_copies`),
    for ``qmk machine show``; None where ``[machine.factory] copies`` gives them or the
    machine was built by hand.

    >>> from qmk.kernel.config import config_from_dict
    >>> def note(qubits):
    ...     table = {"machine": {"physical_qubits": qubits}}
    ...     return factory_note(config_machine(config_from_dict(table)))
    >>> print(note(1_000_000))
    factories: factory_share 0.25 of a module's 1,000,000 physical qubits: 25 copies
    >>> print(note(20_000))  # doctest: +NORMALIZE_WHITESPACE
    factories: factory_share 0.25 of a module's 20,000 physical qubits rounds to no copy
    of 9,680; a module gets one where it takes at most half the module: 1 copy
    >>> print(note(5_000))  # doctest: +NORMALIZE_WHITESPACE
    factories: factory_share 0.25 of a module's 5,000 physical qubits rounds to no copy
    of 9,680; a module gets one where it takes at most half the module, from 19,360
    qubits on: none, and T programs are refused
    """
    table = machine.table
    if table is None or table.factory.copies is not None or not machine.modules:
        return None
    module = machine.modules[0]
    per_copy, qubits = module.factory.physical_qubits, module.physical_qubits
    share = table.factory_share
    if share <= 0:
        return "factories: none (factory_share 0), and T programs are refused"
    said = f"factories: factory_share {share:g} of a module's {qubits:,} physical qubits"
    given = math.floor(share * qubits / per_copy)
    if given > 0:
        return f"{said}: {given} cop{'y' if given == 1 else 'ies'}"
    rule = (
        f"{said} rounds to no copy of {per_copy:,}; a module gets one where it takes at "
        "most half the module"
    )
    if module.factory.copies:
        return f"{rule}: 1 copy"
    least = LEAST_COPY * per_copy
    return f"{rule}, from {least:,} qubits on: none, and T programs are refused"


__all__ = ["config_machine", "factory_note", "machine_spec", "planned_machine"]
