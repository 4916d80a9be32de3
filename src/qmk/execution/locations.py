"""A plan's logical-noise locations, kept as columns.

The QEC layer puts a Pauli channel on each qubit of nearly every step of a noisy plan:
about 190,000 locations at 1,000 qubits and depth 100. As one object each, the plan,
the router and the lowering would each walk them in Python. :class:`Locations` keeps
them as arrays instead, one row a location, so the lowering sorts and groups them with
numpy and their rates are one table lookup. A row read is a :class:`Noise`.

:class:`LocationRows` collects the rows while :func:`~qmk.execution.plan.build_plan`
walks the steps. It keeps, per step, only what the walk knows already (its qubits and
cycles, and the steps that set a qubit's clock), and makes the rows once at the end, in
the plan's order: step by step, and on each qubit of a step its idle wait, then the
step's own error.
"""

from __future__ import annotations

import operator
from array import array
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from types import MappingProxyType
from typing import Any, SupportsIndex, overload

import msgspec
import numpy as np

from qmk.arrays import distinct, few_distinct
from qmk.qvm.ops import OPS, Exec


class Noise(msgspec.Struct, frozen=True, kw_only=True, gc=False):
    """A logical Pauli error location: on ``qubit``, before or after a step.

    One row of :class:`Locations`. A msgspec struct, not a dataclass: a frozen
    dataclass's ``__init__`` costs several times a struct's (``docs/engines.md``). Not
    tracked by the cyclic garbage collector (``gc=False``): it holds numbers and strings
    only.
    """

    step: int
    before: bool
    qubit: str
    px: float
    py: float
    pz: float
    #: Why: one of :data:`CAUSES`.
    cause: str

    @property
    def total(self) -> float:
        return self.px + self.py + self.pz


#: Why a location is there (:attr:`Noise.cause`): a step's own error, a qubit's idle
#: wait before a step, a teleported CNOT's gadget, a measurement's error, a wait on the
#: shared machine. :class:`Locations` keeps a row's cause as its index here.
CAUSES = ("op", "idle", "teleport", "measure", "machine")
_OP, _IDLE, _TELEPORT, _MEASURE, _MACHINE = range(len(CAUSES))
#: The type of the locations' steps, qubits and channels.
_INDEX = np.int32


class Locations(Sequence[Noise]):
    """Noise locations as columns: row ``i`` is :class:`Noise` ``(step=steps[i],
    before=before[i], qubit=names[qubits[i]], rates=table[channels[i]],
    cause=CAUSES[causes[i]])``.

    ``table`` holds each distinct channel's X, Y and Z probabilities once. The steps,
    qubits and channels are int32 (:data:`_INDEX`): a million-gate plan has millions of
    rows, and every column is written, gathered and sorted by the lowering. Equal to any
    sequence of the same :class:`Noise` rows.

    >>> row = Noise(step=3, before=True, qubit="q", px=0.1, py=0.0, pz=0.0, cause="idle")
    >>> locations = Locations.of([row], ["p", "q"])
    >>> locations[0].qubit, locations.rates().tolist(), len(locations)
    ('q', [[0.1, 0.0, 0.0]], 1)
    """

    __slots__ = ("before", "causes", "channels", "names", "qubits", "steps", "table")

    def __init__(
        self,
        *,
        steps: np.ndarray,
        before: np.ndarray,
        qubits: np.ndarray,
        channels: np.ndarray,
        causes: np.ndarray,
        names: Sequence[str],
        table: np.ndarray,
    ) -> None:
        count = len(steps)
        if not len(before) == len(qubits) == len(channels) == len(causes) == count:
            raise ValueError("every column of noise locations has one entry a location")
        self.steps = _frozen(steps, _INDEX)
        self.before = _frozen(before, np.bool_)
        self.qubits = _frozen(qubits, _INDEX)
        self.channels = _frozen(channels, _INDEX)
        self.causes = _frozen(causes, np.uint8)
        self.names: tuple[str, ...] = tuple(names)
        self.table = _frozen(np.asarray(table, dtype=np.float64).reshape(-1, 3), np.float64)

    @classmethod
    def of(cls, rows: Iterable[Noise], names: Sequence[str]) -> Locations:
        """The locations ``rows``, on the qubits ``names`` (every row's qubit among them)."""
        rows = list(rows)
        index = {name: i for i, name in enumerate(names)}
        return cls(
            steps=np.array([r.step for r in rows], dtype=np.int64),
            before=np.array([r.before for r in rows], dtype=bool),
            qubits=np.array([index[r.qubit] for r in rows], dtype=np.int64),
            channels=np.arange(len(rows), dtype=np.int64),
            causes=np.array([CAUSES.index(r.cause) for r in rows], dtype=np.uint8),
            names=names,
            table=np.array([[r.px, r.py, r.pz] for r in rows], dtype=np.float64),
        )

    @classmethod
    def empty(cls, names: Sequence[str] = ()) -> Locations:
        """No location (a plan without noise)."""
        none = np.zeros(0, dtype=np.int64)
        return cls(
            steps=none,
            before=none,
            qubits=none,
            channels=none,
            causes=none,
            names=names,
            table=np.zeros((0, 3)),
        )

    def rates(self) -> np.ndarray:
        """Each row's X, Y and Z probabilities, one row of three a location."""
        return self.table[self.channels]

    def take(self, order: np.ndarray) -> Locations:
        """The rows ``order`` names, in that order."""
        return Locations(
            steps=self.steps[order],
            before=self.before[order],
            qubits=self.qubits[order],
            channels=self.channels[order],
            causes=self.causes[order],
            names=self.names,
            table=self.table,
        )

    def __len__(self) -> int:
        return len(self.steps)

    @overload
    def __getitem__(self, index: SupportsIndex) -> Noise: ...
    @overload
    def __getitem__(self, index: slice) -> tuple[Noise, ...]: ...
    def __getitem__(self, index: SupportsIndex | slice) -> Any:
        if isinstance(index, slice):
            return tuple(self._rows(range(len(self))[index]))
        count, at = len(self), operator.index(index)
        if not -count <= at < count:
            raise IndexError("noise location index out of range")
        at %= count  # (one row: its channel's rates alone, not the table's)
        px, py, pz = self.table[self.channels[at]].tolist()
        return Noise(
            step=int(self.steps[at]),
            before=bool(self.before[at]),
            qubit=self.names[self.qubits[at]],
            px=px,
            py=py,
            pz=pz,
            cause=CAUSES[self.causes[at]],
        )

    def __iter__(self) -> Iterator[Noise]:
        return self._rows(range(len(self)))

    def _rows(self, rows: Sequence[int]) -> Iterator[Noise]:
        at = np.asarray(rows, dtype=np.int64)
        names, table = self.names, self.table.tolist()
        for step, before, qubit, channel, cause in zip(
            self.steps[at].tolist(),
            self.before[at].tolist(),
            self.qubits[at].tolist(),
            self.channels[at].tolist(),
            self.causes[at].tolist(),
            strict=True,
        ):
            px, py, pz = table[channel]
            qubit_name, why = names[qubit], CAUSES[cause]
            yield Noise(step=step, before=before, qubit=qubit_name, px=px, py=py, pz=pz, cause=why)

    def __eq__(self, other: object) -> bool:
        if isinstance(other, Locations):  # column by column, not a row at a time
            return (
                len(self) == len(other)
                and np.array_equal(self.steps, other.steps)
                and np.array_equal(self.before, other.before)
                and np.array_equal(self.causes, other.causes)
                and np.array_equal(self.rates(), other.rates())
                and [self.names[q] for q in self.qubits.tolist()]
                == [other.names[q] for q in other.qubits.tolist()]
            )
        if isinstance(other, Sequence) and not isinstance(other, str):
            return len(other) == len(self) and all(a == b for a, b in zip(self, other, strict=True))
        return NotImplemented

    def __hash__(self) -> int:  # (of what __eq__ compares, less the qubits' names)
        return hash((self.steps.tobytes(), self.before.tobytes(), self.rates().tobytes()))

    def __repr__(self) -> str:
        return f"Locations({len(self)} rows)"

    def __reduce__(self) -> tuple[Any, ...]:
        return (
            _rebuild,
            (
                self.steps,
                self.before,
                self.qubits,
                self.channels,
                self.causes,
                self.names,
                self.table,
            ),
        )


def _rebuild(*columns: Any) -> Locations:
    steps, before, qubits, channels, causes, names, table = columns
    return Locations(
        steps=steps,
        before=before,
        qubits=qubits,
        channels=channels,
        causes=causes,
        names=names,
        table=table,
    )


def _frozen(values: Any, dtype: Any) -> np.ndarray:
    """``values`` as a read-only array of ``dtype``: an array of its own (no view) is
    taken as it is, not copied (the locations' columns are fresh arrays of millions)."""
    own = isinstance(values, np.ndarray) and values.dtype == dtype and values.base is None
    if not own and dtype == _INDEX:  # (narrowed: a value past it would wrap, unseen)
        wide = np.asarray(values, dtype=np.int64)
        if len(wide) and (int(wide.min()) < 0 or int(wide.max()) > np.iinfo(_INDEX).max):
            raise ValueError(f"a noise location's index past {_INDEX.__name__}")
        values = wide
    out = values if own else np.array(values, dtype=dtype)
    out.setflags(write=False)
    return out


class LocationRows:
    """:func:`~qmk.execution.plan.build_plan`'s noise locations, made after its walk.

    The walk writes each step's own cycles (:attr:`cycles`) and each slot's wait
    (:attr:`slot_waits`), and tells :meth:`alloc` of the steps that set a qubit's
    profile. :meth:`gadget` and :meth:`machine` add rows of their own. :meth:`locations`
    then makes every row at once, from the steps and their qubits.

    A step on qubits is a run of *slots*, one a qubit, in plan order. A slot's wait is
    its step's start less its qubit's clock: the end of the qubit's last step, or the
    fence's time at an alloc. The schedule knows each qubit's clock as it goes
    (:func:`qmk.execution.asap.schedule`), so it writes the waits; found afterwards,
    they would take a sort of every slot by qubit. A waiting slot is an
    idle location before the step; then comes the step's own error (a measurement's
    before it, a teleported CNOT's that of its CNOT after it, a free none). A location's
    channel is its code's error for its cycles (``model_for(profile).pauli_error``),
    found once per (profile, cycles); one of no cycles, or of zero rates, is no
    location.
    """

    def __init__(self, default_profile: str, steps: int) -> None:
        self.profiles: dict[str, int] = {default_profile: 0}
        #: Each step's own cycles (set by the walk; 0 for a step on no qubit and a fence).
        self.cycles = array("d", bytes(8 * steps))
        #: Each slot's wait, in plan order (set by the walk's schedule).
        self.slot_waits: np.ndarray | None = None
        self.allocs: dict[int, int] = {}  # alloc step -> its profile
        self.gadgets: list[tuple[int, str, tuple[float, float, float]]] = []
        self.waits: list[tuple[int, str, float, int]] = []  # the machine's

    def alloc(self, index: int, profile: str) -> None:
        """Step ``index`` allocates its qubits on ``profile``'s code."""
        self.allocs[index] = self.profiles.setdefault(profile, len(self.profiles))

    def gadget(self, index: int, qubit: str, rates: tuple[float, float, float]) -> None:
        """A row of ``rates`` on ``qubit`` after step ``index``'s rows (a teleported
        CNOT's gadget error)."""
        self.gadgets.append((index, qubit, rates))

    def machine(self, index: int, qubit: str, cycles: float, profile: str) -> None:
        """A wait of ``cycles`` on the shared machine after step ``index``, on ``qubit``
        of ``profile``'s code (after every step's rows, in the order given)."""
        pid = self.profiles.setdefault(profile, len(self.profiles))
        self.waits.append((index, qubit, cycles, pid))

    def locations(
        self,
        step_ops: tuple[np.ndarray, Sequence[str]],
        step_qubits: tuple[np.ndarray, np.ndarray],
        names: Sequence[str],
        model_for: Callable[[str], Any],
        cnot_cycles: Callable[[Any], float],
    ) -> Locations:
        """Every row, in plan order, on the qubits ``names``. ``step_ops`` are the steps'
        ops (a code each into the ops named), ``step_qubits`` each one's qubit count and
        all their qubits one after another (indices into ``names``);
        ``model_for(profile)`` is a code's logical model, ``cnot_cycles(model)`` a
        teleported CNOT's cycles on it."""
        slots = _Slots(step_ops, self, step_qubits)
        profiles = list(self.profiles)
        own, own_cycles = slots.own_errors(
            [float(cnot_cycles(model_for(p))) for p in profiles] if slots.teleports else []
        )
        idle = np.flatnonzero(slots.waits > 0)
        waits = self.waits
        # the channels: one per distinct (profile, cycles), each found once; a kind's
        # cycles take a few values among a million slots (found by a pass each)
        kinds = (
            (slots.waits[idle], idle, None),
            (own_cycles, own, None),
            (np.array([w[2] for w in waits], np.float64), None, [w[3] for w in waits]),
        )
        distinct_cycles, cycle_codes = _cycle_codes([c for c, _, _ in kinds])
        codes = []
        for (_, at, pids), code in zip(kinds, cycle_codes, strict=True):
            if at is None:
                code += np.array(pids, np.int64) * len(distinct_cycles)
            elif slots.profile is not None:
                code += slots.profiles(at) * len(distinct_cycles)
            codes.append(code)
        used = np.zeros(len(profiles) * len(distinct_cycles), dtype=bool)
        for code in codes:
            used[code] = True
        number = np.cumsum(used) - 1
        idle_channels, own_channels, wait_channels = (number[code] for code in codes)
        table = [
            model_for(profiles[pid]).pauli_error(float(distinct_cycles[k])).as_tuple()
            for pid, k in (
                divmod(pair, len(distinct_cycles)) for pair in np.flatnonzero(used).tolist()
            )
        ]
        table += [g[2] for g in self.gadgets]
        return _Laid(slots, names, table).rows(
            (idle, idle_channels), (own, own_channels), wait_channels, self.gadgets, waits
        )


#: Whole cycles below this are coded by a table of every count (:func:`_cycle_codes`).
_CYCLE_TABLE = 1 << 20


def _cycle_codes(columns: list[np.ndarray]) -> tuple[np.ndarray, list[np.ndarray]]:
    """The sorted distinct cycles of ``columns`` and each value's index among them.

    A schedule's cycles are whole counts, mostly: a table of every count up to the
    largest codes them in a few passes, where a sort or a search of a million values
    costs many. Any other values are found by :func:`few_distinct` and a search.

    >>> found, codes = _cycle_codes([np.array([3.0, 1.0, 3.0]), np.array([2.0])])
    >>> found.tolist(), [c.tolist() for c in codes]
    ([1.0, 2.0, 3.0], [[2, 0, 2], [1]])
    """
    with np.errstate(invalid="ignore"):  # (a value past int64 is not whole: checked)
        whole = [c.astype(np.int64) for c in columns]
    if all(
        not len(c) or (int(w.min()) >= 0 and int(w.max()) < _CYCLE_TABLE and (w == c).all())
        for c, w in zip(columns, whole, strict=True)
    ):
        top = max((int(w.max()) for w in whole if len(w)), default=-1)
        present = np.zeros(top + 1, dtype=bool)
        for w in whole:
            present[w] = True
        number = np.cumsum(present, dtype=np.int64) - 1
        return np.flatnonzero(present).astype(np.float64), [number[w] for w in whole]
    found = distinct(np.concatenate([few_distinct(c) for c in columns]))
    return found, [np.searchsorted(found, c) for c in columns]


class _Laid:
    """:meth:`LocationRows.locations`' rows laid in plan order, less those of no rate at
    all: on each slot its idle row and its own row, then its step's gadget rows (after
    the step's last slot), then the machine's waits. Each row is written at its place,
    found by one running count of the rows on each slot (a byte a slot)."""

    def __init__(
        self, slots: _Slots, names: Sequence[str], table: list[tuple[float, float, float]]
    ) -> None:
        self.slots, self.names, self.table = slots, names, table
        self.rated = np.array([px + py + pz for px, py, pz in table], dtype=np.float64) > 0

    def rows(
        self,
        idle: tuple[np.ndarray, np.ndarray],
        own: tuple[np.ndarray, np.ndarray],
        wait_channels: np.ndarray,
        gadgets: list[tuple[int, str, tuple[float, float, float]]],
        waits: list[tuple[int, str, float, int]],
    ) -> Locations:
        """The rows: ``idle`` and ``own`` as (slots, channels), the machine's ``waits``
        on ``wait_channels``, and the ``gadgets`` on the table's last rows."""
        slots, rated = self.slots, self.rated
        (idle_slots, idle_channels), (own_slots, own_channels) = (
            (at, ch) if rated.all() else (at[rated[ch]], ch[rated[ch]]) for at, ch in (idle, own)
        )
        first_gadget = len(self.table) - len(gadgets)
        kept_gadgets = np.array(
            [k for k in range(len(gadgets)) if rated[first_gadget + k]], dtype=np.int64
        )
        gadget_steps = np.array([gadgets[k][0] for k in kept_gadgets.tolist()], np.int64)
        gadget_slots = slots.ends[gadget_steps] - 1
        # a slot's gadget rows in the order made: sorted by slot, stably
        by_slot = np.argsort(gadget_slots, kind="stable")
        kept_gadgets, gadget_steps = kept_gadgets[by_slot], gadget_steps[by_slot]
        gadget_slots = gadget_slots[by_slot]
        kept_waits = np.flatnonzero(rated[wait_channels])
        # a row's place: the rows on the slots up to its own (a running count of each
        # slot's rows), less those laid after it on its own slot
        on_slot: np.ndarray = np.zeros(slots.count, dtype=np.uint8)
        on_slot[idle_slots] = 1
        on_slot[own_slots] += 1
        gadgets_on = np.bincount(gadget_slots, minlength=slots.count if len(gadget_slots) else 0)
        if len(gadget_slots):
            on_slot = on_slot + gadgets_on
        ends = np.cumsum(on_slot, dtype=np.int64)
        laid = int(ends[-1]) if len(ends) else 0
        columns = _Columns(laid + len(kept_waits))
        columns.put(
            ends[idle_slots] - on_slot[idle_slots],
            slots.step[idle_slots],
            True,
            slots.qubit[idle_slots],
            idle_channels,
            _IDLE,
        )
        before = slots.before[own_slots]
        own_at = ends[own_slots] - 1
        if len(gadget_slots):
            own_at -= gadgets_on[own_slots]
        columns.put(
            own_at,
            slots.step[own_slots],
            before,
            slots.qubit[own_slots],
            own_channels,
            np.where(before, np.uint8(_MEASURE), np.uint8(_OP)),
        )
        if len(kept_gadgets):  # after their slot's idle and own rows, in the order made
            index = {name: i for i, name in enumerate(self.names)}
            rank = np.arange(len(gadget_slots)) - np.searchsorted(gadget_slots, gadget_slots)
            columns.put(
                ends[gadget_slots] - gadgets_on[gadget_slots] + rank,
                gadget_steps,
                False,
                np.array([index[gadgets[k][1]] for k in kept_gadgets.tolist()], np.int64),
                first_gadget + kept_gadgets,
                _TELEPORT,
            )
        if len(kept_waits):
            index = {name: i for i, name in enumerate(self.names)}
            picked = [waits[k] for k in kept_waits.tolist()]
            columns.put(
                laid + np.arange(len(picked)),
                np.array([w[0] for w in picked], np.int64),
                False,
                np.array([index[w[1]] for w in picked], np.int64),
                wait_channels[kept_waits],
                _MACHINE,
            )
        return columns.locations(self.names, self.table)


class _Columns:
    """The columns of :class:`Locations` as they are filled, a group of rows at a time."""

    def __init__(self, count: int) -> None:
        self.steps = np.empty(count, dtype=_INDEX)
        self.before = np.empty(count, dtype=np.bool_)
        self.qubits = np.empty(count, dtype=_INDEX)
        self.channels = np.empty(count, dtype=_INDEX)
        self.causes = np.empty(count, dtype=np.uint8)

    def put(
        self,
        at: np.ndarray,
        steps: np.ndarray,
        before: np.ndarray | bool,
        qubits: np.ndarray,
        channels: np.ndarray,
        causes: np.ndarray | int,
    ) -> None:
        self.steps[at], self.before[at], self.qubits[at] = steps, before, qubits
        self.channels[at], self.causes[at] = channels, causes

    def locations(self, names: Sequence[str], table: list[tuple[float, float, float]]) -> Locations:
        return Locations(
            steps=self.steps,
            before=self.before,
            qubits=self.qubits,
            channels=self.channels,
            causes=self.causes,
            names=names,
            table=np.array(table, dtype=np.float64).reshape(-1, 3),
        )


class _Slots:
    """The slots of a plan's steps (see :class:`LocationRows`), as arrays in plan order:
    each one's step, qubit (index into the names), wait and whether its step's own error
    comes before it; ``ends[k]`` is where step ``k``'s slots end, :meth:`profiles` their
    profiles. A million-gate plan has millions of slots, and every fresh page of a
    column is a page fault: the columns are as narrow as their values allow."""

    def __init__(
        self,
        step_ops: tuple[np.ndarray, Sequence[str]],
        rows: LocationRows,
        qubits: tuple[np.ndarray, np.ndarray],
    ) -> None:
        op_codes, ops = step_ops
        count = len(op_codes)
        sizes, qubit = qubits
        step = np.repeat(np.arange(count, dtype=_index_type(count)), sizes)
        self.count = len(qubit)
        self.ends = np.cumsum(sizes)
        self.step, self.qubit = step, qubit
        # the steps whose own error is not a plain op's (by op)
        kinds = np.array([_OWN_ERROR[op] for op in ops], dtype=np.int8)[op_codes]
        self.kinds = kinds[step]
        self.teleports = bool((self.kinds == _KIND_TELEPORT).any())
        self.before = self.kinds == _KIND_MEASURES
        self.step_cycles = _column(rows.cycles, np.float64)
        waits = rows.slot_waits
        if waits is None or len(waits) != self.count:
            raise ValueError("the schedule writes one wait a slot before the rows are made")
        self.waits = waits
        self.profile = None if len(rows.profiles) == 1 else self._profile(rows.allocs)

    def _profile(self, allocs: dict[int, int]) -> np.ndarray:
        """Each slot's profile: its qubit's latest alloc's (``allocs``: step -> profile),
        found over each qubit's slots in order."""
        qubit = self.qubit
        narrow = not len(qubit) or int(qubit.max()) < 1 << 16  # (numpy's radix sort)
        order = np.argsort(qubit.astype(np.uint16) if narrow else qubit, kind="stable")
        at = self.step[order]
        mine = qubit[order]
        first = np.ones(self.count, dtype=bool)
        np.not_equal(mine[1:], mine[:-1], out=first[1:])
        profile_at = np.full(len(self.step_cycles), -1, dtype=np.int64)
        profile_at[list(allocs)] = list(allocs.values())
        marked = profile_at[at]
        latest = np.where((marked >= 0) | first, np.arange(self.count), 0)
        np.maximum.accumulate(latest, out=latest)
        profile = np.empty(self.count, dtype=np.int64)
        profile[order] = np.maximum(marked[latest], 0)
        return profile

    def profiles(self, slots: np.ndarray) -> np.ndarray:
        """The profile of each of ``slots``: its qubit's latest alloc's (the first's, 0,
        where the plan knows only one profile)."""
        if self.profile is None:
            return np.zeros(len(slots), dtype=np.int64)
        return self.profile[slots]

    def own_errors(self, cnot: Sequence[float]) -> tuple[np.ndarray, np.ndarray]:
        """The slots with an error of their own (not a free's, and of some cycles) and
        their cycles: the step's, or a teleported CNOT's (``cnot``, by profile)."""
        cycles = self.step_cycles[self.step]
        teleported = np.flatnonzero(self.kinds == _KIND_TELEPORT)
        if len(teleported):
            cycles[teleported] = np.asarray(cnot)[self.profiles(teleported)]
        own = np.flatnonzero((self.kinds != _KIND_FREE) & (cycles > 0))
        return own, cycles[own]


def _index_type(count: int) -> type[np.signedinteger[Any]]:
    """The narrowest of int32 and int64 that indexes ``count`` things."""
    return np.int32 if count < 1 << 31 else np.int64


#: How a step's own error differs from a plain op's after it (0): none (a free), its
#: CNOT's (a teleported CNOT), before it (an op that measures,
#: :attr:`~qmk.qvm.ops.OpSpec.measures`).
_KIND_FREE, _KIND_TELEPORT, _KIND_MEASURES = 1, 2, 3
_OWN_ERROR: Mapping[str, int] = MappingProxyType(
    {
        name: _KIND_FREE
        if spec.kind is Exec.FREE
        else _KIND_TELEPORT
        if spec.kind is Exec.TELEPORT_CNOT
        else _KIND_MEASURES
        if spec.measures
        else 0
        for name, spec in OPS.items()
    }
)


def _column(values: array[Any], dtype: Any) -> np.ndarray:
    """An array's numbers as numpy's: a view, not a copy of a million (while it is held,
    the array cannot grow: it would raise ``BufferError``, not change the view)."""
    if not len(values):
        return np.zeros(0, dtype=dtype)
    return np.frombuffer(values, dtype=values.typecode).astype(dtype, copy=False)
