"""The QVM op table: the one source of truth for every operation.

Each op is one :class:`OpSpec` record. It holds the op's operands (how many virtual
qubits, channels, input events and produced events), its arguments with their types
and ranges, and the capability it needs. It says whether the op is unitary and
Clifford, and gives its inverse and a one-line description.

Everything that knows what an op is reads this table; nothing else says it:

- the JSON schema (:mod:`qmk.qvm.schema`), the verifier, the assembler and the op
  table in ``docs/qvm.md``;
- the executor's dispatch (``kind``, ``gate``, ``basis``);
- the front-ends' gate set and inverses;
- the tables of what other layers make of an op, one row an op, each checked against
  this one on import: the steps a composite op stands for
  (:data:`qmk.qvm.expansions.EXPANSIONS`, which the plan, the trajectories, the batch
  circuits and the neutral-atom compiler carry out), the QEC layer's logical cycles
  (:data:`qmk.qec.logical.OP_CYCLES`) and the estimator's tallies
  (:data:`qmk.estimate.tallies.TALLIES`). The verifier reads none of them.

Adding an op means adding its record here, and its rows there (and, for a new
``kind``, its semantics in the executor). An op that applies a gate names its gate
record (:data:`qmk.gates.GATES`), which gives its operands, arguments, unitarity,
Clifford-ness and inverse. Its row says only what is the op's own: its name and
description.

>>> OPS["APPLY_T"].inverse
'APPLY_TDG'
>>> OPS["APPLY_RZ"].args[0].name, OPS["APPLY_RZ"].inverse_negates
('theta', ('theta',))
>>> OPS["ALLOC_LQ"].cap
'CAP_ALLOC'
>>> str(OPS["FREE_LQ"].vqs)
'1..n'
>>> OPS["APPLY_CNOT"].gate, OPS["MEASURE_X"].basis, OPS["APPLY_T"].counts_as
('cx', 'X', frozenset({'t'}))
>>> OP_ALIASES["APPLY_CX"]
'APPLY_CNOT'
"""

from __future__ import annotations

import enum
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from types import MappingProxyType

from qmk.gates import GATES

#: The capabilities a graph may request, with what each one allows.
CAPABILITIES: Mapping[str, str] = MappingProxyType(
    {
        "CAP_ALLOC": "allocate logical qubits (ALLOC_LQ)",
        "CAP_TELEPORT": "gate teleportation between modules (TELEPORT_CNOT)",
        "CAP_MAGIC": "draw distilled magic states (INJECT_T_STATE)",
        "CAP_LINK": "open entanglement channels (OPEN_CHAN)",
        "CAP_DEVICE_NA": "run jobs on the neutral-atom device (q_submit, target neutral-atom)",
        "CAP_OBSERVE": "read the kernel's load and every tenant's job counters (q_kernel_load, "
        "a gateway's /metrics): an operator's read-only view",
    }
)


class Category(str, enum.Enum):
    """What kind of work an op does; decides how REV segments treat it."""

    LIFECYCLE = "lifecycle"
    GATE = "gate"
    MEASUREMENT = "measurement"
    COMPOSITE = "composite"
    CHANNEL = "channel"
    ADMIN = "admin"
    #: Computes on events (run-time classical values); touches no qubit.
    CLASSICAL = "classical"


class Clifford(str, enum.Enum):
    """Whether a stabilizer simulation can carry an op out exactly."""

    YES = "yes"
    NO = "no"
    #: Clifford exactly when its angle argument is a multiple of pi/2.
    QUARTER_TURN = "if angle is a multiple of pi/2"


class Exec(str, enum.Enum):
    """What the executor does for an op: its step kind (``qmk.execution.plan.PlanSteps.kinds``)."""

    GATE = "gate"  # apply the engine gate ``OpSpec.gate``
    MEASURE = "measure"  # measure in ``OpSpec.basis``
    MEASURE_ANGLE = "measure_angle"
    BELL = "bell"
    ALLOC = "alloc"
    FREE = "free"
    RESET = "reset"
    INJECT_T = "inject_t"
    COND_PAULI = "cond_pauli"
    OPEN_CHAN = "open_chan"
    TELEPORT_CNOT = "teleport_cnot"
    #: Changes no qubit; telemetry records it.
    NONE = "none"
    #: Evaluate a typed expression on events, producing the bits of its value
    #: (:mod:`qmk.qvm.classical`).
    CALC = "calc"
    #: Stop the run with a coded error (a loop past its iteration cap).
    HALT = "halt"


class ArgType(str, enum.Enum):
    """The JSON type of an argument, with the checks that go with it."""

    NUMBER = "number"  # a finite int or float (not a bool)
    INTEGER = "integer"  # an int (not a bool)
    STRING = "string"
    PAULI = "pauli"  # one of I, X, Y, Z
    PROFILE = "profile"  # a code profile such as logical:surface_code(d=9)
    OBJECT = "object"  # a JSON object with the listed fields
    NUMBERS = "numbers"  # a list of finite numbers, each within the bounds
    INTEGERS = "integers"  # a list of ints, each within the bounds


@dataclass(frozen=True, slots=True)
class Arity:
    """How many operands of one kind an op takes: ``low..high`` (``high=None``: no bound)."""

    low: int
    high: int | None

    def admits(self, count: int) -> bool:
        """True when ``count`` operands are allowed."""
        return count >= self.low and (self.high is None or count <= self.high)

    def __str__(self) -> str:
        if self.high == self.low:
            return str(self.low)
        if self.high is None:
            return f"{self.low}..n"
        return f"{self.low}..{self.high}"


NONE = Arity(0, 0)
ONE = Arity(1, 1)
TWO = Arity(2, 2)
ONE_OR_MORE = Arity(1, None)
ANY = Arity(0, None)


@dataclass(frozen=True, slots=True, kw_only=True)
class ArgSpec:
    """One argument of an op.

    ``minimum``/``maximum`` bound numbers (inclusive); ``choices`` lists the
    allowed strings; ``fields`` describes the members of an object argument;
    ``equals_count_of`` names an operand kind whose length the value must equal
    (``ALLOC_LQ``'s ``n`` equals the number of ``vqs``).
    """

    name: str
    type: ArgType
    description: str
    required: bool = False
    minimum: float | None = None
    maximum: float | None = None
    choices: tuple[str, ...] = ()
    fields: tuple[ArgSpec, ...] = ()
    equals_count_of: str | None = None
    default: object = None


@dataclass(frozen=True, slots=True, kw_only=True)
class OpSpec:
    """One QVM operation: operands, arguments, capability and algebraic facts."""

    name: str
    category: Category
    description: str
    vqs: Arity = NONE
    chs: Arity = NONE
    inputs: Arity = NONE
    produces: Arity = NONE
    args: tuple[ArgSpec, ...] = ()
    cap: str | None = None
    unitary: bool = False
    clifford: Clifford = Clifford.NO
    inverse: str | None = None
    inverse_negates: tuple[str, ...] = ()
    #: Which totals of :class:`qmk.qvm.verify.OpCounts` this op adds to.
    counts_as: frozenset[str] = field(default_factory=frozenset)
    #: Operand kind whose handles this op starts (ALLOC_LQ: vqs) or ends (FREE_LQ: vqs).
    opens: str | None = None
    closes: str | None = None
    #: What the executor does (required: an op the executor cannot run cannot be added).
    kind: Exec
    #: The engine gate (:data:`qmk.engines.gates.GATES`) the op applies or acts as.
    gate: str | None = None
    #: The measurement basis of a ``MEASURE`` op: outcome 0 is its +1 eigenstate.
    basis: str | None = None
    #: Other names that load as this op (``APPLY_CX`` for ``APPLY_CNOT``).
    aliases: tuple[str, ...] = ()

    def arg(self, name: str) -> ArgSpec | None:
        """The spec of argument ``name``, or None when the op has no such argument."""
        for spec in self.args:
            if spec.name == name:
                return spec
        return None


_THETA = ArgSpec(
    name="theta",
    type=ArgType.NUMBER,
    required=True,
    description="rotation angle in radians",
)


def _arg(param: str) -> ArgSpec:
    """A gate parameter as an op argument (every gate parameter is an angle)."""
    if param == "theta":
        return _THETA
    return ArgSpec(name=param, type=ArgType.NUMBER, required=True, description="angle in radians")


def _gate_op(
    name: str,
    description: str,
    *,
    gate: str,
    counts_as: frozenset[str] = frozenset(),
    aliases: tuple[str, ...] = (),
) -> OpSpec:
    """The op that applies gate ``gate``: its operands, arguments, unitarity,
    Clifford-ness and inverse are the gate record's (:data:`qmk.gates.GATES`); the row
    gives the op's own facts (its name, description, counts, aliases). Its ``inverse``
    is filled in once every op is known (:func:`_with_inverses`)."""
    record = GATES[gate]
    if record.clifford:
        clifford = Clifford.YES
    else:
        clifford = Clifford.QUARTER_TURN if record.quarter_turn else Clifford.NO
    return OpSpec(
        name=name,
        category=Category.GATE,
        description=description,
        vqs=Arity(record.qubits, record.qubits),
        args=tuple(_arg(param) for param in record.params),
        unitary=True,
        clifford=clifford,
        inverse_negates=record.params,
        counts_as=counts_as,
        kind=Exec.GATE,
        gate=gate,
        aliases=aliases,
    )


def _with_inverses(table: tuple[OpSpec, ...]) -> tuple[OpSpec, ...]:
    """``table`` with each gate op's ``inverse``: the op of its gate's inverse gate."""
    op_of = {spec.gate: spec.name for spec in table if spec.kind is Exec.GATE and spec.gate}
    return tuple(
        replace(spec, inverse=op_of[GATES[spec.gate].adjoint()[0]])
        if spec.kind is Exec.GATE and spec.gate
        else spec
        for spec in table
    )


def _measure(basis: str, description: str) -> OpSpec:
    return OpSpec(
        name=f"MEASURE_{basis}",
        category=Category.MEASUREMENT,
        description=description,
        vqs=ONE,
        produces=ONE,
        clifford=Clifford.YES,
        counts_as=frozenset({"measurement"}),
        kind=Exec.MEASURE,
        basis=basis,
    )


def _admin(
    name: str, description: str, *, vqs: Arity = NONE, args: tuple[ArgSpec, ...] = ()
) -> OpSpec:
    return OpSpec(
        name=name,
        category=Category.ADMIN,
        description=description,
        vqs=vqs,
        args=args,
        clifford=Clifford.YES,
        kind=Exec.NONE,
    )


_T = frozenset({"t"})
_CCZ = frozenset({"ccz"})


#: The rows, gate ops without their inverses yet.
_ROWS: tuple[OpSpec, ...] = (
    # lifecycle
    OpSpec(
        name="ALLOC_LQ",
        category=Category.LIFECYCLE,
        description="allocate logical qubits in |0>, with an optional code profile",
        vqs=ONE_OR_MORE,
        args=(
            ArgSpec(
                name="n",
                type=ArgType.INTEGER,
                minimum=1,
                equals_count_of="vqs",
                description="number of qubits; must equal the number of vqs",
            ),
            ArgSpec(
                name="profile",
                type=ArgType.PROFILE,
                description="code profile, e.g. logical:surface_code(d=9); "
                "absent: the machine's default",
            ),
        ),
        cap="CAP_ALLOC",
        clifford=Clifford.YES,
        opens="vqs",
        kind=Exec.ALLOC,
    ),
    OpSpec(
        name="FREE_LQ",
        category=Category.LIFECYCLE,
        description="free logical qubits, discarding their state; ends the handles",
        vqs=ONE_OR_MORE,
        clifford=Clifford.YES,
        closes="vqs",
        kind=Exec.FREE,
    ),
    OpSpec(
        name="RESET",
        category=Category.LIFECYCLE,
        description="return a qubit to |0>",
        vqs=ONE,
        clifford=Clifford.YES,
        kind=Exec.RESET,
    ),
    # gates: each applies one gate record (qmk.gates), which gives its operands,
    # arguments, Clifford-ness and inverse
    _gate_op("APPLY_H", "Hadamard", gate="h"),
    _gate_op(
        "APPLY_S",
        "phase gate S = diag(1, i)",
        gate="s",
    ),
    _gate_op(
        "APPLY_SDG",
        "inverse phase gate S^dagger = diag(1, -i)",
        gate="sdg",
        aliases=("APPLY_SDAG",),
    ),
    _gate_op("APPLY_X", "Pauli X", gate="x"),
    _gate_op("APPLY_Y", "Pauli Y", gate="y"),
    _gate_op("APPLY_Z", "Pauli Z", gate="z"),
    _gate_op(
        "APPLY_T",
        "T gate diag(1, e^{i pi/4})",
        gate="t",
        counts_as=_T,
    ),
    _gate_op(
        "APPLY_TDG",
        "inverse T gate diag(1, e^{-i pi/4})",
        gate="tdg",
        counts_as=_T,
        aliases=("APPLY_TDAG",),
    ),
    *(
        _gate_op(
            f"APPLY_R{axis}",
            f"rotation exp(-i theta {axis} / 2) about the {axis} axis",
            gate=f"r{axis.lower()}",
            counts_as=frozenset({"rotation"}),
        )
        for axis in "XYZ"
    ),
    _gate_op(
        "APPLY_CNOT",
        "controlled NOT; vqs are (control, target)",
        gate="cx",
        aliases=("APPLY_CX",),
    ),
    _gate_op(
        "APPLY_CZ",
        "controlled Z (symmetric in its qubits)",
        gate="cz",
    ),
    _gate_op(
        "APPLY_SWAP",
        "exchange two qubits' states",
        gate="swap",
    ),
    _gate_op(
        "APPLY_CCX",
        "Toffoli; vqs are (control, control, target)",
        gate="ccx",
        counts_as=_CCZ,
        aliases=("APPLY_TOFFOLI",),
    ),
    _gate_op(
        "APPLY_CCZ",
        "doubly controlled Z (symmetric in its qubits)",
        gate="ccz",
        counts_as=_CCZ,
    ),
    # measurements: the qubit stays live; outcome 0 is the +1 eigenstate
    _measure("Z", "measure in the Z basis; outcome 0 for |0>"),
    _measure("X", "measure in the X basis; outcome 0 for |+>"),
    _measure("Y", "measure in the Y basis; outcome 0 for |+i>"),
    OpSpec(
        name="MEASURE_ANGLE",
        category=Category.MEASUREMENT,
        description="measure in the XY-plane basis (|0> +/- e^{i angle}|1>)/sqrt2; 0 for +",
        vqs=ONE,
        produces=ONE,
        args=(
            ArgSpec(
                name="angle",
                type=ArgType.NUMBER,
                required=True,
                description="basis angle in radians in the XY plane (0 is the X basis)",
            ),
        ),
        clifford=Clifford.QUARTER_TURN,
        counts_as=frozenset({"measurement"}),
        kind=Exec.MEASURE_ANGLE,
    ),
    OpSpec(
        name="MEASURE_BELL",
        category=Category.MEASUREMENT,
        description="Bell measurement of two qubits: events are XX parity, then ZZ parity",
        vqs=TWO,
        produces=TWO,
        clifford=Clifford.YES,
        counts_as=frozenset({"measurement"}),
        kind=Exec.BELL,
    ),
    # composites
    OpSpec(
        name="TELEPORT_CNOT",
        category=Category.COMPOSITE,
        description="CNOT (control, target) carried out by gate teleportation",
        vqs=TWO,
        cap="CAP_TELEPORT",
        unitary=True,
        clifford=Clifford.YES,
        inverse="TELEPORT_CNOT",
        kind=Exec.TELEPORT_CNOT,
        gate="cx",
    ),
    OpSpec(
        name="INJECT_T_STATE",
        category=Category.COMPOSITE,
        description="prepare the qubit in the magic state T|+>, drawing one distilled state",
        vqs=ONE,
        cap="CAP_MAGIC",
        counts_as=frozenset({"magic_state"}),
        kind=Exec.INJECT_T,
    ),
    OpSpec(
        name="COND_PAULI",
        category=Category.COMPOSITE,
        description="apply the Pauli mask when the XOR of the input events is 1",
        vqs=ONE,
        inputs=ONE_OR_MORE,
        args=(
            ArgSpec(
                name="mask",
                type=ArgType.PAULI,
                required=True,
                choices=("I", "X", "Y", "Z"),
                description="the Pauli to apply",
            ),
        ),
        unitary=True,
        clifford=Clifford.YES,
        inverse="COND_PAULI",
        kind=Exec.COND_PAULI,
    ),
    # channels
    OpSpec(
        name="OPEN_CHAN",
        category=Category.CHANNEL,
        description="open a channel: prepare two qubits in a Bell pair of the given fidelity",
        vqs=TWO,
        chs=ONE,
        args=(
            ArgSpec(
                name="opts",
                type=ArgType.OBJECT,
                description="channel options",
                fields=(
                    ArgSpec(
                        name="fidelity",
                        type=ArgType.NUMBER,
                        minimum=0.0,
                        maximum=1.0,
                        default=1.0,
                        description="Werner-state fidelity of the Bell pair",
                    ),
                    ArgSpec(
                        name="type",
                        type=ArgType.STRING,
                        choices=("bell_pair",),
                        default="bell_pair",
                        description="kind of entangled resource",
                    ),
                ),
            ),
        ),
        cap="CAP_LINK",
        clifford=Clifford.YES,
        opens="chs",
        kind=Exec.OPEN_CHAN,
    ),
    OpSpec(
        name="USE_CHAN",
        category=Category.CHANNEL,
        description="consume the channel's entanglement for an operation named by semantic",
        chs=ONE,
        args=(
            ArgSpec(
                name="semantic",
                type=ArgType.STRING,
                description="what the channel is used for (recorded in telemetry)",
            ),
        ),
        clifford=Clifford.YES,
        kind=Exec.NONE,
    ),
    OpSpec(
        name="CLOSE_CHAN",
        category=Category.CHANNEL,
        description="close a channel; ends the handle",
        chs=ONE,
        clifford=Clifford.YES,
        closes="chs",
        kind=Exec.NONE,
    ),
    # classical: run-time values computed from events (qmk.qvm.classical)
    OpSpec(
        name="CALC",
        category=Category.CLASSICAL,
        description="compute a typed classical value from events; produces its bits, "
        "least significant first",
        inputs=ANY,
        produces=ONE_OR_MORE,
        args=(
            ArgSpec(
                name="type",
                type=ArgType.STRING,
                required=True,
                description="the value's type: bool, bit[n], int[n], uint[n], angle[n], "
                "float[64] or float[32]; produces lists its bits",
            ),
            ArgSpec(
                name="reads",
                type=ArgType.STRING,
                description="the operands' types, separated by commas: v0 takes the first "
                "inputs, v1 the next (absent: no operands)",
            ),
            ArgSpec(
                name="expr",
                type=ArgType.STRING,
                required=True,
                description="the expression over v0, v1, ... (docs/qvm.md#classical-values)",
            ),
        ),
        clifford=Clifford.YES,
        kind=Exec.CALC,
    ),
    OpSpec(
        name="HALT",
        category=Category.CLASSICAL,
        description="stop the run with error QE115 when it runs (its guard holds): a loop "
        "past its iteration cap",
        args=(
            ArgSpec(
                name="message",
                type=ArgType.STRING,
                required=True,
                description="what went wrong, for the error",
            ),
        ),
        clifford=Clifford.YES,
        kind=Exec.HALT,
    ),
    # admin
    _admin("FENCE_EPOCH", "close the epoch: all before finishes before anything after starts"),
    _admin(
        "BAR_REGION",
        "mark a region (on the listed qubits, or none) for telemetry",
        vqs=ANY,
        args=(ArgSpec(name="tag", type=ArgType.STRING, description="region name"),),
    ),
    _admin(
        "SET_POLICY",
        "scheduling hints for the kernel; no quantum effect",
        args=(
            ArgSpec(name="priority", type=ArgType.INTEGER, description="higher runs sooner"),
            ArgSpec(
                name="deadline",
                type=ArgType.INTEGER,
                minimum=0,
                description="deadline in epochs",
            ),
            ArgSpec(
                name="code_distance",
                type=ArgType.INTEGER,
                minimum=1,
                description="preferred code distance",
            ),
            ArgSpec(
                name="error_budget",
                type=ArgType.NUMBER,
                minimum=0,
                description="the idle logical error the shared machine may give the job",
            ),
        ),
    ),
)
#: stim's noise channels a ``NOISE`` row names (:data:`qmk.frontends.stim_fold` reads
#: them, the stim target writes them): each acts on one target (two for the ``2``
#: channels; ``E`` and ``ELSE_CORRELATED_ERROR`` on a Pauli product, one letter a qubit).
NOISE_CHANNELS: tuple[str, ...] = (
    "X_ERROR",
    "Y_ERROR",
    "Z_ERROR",
    "I_ERROR",
    "DEPOLARIZE1",
    "PAULI_CHANNEL_1",
    "DEPOLARIZE2",
    "PAULI_CHANNEL_2",
    "II_ERROR",
    "E",
    "ELSE_CORRELATED_ERROR",
)
_COORDS = ArgSpec(
    name="coords", type=ArgType.NUMBERS, description="coordinates (stim's, for its tools)"
)
_REC = ArgSpec(
    name="rec",
    type=ArgType.INTEGERS,
    required=True,
    maximum=-1,
    description="measurement-record offsets, -1 the latest measurement (stim's rec[-k])",
)
_CIRCUIT = "a stim circuit's own; changes no qubit and no measurement"
#: A stim circuit's instructions that have no gate: annotations and its noise, which
#: take no logical time (a stim circuit states its own physical rounds).


def _stim_probabilities(description: str) -> ArgSpec:
    """A stim instruction's probabilities, as its ``p`` argument."""
    return ArgSpec(
        name="p",
        type=ArgType.NUMBERS,
        required=True,
        minimum=0,
        maximum=1,
        description=description,
    )


_STIM_ROWS: tuple[OpSpec, ...] = (
    _admin("TICK", f"a layer boundary ({_CIRCUIT})"),
    _admin(
        "QUBIT_COORDS",
        f"the listed qubits' coordinates ({_CIRCUIT})",
        vqs=ONE_OR_MORE,
        args=(replace(_COORDS, required=True),),
    ),
    _admin(
        "SHIFT_COORDS",
        f"shift later coordinates by these offsets ({_CIRCUIT})",
        args=(replace(_COORDS, required=True),),
    ),
    _admin(
        "DETECTOR",
        f"a detector: the parity of these record bits is deterministic ({_CIRCUIT})",
        args=(_REC, _COORDS),
    ),
    _admin(
        "OBSERVABLE_INCLUDE",
        f"add these record bits to a logical observable's parity ({_CIRCUIT})",
        args=(
            ArgSpec(
                name="index",
                type=ArgType.INTEGER,
                required=True,
                minimum=0,
                description="the observable",
            ),
            _REC,
        ),
    ),
    _admin(
        "NOISE",
        "a stim noise channel on the listed qubits: the stim target applies it; another "
        "target refuses it (QM102), its own noise model standing for the machine's",
        vqs=ONE_OR_MORE,
        args=(
            ArgSpec(
                name="channel",
                type=ArgType.STRING,
                required=True,
                choices=NOISE_CHANNELS,
                description="stim's name of the channel",
            ),
            _stim_probabilities("the channel's probabilities, as stim lists them"),
            ArgSpec(
                name="paulis",
                type=ArgType.STRING,
                description="E and ELSE_CORRELATED_ERROR: the product's Pauli on each qubit "
                "(X, Y or Z, one letter a qubit)",
            ),
        ),
    ),
)
#: stim's instructions that write a noisy record bit (a ``NOISY_MEASURE`` row): of one
#: qubit, or ``MPAD``'s of none.
NOISY_RECORDS: tuple[str, ...] = (
    "M",
    "MX",
    "MY",
    "MR",
    "MRX",
    "MRY",
    "HERALDED_ERASE",
    "HERALDED_PAULI_CHANNEL_1",
    "MPAD",
)
_STIM_ROWS += (
    OpSpec(
        name="NOISY_MEASURE",
        category=Category.MEASUREMENT,
        description="a stim instruction that writes a noisy record bit of its qubit: a "
        "measurement with a flip probability (M(p), MR(p)...), a heralded channel's "
        "herald, or MPAD(p)'s bit (no qubit); the stim target runs it, another target "
        "refuses it (QE110)",
        vqs=Arity(0, 1),
        produces=ONE,
        args=(
            ArgSpec(
                name="instruction",
                type=ArgType.STRING,
                required=True,
                choices=NOISY_RECORDS,
                description="stim's name of the instruction",
            ),
            _stim_probabilities("its probabilities, as stim lists them"),
            ArgSpec(
                name="bit",
                type=ArgType.INTEGER,
                minimum=0,
                maximum=1,
                description="MPAD: the bit it writes (before its flip)",
            ),
        ),
        clifford=Clifford.YES,
        counts_as=frozenset({"measurement"}),
        kind=Exec.NONE,
    ),
)
#: The ops that only a stim circuit's run gives a meaning to beyond its rows.
STIM_OPS: frozenset[str] = frozenset(spec.name for spec in _STIM_ROWS)
_TABLE = _with_inverses((*_ROWS, *_STIM_ROWS))

#: Every op by name, in table order.
OPS: Mapping[str, OpSpec] = MappingProxyType({spec.name: spec for spec in _TABLE})

#: Every other name an op loads by (its ``aliases``), mapped to the op's name.
OP_ALIASES: Mapping[str, str] = MappingProxyType(
    {alias: spec.name for spec in _TABLE for alias in spec.aliases}
)


def canonical_op(name: str) -> str | None:
    """The op ``name`` denotes (itself or the op it is an alias of), or None.

    >>> canonical_op("APPLY_CX"), canonical_op("APPLY_CNOT"), canonical_op("APPLY_FOO")
    ('APPLY_CNOT', 'APPLY_CNOT', None)
    """
    if name in OPS:
        return name
    return OP_ALIASES.get(name)


#: Operand kinds of a node, in the order nodes list them.
OPERAND_KINDS: tuple[str, ...] = ("vqs", "chs", "inputs", "produces")

#: The ops that never entangle the qubits they name, however many (the entanglement
#: firewall lets them touch qubits of several tenants): the kernel's firewall
#: (:func:`qmk.kernel.admit.channels.check_firewall`) and the prover's (:mod:`qmk.qvm.prove`).
NOT_ENTANGLING: frozenset[str] = frozenset(
    {"ALLOC_LQ", "FREE_LQ", "RESET", "FENCE_EPOCH", "BAR_REGION"}
)
