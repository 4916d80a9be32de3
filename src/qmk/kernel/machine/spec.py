"""The machine in machine time, declared: modules of tiles, their factories, the links
between them and the decoder, as plain numbers the scheduler reads.

:func:`~qmk.kernel.machine.derive.machine_spec` derives a :class:`MachineSpec` from a
kernel config's ``[machine]`` table (and ``[faults]``, whose link and decoder figures it
reads where ``[machine]`` gives none). Every number comes from one place:

- the code and distance from ``machine.profile``. A tile's physical qubits, the logical
  cycle time and the logical error rate per patch and cycle come from the estimator's
  patch (:func:`qmk.estimate.tfactory.make_patch`, as ``qmk plan --layout`` sizes tiles).
- each module's factories from ``[machine.factory]``: its ``protocol``'s published
  figures (:mod:`~qmk.kernel.machine.factories`: the estimator's, Litinski's 15-to-1,
  cultivation). Each key given overrides the protocol's, and ``factory_share`` of the
  module's qubits goes to copies of it.
- the tiles left when the factories and storage are taken. One is a routing row, the
  bus that carries states from the factories: ``routing_lanes`` states a cycle, one a
  bus tile by default, cut into ``routing_segments`` stretches each shared by the jobs
  beside it. The rest are the tiles jobs are placed on (their patches and their own
  routing, in ``machine.block``, as ``qmk plan --layout`` draws a block).
- links from ``[machine.links]`` or ``[faults]`` ``link_latency_ns``/``link_fidelity``.
  Decoder capacity from ``decoder_bits_per_cycle`` or ``[faults]``
  ``decoder_capacity_bits_per_s``. A tile's syndrome stream from
  :func:`qmk.qec.logical.syndrome_bits_per_round`.

The patch and the factories are the estimator's, which the kernel process does not load
(issue 79): a kernel asks its planner process for its machine
(:func:`~qmk.kernel.machine.derive.planned_machine`, plain data, made by
:mod:`qmk.kernel.machine.derive`, a module the kernel does not load) and reads the answer
back (:func:`machine_of`).

Tests and experiments build a :class:`MachineSpec` by hand with small numbers.

>>> spec = MachineSpec.simple(tiles=20, factory_rate=(1, 2), modules=2)
>>> spec.modules[1].tiles, spec.modules[0].factory.rate, spec.total_tiles
(20, 0.5, 40)
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING, Any

from qmk import defaults
from qmk.kernel.errors import MachineError

if TYPE_CHECKING:
    from qmk.kernel.config import MachineConfig


@dataclass(frozen=True, slots=True, kw_only=True)
class FactorySpec:
    """One module's T factories (the estimator's ``tfactory``, in copies).

    Attributes:
        protocol: the distillation units per round, as ``qmk estimate`` prints them.
        copies: factory copies in the module.
        states_per_run: T states one run of one copy delivers.
        duration_cycles: logical cycles of one run.
        tiles_per_copy: tiles one copy covers (``ceil(its qubits / a tile's)``).
        physical_qubits: one copy's physical qubits.
        output_error_rate: a delivered state's error probability.
        store: states the module's store holds (finished states wait there).
    """

    protocol: str
    copies: int
    states_per_run: float
    duration_cycles: int
    tiles_per_copy: int
    physical_qubits: int
    output_error_rate: float
    store: int
    label: str = ""

    @property
    def rate(self) -> float:
        """T states per logical cycle, all copies together."""
        return self.copies * self.states_per_run / self.duration_cycles

    @property
    def tiles(self) -> int:
        return self.copies * self.tiles_per_copy

    def to_json(self) -> dict[str, Any]:
        return {
            "protocol": self.protocol,
            "label": self.label,
            "copies": self.copies,
            "states_per_run": self.states_per_run,
            "duration_cycles": self.duration_cycles,
            "tiles_per_copy": self.tiles_per_copy,
            "physical_qubits_per_copy": self.physical_qubits,
            "output_error_rate": self.output_error_rate,
            "store": self.store,
            "states_per_cycle": self.rate,
        }


@dataclass(frozen=True, slots=True, kw_only=True)
class ModuleSpec:
    """One module's floorplan.

    Attributes:
        index: the module's number (0 first).
        tiles: the tiles jobs are placed on (a line of them, numbered 0..tiles-1, snaked
            over ``width`` columns: a contiguous run of the line is a contiguous region).
        width: columns of the drawing (and of the bus row).
        routing_lanes: T states per cycle the bus carries from the factories to jobs (0:
            no limit, a machine built by hand).
        routing_segments: stretches the bus is cut into: a job draws on the one beside
            its middle tile, which carries ``routing_lanes / routing_segments`` a cycle.
        storage_tiles: tiles where a preempted job's patches can wait.
        factory: the module's T factories.
        physical_qubits: the module's physical qubits.
    """

    index: int
    tiles: int
    width: int
    routing_lanes: int
    storage_tiles: int
    factory: FactorySpec
    physical_qubits: int
    routing_segments: int = 1

    @property
    def bus_tiles(self) -> int:
        """The routing row between the jobs' tiles and the factories."""
        return self.width

    def to_json(self) -> dict[str, Any]:
        return {
            "module": self.index,
            "physical_qubits": self.physical_qubits,
            "tiles": {
                "jobs": self.tiles,
                "routing": self.bus_tiles,
                "factory": self.factory.tiles,
                "storage": self.storage_tiles,
            },
            "width": self.width,
            "routing_lanes": self.routing_lanes,
            "routing_segments": self.routing_segments,
            "factory": self.factory.to_json(),
        }


@dataclass(frozen=True, slots=True, kw_only=True)
class LinkSpec:
    """The links between modules: one pool of Bell pairs all jobs share.

    Attributes:
        bell_pairs_per_cycle: pairs delivered per logical cycle (0: no link).
        fidelity: Werner fidelity of a pair.
        latency_cycles: cycles a pair takes to arrive (a migration pays it once).
    """

    bell_pairs_per_cycle: float
    fidelity: float = 1.0
    latency_cycles: int = 0

    def to_json(self) -> dict[str, Any]:
        return {
            "bell_pairs_per_cycle": self.bell_pairs_per_cycle,
            "fidelity": self.fidelity,
            "latency_cycles": self.latency_cycles,
        }


@dataclass(frozen=True, slots=True, kw_only=True)
class MachineSpec:
    """The whole machine as the scheduler sees it.

    Attributes:
        modules: the modules, by index.
        link: the links between modules.
        decoder_bits_per_cycle: syndrome bits per logical cycle the decoders keep up with
            (None: no limit).
        tile_bits_per_cycle: syndrome bits one live data tile sends per logical cycle (a
            logical measurement adds as many again).
        epoch_cycles: logical cycles of an epoch.
        policy: the default policy.
        block: the block layout of jobs' footprints.
        family, distance, qubit: the code and the qubits.
        patch_qubits: physical qubits of one tile.
        cycle_time_ns: one logical cycle.
        logical_error_rate: per patch and logical cycle (idle waits cost this).
        larger_distances: ``(distance, logical error per patch and logical cycle)`` a
            job may be placed at beyond ``distance``, smallest first: its patches larger
            (more tiles) and its logical cycle longer, its waits cheaper (the budget
            policies choose, :mod:`~qmk.kernel.machine.policies.budget`).
        storage_move_cycles: cycles a move into or out of storage takes.
        preempt_gap: the priority gap that lets ``priority`` preempt.
        error_budget: the idle logical error a job may be given where it names none
            (None: no bound).
        table: the ``[machine]`` table it was derived from (None: built by hand); a
            refusal reads it to say which key to raise
            (:func:`~qmk.kernel.machine.hold.qubits_to_hold`).
    """

    modules: tuple[ModuleSpec, ...]
    link: LinkSpec
    decoder_bits_per_cycle: float | None = None
    tile_bits_per_cycle: float = 0.0
    epoch_cycles: int = defaults.EPOCH_CYCLES
    policy: str = defaults.MACHINE_POLICY
    block: str = "fast"
    family: str = "surface_code"
    distance: int = 9
    qubit: str = defaults.QUBIT
    patch_qubits: int = 162
    cycle_time_ns: int = 3600
    logical_error_rate: float = 0.0
    larger_distances: tuple[tuple[int, float], ...] = ()
    storage_move_cycles: int = 1
    preempt_gap: int = 1
    error_budget: float | None = None
    extras: dict[str, Any] = field(default_factory=dict, compare=False)
    table: MachineConfig | None = field(default=None, compare=False, repr=False)

    def __post_init__(self) -> None:
        if self.epoch_cycles < 1:  # the scheduler divides by it and steps by it
            raise MachineError.of(
                "bad-machine", f"epoch_cycles is {self.epoch_cycles}: an epoch is 1 cycle or more"
            )

    @property
    def total_tiles(self) -> int:
        """The tiles jobs may be placed on, over all modules."""
        return sum(m.tiles for m in self.modules)

    @property
    def physical_qubits(self) -> int:
        return sum(m.physical_qubits for m in self.modules)

    @property
    def t_state_error(self) -> float:
        """A delivered T state's error: the worst of the modules' factories (a job's own
        error counts each state it consumes at it)."""
        return max((m.factory.output_error_rate for m in self.modules), default=0.0)

    @property
    def profile(self) -> str:
        return f"logical:{self.family}(d={self.distance})"

    def decoder_bits(self, tiles: float) -> float:
        """The syndrome bits a logical cycle that ``tiles`` tiles send the decoders: a
        job's live data tiles, or a step's logical measurements a cycle (each adds as
        many as a tile).

        >>> MachineSpec.simple(tiles=20, tile_bits_per_cycle=10).decoder_bits(2.5)
        25.0
        """
        return tiles * self.tile_bits_per_cycle

    def with_(self, **changes: Any) -> MachineSpec:
        """A copy with ``changes`` (``epoch_cycles``, ``policy``, ...)."""
        return replace(self, **changes)

    @staticmethod
    def simple(
        *,
        tiles: int,
        factory_rate: tuple[int, int] = (1, 1),
        copies: int = 1,
        store: int = 0,
        modules: int = 1,
        lanes: int | None = None,
        storage_tiles: int = 0,
        epoch_cycles: int = 1,
        link_pairs_per_cycle: float = 0.0,
        decoder_bits_per_cycle: float | None = None,
        tile_bits_per_cycle: float = 0.0,
        storage_move_cycles: int = 1,
        logical_error_rate: float = 0.0,
        preempt_gap: int = 1,
        segments: int = 1,
        error_budget: float | None = None,
        larger_distances: tuple[tuple[int, float], ...] = (),
    ) -> MachineSpec:
        """A machine of ``modules`` equal modules of ``tiles`` tiles, whose factories deliver
        ``factory_rate = (states, cycles)``: ``states`` per run of ``cycles`` per copy (for
        tests and hand-made experiments)."""
        states, cycles = factory_rate
        factory = FactorySpec(
            protocol="given",
            copies=copies,
            states_per_run=states,
            duration_cycles=cycles,
            tiles_per_copy=1,
            physical_qubits=0,
            output_error_rate=0.0,
            store=store,
        )
        width = max(1, math.ceil(math.sqrt(tiles)))
        return MachineSpec(
            modules=tuple(
                ModuleSpec(
                    index=i,
                    tiles=tiles,
                    width=width,
                    routing_lanes=lanes if lanes is not None else 0,
                    storage_tiles=storage_tiles,
                    factory=factory,
                    physical_qubits=0,
                    routing_segments=segments,
                )
                for i in range(modules)
            ),
            link=LinkSpec(bell_pairs_per_cycle=link_pairs_per_cycle),
            decoder_bits_per_cycle=decoder_bits_per_cycle,
            tile_bits_per_cycle=tile_bits_per_cycle,
            epoch_cycles=epoch_cycles,
            storage_move_cycles=storage_move_cycles,
            logical_error_rate=logical_error_rate,
            larger_distances=larger_distances,
            preempt_gap=preempt_gap,
            error_budget=error_budget,
        )

    def to_json(self) -> dict[str, Any]:
        return {
            "profile": self.profile,
            "qubit": self.qubit,
            "code_distance": self.distance,
            "patch_qubits": self.patch_qubits,
            "cycle_time_ns": self.cycle_time_ns,
            "logical_error_rate_per_cycle": self.logical_error_rate,
            "block": self.block,
            "epoch_cycles": self.epoch_cycles,
            "policy": self.policy,
            "physical_qubits": self.physical_qubits,
            "tiles": self.total_tiles,
            "modules": [m.to_json() for m in self.modules],
            "links": self.link.to_json(),
            "decoder_bits_per_cycle": self.decoder_bits_per_cycle,
            "tile_bits_per_cycle": self.tile_bits_per_cycle,
            "storage_move_cycles": self.storage_move_cycles,
            "preempt_gap": self.preempt_gap,
            "error_budget": self.error_budget,
        }


#: Odd code distances above the machine's own that a job may be placed at (its
#: ``larger_distances``), and that the baseline tries.
DISTANCE_STEPS = 3


def job_tiles(free: int) -> int:
    """The job tiles of ``free`` tiles: all but the routing row (``ceil(sqrt(free))``)."""
    return max(0, free - math.ceil(math.sqrt(free)))


#: A module whose ``factory_share`` rounds to no copy gets one where it has this many
#: copies' qubits or more (the copy then takes at most half of it: :func:`share_copies`).
LEAST_COPY = 2


def share_copies(share: float, qubits: int, per_copy: int) -> int:
    """The factory copies ``factory_share = share`` gives a module of ``qubits``
    physical qubits, copies of ``per_copy`` qubits: ``floor(share * qubits /
    per_copy)``. There is at least one where the copy takes at most half the module (its
    jobs keep as many qubits as its factory), so a small module still runs T programs.
    There is none where ``share`` is 0 (factories switched off).

    >>> share_copies(0.25, 1_000_000, 9680), share_copies(0.25, 38_720, 9680)
    (25, 1)
    >>> share_copies(0.25, 19_360, 9680), share_copies(0.25, 19_359, 9680)
    (1, 0)
    >>> share_copies(0.0, 1_000_000, 9680)
    0
    """
    copies = math.floor(share * qubits / per_copy)
    if copies == 0 and share > 0 and qubits >= LEAST_COPY * per_copy:
        return 1
    return copies


def machine_of(answer: dict[str, Any], table: MachineConfig) -> MachineSpec:
    """The :class:`MachineSpec` of ``table`` that :func:`~qmk.kernel.machine.derive.planned_machine`
    answered.

    Raises:
        QMKError: the refusal it answered (``QK503 bad-machine``, or the QEC layer's
            refusal of the machine's qubits and code), of its own class.
    """
    from qmk.errors import REGISTRY, QMKError

    refused = answer.get("refused")
    if refused is not None:
        code, name, message = refused["code"], refused["name"], refused["message"]
        kind = REGISTRY[code].exception if code in REGISTRY else QMKError
        if kind.fixed_code:
            raise kind(message, **refused["details"])
        raise kind(code, name, message, details=refused["details"])
    data = dict(answer["machine"])
    modules = tuple(
        ModuleSpec(**{**module, "factory": FactorySpec(**module["factory"])})
        for module in data.pop("modules")
    )
    link = LinkSpec(**data.pop("link"))
    larger = tuple((int(d), float(p)) for d, p in data.pop("larger_distances", ()))
    return MachineSpec(
        **{**data, "modules": modules, "link": link, "larger_distances": larger, "table": table}
    )
