"""Syndrome-extraction circuits of memory experiments, built in stim under circuit-level noise.

A memory experiment prepares a code's logical ``|0>``, runs ``rounds`` rounds of
syndrome extraction and measures every data qubit; its detectors compare each
stabilizer's value with the previous round's, and its one observable is the
logical Z read from the final data measurements. A decoder that predicts the
observable's flip from the detection events fails with the logical error rate.

The families:

- ``surface_code`` -- the rotated surface code: d^2 data qubits and d^2 - 1
  ancillas, each round 4 CNOT layers in the N/Z order that avoids hook errors
  along the logical operators, as in ``stim.Circuit.generated(
  "surface_code:rotated_memory_z")``.
- ``repetition_code`` -- d data qubits on a line and d - 1 ZZ ancillas (2 CNOT
  layers per round); it protects against bit flips only. It is not a profile
  family; it is here as the simplest code with an exact answer.
- ``bacon_shor`` -- the [[d^2, 1, d]] Bacon-Shor subsystem code with one
  ancilla per weight-2 gauge: each round measures the d (d - 1) vertical XX
  gauges, then the d (d - 1) horizontal ZZ gauges (2 CNOT layers and a
  measurement each, the schedule of :data:`qmk.qec.codes.BACON_SHOR`). The
  Z-type stabilizer of columns j and j + 1 is the product of the d ZZ gauges
  between them: a detector compares that product across rounds.

- ``SHYPS`` -- a SHYPS block, the subsystem hypergraph product of the simplex code
  (:mod:`qmk.experiments.shyps`): ``[[49, 9, 4]]`` at distance 4, ``[[225, 16, 8]]``
  at 8. One ancilla per weight-3 gauge; each round measures the X gauges, then the Z
  gauges; its r^2 observables are the bare logical Zs. Its distances are the blocks'
  (:data:`SHYPS_DISTANCES`), and its decoder is BP+OSD (:data:`EXPERIMENT_DECODERS`):
  matching cannot read its hyperedges.

``floquet_code`` has no circuit here (QC110 ``no-experiment``): the honeycomb code
needs two-body measurement circuits with a planar boundary, not built yet.

The noise is :class:`CircuitNoise`: depolarizing after every gate, a flip before
every measurement and after every reset, depolarizing on idle qubits in every
layer, and optionally on the data at the start of each round (stim's own
convention for its generated circuits, :meth:`CircuitNoise.stim_uniform`).

>>> c = memory_circuit("surface_code", distance=3, rounds=3, noise=CircuitNoise.uniform(1e-3))
>>> c.num_detectors, c.num_observables, c.num_qubits
(24, 1, 17)
>>> len(c.shortest_graphlike_error())
3
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Mapping
from types import MappingProxyType
from typing import TYPE_CHECKING

from qmk.experiments.layers import NOISELESS, CircuitNoise, NoisyCircuit
from qmk.qec.errors import QECError
from qmk.qvm.profiles import family_name, unknown_family

if TYPE_CHECKING:
    import stim

#: Families with a memory-experiment circuit at every odd distance.
EXPERIMENT_FAMILIES: tuple[str, ...] = ("surface_code", "repetition_code", "bacon_shor")
#: SHYPS blocks by distance: the distance ``2^(r-1)`` of the block of the simplex code of r.
SHYPS_DISTANCES: Mapping[int, int] = MappingProxyType({4: 3, 8: 4, 16: 5})
#: The decoder of a family's experiments where it is not pymatching.
EXPERIMENT_DECODERS: Mapping[str, str] = MappingProxyType({"SHYPS": "bposd"})
#: Profile families with no experiment yet, and why.
NO_EXPERIMENT: Mapping[str, str] = MappingProxyType(
    {
        "floquet_code": "the honeycomb Floquet code needs a two-body-measurement circuit with "
        "planar boundaries on Majorana qubits, which QMK does not build yet",
    }
)
#: The names of the one experiment family no profile names, the repetition code (the
#: profile families' names and aliases are :data:`qmk.qvm.profiles.FAMILIES`').
_EXPERIMENT_ONLY: Mapping[str, str] = MappingProxyType(
    {"repetition_code": "repetition_code", "repetition": "repetition_code"}
)


def experiment_family(name: str) -> str:
    """The canonical experiment family of ``name``: a profile family's name or alias
    (:func:`qmk.qvm.profiles.family_name`), or the repetition code's (case and ``-``/``_``
    ignored).

    >>> experiment_family("surfaceCode"), experiment_family("Repetition")
    ('surface_code', 'repetition_code')
    >>> experiment_family("surfce_code")  # doctest: +ELLIPSIS
    Traceback (most recent call last):
    ...
    qmk.qec.errors.QECError: QC102 unknown-profile: ...; did you mean 'surface_code'? ...

    Raises:
        QECError: ``QC110 no-experiment`` for ``floquet_code``;
            ``QC102 unknown-profile`` for an unknown name, with the closest family.
    """
    key = str(name).strip()
    canonical = family_name(key) or _EXPERIMENT_ONLY.get(key.lower().replace("-", "_"))
    if canonical is None:
        message = unknown_family(key, known=EXPERIMENT_FAMILIES, also=_EXPERIMENT_ONLY)
        raise QECError.of("unknown-profile", message, family=str(name))
    if canonical in NO_EXPERIMENT:
        raise QECError.of(
            "no-experiment",
            f"{canonical} has no memory experiment yet: {NO_EXPERIMENT[canonical]}; "
            f"experiments exist for {', '.join(EXPERIMENT_FAMILIES)} and SHYPS",
            family=canonical,
        )
    return canonical


def _surface_code(distance: int, rounds: int, noise: CircuitNoise) -> stim.Circuit:
    d = distance
    data_xy = [(2 * x + 1, 2 * y + 1) for y in range(d) for x in range(d)]
    data_at = {xy: i for i, xy in enumerate(data_xy)}
    x_anc: list[tuple[int, int]] = []
    z_anc: list[tuple[int, int]] = []
    for y in range(0, 2 * d + 1, 2):
        for x in range(0, 2 * d + 1, 2):
            is_x = ((x + y) // 2) % 2 == 1
            inside = 0 < x < 2 * d and 0 < y < 2 * d
            # X stabilizers close the top and bottom edges, Z stabilizers the left and right.
            if inside or (is_x and 0 < x < 2 * d) or (not is_x and 0 < y < 2 * d):
                (x_anc if is_x else z_anc).append((x, y))
    anc_xy = sorted(x_anc + z_anc, key=lambda xy: (xy[1], xy[0]))
    anc_at = {xy: len(data_xy) + i for i, xy in enumerate(anc_xy)}
    x_set = set(x_anc)
    # The N and Z orders keep hook errors perpendicular to the logical operator they could shorten.
    x_order = ((1, 1), (-1, 1), (1, -1), (-1, -1))
    z_order = ((1, 1), (1, -1), (-1, 1), (-1, -1))
    data = list(range(len(data_xy)))
    ancillas = [anc_at[xy] for xy in anc_xy]
    x_ids = [anc_at[xy] for xy in anc_xy if xy in x_set]
    b = NoisyCircuit(len(data_xy) + len(anc_xy), noise)
    for xy, q in (*data_at.items(), *anc_at.items()):
        b.coords(q, xy)
    b.reset(data)
    b.reset(ancillas)
    b.end_layer([*data, *ancillas])
    previous: dict[tuple[int, int], int] = {}
    for r in range(rounds):
        b.data_noise(data)
        b.h(x_ids)
        b.end_layer(x_ids)
        for layer in range(4):
            pairs: list[tuple[int, int]] = []
            for xy in anc_xy:
                is_x = xy in x_set
                dx, dy = (x_order if is_x else z_order)[layer]
                neighbour = data_at.get((xy[0] + dx, xy[1] + dy))
                if neighbour is not None:
                    a = anc_at[xy]
                    pairs.append((a, neighbour) if is_x else (neighbour, a))
            b.cx(pairs)
            b.end_layer([q for pair in pairs for q in pair])
        b.h(x_ids)
        b.end_layer(x_ids)
        records = dict(zip(anc_xy, b.measure(ancillas, reset=True), strict=True))
        if r > 0:
            b.shift_time()
        for xy in anc_xy:
            if r == 0 and xy in x_set:
                continue  # X stabilizers of |0>_L start random
            recs = [records[xy]] + ([previous[xy]] if r > 0 else [])
            b.detector(recs, (*xy, 0))
        previous = records
        b.end_layer(ancillas)
    final = dict(zip(data_xy, b.measure(data, reset=False), strict=True))
    for xy in z_anc:
        around = [(xy[0] + dx, xy[1] + dy) for dx, dy in z_order]
        recs = [final[n] for n in around if n in final] + [previous[xy]]
        b.detector(recs, (*xy, 1))
    b.observable(final[(2 * x + 1, 1)] for x in range(d))
    return b.circuit


def _repetition_code(distance: int, rounds: int, noise: CircuitNoise) -> stim.Circuit:
    d = distance
    data = list(range(d))
    ancillas = list(range(d, 2 * d - 1))
    b = NoisyCircuit(2 * d - 1, noise)
    for i in data:
        b.coords(i, (2 * i, 0))
    for j, a in enumerate(ancillas):
        b.coords(a, (2 * j + 1, 0))
    b.reset([*data, *ancillas])
    b.end_layer([*data, *ancillas])
    previous: list[int] = []
    for r in range(rounds):
        b.data_noise(data)
        for side in (0, 1):
            pairs = [(data[j + side], a) for j, a in enumerate(ancillas)]
            b.cx(pairs)
            b.end_layer([q for pair in pairs for q in pair])
        records = b.measure(ancillas, reset=True)
        if r > 0:
            b.shift_time()
        for j, rec in enumerate(records):
            b.detector([rec] + ([previous[j]] if r > 0 else []), (2 * j + 1, 0))
        previous = records
        b.end_layer(ancillas)
    final = b.measure(data, reset=False)
    for j in range(d - 1):
        b.detector([final[j], final[j + 1], previous[j]], (2 * j + 1, 1))
    b.observable([final[-1]])
    return b.circuit


def _bacon_shor(distance: int, rounds: int, noise: CircuitNoise) -> stim.Circuit:
    d = distance

    def q(row: int, col: int) -> int:
        return row * d + col

    n = d * d
    # One ancilla per gauge: XX on vertical neighbours, ZZ on horizontal ones.
    xx = [(q(i, j), q(i + 1, j)) for i in range(d - 1) for j in range(d)]
    zz = [(q(i, j), q(i, j + 1)) for i in range(d) for j in range(d - 1)]
    x_anc = list(range(n, n + len(xx)))
    z_anc = list(range(n + len(xx), n + len(xx) + len(zz)))
    data = list(range(n))
    b = NoisyCircuit(n + len(xx) + len(zz), noise)
    for i in range(d):
        for j in range(d):
            b.coords(q(i, j), (2 * j, 2 * i))
    for a, (top, _) in zip(x_anc, xx, strict=True):
        b.coords(a, (2 * (top % d), 2 * (top // d) + 1))
    for a, (left, _) in zip(z_anc, zz, strict=True):
        b.coords(a, (2 * (left % d) + 1, 2 * (left // d)))
    b.reset([*data, *x_anc, *z_anc])
    b.end_layer([*data, *x_anc, *z_anc])
    previous: list[list[int]] = []
    for r in range(rounds):
        b.data_noise(data)
        b.h(x_anc)
        b.end_layer(x_anc)
        for side in (0, 1):
            pairs = [(a, g[side]) for a, g in zip(x_anc, xx, strict=True)]
            b.cx(pairs)
            b.end_layer([t for pair in pairs for t in pair])
        b.h(x_anc)
        b.end_layer(x_anc)
        b.measure(x_anc, reset=True)  # the XX gauges: used by X-basis memory, not here
        b.end_layer(x_anc)
        for side in (0, 1):
            pairs = [(g[side], a) for a, g in zip(z_anc, zz, strict=True)]
            b.cx(pairs)
            b.end_layer([t for pair in pairs for t in pair])
        records = b.measure(z_anc, reset=True)
        # The Z stabilizer of columns (j, j + 1) is the product of the d ZZ gauges between them.
        columns = [[records[i * (d - 1) + j] for i in range(d)] for j in range(d - 1)]
        if r > 0:
            b.shift_time()
        for j, recs in enumerate(columns):
            b.detector(recs + (previous[j] if r > 0 else []), (2 * j + 1, 0, 0))
        previous = columns
        b.end_layer(z_anc)
    final = b.measure(data, reset=False)
    for j in range(d - 1):
        column_pair = [final[q(i, c)] for i in range(d) for c in (j, j + 1)]
        b.detector(column_pair + previous[j], (2 * j + 1, 0, 1))
    b.observable(final[q(i, 0)] for i in range(d))
    return b.circuit


_BUILDERS: Mapping[str, Callable[[int, int, CircuitNoise], stim.Circuit]] = MappingProxyType(
    {
        "surface_code": _surface_code,
        "repetition_code": _repetition_code,
        "bacon_shor": _bacon_shor,
    }
)


def check_distance(distance: int, family: str = "") -> None:
    """Refuse a distance that is not an odd whole number >= 3, or for ``SHYPS`` not a
    block's distance of :data:`SHYPS_DISTANCES` (QC103)."""
    if family == "SHYPS":
        if isinstance(distance, bool) or distance not in SHYPS_DISTANCES:
            raise QECError.of(
                "bad-parameter",
                f"a SHYPS experiment's distance is its block's, one of "
                f"{', '.join(map(str, SHYPS_DISTANCES))}; got {distance!r}",
            )
        return
    if isinstance(distance, bool) or not isinstance(distance, int) or distance < 3:
        raise QECError.of(
            "bad-parameter",
            f"experiment distance must be an odd whole number >= 3, got {distance!r}",
        )
    if distance % 2 == 0:
        raise QECError.of("bad-parameter", f"experiment distance must be odd, got {distance}")
    if distance > 51:
        raise QECError.of("bad-parameter", f"experiment distance {distance} is above 51")


def check_rounds(rounds: int) -> None:
    """Refuse a round count that is not a whole number >= 1 (QC103)."""
    if isinstance(rounds, bool) or not isinstance(rounds, int) or rounds < 1:
        raise QECError.of("bad-parameter", f"rounds must be a whole number >= 1, got {rounds!r}")


def check_size(family: str, distance: int, rounds: int) -> None:
    """Refuse ``rounds`` whose circuit would hold more operations than a program may
    unroll to (``Limits.max_unrolled_nodes``), before it is built: the builders write
    every round, so a request of 10^9 rounds would take the time and memory of 10^9.

    Its size is its operations as stim counts them (a gate on its qubit or pair, a
    measurement, a detector: a target group; an instruction of none, one), noise aside,
    from the sizes of 2 and 3 rounds (kept for each code and distance), exactly: every
    round after the first is alike. The distance is bounded already
    (:func:`check_distance`), so those two are small.

    Raises:
        UnrollError: ``QV505`` past the limit (``limit``, ``size``).
    """
    from qmk.qvm.limits import Limits

    limit = Limits().max_unrolled_nodes
    if rounds <= 3 or limit is None:
        return
    two, three = _round_sizes(experiment_family(family), distance)
    size = two + (rounds - 2) * (three - two)
    if size > limit:
        from qmk.qvm.errors import UnrollError

        raise UnrollError.of(
            "unrolled-too-large",
            f"{rounds} rounds of {family} at distance {distance} hold {size} operations, "
            f"over the limit of {limit} (Limits.max_unrolled_nodes); the circuit is built "
            "round by round: ask for fewer rounds",
            limit=limit,
            size=size,
        )


@functools.cache
def _round_sizes(family: str, distance: int) -> tuple[int, int]:
    """The operations of the noiseless circuits of 2 and 3 rounds (:func:`check_size`)."""
    return (
        _operations(memory_circuit(family, distance=distance, rounds=2)),
        _operations(memory_circuit(family, distance=distance, rounds=3)),
    )


def _operations(circuit: stim.Circuit) -> int:
    return sum(max(1, len(op.target_groups())) for op in circuit.flattened())


def memory_circuit(
    family: str, *, distance: int, rounds: int, noise: CircuitNoise = NOISELESS
) -> stim.Circuit:
    """The memory-Z experiment of ``family`` at ``distance`` over ``rounds`` rounds.

    Args:
        family: ``surface_code``, ``repetition_code``, ``bacon_shor`` or ``SHYPS``
            (aliases accepted).
        distance: an odd code distance >= 3 (SHYPS: 4, 8 or 16, the block's).
        rounds: syndrome-extraction rounds (>= 1).
        noise: the circuit-level noise.

    Returns:
        A stim circuit with detectors and its logical Zs as observables (one; SHYPS: r^2).

    Raises:
        QECError: ``QC110`` for a family with no experiment, ``QC102`` for an
            unknown one, ``QC103`` for a bad distance or round count.
        UnrollError: ``QV505`` rounds past the operations a program may unroll to
            (:func:`check_size`), before any is built.
    """
    canonical = experiment_family(family)
    check_distance(distance, canonical)
    check_rounds(rounds)
    check_size(canonical, distance, rounds)
    if canonical == "SHYPS":
        from qmk.experiments.shyps import shyps_memory_circuit

        return shyps_memory_circuit(SHYPS_DISTANCES[distance], rounds, noise)
    return _BUILDERS[canonical](distance, rounds, noise)


def experiment_decoder(family: str) -> str:
    """The decoder a family's experiments take when none is named (pymatching but for
    :data:`EXPERIMENT_DECODERS`)."""
    from qmk.experiments.decoders import DEFAULT_DECODER

    return EXPERIMENT_DECODERS.get(family, DEFAULT_DECODER)


def logical_qubits(family: str, distance: int) -> int:
    """The logical qubits (observables) of a family's experiment: 1, or a SHYPS block's r^2."""
    return SHYPS_DISTANCES[distance] ** 2 if family == "SHYPS" else 1


def syndrome_bits_per_round(family: str, distance: int) -> int:
    """Measurement outcomes one round of this experiment's circuit gives the decoder.

    Profile families take :func:`qmk.qec.logical.syndrome_bits_per_round`; the
    repetition code measures its ``d - 1`` ZZ checks.

    >>> [syndrome_bits_per_round(f, 5) for f in EXPERIMENT_FAMILIES]
    [24, 4, 40]
    """
    from qmk.qec.logical import syndrome_bits_per_round as per_logical_qubit

    canonical = experiment_family(family)
    if canonical == "repetition_code":
        return distance - 1
    return int(per_logical_qubit(canonical, distance))
