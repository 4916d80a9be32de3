"""What a run gives back: its counts, every shot's outcomes and its telemetry.

:class:`RunResult` is the value :func:`qmk.run` returns (and a kernel job's result is its
JSON); :class:`Telemetry` says what the run did and cost; :func:`keyed_counts` turns the
shots' outcome bits into counts keyed as the program lays its output out. A result draws
its counts (:meth:`RunResult.plot`, with matplotlib) and shows itself in a notebook as a
small table (:meth:`RunResult._repr_html_`).
"""

from __future__ import annotations

import functools
import html
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field, fields
from typing import Any, ClassVar

import numpy as np

from qmk.engines.router import Choice
from qmk.engines.state_io import QuantumState
from qmk.qvm.output import OutputLayout


@dataclass(frozen=True, slots=True, kw_only=True)
class Telemetry:
    """What one run did and cost. Counts of ops are per shot; errors are over all shots."""

    engine: str
    mode: str
    shots: int
    epochs: int
    logical_cycles: float
    logical_time_ns: float
    peak_logical_qubits: int
    peak_physical_qubits: int
    decoder_rounds: float
    magic_states: int
    teleports: int
    injected_logical_errors: int
    noise: bool
    noise_locations: int
    qubit_params: str
    profiles: tuple[str, ...]
    simulations: int
    #: How logical errors reached the shots: "flip-masks" (drawn by QMK, their
    #: measurement flips XORed into noiseless bulk samples), "per-pattern" (shots grouped
    #: by drawn error pattern, each group simulated), "heralded" (drawn by the engine's
    #: heralded channels), "exact" (every location's channel applied to a density matrix:
    #: none drawn, so none counted in ``injected_logical_errors``) or "off" (no noise
    #: location).
    noise_sampling: str = "off"
    #: The noise model that set the physical error rates (``parse_noise_model`` text), if any.
    noise_model: str | None = None
    #: The calibration that set the code's (a, p*), and the profiles it applied to.
    calibration: Mapping[str, Any] | None = None
    channel_uses: Mapping[str, int] = field(default_factory=dict)
    regions: tuple[str, ...] = ()
    policies: tuple[Mapping[str, Any], ...] = ()
    wall_time_s: float = 0.0
    #: Syndrome bits per round of the logical qubits live at the decoder-load peak.
    syndrome_bits_per_round: float = 0.0
    #: Syndrome bits per second the decoders must process at that peak (qmk.qec.logical).
    decoder_bits_per_second: float = 0.0
    #: Execution states saved (checkpoints and stops), over every attempt of the run.
    checkpoints: int = 0
    #: The epoch (the number of the fence) the run last resumed from; None: from its start.
    resumed_from_epoch: int | None = None
    #: The epochs at whose fences the run stopped to yield its worker (preemptions).
    preempted_at_epochs: tuple[int, ...] = ()
    #: REV segments rolled back to stop inside them, and the gates that undid them.
    rollbacks: int = 0
    rollback_gates: int = 0
    #: Why the engine ran the job: named by it, or the router's choice and its estimate.
    engine_reason: str = ""
    #: The figures of the run's target beside these (a lattice-surgery run's schedule:
    #: ``ppm_count``, ``factory_wait_cycles``...; a device run's atoms lost...): keys of
    #: their own, never one of the fields above.
    figures: Mapping[str, Any] = field(default_factory=dict)
    #: A kernel job's schedule on the shared machine (its ``machine`` record:
    #: :meth:`qmk.execution.request.MachineRun.record`); None: a private machine.
    machine: Mapping[str, Any] | None = None

    def __post_init__(self) -> None:
        shared = set(self.figures) & _TELEMETRY_FIELDS
        if shared:
            raise ValueError(f"a target's figures may not stand for {', '.join(sorted(shared))}")

    def to_json(self) -> dict[str, Any]:
        return {
            "engine": self.engine,
            "mode": self.mode,
            "shots": self.shots,
            "epochs": self.epochs,
            "logical_cycles": self.logical_cycles,
            "logical_time_ns": self.logical_time_ns,
            "peak_logical_qubits": self.peak_logical_qubits,
            "peak_physical_qubits": self.peak_physical_qubits,
            "decoder_rounds": self.decoder_rounds,
            "magic_states": self.magic_states,
            "teleports": self.teleports,
            "injected_logical_errors": self.injected_logical_errors,
            "noise": self.noise,
            "noise_locations": self.noise_locations,
            "noise_sampling": self.noise_sampling,
            "qubit_params": self.qubit_params,
            "noise_model": self.noise_model,
            "calibration": None if self.calibration is None else dict(self.calibration),
            "profiles": list(self.profiles),
            "simulations": self.simulations,
            "channel_uses": dict(self.channel_uses),
            "regions": list(self.regions),
            "policies": [dict(p) for p in self.policies],
            "wall_time_s": self.wall_time_s,
            "syndrome_bits_per_round": self.syndrome_bits_per_round,
            "decoder_bits_per_second": self.decoder_bits_per_second,
            "checkpoints": self.checkpoints,
            "resumed_from_epoch": self.resumed_from_epoch,
            "preempted_at_epochs": list(self.preempted_at_epochs),
            "rollbacks": self.rollbacks,
            "rollback_gates": self.rollback_gates,
            "engine_reason": self.engine_reason,
            **({} if self.machine is None else {"machine": dict(self.machine)}),
            **self.figures,
        }


#: The fields of :class:`Telemetry` (a target's figures take other names).
_TELEMETRY_FIELDS = frozenset(f.name for f in fields(Telemetry))


def telemetry_fields() -> frozenset[str]:
    """The names of :class:`Telemetry`'s fields, which a target's figures may not take."""
    return _TELEMETRY_FIELDS


@dataclass(frozen=True, slots=True, eq=False)
class PackedRows:
    """Shots' event bits kept bit-packed, as the stabilizer batch sampler makes them: row
    ``i`` is ``np.packbits(bits[i], bitorder="little")`` of ``width`` bits, the unused high
    bits of the last byte 0. Packed rows are an eighth of the bytes, and the counts are
    found from them; :attr:`RunResult.bits` unpacks them on first use
    (``docs/engines.md`` has the figures).

    >>> rows = PackedRows(np.array([[0b101], [0b010]], dtype=np.uint8), 3)
    >>> len(rows), rows.unpack().tolist()
    (2, [[1, 0, 1], [0, 1, 0]])
    """

    packed: np.ndarray
    width: int

    def __post_init__(self) -> None:
        if self.packed.ndim != 2 or self.packed.shape[1] != -(-self.width // 8):
            raise ValueError(
                f"packed rows of {self.width} bits have {-(-self.width // 8)} bytes, "
                f"not shape {self.packed.shape}"
            )

    def __len__(self) -> int:
        return len(self.packed)

    def unpack(self, rows: np.ndarray | slice = slice(None)) -> np.ndarray:
        """The rows (all, or those ``rows`` selects) as uint8 bits, one column per event."""
        return np.unpackbits(self.packed[rows], axis=1, count=self.width, bitorder="little")


class LazyCounts(Mapping[str, int]):
    """A run's counts, found (:func:`keyed_counts`) when first read.

    A run of many distinct shots costs more to key than to sample. (In a noisy QEC
    circuit nearly every shot is its own outcome.) So a caller that reads the shots or
    their detectors never pays for the keys.

    >>> counts = LazyCounts(np.array([[0, 1], [0, 1], [1, 1]], dtype=np.uint8), None)
    >>> dict(counts), counts == {"01": 2, "11": 1}
    ({'01': 2, '11': 1}, True)
    """

    __slots__ = ("_bits", "_found", "_layout")

    def __init__(self, bits: np.ndarray | PackedRows, layout: OutputLayout | None) -> None:
        self._bits = bits
        self._layout = layout
        self._found: dict[str, int] | None = None

    def _counts(self) -> dict[str, int]:
        if self._found is None:  # a race counts twice, to equal dicts
            self._found = keyed_counts(self._bits, self._layout)
        return self._found

    def __getitem__(self, key: str) -> int:
        return self._counts()[key]

    def __iter__(self) -> Iterator[str]:
        return iter(self._counts())

    def __len__(self) -> int:
        return len(self._counts())

    def __repr__(self) -> str:
        return repr(self._counts())


@dataclass(frozen=True, slots=True, eq=False)
class Detections:
    """A stim circuit's detection events and observable flips for a run's shots, as
    :class:`PackedRows` (one row per shot): given, or found by ``find`` on first use
    (stim's measurement-to-detection converter on the run's own record, so they are the
    same shots).

    >>> rows = PackedRows(np.array([[0b01], [0b10]], dtype=np.uint8), 2)
    >>> none = PackedRows(np.zeros((2, 0), dtype=np.uint8), 0)
    >>> Detections(lambda: (rows, none)).detectors.tolist()
    [[1, 0], [0, 1]]
    """

    find: Callable[[], tuple[PackedRows, PackedRows]]
    _found: list[tuple[PackedRows, PackedRows]] = field(default_factory=list, repr=False)

    def packed(self) -> tuple[PackedRows, PackedRows]:
        """The detection events and the observables' flips, bit-packed."""
        if not self._found:  # a race finds them twice, equal
            self._found.append(self.find())
        return self._found[0]

    @property
    def detectors(self) -> np.ndarray:
        """Every shot's detection events: uint8, one column per ``DETECTOR``."""
        return self.packed()[0].unpack()

    @property
    def observables(self) -> np.ndarray:
        """Every shot's observable flips: uint8, one column per observable index."""
        return self.packed()[1].unpack()


@dataclass(frozen=True, slots=True, kw_only=True)
class RunResult:
    """The outcome of a run: every target's (:meth:`qmk.execution.target.Executable.run`).

    ``counts`` maps outcome strings to how many shots gave them. A string has its
    events in ``events`` order, first leftmost, unless the program's
    ``metadata.output`` gives another layout (see :mod:`qmk.qvm.output`). :attr:`bits`
    holds every shot's outcomes in ``events`` order (uint8, one row per shot).
    :attr:`memory` holds each shot's key. ``shot_bits`` is what the run made of them: those rows, or
    :class:`PackedRows` that :attr:`bits` unpacks on first use.
    """

    counts: Mapping[str, int]
    shots: int
    seed: int
    engine: str
    events: tuple[str, ...]
    telemetry: Telemetry
    shot_bits: np.ndarray | PackedRows = field(repr=False, compare=False)
    layout: OutputLayout | None = field(default=None, repr=False, compare=False)
    #: The router's decision: every candidate engine, its estimate or refusal.
    choice: Choice | None = field(default=None, repr=False, compare=False)
    #: The program's final state, when ``run(final_state=...)`` asked for it
    #: (:mod:`qmk.execution.states`); not part of :meth:`to_json`.
    final_state: QuantumState | None = field(default=None, repr=False, compare=False)
    #: For a part of a run (``run(part=...)``): the shots of the whole run that the rows
    #: of ``bits`` are, ascending (:mod:`qmk.execution.parts`); None: every shot, in order.
    rows: np.ndarray | None = field(default=None, repr=False, compare=False)
    #: The target that ran it (:mod:`qmk.execution.target`).
    target: str = "logical"
    #: What the target says beside the counts (a lattice-surgery run's ``layout`` and
    #: ``schedule``, a device run's ``device`` and ``compile``): plain JSON, in
    #: :meth:`to_json` at its top level for every target but ``logical``.
    details: Mapping[str, Any] = field(default_factory=dict, repr=False, compare=False)
    #: Files the run made beside its result, not part of :meth:`to_json` (a device job's
    #: streams: ``{"name", "kind", "records"}`` each, :mod:`qmk.kernel.storage.artifacts`).
    artifacts: tuple[Mapping[str, Any], ...] = field(default=(), repr=False, compare=False)
    #: What the target says of the run in words, beside its counts and telemetry (a
    #: device run's compile report); ``qmk run`` prints it. Not part of :meth:`to_json`.
    summary: str = field(default="", repr=False, compare=False)
    #: A stim circuit's detection events and observable flips for these shots (the
    #: ``stim`` target's); None for a program that declares none.
    detection: Detections | None = field(default=None, repr=False, compare=False)
    _unpacked: np.ndarray | None = field(default=None, init=False, repr=False, compare=False)

    #: Outcomes a notebook's table of the result shows (the most frequent).
    HTML_OUTCOMES: ClassVar[int] = 16

    @property
    def bits(self) -> np.ndarray:
        """Every shot's outcomes in ``events`` order: uint8, one row per shot."""
        if isinstance(self.shot_bits, np.ndarray):
            return self.shot_bits
        if self._unpacked is None:  # a race unpacks twice, to equal arrays
            object.__setattr__(self, "_unpacked", self.shot_bits.unpack())
        assert self._unpacked is not None
        return self._unpacked

    @property
    def detectors(self) -> np.ndarray | None:
        """Every shot's detection events (uint8, one row per shot, one column per
        ``DETECTOR`` of a stim circuit); None for a run without them."""
        return None if self.detection is None else self.detection.detectors

    @property
    def observables(self) -> np.ndarray | None:
        """Every shot's observable flips (uint8, one column per ``OBSERVABLE_INCLUDE``
        index of a stim circuit); None for a run without them."""
        return None if self.detection is None else self.detection.observables

    @property
    def memory(self) -> list[str]:
        """Each shot's outcome key, in shot order."""
        if self.layout is None:
            return _strings(self.bits)
        return [self.layout.split(s) for s in _strings(_laid_out(self.bits, self.layout))]

    def probabilities(self) -> dict[str, float]:
        """``counts`` divided by ``shots``."""
        return {key: value / self.shots for key, value in self.counts.items()}

    def ranked(self, top: int | None = None) -> list[tuple[str, int]]:
        """The outcomes and their counts, the most frequent first (ties: by key).

        Args:
            top: only the ``top`` most frequent; None: every outcome.
        """
        ranked = sorted(self.counts.items(), key=lambda kv: (-kv[1], kv[0]))
        return ranked if top is None else ranked[: max(top, 0)]

    def plot(self, ax: Any = None, top: int | None = None) -> Any:
        """Draw the counts as a bar chart, one bar per outcome in key order, and return the
        Axes (matplotlib, the ``plot`` extra: ``pip install 'quantum-microkernel[plot]'``).

        Args:
            ax: the matplotlib ``Axes`` to draw on; None: a new figure's.
            top: draw only the ``top`` most frequent outcomes (ties: by key); None: all.

        Returns:
            The ``Axes``: its bars' heights are the counts.

        Raises:
            QECError: ``QC103 bad-parameter`` when matplotlib is not installed.
        """
        shown = sorted(self.ranked(top))
        if ax is None:
            ax = _pyplot().subplots()[1]
        ax.bar([key or "(empty)" for key, _ in shown], [count for _, count in shown])
        ax.set_xlabel("outcome")
        ax.set_ylabel("shots")
        title = f"{self.shots} shots, seed {self.seed}, engine {self.engine}"
        if len(shown) < len(self.counts):
            title += f" ({len(shown)} most frequent of {len(self.counts)} outcomes)"
        ax.set_title(title)
        if len(shown) > 8:
            ax.tick_params(axis="x", labelrotation=90, labelsize="x-small")
        return ax

    def _repr_html_(self) -> str:
        """The result as a notebook shows it: the run in one line, its most frequent
        outcomes (:attr:`HTML_OUTCOMES`) with counts and shares, and a few telemetry figures."""
        t = self.telemetry
        noise = "on" if t.noise else "off"
        rows = [
            f"<tr><td><code>{html.escape(key) or '(empty)'}</code></td>"
            f'<td style="text-align:right">{count}</td>'
            f'<td style="text-align:right">{count / max(self.shots, 1):.4f}</td></tr>'
            for key, count in self.ranked(self.HTML_OUTCOMES)
        ]
        hidden = len(self.counts) - len(rows)
        if hidden > 0:
            rows.append(
                f'<tr><td colspan="3">... {hidden} more outcome{"s" * (hidden != 1)}</td></tr>'
            )
        figures = {
            "logical cycles": f"{t.logical_cycles:g}",
            "peak logical / physical qubits": f"{t.peak_logical_qubits} / {t.peak_physical_qubits}",
            "injected logical errors": str(t.injected_logical_errors),
            "wall time": f"{t.wall_time_s:.3f} s",
        }
        return (
            '<div class="qmk-run-result">'
            f"<p><b>RunResult</b>: {self.shots} shots, seed {self.seed}, engine "
            f"<code>{html.escape(self.engine)}</code> ({html.escape(t.mode)}), noise {noise}; "
            f"events {html.escape(' '.join(self.events)) or '(none)'}</p>"
            "<table><thead><tr><th>outcome</th><th>count</th><th>share</th></tr></thead>"
            f"<tbody>{''.join(rows)}</tbody></table>"
            "<table>"
            + "".join(
                f"<tr><td>{name}</td><td>{value}</td></tr>" for name, value in figures.items()
            )
            + "</table></div>"
        )

    def to_json(self, *, memory: bool = False) -> dict[str, Any]:
        out: dict[str, Any] = {
            "counts": dict(self.counts),
            "shots": self.shots,
            "seed": self.seed,
            "engine": self.engine,
            "events": list(self.events),
            "telemetry": self.telemetry.to_json(),
        }
        if self.target != "logical":
            out["target"] = self.target
            out.update(self.details)
        if memory:
            out["memory"] = self.memory
        return out


def _pyplot() -> Any:
    """matplotlib's pyplot, or the coded error that names the extra that installs it."""
    try:
        import matplotlib.pyplot as plt
    except ImportError:
        from qmk.qec.errors import QECError

        raise QECError.of(
            "bad-parameter",
            "RunResult.plot needs matplotlib, which is not installed: "
            "pip install 'quantum-microkernel[plot]'",
        ) from None
    return plt


#: A shot's bit that is neither 0 nor 1: a device's lost atom (``L`` in its key).
LOST = 2


def _strings(bits: np.ndarray) -> list[str]:
    if bits.shape[1] == 0:
        return [""] * bits.shape[0]
    text = np.add(bits, ord("0"), dtype=np.uint8).tobytes().decode("ascii")
    if chr(ord("0") + LOST) in text:  # a lost atom
        text = text.replace(chr(ord("0") + LOST), "L")
    width = bits.shape[1]
    return [text[i : i + width] for i in range(0, len(text), width)]


def _laid_out(bits: np.ndarray, layout: OutputLayout) -> np.ndarray:
    """The bits in the layout's column order, a zero column for each constant.

    Where the order is the events' own or its reverse, it is a view. (An OpenQASM
    register is written highest bit first.) A gather of every column would copy the bits
    column by column."""
    columns = layout.columns
    width = bits.shape[1]
    if len(columns) == width and None not in columns:
        if columns == tuple(range(width)):
            return bits
        if columns == tuple(range(width - 1, -1, -1)):
            return bits[:, ::-1]
        return bits[:, [c for c in columns if c is not None]]
    padded = np.concatenate([bits, np.zeros((bits.shape[0], 1), dtype=bits.dtype)], axis=1)
    return padded[:, [width if c is None else c for c in columns]]


def _layout_keys(rows: np.ndarray, layout: OutputLayout) -> list[str]:
    """The key of each of ``rows`` laid out by ``layout``: one group of every column,
    unformatted (an OpenQASM program's one classical register), is each row's
    string as it is, which :meth:`OutputLayout.split` would return, without a call a
    row."""
    keys = _strings(_laid_out(rows, layout))
    if len(layout.widths) == 1 and not layout.formats and layout.widths[0] == len(layout.columns):
        return keys
    split = layout.split
    return [split(key) for key in keys]


def keyed_counts(bits: np.ndarray | PackedRows, layout: OutputLayout | None) -> dict[str, int]:
    """Outcome -> shots, keys sorted: each distinct row of ``bits`` once, laid out by
    ``layout`` (rows found distinct first: the layout's work is per outcome, not per
    shot; rows a layout makes alike add up). Packed rows are counted packed: only one
    row of each outcome is unpacked."""
    if len(bits) == 0:
        return {}
    if isinstance(bits, PackedRows) and 0 < bits.width <= 8:
        # One byte a row: the byte is the outcome. A tally of the 256 values finds the
        # distinct rows and their counts in one numpy call, where hashing the rows and
        # np.unique cost a few dozen (they dominate a small run's counting).
        tally = np.bincount(bits.packed[:, 0], minlength=256)
        values = np.flatnonzero(tally)
        counts = tally[values]
        if layout is None:  # each byte's key, made once per width
            names = _byte_keys(bits.width)
            keys = [names[value] for value in values.tolist()]
        else:
            rows = np.unpackbits(
                values.astype(np.uint8)[:, None], axis=1, count=bits.width, bitorder="little"
            )
            keys = _layout_keys(rows, layout)
    else:
        first, counts = _distinct_rows(bits)
        rows = bits.unpack(first) if isinstance(bits, PackedRows) else bits[first]
        keys = _strings(rows) if layout is None else _layout_keys(rows, layout)
    if layout is None or _distinct_keys(
        layout, bits.shape[1] if isinstance(bits, np.ndarray) else bits.width
    ):
        out = dict(zip(keys, counts.tolist(), strict=True))  # distinct rows, distinct keys
    else:
        out = {}
        for key, count in zip(keys, counts.tolist(), strict=True):
            out[key] = out.get(key, 0) + count
    return {key: out[key] for key in sorted(out)}


def _distinct_keys(layout: OutputLayout, width: int) -> bool:
    """Whether ``layout`` gives distinct rows of ``width`` events distinct keys: it
    writes every event once and no constant (then it only reorders and groups them)."""
    columns = layout.columns
    return (
        len(columns) == width
        and None not in columns
        and len(set(columns)) == width
        and not layout.formats
    )


@functools.lru_cache(maxsize=8)
def _byte_keys(width: int) -> tuple[str, ...]:
    """The key of each byte value as a packed row of ``width`` (at most 8) events: bit
    ``j`` is event ``j``, written ``j``-th from the left (bits past ``width`` unread).

    >>> _byte_keys(3)[0b001], _byte_keys(3)[0b110]
    ('100', '011')
    """
    return tuple(
        "".join("1" if value >> j & 1 else "0" for j in range(width)) for value in range(256)
    )


#: The seed of the odd 64-bit multipliers of the row hash in :func:`_distinct_rows`
#: (fixed; a run's counts never depend on them: a collision is found and resolved).
_HASH_SEED = 0x51A7


#: Rows per block of :func:`_distinct_rows`: its temporaries stay small and reused.
_BLOCK_ROWS = 1 << 13


@functools.lru_cache(maxsize=64)
def _weights(count: int) -> np.ndarray:
    """The odd multipliers of :func:`_distinct_rows`' hash for rows of ``count`` words,
    drawn once per count (a generator costs more to seed than small rows to hash);
    read-only, as they are shared."""
    weights = np.random.default_rng(_HASH_SEED).integers(
        0, 2**64, size=count, dtype=np.uint64, endpoint=False
    ) | np.uint64(1)
    weights.flags.writeable = False
    return weights


def _distinct_rows(bits: np.ndarray | PackedRows) -> tuple[np.ndarray, np.ndarray]:
    """The first row index of each distinct row of ``bits`` and how many rows equal it.

    Rows are packed (unless they come packed) to 64-bit words and hashed. Each word is
    mixed by splitmix64's finalizer, times an odd constant of its position, and the sum
    is taken mod 2**64. Rows are grouped by hash, and every row is compared with its
    group's first. Rows that share a hash but differ (a collision) send the grouping to
    an exact sort of the rows. The rows are packed
    and hashed a block at a time: the only large array is the packed rows.
    """
    shots, width = (len(bits), bits.width) if isinstance(bits, PackedRows) else bits.shape
    if width == 0:
        return np.zeros(1, dtype=np.int64), np.array([shots])
    size = -(-width // 8)
    words = np.zeros((shots, -(-size // 8)), dtype=np.uint64)
    octets = words.view(np.uint8)
    weights = _weights(words.shape[1])
    hashes = np.empty(shots, dtype=np.uint64)
    for lo in range(0, shots, _BLOCK_ROWS):
        hi = min(shots, lo + _BLOCK_ROWS)
        octets[lo:hi, :size] = (
            bits.packed[lo:hi] if isinstance(bits, PackedRows) else np.packbits(bits[lo:hi], axis=1)
        )
        mixed = words[lo:hi] >> np.uint64(30)
        mixed ^= words[lo:hi]
        mixed *= np.uint64(0xBF58476D1CE4E5B9)
        mixed ^= mixed >> np.uint64(27)
        mixed *= np.uint64(0x94D049BB133111EB)
        mixed ^= mixed >> np.uint64(31)
        mixed *= weights
        mixed.sum(axis=1, dtype=np.uint64, out=hashes[lo:hi])
    _, first, inverse, counts = np.unique(
        hashes, return_index=True, return_inverse=True, return_counts=True
    )
    if all(
        np.array_equal(words[lo : lo + _BLOCK_ROWS], words[first[inverse[lo : lo + _BLOCK_ROWS]]])
        for lo in range(0, shots, _BLOCK_ROWS)
    ):
        return first, counts
    rows = words.view(np.dtype((np.void, words.shape[1] * 8))).ravel()
    _, first, counts = np.unique(rows, return_index=True, return_counts=True)
    return first, counts


__all__ = [
    "LOST",
    "Detections",
    "LazyCounts",
    "PackedRows",
    "RunResult",
    "Telemetry",
    "keyed_counts",
    "telemetry_fields",
]
