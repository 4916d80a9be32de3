"""A run's micro-ops as columns, read by the runner a bounded chunk at a time.

A trajectory run applies one micro-op at a time (:class:`~qmk.execution.trajectories.Runner`).
The micro-ops are held as arrays (:class:`Ops`): a kind code, a gate code, qubit ids and
parameters (flat, with offsets), an event and a basis per micro-op. What few micro-ops
carry besides (a guard; a feed-forward's inputs, a Werner's fidelity, a fence's epoch, a
``calc``'s expression, a ``halt``'s message) is in side tables by position. A reader
turns a window of them into :class:`MicroOp` values (:meth:`Ops.rows`), so a run holds a
chunk's rows at a time, not an object per micro-op of the program.

A shot group's micro-ops are the error-free ones with its Pauli errors spliced in
(:class:`Spliced`): held as the positions and Paulis alone, made columns when the group
runs.
"""

from __future__ import annotations

import bisect
import itertools
from array import array
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from types import MappingProxyType
from typing import Any

import msgspec
import numpy as np

from qmk.qvm import classical
from qmk.qvm.columns import spread
from qmk.qvm.graph import Guard

#: The micro-op kinds (:attr:`MicroOp.kind`), in the order of their codes in :attr:`Ops.kinds`.
KINDS = (
    "gate",
    "alloc",
    "free",
    "meas",
    "reset",
    "cond",
    "werner",
    "pauli",
    "calc",
    "halt",
    "fence",
)
#: Each kind's code in :attr:`Ops.kinds`.
KIND_CODE: Mapping[str, int] = MappingProxyType({kind: code for code, kind in enumerate(KINDS)})
#: The measurement bases, in the order of their codes in :attr:`Ops.bases`.
BASES = ("Z", "X", "Y")
_BASIS_CODE = {basis: code for code, basis in enumerate(BASES)}
_KIND_NAMES = np.array(KINDS, dtype=object)
_BASIS_NAMES = np.array(BASES, dtype=object)
#: The micro-ops a reader turns into rows at once (:meth:`Ops.rows` by chunk) ...
CHUNK = 4096
#: ... and the chunks of rows an :class:`Ops` keeps (a run's memory for rows is bounded
#: by their product, whatever the program's length).
KEPT_CHUNKS = 16


class MicroOp(msgspec.Struct, frozen=True, gc=False):
    """One engine-level step of a run, as a reader of :class:`Ops` gives it back a chunk
    at a time (a plan's micro-ops are made as columns:
    :func:`~qmk.execution.trajectories.noiseless_ops`).

    ``kind`` is one of :data:`KINDS`. A ``pauli`` is a Pauli channel on one or two
    qubits: ``params`` the probability of each Pauli, identity first. A ``calc`` is a
    run-time classical value computed from the record, and a ``halt`` stops the run. A
    ``fence`` has ``epoch``: the number of the epoch it opens, 1 for the first fence.

    ``qubits`` are names (an ``alloc`` gives one its engine qubit), ``event`` the column
    of the run's record a ``meas`` writes and ``inputs`` those whose XOR a ``cond``
    reads (a ``calc``'s, with the columns it writes in ``outputs``). A ``calc``'s or a
    ``halt``'s node (``#index 'id'``) and a ``halt``'s message are in ``note``.

    Not tracked by the cyclic garbage collector (``gc=False``). It holds strings,
    numbers, tuples of them, a node's guard (strings and numbers) and a ``CALC``'s
    prepared expression. That is made and cached by :func:`qmk.qvm.classical.prepare`
    before any micro-op, so it cannot hold one. Nothing in it can lead back to it, so it
    is in no reference cycle. Tracked, a run's rows would be objects more for every
    collection to walk."""

    kind: str
    qubits: tuple[str, ...]
    guard: Guard | None = None
    gate: str = ""
    params: tuple[float, ...] = ()
    basis: str = "Z"
    event: int = -1
    inputs: tuple[int, ...] = ()
    fidelity: float = 1.0
    epoch: int = 0
    outputs: tuple[int, ...] = ()
    calc: classical.Prepared | None = None
    note: str = ""


#: A micro-op's fields that only a few kinds carry: in :attr:`Ops.rare`, by position.
Rare = tuple[tuple[int, ...], float, int, tuple[int, ...], "classical.Prepared | None", str]
_PLAIN: Rare = ((), 1.0, 0, (), None, "")


class Ops:
    """Micro-ops as columns (see the module docstring); made by :class:`Writer`.

    ``kinds`` (uint8, codes into :data:`KINDS`), ``gates`` (codes into ``gate_names``,
    "" for none), ``events`` and ``bases`` (codes into :data:`BASES`) have one entry a
    micro-op; ``qubit_at``/``qubit_ids`` (into ``names``) and ``param_at``/``params``
    are flat, micro-op ``i``'s ``[at[i], at[i + 1])``. The parameters may be given as
    a function that makes the pair, called when first read: a plan's are read off its
    nodes, which the router, reading the other columns alone, does not need. ``guards``
    and ``rare`` hold the few micro-ops that have a guard or :data:`Rare` fields, by
    position."""

    __slots__ = (
        "_chunks",
        "_gate_array",
        "_name_array",
        "_params",
        "bases",
        "events",
        "gate_names",
        "gates",
        "guards",
        "kinds",
        "names",
        "qubit_at",
        "qubit_ids",
        "rare",
    )

    def __init__(
        self,
        kinds: np.ndarray,
        gates: np.ndarray,
        gate_names: Sequence[str],
        qubit_at: np.ndarray,
        qubit_ids: np.ndarray,
        names: Sequence[str],
        params: tuple[np.ndarray, np.ndarray] | Callable[[], tuple[np.ndarray, np.ndarray]],
        events: np.ndarray,
        bases: np.ndarray,
        guards: Mapping[int, Guard],
        rare: Mapping[int, Rare],
    ) -> None:
        self.kinds = kinds
        self.gates = gates
        self.gate_names = tuple(gate_names)
        self.qubit_at = qubit_at
        self.qubit_ids = qubit_ids
        self.names = tuple(names)
        self._params = params
        self.events = events
        self.bases = bases
        self.guards = guards
        self.rare = rare
        self._chunks: dict[int, list[MicroOp]] = {}
        self._gate_array = np.asarray(self.gate_names, dtype=object)
        self._name_array = np.asarray(self.names, dtype=object)

    @classmethod
    def of(cls, ops: Iterable[MicroOp]) -> Ops:
        """Columns of micro-ops given one at a time."""
        writer = Writer()
        for op in ops:
            writer.take(op)
        return writer.done()

    def __len__(self) -> int:
        return len(self.kinds)

    @property
    def param_at(self) -> np.ndarray:
        """Where micro-op ``i``'s parameters start in :attr:`params` (and the end)."""
        return self._param_columns()[0]

    @property
    def params(self) -> np.ndarray:
        """Every micro-op's parameters, one after another."""
        return self._param_columns()[1]

    def _param_columns(self) -> tuple[np.ndarray, np.ndarray]:
        params = self._params
        if callable(params):  # (two threads may each make them: the same value)
            params = self._params = params()
        return params

    def __iter__(self) -> Iterator[MicroOp]:
        """The micro-ops in order as rows, a chunk made at a time."""
        return iter(Reader(self).span(0, len(self)))

    def rows(self, lo: int, hi: int) -> list[MicroOp]:
        """Micro-ops ``[lo, hi)`` as rows, from the chunks of :data:`CHUNK` that hold them.

        The last :data:`KEPT_CHUNKS` chunks read are kept: a run reads the same micro-ops
        for every shot group and branch (a group's own Paulis spliced in by
        :class:`Spliced`), and makes their rows once."""
        hi = min(hi, len(self.kinds))
        out: list[MicroOp] = []
        while lo < hi:
            first, k = divmod(lo, CHUNK)
            rows = self._chunks.get(first)
            if rows is None:
                if len(self._chunks) >= KEPT_CHUNKS:
                    self._chunks.clear()  # (one step, safe where threads share a plan's)
                rows = self._chunks[first] = self._made(first * CHUNK, (first + 1) * CHUNK)
            out += rows[k : hi - first * CHUNK]
            lo = (first + 1) * CHUNK
        return out

    @property
    def kept(self) -> int:
        """The rows kept now (at most :data:`KEPT_CHUNKS` chunks of :data:`CHUNK`)."""
        return sum(map(len, self._chunks.values()))

    def forget(self) -> None:
        """Drop the rows kept (at a run's end: the micro-ops of a plan the kernel keeps
        hold no object per micro-op between runs)."""
        self._chunks.clear()

    def _made(self, lo: int, hi: int) -> list[MicroOp]:
        """Micro-ops ``[lo, hi)`` as rows, made from the columns."""
        hi = min(hi, len(self.kinds))
        if lo >= hi:
            return []
        qat = self.qubit_at[lo : hi + 1]
        flat = iter(self._name_array[self.qubit_ids[qat[0] : qat[-1]]].tolist())
        qubits = [tuple(itertools.islice(flat, k)) for k in np.diff(qat).tolist()]
        pat = self.param_at[lo : hi + 1]
        if pat[0] == pat[-1]:
            params: list[tuple[float, ...]] = [()] * (hi - lo)
        else:
            values = iter(self.params[pat[0] : pat[-1]].tolist())
            sizes = np.diff(pat).tolist()
            params = [tuple(itertools.islice(values, k)) if k else () for k in sizes]
        guards: list[Guard | None] = [None] * (hi - lo)
        for at, guard in self.guards.items():
            if lo <= at < hi:
                guards[at - lo] = guard
        rare: list[Rare] = [_PLAIN] * (hi - lo)
        for at, fields in self.rare.items():
            if lo <= at < hi:
                rare[at - lo] = fields
        return [
            MicroOp(kind, qs, guard, gate, ps, basis, event, *more)
            for kind, qs, guard, gate, ps, basis, event, more in zip(
                _KIND_NAMES[self.kinds[lo:hi]].tolist(),
                qubits,
                guards,
                self._gate_array[self.gates[lo:hi]].tolist(),
                params,
                _BASIS_NAMES[self.bases[lo:hi]].tolist(),
                self.events[lo:hi].tolist(),
                rare,
                strict=True,
            )
        ]

    def row(self, i: int) -> MicroOp:
        """Micro-op ``i`` alone."""
        return self.rows(i, i + 1)[0]

    def guard_list(self) -> list[Guard | None]:
        """Every micro-op's guard (None for most), in order."""
        out: list[Guard | None] = [None] * len(self.kinds)
        for at, guard in self.guards.items():
            out[at] = guard
        return out

    def take(self, picked: np.ndarray) -> Ops:
        """The micro-ops at the positions ``picked`` (ascending), as columns: gathers of
        these, their names and gate names as they are."""
        where = np.full(len(self.kinds), -1, dtype=np.int64)
        where[picked] = np.arange(len(picked))
        qubit_at, qubit_ids = _runs(self.qubit_at, self.qubit_ids, picked)
        params = _runs(self.param_at, self.params, picked)
        return Ops(
            self.kinds[picked],
            self.gates[picked],
            self.gate_names,
            qubit_at,
            qubit_ids,
            self.names,
            params,
            self.events[picked],
            self.bases[picked],
            {int(where[at]): guard for at, guard in self.guards.items() if where[at] >= 0},
            {int(where[at]): fields for at, fields in self.rare.items() if where[at] >= 0},
        )

    def qubit_reader(self) -> Callable[[int], list[int]]:
        """A reader of micro-op ``i``'s qubits, as ids into :attr:`names`. It turns the
        ids into Python values from the first micro-op it is asked for on (a terminal
        suffix is read, not the gates before it)."""
        held: dict[str, Any] = {"from": len(self.kinds) + 1}

        def read(i: int) -> list[int]:
            if i < held["from"]:
                at = self.qubit_at[i:] - self.qubit_at[i]
                held.update({"from": i, "ids": self.qubit_ids[self.qubit_at[i] :].tolist()})
                held["at"] = at.tolist()
            at, k = held["at"], i - held["from"]
            result: list[int] = held["ids"][at[k] : at[k + 1]]
            return result

        return read


def _runs(at: np.ndarray, values: np.ndarray, picked: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The runs ``picked`` of flat ``values`` (run ``i`` is ``[at[i], at[i + 1])``), as
    their new offsets and values."""
    sizes = at[picked + 1] - at[picked]
    new_at = np.zeros(len(picked) + 1, dtype=np.int64)
    np.cumsum(sizes, out=new_at[1:])
    return new_at, values[spread(at[picked], sizes)]


class Writer:
    """Builds :class:`Ops` a micro-op at a time (:meth:`add`, then :meth:`done`)."""

    def __init__(self) -> None:
        self._kinds = array("B")
        self._gates = array("l")
        self._gate_code: dict[str, int] = {"": 0}
        self._qubit_at = array("q", [0])
        self._ids = array("l")
        self._name_code: dict[str, int] = {}
        self._param_at = array("q", [0])
        self._params = array("d")
        self._events = array("q")
        self._bases = array("B")
        self._guards: dict[int, Guard] = {}
        self._rare: dict[int, Rare] = {}

    def add(
        self,
        kind: str,
        qubits: Sequence[str],
        guard: Guard | None = None,
        gate: str = "",
        params: Sequence[float] = (),
        basis: str = "Z",
        event: int = -1,
        inputs: tuple[int, ...] = (),
        fidelity: float = 1.0,
        epoch: int = 0,
        outputs: tuple[int, ...] = (),
        calc: classical.Prepared | None = None,
        note: str = "",
    ) -> None:
        """Append one micro-op (fields as :class:`MicroOp`'s)."""
        at = len(self._kinds)
        self._kinds.append(KIND_CODE[kind])
        self._gates.append(self._gate_code.setdefault(gate, len(self._gate_code)))
        code = self._name_code
        self._ids.extend([code.setdefault(q, len(code)) for q in qubits])
        self._qubit_at.append(len(self._ids))
        self._params.extend(params)
        self._param_at.append(len(self._params))
        self._events.append(event)
        self._bases.append(_BASIS_CODE[basis])
        if guard is not None:
            self._guards[at] = guard
        rare: Rare = (tuple(inputs), fidelity, epoch, tuple(outputs), calc, note)
        if rare != _PLAIN:
            self._rare[at] = rare

    def __len__(self) -> int:
        return len(self._kinds)

    def take(self, op: MicroOp) -> None:
        """Append ``op``, a micro-op made as an object (:meth:`add` of its fields)."""
        self.add(*msgspec.structs.astuple(op))

    def done(self) -> Ops:
        """The micro-ops added, as columns."""
        return Ops(
            np.frombuffer(self._kinds, dtype=np.uint8).copy(),
            np.asarray(self._gates, dtype=np.int64),
            list(self._gate_code),
            np.asarray(self._qubit_at, dtype=np.int64),
            np.asarray(self._ids, dtype=np.int64),
            list(self._name_code),
            (
                np.asarray(self._param_at, dtype=np.int64),
                np.asarray(self._params, dtype=np.float64),
            ),
            np.asarray(self._events, dtype=np.int64),
            np.frombuffer(self._bases, dtype=np.uint8).copy(),
            self._guards,
            self._rare,
        )


class Spliced:
    """Micro-ops ``base`` with one-qubit Pauli gates spliced in: a shot group's, its
    logical errors among the error-free run's. Held as the places and Paulis alone (a
    run holds every group's at once), read as :class:`Ops` are.

    ``at[k]`` is where Pauli ``k`` goes, before ``base``'s micro-op ``at[k]`` (sorted;
    equal places keep their order), on ``qubits[k]``, ``paulis[k]`` one of x, y, z."""

    __slots__ = ("at", "base", "paulis", "qubits")

    def __init__(
        self, base: Ops, at: Sequence[int], qubits: Sequence[str], paulis: Sequence[str]
    ) -> None:
        self.base = base
        self.at = list(at)
        self.qubits = list(qubits)
        self.paulis = list(paulis)

    def __len__(self) -> int:
        return len(self.base) + len(self.at)

    def __iter__(self) -> Iterator[MicroOp]:
        """The micro-ops in order as rows, a chunk made at a time."""
        return iter(Reader(self).span(0, len(self)))

    @property
    def kinds(self) -> np.ndarray:
        """Each micro-op's kind code (:attr:`Ops.kinds`)."""
        return np.insert(self.base.kinds, self.at, KIND_CODE["gate"])

    def guard_list(self) -> list[Guard | None]:
        """Every micro-op's guard (None for most), in order."""
        out = self.base.guard_list()
        for place in self._placed():
            out.insert(place, None)
        return out

    def _placed(self) -> list[int]:
        """Where each Pauli stands among the micro-ops (``at[k] + k``)."""
        return [a + k for k, a in enumerate(self.at)]

    def rows(self, lo: int, hi: int) -> list[MicroOp]:
        """Micro-ops ``[lo, hi)`` as rows: the base's (:meth:`Ops.rows`, kept), with the
        Paulis that fall among them."""
        hi = min(hi, len(self))
        placed = self._placed()
        first, last = bisect.bisect_left(placed, lo), bisect.bisect_left(placed, hi)
        out = self.base.rows(lo - first, hi - last)
        for k in range(first, last):  # in order: each lands where it stands
            out.insert(placed[k] - lo, MicroOp("gate", (self.qubits[k],), gate=self.paulis[k]))
        return out

    def row(self, i: int) -> MicroOp:
        """Micro-op ``i`` alone (read where a group leaves the error-free run)."""
        return self.rows(i, i + 1)[0]

    def forget(self) -> None:
        """Drop the rows the base keeps (:meth:`Ops.forget`)."""
        self.base.forget()


class Reader:
    """Micro-ops of :class:`Ops` by position, a chunk of :data:`CHUNK` rows made at a
    time (the one a run is in: a branch goes on where its chunk is held)."""

    __slots__ = ("_lo", "_rows", "ops")

    def __init__(self, ops: Ops | Spliced) -> None:
        self.ops = ops
        self._lo = 0
        self._rows: list[MicroOp] = []

    def __len__(self) -> int:
        return len(self.ops)

    def __getitem__(self, i: int) -> MicroOp:
        k = i - self._lo
        rows = self._rows
        if 0 <= k < len(rows):
            return rows[k]
        self._lo = i - i % CHUNK
        self._rows = self.ops.rows(self._lo, self._lo + CHUNK)
        return self._rows[i - self._lo]

    def forget(self) -> None:
        """Drop the rows held, here and by the micro-ops read (:meth:`Ops.forget`)."""
        self._rows = []
        self.ops.forget()

    def span(self, lo: int, hi: int) -> Iterable[MicroOp]:
        """Micro-ops ``[lo, hi)`` in order, a chunk at a time."""
        hi = min(hi, len(self.ops))
        while lo < hi:
            k = lo - self._lo
            if not 0 <= k < len(self._rows):
                self[lo]
                k = lo - self._lo
            stop = min(hi, self._lo + len(self._rows))
            yield from self._rows[k : stop - self._lo]
            lo = stop
