"""Quantum states as JSON, and on engines: the format of ``qmk run --state`` and
``--initial-state``.

A state file is one JSON object (:data:`STATE_SCHEMA` is its JSON Schema)::

    {"format": "qmk-state", "version": 1, "kind": "amplitudes",
     "qubits": ["q0", "q1"], "order": "little-endian",
     "amplitudes": [[0.7071067811865476, 0.0], [0.0, 0.0], [0.0, 0.0],
                    [0.7071067811865476, 0.0]]}

    {"format": "qmk-state", "version": 1, "kind": "stabilizers",
     "qubits": ["q0", "q1"], "order": "left-to-right",
     "stabilizers": ["+XX", "+ZZ"]}

- ``qubits``: the qubits' names, in order (the program's handles); qubit k is ``qubits[k]``.
- ``amplitudes`` (kind ``amplitudes``): ``2**n`` pairs ``[re, im]``; ``order``
  ``"little-endian"``: qubit k is bit k of the index (``qubits[0]`` is the least
  significant bit), as Qiskit's ``Statevector`` orders a circuit's qubits.
  ``"big-endian"`` (``qubits[0]`` most significant) is read too. The norm must be 1
  within 1e-6 (it is renormalised). A global phase carries no meaning.
- ``stabilizers`` (kind ``stabilizers``): ``n`` independent, commuting Pauli strings, a
  sign ``+`` or ``-`` then one of ``I X Y Z`` (stim's ``_`` reads as ``I``) per qubit;
  ``order`` ``"left-to-right"``: character k after the sign acts on qubit k (stim's
  order). The state is the one every string stabilizes with eigenvalue +1. QMK writes
  them in stim's canonical form (``Tableau.to_stabilizers(canonicalize=True)``).
- ``metadata`` (optional): any JSON object (QMK writes the program, engine and seed).

On engines: :func:`capture` reads the state of some live qubits of an engine (the
statevector engine's amplitudes; the stabilizer engine's tableau, or its amplitudes up
to :data:`MAX_TABLEAU_AMPLITUDE_QUBITS` qubits). :func:`prepare` puts fresh qubits
(in ``|0>``) into a state with the engine's own gates. A stabilizer state is made by
stim's Clifford synthesis (``h s cx``), amplitudes by uniformly controlled rotations
(Mottonen et al. 2004: ``ry rz cx``, about ``4 * 2**n`` gates, global phase dropped),
or, on an engine with ``load_amplitudes`` (the statevector engine), the vector itself.

Errors are :class:`~qmk.engines.base.EngineError`: ``QE111 state-file`` for a file that
is not of this format (the message names the field), ``QE112 state-mismatch`` for a
state an engine cannot prepare or export.

>>> state = Amplitudes(qubits=("a", "b"), amplitudes=np.array([1, 0, 0, 1]) / np.sqrt(2))
>>> loads(dumps(state)) == state
True
>>> from qmk.engines.statevector import StatevectorEngine
>>> engine = StatevectorEngine(seed=1)
>>> qs = [engine.allocate(), engine.allocate()]
>>> prepare(engine, qs, Stabilizers(qubits=("a", "b"), stabilizers=("+XX", "-ZZ")))
>>> capture(engine, qs, ("a", "b")).amplitudes.round(3).tolist()  # (|01> + |10>)/sqrt2
[0j, (0.707+0j), (0.707+0j), 0j]
"""

from __future__ import annotations

import json
import math
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar

import numpy as np

from qmk.engines.base import EngineError
from qmk.gates import named

#: The file format's name and version (a reader refuses any other).
FORMAT = "qmk-state"
VERSION = 1
#: The kinds of state, and the ``order`` each writes.
KINDS: Mapping[str, str] = {"amplitudes": "little-endian", "stabilizers": "left-to-right"}
#: A stabilizer state exported as amplitudes holds ``2**n`` of them: at most this many qubits.
MAX_TABLEAU_AMPLITUDE_QUBITS = 24
#: How far from 1 the norm of amplitudes read from a file may be.
NORM_TOLERANCE = 1e-6
#: Rotation angles below this are left out of a preparation circuit.
_TINY_ANGLE = 1e-13

#: The JSON Schema of a state file (draft 2020-12).
STATE_SCHEMA: Mapping[str, Any] = {
    "$schema": "https://json-schema.org/draft/2020-12/schema",
    "title": "QMK quantum state",
    "type": "object",
    "required": ["format", "version", "kind", "qubits", "order"],
    "properties": {
        "format": {"const": FORMAT},
        "version": {"const": VERSION},
        "kind": {"enum": list(KINDS)},
        "qubits": {"type": "array", "items": {"type": "string"}, "minItems": 1},
        "order": {"enum": ["little-endian", "big-endian", "left-to-right"]},
        "amplitudes": {
            "type": "array",
            "items": {
                "type": "array",
                "prefixItems": [{"type": "number"}, {"type": "number"}],
                "minItems": 2,
                "maxItems": 2,
            },
        },
        "stabilizers": {
            "type": "array",
            "items": {"type": "string", "pattern": "^[+-][IXYZ_]+$"},
        },
        "metadata": {"type": "object"},
    },
    "additionalProperties": False,
    "oneOf": [
        {
            "properties": {
                "kind": {"const": "amplitudes"},
                "order": {"enum": ["little-endian", "big-endian"]},
            },
            "required": ["amplitudes"],
            "not": {"required": ["stabilizers"]},
        },
        {
            "properties": {"kind": {"const": "stabilizers"}, "order": {"const": "left-to-right"}},
            "required": ["stabilizers"],
            "not": {"required": ["amplitudes"]},
        },
    ],
}


@dataclass(frozen=True, slots=True, kw_only=True, eq=False)
class Amplitudes:
    """A pure state as ``2**n`` amplitudes, qubit k the k-th bit of the index."""

    kind: ClassVar[str] = "amplitudes"
    qubits: tuple[str, ...]
    amplitudes: np.ndarray
    metadata: Mapping[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        vector = np.asarray(self.amplitudes, dtype=np.complex128).reshape(-1)
        object.__setattr__(self, "qubits", tuple(self.qubits))
        object.__setattr__(self, "amplitudes", vector)
        if vector.size != 1 << len(self.qubits):
            raise _bad(
                "amplitudes",
                f"{len(self.qubits)} qubits need {1 << len(self.qubits)} amplitudes, "
                f"got {vector.size}",
            )

    @property
    def num_qubits(self) -> int:
        return len(self.qubits)

    def __eq__(self, other: object) -> bool:
        return (
            isinstance(other, Amplitudes)
            and self.qubits == other.qubits
            and np.array_equal(self.amplitudes, other.amplitudes)
        )

    def to_json(self) -> dict[str, Any]:
        pairs = [[float(a.real), float(a.imag)] for a in self.amplitudes.tolist()]
        return _document(self, "amplitudes", pairs)


@dataclass(frozen=True, slots=True, kw_only=True)
class Stabilizers:
    """A stabilizer state: ``n`` signed Pauli strings, character k (after the sign) on
    qubit k."""

    kind: ClassVar[str] = "stabilizers"
    qubits: tuple[str, ...]
    stabilizers: tuple[str, ...]
    metadata: Mapping[str, Any] = field(default_factory=dict, compare=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "qubits", tuple(self.qubits))
        object.__setattr__(
            self, "stabilizers", tuple(s.replace("_", "I") for s in self.stabilizers)
        )
        n = len(self.qubits)
        if len(self.stabilizers) != n:
            raise _bad(
                "stabilizers", f"{n} qubits need {n} stabilizers, got {len(self.stabilizers)}"
            )
        for k, text in enumerate(self.stabilizers):
            if len(text) != n + 1 or text[0] not in "+-" or set(text[1:]) - set("IXYZ"):
                raise _bad(
                    f"stabilizers[{k}]",
                    f"{text!r} is not a sign (+ or -) then {n} of I, X, Y, Z",
                )
        _tableau(self)  # independent and commuting, or QE111

    @property
    def num_qubits(self) -> int:
        return len(self.qubits)

    def to_json(self) -> dict[str, Any]:
        return _document(self, "stabilizers", list(self.stabilizers))

    def to_amplitudes(self) -> Amplitudes:
        """The same state as amplitudes (at most :data:`MAX_TABLEAU_AMPLITUDE_QUBITS` qubits),
        exact: every nonzero amplitude is ``2**(-k/2)`` times 1, -1, i or -i.

        Raises:
            EngineError: ``QE112 state-mismatch`` past the qubit limit.
        """
        n = self.num_qubits
        if n > MAX_TABLEAU_AMPLITUDE_QUBITS:
            raise EngineError.of(
                "state-mismatch",
                f"a stabilizer state of {n} qubits as amplitudes needs 2**{n} of them; "
                f"export it as stabilizers (at most {MAX_TABLEAU_AMPLITUDE_QUBITS} qubits "
                "as amplitudes)",
            )
        vector = np.asarray(_tableau(self).to_state_vector(endian="little"), np.complex128)
        support = np.abs(vector) > 0.5 * np.abs(vector).max()
        phases = vector[support] / np.abs(vector[support])
        snapped = np.round(phases.real) + 1j * np.round(phases.imag)
        exact = np.zeros_like(vector)
        exact[support] = snapped / math.sqrt(int(support.sum()))
        return Amplitudes(qubits=self.qubits, amplitudes=exact, metadata=self.metadata)


#: A state of either kind.
QuantumState = Amplitudes | Stabilizers


def _document(state: Amplitudes | Stabilizers, name: str, data: list[Any]) -> dict[str, Any]:
    """``state`` as a state file's JSON document, its ``data`` under ``name``."""
    out: dict[str, Any] = {"format": FORMAT, "version": VERSION, "kind": state.kind}
    out |= {"qubits": list(state.qubits), "order": KINDS[state.kind], name: data}
    if state.metadata:
        out["metadata"] = dict(state.metadata)
    return out


def _bad(where: str, message: str) -> EngineError:
    return EngineError.of("state-file", f"{where}: {message}", field=where)


def _tableau(state: Stabilizers) -> Any:
    import stim

    try:
        return stim.Tableau.from_stabilizers(
            [stim.PauliString(s) for s in state.stabilizers], allow_redundant=False
        )
    except ValueError as exc:
        raise _bad("stabilizers", f"not the stabilizers of one state: {exc}") from None


# --------------------------------------------------------------------------- JSON


def from_json(data: Any, *, source: str | None = None) -> QuantumState:
    """The state in parsed JSON ``data`` (see the module docstring).

    Raises:
        EngineError: ``QE111 state-file`` naming the field that is wrong.
    """
    try:
        return _from_json(data)
    except EngineError as exc:
        if source is None or exc.name != "state-file":
            raise
        raise EngineError.of("state-file", f"{source}: {exc.message}", **exc.details) from None


def _from_json(data: Any) -> QuantumState:
    if not isinstance(data, dict):
        raise _bad("(top)", f"a state is a JSON object, not {type(data).__name__}")
    known = STATE_SCHEMA["properties"]
    unknown = sorted(set(data) - set(known))
    if unknown:
        raise _bad(unknown[0], f"unknown key (a state has {', '.join(known)})")
    for key in STATE_SCHEMA["required"]:
        if key not in data:
            raise _bad(key, "missing")
    if data["format"] != FORMAT:
        raise _bad("format", f"{data['format']!r} is not {FORMAT!r}")
    if data["version"] != VERSION or isinstance(data["version"], bool):
        raise _bad("version", f"{data['version']!r}: this QMK reads version {VERSION}")
    kind = data["kind"]
    if kind not in KINDS:
        raise _bad("kind", f"{kind!r} is not one of {', '.join(KINDS)}")
    qubits = data["qubits"]
    if (
        not isinstance(qubits, list)
        or not qubits
        or not all(isinstance(q, str) for q in qubits)
        or len(set(qubits)) != len(qubits)
    ):
        raise _bad("qubits", "a non-empty list of distinct names")
    metadata = data.get("metadata", {})
    if not isinstance(metadata, dict):
        raise _bad("metadata", "a JSON object")
    other = "stabilizers" if kind == "amplitudes" else "amplitudes"
    if other in data:
        raise _bad(other, f"a state of kind {kind!r} has no {other}")
    if kind not in data:
        raise _bad(kind, "missing")
    order = data["order"]
    if kind == "stabilizers":
        if order != KINDS[kind]:
            raise _bad("order", f"{order!r}: stabilizers are written left-to-right")
        strings = data["stabilizers"]
        if not isinstance(strings, list) or not all(isinstance(s, str) for s in strings):
            raise _bad("stabilizers", "a list of Pauli strings such as '+XZ'")
        return Stabilizers(qubits=tuple(qubits), stabilizers=tuple(strings), metadata=metadata)
    if order not in ("little-endian", "big-endian"):
        raise _bad("order", f"{order!r}: amplitudes are little-endian or big-endian")
    vector = _complex_list(data["amplitudes"], len(qubits))
    if order == "big-endian":  # qubits[0] most significant: reverse the index's bits
        n = len(qubits)
        vector = vector.reshape((2,) * n).transpose(list(range(n))[::-1]).reshape(-1)
    return Amplitudes(qubits=tuple(qubits), amplitudes=vector, metadata=metadata)


def _complex_list(values: Any, n: int) -> np.ndarray:
    size = 1 << n
    if not isinstance(values, list) or len(values) != size:
        got = len(values) if isinstance(values, list) else type(values).__name__
        raise _bad("amplitudes", f"{n} qubits need a list of {size} [re, im] pairs, got {got}")
    for k, pair in enumerate(values):
        if (
            not isinstance(pair, list)
            or len(pair) != 2
            or not all(isinstance(x, int | float) and not isinstance(x, bool) for x in pair)
        ):
            raise _bad(f"amplitudes[{k}]", f"{pair!r} is not a pair [re, im] of numbers")
    array = np.array(values, dtype=np.float64).reshape(size, 2)
    if not np.isfinite(array).all():
        raise _bad("amplitudes", "amplitudes must be finite numbers")
    vector = array[:, 0] + 1j * array[:, 1]
    norm = float(np.linalg.norm(vector))
    if abs(norm - 1.0) > NORM_TOLERANCE:
        raise _bad("amplitudes", f"the norm is {norm:.9g}, not 1 (within {NORM_TOLERANCE:g})")
    # renormalise only what rounding cannot explain, so that files round-trip exactly
    return vector if abs(norm - 1.0) < 1e-12 else vector / norm


def dumps(state: QuantumState) -> str:
    """The state as JSON text (one line per amplitude or stabilizer), ending in a newline."""
    data = state.to_json()
    rows = data.pop(state.kind)
    head = json.dumps(data, ensure_ascii=False)[:-1]
    body = ",\n".join(f"  {json.dumps(row, ensure_ascii=False)}" for row in rows)
    return f'{head}, "{state.kind}": [\n{body}\n]}}\n'


def loads(text: str | bytes, *, source: str | None = None) -> QuantumState:
    """The state in JSON ``text``.

    Raises:
        EngineError: ``QE111 state-file``: not JSON, or not a state.
    """
    try:
        data = json.loads(text)
    except (ValueError, UnicodeDecodeError) as exc:
        prefix = f"{source}: " if source else ""
        raise EngineError.of("state-file", f"{prefix}not JSON: {exc}") from None
    return from_json(data, source=source)


def read(path: str | os.PathLike[str]) -> QuantumState:
    """The state in the file ``path`` (``QE111 state-file`` when it cannot be read)."""
    name = os.fspath(path)
    try:
        data = Path(name).read_bytes()
    except OSError as exc:
        raise EngineError.of("state-file", f"{name}: cannot read: {exc.strerror or exc}") from None
    return loads(data, source=name)


def write(path: str | os.PathLike[str], state: QuantumState) -> None:
    """Write ``state`` to ``path`` (``QE111 state-file`` when it cannot be written)."""
    name = os.fspath(path)
    try:
        Path(name).write_text(dumps(state), encoding="utf-8")
    except OSError as exc:
        raise EngineError.of("state-file", f"{name}: cannot write: {exc.strerror or exc}") from None


# --------------------------------------------------------------------------- engines


def capture(
    engine: Any, qubits: Sequence[int], names: Sequence[str], *, kind: str = "auto"
) -> QuantumState:
    """The state of the engine's live ``qubits`` (all of them: the others must be gone),
    named ``names``: ``kind`` "amplitudes", "stabilizers", or "auto" (the engine's own:
    stabilizers from an engine that keeps a tableau, else amplitudes).

    Raises:
        EngineError: ``QE112 state-mismatch`` for a kind the engine cannot export.
    """
    tableau = _engine_stabilizers(engine, qubits, names)
    if kind == "auto":
        kind = "amplitudes" if tableau is None else "stabilizers"
    if kind == "stabilizers":
        if tableau is None:
            raise EngineError.of(
                "state-mismatch",
                f"the {engine.name} engine keeps amplitudes, not a tableau: export amplitudes, "
                "or run on the stabilizer engine",
            )
        return tableau
    if kind != "amplitudes":
        raise EngineError.of(
            "engine-misuse", f"a state kind is amplitudes or stabilizers, not {kind!r}"
        )
    if tableau is not None:
        return tableau.to_amplitudes()
    reader = getattr(engine, "state_vector", None)
    if reader is None:
        raise EngineError.of(
            "state-mismatch", f"the {engine.name} engine cannot export its state as amplitudes"
        )
    # state_vector puts its first qubit most significant: little-endian is the reverse
    vector = np.asarray(reader(list(reversed(qubits))), dtype=np.complex128)
    return Amplitudes(qubits=tuple(names), amplitudes=vector)


def _engine_stabilizers(
    engine: Any, qubits: Sequence[int], names: Sequence[str]
) -> Stabilizers | None:
    """The stabilizers of ``qubits`` on an engine whose snapshots hold a stim tableau, or None."""
    export = getattr(engine, "export_snapshot", None)
    if export is None or hasattr(engine, "state_vector"):  # an amplitude engine
        return None
    _meta, arrays = export(engine.snapshot())
    if "x2x" not in arrays:
        return None
    import stim

    inverse = stim.Tableau.from_numpy(**{k: np.asarray(v, dtype=bool) for k, v in arrays.items()})
    live = [int(q) for q in qubits]
    width = max(live, default=-1) + 1
    if len(inverse) < width:
        # stim's simulator grows only to the qubits a gate touched: the others are |0>
        inverse = inverse + stim.Tableau(width - len(inverse))
    tableau = inverse.inverse()
    dead = [q for q in range(len(tableau)) if q not in set(live)]
    restricted = []
    for k in range(len(tableau)):
        generator = tableau.z_output(k)
        # freed qubits are reset to |0>: a generator has only I or Z on them, and the Zs
        # (themselves stabilizers) drop out without changing its sign
        if any(generator[q] in (1, 2) for q in dead):
            raise EngineError.of(
                "state-mismatch", "the qubits asked for are entangled with others on the engine"
            )
        paulis = "".join("IXYZ"[generator[q]] for q in live)
        sign = "+" if generator.sign == 1 else "-"
        restricted.append(stim.PauliString(sign + paulis))
    reduced = stim.Tableau.from_stabilizers(restricted, allow_redundant=True)
    canonical = reduced.to_stabilizers(canonicalize=True)
    strings = tuple(str(s).replace("_", "I") for s in canonical)
    return Stabilizers(qubits=tuple(names), stabilizers=strings)


def prepare(engine: Any, qubits: Sequence[int], state: QuantumState) -> None:
    """Put the engine's fresh ``qubits`` (all in ``|0>``) into ``state``, with its gates,
    or, for amplitudes on an engine that loads them (``load_amplitudes``), directly.

    Raises:
        EngineError: ``QE112 state-mismatch``: a count that differs from the state's, or
            an engine that lacks the gates (amplitudes need any ``ry``/``rz`` angle).
    """
    if len(qubits) != state.num_qubits:
        raise EngineError.of(
            "state-mismatch",
            f"the state has {state.num_qubits} qubits, not {len(qubits)}",
        )
    loader = getattr(engine, "load_amplitudes", None)
    if isinstance(state, Amplitudes) and loader is not None:
        loader(qubits, state.amplitudes)  # no gates: the vector itself
        return
    circuit = preparation(state)
    for gate, _, params in circuit:
        if not engine.supports(gate, params):
            raise EngineError.of(
                "state-mismatch",
                f"the {engine.name} engine cannot prepare this state: it does not apply "
                f"{gate}{list(params) if params else ''}"
                + (
                    "; amplitudes need the statevector engine" if state.kind == "amplitudes" else ""
                ),
            )
    for gate, local, params in circuit:
        engine.apply(gate, [qubits[i] for i in local], params)


#: One gate of a preparation circuit: (engine gate, local qubits, parameters).
Instr = tuple[str, tuple[int, ...], tuple[float, ...]]


def preparation(state: QuantumState) -> list[Instr]:
    """Engine gates on local qubits ``0..n-1`` taking ``|0...0>`` to ``state`` (up to a
    global phase).

    >>> [g for g, _, _ in preparation(Stabilizers(qubits=("a", "b"), stabilizers=("+XX", "+ZZ")))]
    ['h', 'cx']
    """
    if isinstance(state, Stabilizers):
        out: list[Instr] = []
        for instruction in _tableau(state).to_circuit("elimination"):
            gate = named("stim", instruction.name)  # the gate records' stim names
            if gate is None or gate.params:
                raise EngineError.of(
                    "state-mismatch",
                    f"stim's synthesis wrote {instruction.name}, which is no gate of QMK's",
                )
            targets = [t.value for t in instruction.targets_copy()]
            width = gate.qubits
            for i in range(0, len(targets), width):
                out.append((gate.name, tuple(targets[i : i + width]), ()))
        return out
    return _amplitude_circuit(state.amplitudes)


def _amplitude_circuit(vector: np.ndarray) -> list[Instr]:
    """Mottonen et al.'s preparation: disentangle qubit 0, 1, ... by uniformly controlled
    RZ then RY (controlled by the qubits above), then reverse the whole with angles negated."""
    n = int(vector.size).bit_length() - 1
    current = np.asarray(vector, dtype=np.complex128)
    undo: list[Instr] = []
    for k in range(n):
        pairs = current.reshape(-1, 2)
        a0, a1 = pairs[:, 0], pairs[:, 1]
        r0, r1 = np.abs(a0), np.abs(a1)
        p0, p1 = np.angle(a0), np.angle(a1)
        theta = 2 * np.arctan2(r1, r0)
        phi = p1 - p0
        controls = list(range(k + 1, n))
        undo += _uniformly_controlled("rz", -phi, controls, k)
        undo += _uniformly_controlled("ry", -theta, controls, k)
        current = np.hypot(r0, r1) * np.exp(0.5j * (p0 + p1))
    prepare_ops = [(g, q, tuple(-p for p in ps)) for g, q, ps in reversed(undo)]
    return _cancel_cx(prepare_ops)


def _uniformly_controlled(
    gate: str, angles: np.ndarray, controls: list[int], target: int
) -> list[Instr]:
    """``gate(angles[j])`` on ``target`` when the controls read j (bit b of j is
    ``controls[b]``): 2**m rotations between CNOTs in Gray-code order."""
    m = len(controls)
    if m == 0:
        return [(gate, (target,), (float(angles[0]),))] if abs(angles[0]) > _TINY_ANGLE else []
    size = 1 << m
    gray = [i ^ (i >> 1) for i in range(size)]
    # angles[j] = sum_i (-1)^popcount(j & gray[i]) thetas[i]: the Walsh-Hadamard transform
    thetas = walsh(np.asarray(angles, dtype=np.float64))[gray] / size
    out: list[Instr] = []
    for i in range(size):
        if abs(thetas[i]) > _TINY_ANGLE:
            out.append((gate, (target,), (float(thetas[i]),)))
        flip = gray[i] ^ gray[(i + 1) % size]
        out.append(("cx", (controls[flip.bit_length() - 1], target), ()))
    return out


def walsh(values: np.ndarray) -> np.ndarray:
    """``out[g] = sum_j (-1)^popcount(j & g) values[j]``: the fast Walsh-Hadamard
    transform, in O(n log n)."""
    out = values.copy()
    h = 1
    while h < out.size:
        view = out.reshape(-1, 2, h)
        top, bottom = view[:, 0, :].copy(), view[:, 1, :].copy()
        view[:, 0, :] = top + bottom
        view[:, 1, :] = top - bottom
        h *= 2
    return out


def _cancel_cx(ops: list[Instr]) -> list[Instr]:
    """``ops`` with adjacent equal CNOTs (left when rotations were dropped) cancelled."""
    out: list[Instr] = []
    for op in ops:
        if op[0] == "cx" and out and out[-1] == op:
            out.pop()
        else:
            out.append(op)
    return out
