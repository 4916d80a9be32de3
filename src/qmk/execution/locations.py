"""A plan's logical-noise locations, kept as columns.

The QEC layer puts a Pauli channel on each qubit of nearly every step of a noisy plan:
about 190,000 locations at 1,000 qubits and depth 100. As one object each, the plan,
the router and the lowering would each walk them in Python. :class:`Locations` keeps
them as arrays instead, one row a location, so the lowering sorts and groups them with
numpy and their rates are one table lookup. A row read is a :class:`Noise`.

:class:`LocationRows` collects the rows while :func:`~qmk.execution.plan.build_plan`
walks the steps. It keeps, per step, only what the walk knows already (its qubits and
cycles, and the steps that set a qubit's clock), and makes the rows once at the end.
The plan's order is step by step, and on each qubit of a step its idle wait, then the
step's own error; the rows are laid in the lowering's (:class:`Runs`), which a batch
run reads, and read in the plan's.
"""

from __future__ import annotations

import operator
from array import array
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from types import MappingProxyType
from typing import Any, NamedTuple, SupportsIndex, overload

import msgspec
import numpy as np

from qmk.arrays import distinct, few_distinct
from qmk.qvm.expansions import measures
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


class Runs(NamedTuple):
    """Noise locations in the order :func:`~qmk.execution.batch.lower` writes them, in
    runs: by step, and within a step those before it first, each in the plan's order
    (a machine's waits, last in the plan, last of their step's). Run ``r`` is ``rows``
    ``bounds[r]`` to ``bounds[r + 1]``; ``keys[r]`` is its ``2 * step`` (before the
    step) or ``2 * step + 1`` (after it), and ``row_keys[i]`` row ``i``'s (each row's
    run key: a gather of it places a million rows, where a repeat of the runs' costs
    more)."""

    rows: Locations
    keys: np.ndarray
    bounds: np.ndarray
    row_keys: np.ndarray


#: Which of the locations' columns is which (:attr:`Locations._kept`).
_STEPS, _BEFORE, _QUBITS, _CHANNELS, _CAUSES = range(5)


class Locations(Sequence[Noise]):
    """Noise locations as columns: row ``i`` is :class:`Noise` ``(step=steps[i],
    before=before[i], qubit=names[qubits[i]], rates=table[channels[i]],
    cause=CAUSES[causes[i]])``.

    ``table`` holds each distinct channel's X, Y and Z probabilities once. The steps,
    qubits and channels are int32 (:data:`_INDEX`): a million-gate plan has millions of
    rows, and every column is written, gathered and sorted by the lowering. Equal to any
    sequence of the same :class:`Noise` rows.

    A plan's rows are kept in the lowering's order (:meth:`runs`), the one a run of a
    million gates reads, with ``plan_keys`` (given only so): a stable sort of them
    gives the plan's order, which the columns and the rows read are in (found on first
    read: a trajectory run's few rows, not a batch run's million).

    >>> row = Noise(step=3, before=True, qubit="q", px=0.1, py=0.0, pz=0.0, cause="idle")
    >>> locations = Locations.of([row], ["p", "q"])
    >>> locations[0].qubit, locations.rates().tolist(), len(locations)
    ('q', [[0.1, 0.0, 0.0]], 1)
    """

    __slots__ = ("_kept", "_plan", "_plan_keys", "names", "table")

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
        plan_keys: np.ndarray | None = None,
    ) -> None:
        count = len(steps)
        if not len(before) == len(qubits) == len(channels) == len(causes) == count:
            raise ValueError("every column of noise locations has one entry a location")
        if plan_keys is not None and len(plan_keys) != count:
            raise ValueError("the plan's keys of noise locations have one entry a location")
        self._kept = (
            _frozen(steps, _INDEX),
            _frozen(before, np.bool_),
            _frozen(qubits, _INDEX),
            _frozen(channels, _INDEX),
            _frozen(causes, np.uint8),
        )
        self._plan_keys = plan_keys
        #: The plan's order of the kept rows, then each column in it (found on first read).
        self._plan: dict[int, np.ndarray] = {}
        self.names: tuple[str, ...] = tuple(names)
        self.table = _frozen(np.asarray(table, dtype=np.float64).reshape(-1, 3), np.float64)

    def _column(self, which: int) -> np.ndarray:
        """Column ``which`` (:data:`_STEPS` ...) in the plan's order."""
        kept = self._kept[which]
        if self._plan_keys is None:
            return kept
        column = self._plan.get(which)
        if column is None:
            column = self._plan[which] = kept[self._plan_order()]
            column.setflags(write=False)
        return column

    def _plan_order(self) -> np.ndarray:
        """Where each of the plan's rows is kept."""
        order = self._plan.get(-1)
        if order is None:
            assert self._plan_keys is not None  # (asked only where the rows were moved)
            order = self._plan[-1] = np.argsort(self._plan_keys, kind="stable")
        return order

    @property
    def steps(self) -> np.ndarray:
        return self._column(_STEPS)

    @property
    def before(self) -> np.ndarray:
        return self._column(_BEFORE)

    @property
    def qubits(self) -> np.ndarray:
        return self._column(_QUBITS)

    @property
    def channels(self) -> np.ndarray:
        return self._column(_CHANNELS)

    @property
    def causes(self) -> np.ndarray:
        return self._column(_CAUSES)

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

    def error_chance(self) -> float:
        """The chance that some location errs in a shot: one less the product of each
        row's chance of none (its rates' total, capped at certainty). Found from how
        many rows use each channel, in no order (no column of a million rates)."""
        table = self.table
        uses = np.bincount(self._kept[_CHANNELS], minlength=len(table))
        spared = 1.0 - np.minimum(table[:, 0] + table[:, 1] + table[:, 2], 1.0)
        return 1.0 - float(np.prod(spared**uses))

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

    def runs(self) -> Runs:
        """The rows in the lowering's order, in runs (:class:`Runs`): as they are kept,
        where they are kept so (``plan_keys``), else sorted by run (stably)."""
        rows = self
        if self._plan_keys is not None:  # (the same columns, read in the order kept)
            steps, before, qubits, channels, causes = self._kept
            rows = Locations(
                steps=steps,
                before=before,
                qubits=qubits,
                channels=channels,
                causes=causes,
                names=self.names,
                table=self.table,
            )
        count = len(rows)
        keys = rows.steps * 2 + (rows.before ^ True)
        if self._plan_keys is None:
            order = np.argsort(keys, kind="stable")
            if count and not np.array_equal(order, np.arange(count)):
                rows = self.take(order)
                keys = keys[order]
        firsts = np.flatnonzero(np.r_[True, keys[1:] != keys[:-1]]) if count else keys
        return Runs(rows, keys[firsts], np.r_[firsts, count].astype(np.int64), keys)

    def __len__(self) -> int:
        return len(self._kept[_STEPS])

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
        if self._plan_keys is not None:
            at = int(self._plan_order()[at])
        steps, before, qubits, channels, causes = self._kept
        px, py, pz = self.table[channels[at]].tolist()
        return Noise(
            step=int(steps[at]),
            before=bool(before[at]),
            qubit=self.names[qubits[at]],
            px=px,
            py=py,
            pz=pz,
            cause=CAUSES[causes[at]],
        )

    def __iter__(self) -> Iterator[Noise]:
        return self._rows(range(len(self)))

    def _rows(self, rows: Sequence[int]) -> Iterator[Noise]:
        at = np.asarray(rows, dtype=np.int64)
        if self._plan_keys is not None:
            at = self._plan_order()[at]
        names, table = self.names, self.table.tolist()
        steps, before, qubits, channels, causes = self._kept
        for step, first, qubit, channel, cause in zip(
            steps[at].tolist(),
            before[at].tolist(),
            qubits[at].tolist(),
            channels[at].tolist(),
            causes[at].tolist(),
            strict=True,
        ):
            px, py, pz = table[channel]
            qubit_name, why = names[qubit], CAUSES[cause]
            yield Noise(step=step, before=first, qubit=qubit_name, px=px, py=py, pz=pz, cause=why)

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
        """Every row (:class:`_Laid`), on the qubits ``names``. ``step_ops`` are the steps'
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
        if len(profiles) == 1:  # (each distinct count is some row's: a channel each)
            pairs = np.arange(len(distinct_cycles))
            idle_channels, own_channels, wait_channels = codes
        else:
            used = np.zeros(len(profiles) * len(distinct_cycles), dtype=bool)
            for code in codes:
                used[code] = True
            number = np.cumsum(used, dtype=_INDEX) - 1
            idle_channels, own_channels, wait_channels = (number[code] for code in codes)
            pairs = np.flatnonzero(used)
        del kinds, cycle_codes, codes, own_cycles  # (a million slots' each: the rows next)
        table = [
            model_for(profiles[pid]).pauli_error(float(distinct_cycles[k])).as_tuple()
            for pid, k in (divmod(pair, len(distinct_cycles)) for pair in pairs.tolist())
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
    """:meth:`LocationRows.locations`' rows, less those of no rate at all, laid in the
    lowering's order (:class:`Runs`) with their keys in the plan's.

    In the plan's order, each slot has its idle row and its own row, its step's gadget
    rows follow the step's last slot, and the machine's waits come last. In the
    lowering's, a step's rows before it (idle rows, and a measurement's own) come
    first, then those after it (its own, its gadgets, its waits). So a row's place is
    the rows of its kind before it (idle and own rows are each in slot order) and the
    other kind's rows of the steps before its own, or through it: from a running count
    of each kind by step (a measurement's rows, idle and own slot by slot, are placed by
    a search), and the gadget and wait rows (few) before it. A row's plan key is
    ``3 * slot`` for its slot's idle row, one more for its own, two more for a gadget on
    it; a wait's, past every slot's."""

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
        kept_gadgets = [k for k in range(len(gadgets)) if rated[first_gadget + k]]
        kept_waits = np.flatnonzero(rated[wait_channels]).tolist()
        extra = self._extras(gadgets, kept_gadgets, waits, kept_waits, wait_channels)
        extra_steps = extra[0]
        count, ends = slots.count, slots.ends
        idle_steps, own_steps = slots.step[idle_slots], slots.step[own_slots]
        # the idle and own rows through each step
        own_per = np.bincount(own_steps, minlength=len(ends))
        idle_through = np.cumsum(np.bincount(idle_steps, minlength=len(ends)))
        own_through = np.cumsum(own_per)
        # the k-th idle row follows the idle rows before it and the own rows of the
        # steps before its own; the k-th own row, the own rows before it and the idle
        # rows through its step
        idle_at = (own_through - own_per)[idle_steps]
        idle_at += np.arange(len(idle_slots))
        own_at = idle_through[own_steps]
        own_at += np.arange(len(own_slots))
        del own_per
        own_measures = slots.before[own_slots]
        if slots.step_measures.any():  # a measurement's rows: idle, own, slot by slot
            at = np.flatnonzero(slots.step_measures[idle_steps])
            idle_at[at] = at + np.searchsorted(own_slots, idle_slots[at])
            at = np.flatnonzero(own_measures)
            own_at[at] = at + np.searchsorted(idle_slots, own_slots[at], side="right")
        if len(extra_steps):  # (a row after extra rows moves past them)
            idle_at += np.searchsorted(extra_steps, idle_steps, side="left")
            own_at += np.searchsorted(extra_steps, own_steps, side="left")
        top = 3 * count + len(extra_steps)
        columns = _Columns(len(idle_at) + len(own_at) + len(extra_steps), top)
        columns.put(
            idle_at,
            idle_steps,
            True,
            slots.qubit[idle_slots],
            idle_channels,
            _IDLE,
            3 * idle_slots,
        )
        columns.put(
            own_at,
            own_steps,
            own_measures,
            slots.qubit[own_slots],
            own_channels,
            np.where(own_measures, np.uint8(_MEASURE), np.uint8(_OP)),
            own_slots * 3 + 1,
        )
        if len(extra_steps):
            _, qubits, channels, causes, made = extra
            waited = causes == _MACHINE
            plan_keys = 3 * (ends[extra_steps] - 1) + 2  # (a gadget's: after its last slot)
            plan_keys[waited] = 3 * count + made[waited]
            at = idle_through[extra_steps] + own_through[extra_steps]
            at += np.arange(len(extra_steps))
            columns.put(at, extra_steps, False, qubits, channels, causes, plan_keys)
        return columns.locations(self.names, self.table)

    def _extras(
        self,
        gadgets: list[tuple[int, str, tuple[float, float, float]]],
        kept_gadgets: list[int],
        waits: list[tuple[int, str, float, int]],
        kept_waits: list[int],
        wait_channels: np.ndarray,
    ) -> tuple[np.ndarray, ...]:
        """The gadget rows kept, then the waits', sorted by step (stably: each kind's in
        the order made, a step's gadgets before its waits): their steps, qubits,
        channels, causes and places among their kind's."""
        index = {name: i for i, name in enumerate(self.names)}
        first_gadget = len(self.table) - len(gadgets)
        picked_gadgets = [gadgets[k] for k in kept_gadgets]
        picked_waits = [waits[k] for k in kept_waits]
        steps = np.array([g[0] for g in picked_gadgets] + [w[0] for w in picked_waits], np.int64)
        by_step = np.argsort(steps, kind="stable")
        qubits = [index[g[1]] for g in picked_gadgets] + [index[w[1]] for w in picked_waits]
        channels = [first_gadget + k for k in kept_gadgets] + wait_channels[kept_waits].tolist()
        causes = [_TELEPORT] * len(kept_gadgets) + [_MACHINE] * len(kept_waits)
        made = list(range(len(kept_gadgets))) + list(range(len(kept_waits)))
        return (
            steps[by_step],
            np.array(qubits, dtype=np.int64)[by_step],
            np.array(channels, dtype=np.int64)[by_step],
            np.array(causes, dtype=np.uint8)[by_step],
            np.array(made, dtype=np.int64)[by_step],
        )


class _Columns:
    """The columns of :class:`Locations` as they are filled, a group of rows at a time,
    with each row's plan key (``keys`` of ``top`` at most)."""

    def __init__(self, count: int, top: int) -> None:
        self.steps = np.empty(count, dtype=_INDEX)
        self.before = np.empty(count, dtype=np.bool_)
        self.qubits = np.empty(count, dtype=_INDEX)
        self.channels = np.empty(count, dtype=_INDEX)
        self.causes = np.empty(count, dtype=np.uint8)
        self.keys = np.empty(count, dtype=_index_type(top + 1))

    def put(
        self,
        at: np.ndarray,
        steps: np.ndarray,
        before: np.ndarray | bool,
        qubits: np.ndarray,
        channels: np.ndarray,
        causes: np.ndarray | int,
        keys: np.ndarray,
    ) -> None:
        self.steps[at], self.before[at], self.qubits[at] = steps, before, qubits
        self.channels[at], self.causes[at], self.keys[at] = channels, causes, keys

    def locations(self, names: Sequence[str], table: list[tuple[float, float, float]]) -> Locations:
        self.keys.setflags(write=False)
        return Locations(
            steps=self.steps,
            before=self.before,
            qubits=self.qubits,
            channels=self.channels,
            causes=self.causes,
            names=names,
            table=np.array(table, dtype=np.float64).reshape(-1, 3),
            plan_keys=self.keys,
        )


class _Slots:
    """The slots of a plan's steps (see :class:`LocationRows`), as arrays in plan order:
    each one's step, qubit (index into the names), wait and whether its step's own error
    comes before it; ``ends[k]`` is where step ``k``'s slots end, ``step_measures[k]``
    whether its own error comes before it, :meth:`profiles` their profiles. A
    million-gate plan has millions of slots, and every fresh page of a column is a page
    fault: the columns are as narrow as their values allow."""

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
        self.step_measures = kinds == _KIND_MEASURES
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
#: :func:`~qmk.qvm.expansions.measures`).
_KIND_FREE, _KIND_TELEPORT, _KIND_MEASURES = 1, 2, 3
_OWN_ERROR: Mapping[str, int] = MappingProxyType(
    {
        name: _KIND_FREE
        if spec.kind is Exec.FREE
        else _KIND_TELEPORT
        if spec.kind is Exec.TELEPORT_CNOT
        else _KIND_MEASURES
        if measures(spec)
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
