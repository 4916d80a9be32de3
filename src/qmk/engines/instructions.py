"""A batch circuit's instructions kept as columns.

A plan lowered to a batch circuit has an instruction per gate and per error site:
about 340,000 at 1,000 qubits and depth 100 with logical noise. As one object each,
the lowering would make them and the stim compiler read them back in Python, a field
at a time. :class:`Instructions` keeps the gates without feed-forward and the error
sites as arrays instead, so the lowering writes them from the plan's steps with numpy
and the compiler writes their stim text the same way. Any other instruction (a
measurement, a reset, a controlled Pauli, a channel) stays an object: a circuit has
few. A row read is the same :class:`~qmk.engines.batch.Instruction` either way, so
every engine reads a :class:`~qmk.engines.batch.BatchCircuit` as before.
"""

from __future__ import annotations

import functools
import operator
from collections.abc import Iterable, Iterator, Sequence
from typing import Any, SupportsIndex, overload

import numpy as np

from qmk.engines.batch import Instruction, Kind

#: What a row is (:attr:`Instructions.kinds`): a gate without feed-forward, an error
#: site, or an instruction kept as an object.
PLAIN, SITE, OBJECT = 0, 1, 2


class Instructions(Sequence[Instruction]):
    """A batch circuit's instructions as columns, read as a sequence of
    :class:`~qmk.engines.batch.Instruction`.

    Row ``i`` is ``kinds[i]``:

    - ``PLAIN``: the gate ``gates[codes[i]]`` (its name and parameters) on the qubits
      ``qubits[offsets[i]:offsets[i + 1]]``, without feed-forward;
    - ``SITE``: an error site on ``qubits[offsets[i]]`` with the X, Y, Z probabilities
      ``probs[codes[i]]``;
    - ``OBJECT``: ``objects[codes[i]]``, any instruction (its qubits are not in
      ``qubits``).

    Error sites may instead stand beside the columns, as a side table: site ``k`` on
    qubit ``site_qubits[k]`` with the probabilities ``probs[site_codes[k]]`` stands just
    before column row ``site_at[k]`` (nondecreasing; the row count: at the end). A
    lowered plan's million sites are kept so, and read where they strike
    (:meth:`~qmk.engines.stim_batch.StimSampler.flips`), not written as a million rows.
    Read as a sequence, they are rows of their own (:meth:`merged`, made on first read).

    >>> rows = Instructions.of([Instruction(kind=Kind.MEASURE, qubits=(0,))])
    >>> rows[0].kind.value, len(rows), rows == [Instruction(kind=Kind.MEASURE, qubits=(0,))]
    ('measure', 1, True)
    """

    __slots__ = (
        "_merged",
        "codes",
        "gates",
        "kinds",
        "objects",
        "offsets",
        "probs",
        "qubits",
        "site_at",
        "site_codes",
        "site_qubits",
    )

    def __init__(
        self,
        kinds: np.ndarray,
        codes: np.ndarray,
        offsets: np.ndarray,
        qubits: np.ndarray,
        *,
        gates: Sequence[tuple[str, tuple[float, ...]]] = (),
        probs: Sequence[tuple[float, ...]] = (),
        objects: Sequence[Instruction] = (),
        site_at: np.ndarray | None = None,
        site_qubits: np.ndarray | None = None,
        site_codes: np.ndarray | None = None,
    ) -> None:
        self.kinds = np.asarray(kinds, dtype=np.uint8)
        self.codes = np.asarray(codes, dtype=np.int64)
        self.offsets = np.asarray(offsets, dtype=np.int64)
        self.qubits = np.asarray(qubits, dtype=np.int64)
        self.gates = tuple(gates)
        self.probs = tuple(probs)
        self.objects = tuple(objects)
        none = np.zeros(0, dtype=np.int64)
        self.site_at = none if site_at is None else np.asarray(site_at, dtype=np.int64)
        self.site_qubits = none if site_qubits is None else np.asarray(site_qubits, np.int64)
        self.site_codes = none if site_codes is None else np.asarray(site_codes)
        self._merged: Instructions | None = None
        if not len(self.kinds) == len(self.codes) == len(self.offsets) - 1:
            raise ValueError("instruction columns of different lengths")
        if not len(self.site_at) == len(self.site_qubits) == len(self.site_codes):
            raise ValueError("site columns of different lengths")

    @classmethod
    def of(cls, instructions: Iterable[Instruction]) -> Instructions:
        """``instructions`` (any iterable; the columns of an :class:`Instructions`),
        each kept as an object."""
        if isinstance(instructions, Instructions):
            return instructions
        objects = tuple(instructions)
        count = len(objects)
        return cls(
            np.full(count, OBJECT, dtype=np.uint8),
            np.arange(count),
            np.zeros(count + 1, dtype=np.int64),
            np.zeros(0, dtype=np.int64),
            objects=objects,
        )

    def __len__(self) -> int:
        return len(self.kinds) + len(self.site_at)

    def merged(self) -> Instructions:
        """The same rows with the side table's sites as ``SITE`` rows (itself where it
        has none): what a reader of every row reads, made once."""
        if not len(self.site_at):
            return self
        if self._merged is None:
            count, sites = len(self.kinds), len(self.site_at)
            site_rows = self.site_at + np.arange(sites)
            own = np.ones(count + sites, dtype=bool)
            own[site_rows] = False
            kinds = np.full(count + sites, SITE, dtype=np.uint8)
            kinds[own] = self.kinds
            codes = np.empty(count + sites, dtype=np.int64)
            codes[own] = self.codes
            codes[site_rows] = self.site_codes
            widths = np.ones(count + sites, dtype=np.int64)
            widths[own] = np.diff(self.offsets)
            offsets = np.zeros(count + sites + 1, dtype=np.int64)
            np.cumsum(widths, out=offsets[1:])
            qubits = np.empty(int(offsets[-1]), dtype=np.int64)
            places = np.ones(len(qubits), dtype=bool)
            places[offsets[site_rows]] = False
            qubits[places] = self.qubits[self.offsets[0] : self.offsets[-1]]
            qubits[~places] = self.site_qubits
            self._merged = Instructions(
                kinds,
                codes,
                offsets,
                qubits,
                gates=self.gates,
                probs=self.probs,
                objects=self.objects,
            )
        return self._merged

    @overload
    def __getitem__(self, index: SupportsIndex) -> Instruction: ...
    @overload
    def __getitem__(self, index: slice) -> tuple[Instruction, ...]: ...
    def __getitem__(self, index: SupportsIndex | slice) -> Any:
        if isinstance(index, slice):
            return tuple(self._rows(range(len(self))[index]))
        count, at = len(self), operator.index(index)
        if not -count <= at < count:
            raise IndexError("instruction index out of range")
        return next(self._rows([at % count]))

    def __iter__(self) -> Iterator[Instruction]:
        return self._rows(range(len(self)))

    def _rows(self, rows: Iterable[int]) -> Iterator[Instruction]:
        if len(self.site_at):
            return self.merged()._rows(rows)
        return self._column_rows(rows)

    def _column_rows(self, rows: Iterable[int]) -> Iterator[Instruction]:
        kinds, codes, offsets, qubits = self.kinds, self.codes, self.offsets, self.qubits
        for at in rows:
            kind, code = int(kinds[at]), int(codes[at])
            if kind == OBJECT:
                yield self.objects[code]
                continue
            qs = tuple(qubits[offsets[at] : offsets[at + 1]].tolist())
            if kind == PLAIN:
                gate, params = self.gates[code]
                yield Instruction(kind=Kind.GATE, qubits=qs, gate=gate, params=params)
            else:
                yield Instruction(kind=Kind.ERROR_SITE, qubits=qs, probs=self.probs[code])

    def __eq__(self, other: object) -> bool:
        if isinstance(other, Sequence) and not isinstance(other, str):
            return len(other) == len(self) and all(a == b for a, b in zip(self, other, strict=True))
        return NotImplemented

    def __hash__(self) -> int:  # as the tuple of its rows, which it equals
        return hash(tuple(self))

    def __repr__(self) -> str:
        return f"Instructions({len(self)} rows)"

    def __reduce__(self) -> tuple[Any, ...]:
        # its keyword columns bound: pickle calls the constructor with positions only
        made = functools.partial(
            Instructions,
            gates=self.gates,
            probs=self.probs,
            objects=self.objects,
            site_at=self.site_at,
            site_qubits=self.site_qubits,
            site_codes=self.site_codes,
        )
        return made, (self.kinds, self.codes, self.offsets, self.qubits)
