"""The QVM op table: the one source of truth for every operation.

Each op is one :class:`OpSpec` record: its operands (how many virtual qubits,
channels, input events and produced events), its arguments with their types and
ranges, the capability it needs, whether it is unitary and Clifford, its inverse
and a one-line description. The JSON schema (:mod:`qmk.qvm.schema`), the
verifier, the assembler, the op table in ``docs/qvm.md`` and the executor's
dispatch all read this table; nothing else lists ops.

>>> OPS["APPLY_T"].inverse
'APPLY_TDG'
>>> OPS["APPLY_RZ"].args[0].name, OPS["APPLY_RZ"].inverse_negates
('theta', ('theta',))
>>> OPS["ALLOC_LQ"].cap
'CAP_ALLOC'
>>> str(OPS["FREE_LQ"].vqs)
'1..n'
"""

from __future__ import annotations

import enum
from collections.abc import Mapping
from dataclasses import dataclass, field
from types import MappingProxyType

#: The capabilities a graph may request, with what each one allows.
CAPABILITIES: Mapping[str, str] = MappingProxyType(
    {
        "CAP_ALLOC": "allocate logical qubits (ALLOC_LQ)",
        "CAP_TELEPORT": "gate teleportation between modules (TELEPORT_CNOT)",
        "CAP_MAGIC": "draw distilled magic states (INJECT_T_STATE)",
        "CAP_LINK": "open entanglement channels (OPEN_CHAN)",
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


class Clifford(str, enum.Enum):
    """Whether a stabilizer simulation can carry an op out exactly."""

    YES = "yes"
    NO = "no"
    #: Clifford exactly when its angle argument is a multiple of pi/2.
    QUARTER_TURN = "if angle is a multiple of pi/2"


class ArgType(str, enum.Enum):
    """The JSON type of an argument, with the checks that go with it."""

    NUMBER = "number"  # a finite int or float (not a bool)
    INTEGER = "integer"  # an int (not a bool)
    STRING = "string"
    PAULI = "pauli"  # one of I, X, Y, Z
    PROFILE = "profile"  # a code profile such as logical:surface_code(d=9)
    OBJECT = "object"  # a JSON object with the listed fields


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
THREE = Arity(3, 3)
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


def _gate1(
    name: str,
    description: str,
    *,
    inverse: str,
    clifford: bool = True,
    counts_as: frozenset[str] = frozenset(),
) -> OpSpec:
    return OpSpec(
        name=name,
        category=Category.GATE,
        description=description,
        vqs=ONE,
        unitary=True,
        clifford=Clifford.YES if clifford else Clifford.NO,
        inverse=inverse,
        counts_as=counts_as,
    )


def _rotation(axis: str) -> OpSpec:
    return OpSpec(
        name=f"APPLY_R{axis}",
        category=Category.GATE,
        description=f"rotation exp(-i theta {axis} / 2) about the {axis} axis",
        vqs=ONE,
        args=(_THETA,),
        unitary=True,
        clifford=Clifford.QUARTER_TURN,
        inverse=f"APPLY_R{axis}",
        inverse_negates=("theta",),
        counts_as=frozenset({"rotation"}),
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
    )


_T = frozenset({"t"})
_CCZ = frozenset({"ccz"})

_TABLE: tuple[OpSpec, ...] = (
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
    ),
    OpSpec(
        name="FREE_LQ",
        category=Category.LIFECYCLE,
        description="free logical qubits, discarding their state; ends the handles",
        vqs=ONE_OR_MORE,
        clifford=Clifford.YES,
        closes="vqs",
    ),
    OpSpec(
        name="RESET",
        category=Category.LIFECYCLE,
        description="return a qubit to |0>",
        vqs=ONE,
        clifford=Clifford.YES,
    ),
    # gates
    _gate1("APPLY_H", "Hadamard", inverse="APPLY_H"),
    _gate1("APPLY_S", "phase gate S = diag(1, i)", inverse="APPLY_SDG"),
    _gate1("APPLY_SDG", "inverse phase gate S^dagger = diag(1, -i)", inverse="APPLY_S"),
    _gate1("APPLY_X", "Pauli X", inverse="APPLY_X"),
    _gate1("APPLY_Y", "Pauli Y", inverse="APPLY_Y"),
    _gate1("APPLY_Z", "Pauli Z", inverse="APPLY_Z"),
    _gate1(
        "APPLY_T", "T gate diag(1, e^{i pi/4})", inverse="APPLY_TDG", clifford=False, counts_as=_T
    ),
    _gate1(
        "APPLY_TDG",
        "inverse T gate diag(1, e^{-i pi/4})",
        inverse="APPLY_T",
        clifford=False,
        counts_as=_T,
    ),
    _rotation("X"),
    _rotation("Y"),
    _rotation("Z"),
    OpSpec(
        name="APPLY_CNOT",
        category=Category.GATE,
        description="controlled NOT; vqs are (control, target)",
        vqs=TWO,
        unitary=True,
        clifford=Clifford.YES,
        inverse="APPLY_CNOT",
    ),
    OpSpec(
        name="APPLY_CZ",
        category=Category.GATE,
        description="controlled Z (symmetric in its qubits)",
        vqs=TWO,
        unitary=True,
        clifford=Clifford.YES,
        inverse="APPLY_CZ",
    ),
    OpSpec(
        name="APPLY_SWAP",
        category=Category.GATE,
        description="exchange two qubits' states",
        vqs=TWO,
        unitary=True,
        clifford=Clifford.YES,
        inverse="APPLY_SWAP",
    ),
    OpSpec(
        name="APPLY_CCX",
        category=Category.GATE,
        description="Toffoli; vqs are (control, control, target)",
        vqs=THREE,
        unitary=True,
        inverse="APPLY_CCX",
        counts_as=_CCZ,
    ),
    OpSpec(
        name="APPLY_CCZ",
        category=Category.GATE,
        description="doubly controlled Z (symmetric in its qubits)",
        vqs=THREE,
        unitary=True,
        inverse="APPLY_CCZ",
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
    ),
    OpSpec(
        name="MEASURE_BELL",
        category=Category.MEASUREMENT,
        description="Bell measurement of two qubits: events are XX parity, then ZZ parity",
        vqs=TWO,
        produces=TWO,
        clifford=Clifford.YES,
        counts_as=frozenset({"measurement"}),
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
    ),
    OpSpec(
        name="INJECT_T_STATE",
        category=Category.COMPOSITE,
        description="prepare the qubit in the magic state T|+>, drawing one distilled state",
        vqs=ONE,
        cap="CAP_MAGIC",
        counts_as=frozenset({"magic_state"}),
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
    ),
    OpSpec(
        name="CLOSE_CHAN",
        category=Category.CHANNEL,
        description="close a channel; ends the handle",
        chs=ONE,
        clifford=Clifford.YES,
        closes="chs",
    ),
    # admin
    OpSpec(
        name="FENCE_EPOCH",
        category=Category.ADMIN,
        description="close the epoch: all before finishes before anything after starts",
        clifford=Clifford.YES,
    ),
    OpSpec(
        name="BAR_REGION",
        category=Category.ADMIN,
        description="mark a region (on the listed qubits, or none) for telemetry",
        vqs=ANY,
        args=(ArgSpec(name="tag", type=ArgType.STRING, description="region name"),),
        clifford=Clifford.YES,
    ),
    OpSpec(
        name="SET_POLICY",
        category=Category.ADMIN,
        description="scheduling hints for the kernel; no quantum effect",
        args=(
            ArgSpec(name="priority", type=ArgType.INTEGER, description="higher runs sooner"),
            ArgSpec(
                name="deadline", type=ArgType.INTEGER, minimum=0, description="deadline in epochs"
            ),
            ArgSpec(
                name="code_distance",
                type=ArgType.INTEGER,
                minimum=1,
                description="preferred code distance",
            ),
        ),
        clifford=Clifford.YES,
    ),
)

#: Every op by name, in table order.
OPS: Mapping[str, OpSpec] = MappingProxyType({spec.name: spec for spec in _TABLE})

#: Operand kinds of a node, in the order nodes list them.
OPERAND_KINDS: tuple[str, ...] = ("vqs", "chs", "inputs", "produces")


def operand_arity(spec: OpSpec, kind: str) -> Arity:
    """The arity of operand ``kind`` (one of :data:`OPERAND_KINDS`) for ``spec``."""
    return getattr(spec, kind)


def closest_op(name: str) -> str | None:
    """The known op name closest to ``name``, for 'did you mean' hints.

    >>> closest_op("APPLY_CX")
    'APPLY_CCX'
    >>> closest_op("H")
    'APPLY_H'
    """
    import difflib

    upper = name.upper()
    if f"APPLY_{upper}" in OPS:
        return f"APPLY_{upper}"
    matches = difflib.get_close_matches(upper, list(OPS), n=1, cutoff=0.6)
    return matches[0] if matches else None
