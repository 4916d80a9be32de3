"""The estimation algorithms of QRE's ``PhysicalResourceEstimation``: code distance, factory
search, the single point and the frontier (Beverland et al., arXiv:2211.07629), following the
open-source estimator in microsoft/qsharp step for step, floats included."""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, TypeVar

from qmk.estimate.counts import LogicalCounts
from qmk.estimate.params import (
    _U64,
    TS_PER_ROTATION_A,
    TS_PER_ROTATION_B,
    Budget,
    JobParams,
    _ceil_div,
    _div,
)
from qmk.estimate.tfactory import (
    Patch,
    TFactory,
    find_factories_checked,
    make_patch,
)
from qmk.qec.codes import QecScheme
from qmk.qec.errors import QECError
from qmk.qec.params import QubitParams


def logical_error_rate(scheme: QecScheme, physical_error_rate: float, distance: int) -> float:
    """``scheme``'s ``P_L(d) = a * d**power * (p / p*) ** ((d + 1) // 2)``, refusing a rate
    above threshold with QRE's message."""
    if scheme.has_threshold and physical_error_rate > scheme.error_correction_threshold:
        raise QECError.of(
            "above-threshold",
            f"invalid value for 'physical_error_rate', expected value between 0 and "
            f"{scheme.error_correction_threshold}",
        )
    return scheme.logical_error_rate(physical_error_rate, distance)


def distance_for(scheme: QecScheme, qubit: QubitParams, required: float) -> int:
    """QRE's ``compute_code_parameter`` (Eq. E2, or a scan when power > 0)."""
    p = qubit.physical_error_rate
    if not scheme.has_threshold:  # a law fitted to the code's circuits (Bacon-Shor)
        return scheme.distance_for(p, required)
    if scheme.distance_coefficient_power == 0:
        ratio = _div(2.0 * math.log(_div(scheme.crossing_prefactor, required)), 1.0)
        value = _div(ratio, math.log(scheme.error_correction_threshold / p)) - 1.0
        distance = (max(0, math.ceil(value)) if math.isfinite(value) else _U64 - 1) | 1
        if distance > scheme.max_distance:
            raise QECError.of(
                "distance-too-large",
                f"The code parameter cannot be computed: The computed code distance "
                f"{distance} is too high; maximum allowed code distance is "
                f"{scheme.max_distance}; try increasing the total logical error budget",
                qre_code="Qdk.Qsc.Estimates.CodeParameterComputationFailed",
                distance=distance,
            )
        return distance
    for distance in range(1, scheme.max_distance + 1, 2):
        if logical_error_rate(scheme, p, distance) <= required:
            return distance
    raise QECError.of(
        "distance-too-large",
        "The code parameter cannot be computed: no code distance up to "
        f"{scheme.max_distance} reaches the required logical error rate {required}",
        qre_code="Qdk.Qsc.Estimates.CodeParameterComputationFailed",
    )


# -- the estimation ----------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class _Result:
    patch: Patch
    num_cycles: int
    factory: TFactory | None
    copies: int
    runs: int
    required_tstate_rate: float | None
    required_logical_rate: float
    physical_qubits_for_factories: int
    physical_qubits_for_algorithm: int
    physical_qubits: int
    runtime: int
    rqops: int


class _Estimator:
    """The estimation algorithms of QRE's ``PhysicalResourceEstimation``."""

    def __init__(self, counts: LogicalCounts, job: JobParams, budget: Budget) -> None:
        self.c = counts
        self.job = job
        self.scheme = job.scheme
        self.qubit = job.qubit
        self.budget = budget
        self.cons = job.constraints
        self.qre_divides_by_zero = False
        self.qre_hangs = False
        q = counts.num_qubits
        self.logical_qubits = 2 * q + math.ceil(math.sqrt(float(8 * q))) + 1
        self.ts_per_rotation: int | None = None
        if counts.rotation_count > 0:
            value = (
                TS_PER_ROTATION_A * math.log2(_div(counts.rotation_count, budget.rotations))
                + TS_PER_ROTATION_B
            )
            self.ts_per_rotation = math.ceil(value)
        per = self.ts_per_rotation or 0
        self.logical_depth = (
            (counts.measurement_count + counts.rotation_count + counts.t_count)
            + 3 * (counts.ccz_count + counts.ccix_count)
            + per * counts.rotation_depth
        )
        self.num_magic_states = (
            4 * (counts.ccz_count + counts.ccix_count)
            + counts.t_count
            + per * counts.rotation_count
        )

    # helpers named as in QRE
    def num_cycles(self) -> int:
        cycles = self.logical_depth
        factor = self.cons.logical_depth_factor
        if factor is not None:
            if factor < 1.0:
                raise QECError.of(
                    "bad-parameter",
                    f"Logical depth scaling factor is too small, it must be at least 1: {factor:g}",
                    qre_code="Qdk.Qsc.Estimates.LogicalDepthScalingFactorTooSmall",
                )
            cycles = math.ceil(cycles * factor)
        if cycles == 0 and self.num_magic_states == 0:
            raise QECError.of(
                "no-resources",
                "Algorithm requires at least one magic state or measurement to estimate resources",
                qre_code="Qdk.Qsc.Estimates.AlgorithmHasNoResources",
            )
        return cycles

    def required_rate(self, cycles: int) -> float:
        return _div(self.budget.logical, float(self.logical_qubits * cycles))

    def cycles_for_distance(self, distance: int) -> int:
        rate = logical_error_rate(self.scheme, self.qubit.physical_error_rate, distance)
        value = _div(self.budget.logical, self.logical_qubits * rate)
        return _saturating_u64(value)

    def algorithm_qubits(self, patch: Patch) -> int:
        return self.logical_qubits * patch.physical_qubits

    def num_factories(self, patch: Patch, factory: TFactory, cycles: int) -> int | None:
        """Copies needed to make every state within ``cycles``; None when no copy count can."""
        total = cycles * patch.cycle_time
        if total < _U64:
            per_run = (total // factory.duration) * factory.num_output_states
            if per_run == 0:
                self.qre_divides_by_zero = True  # QRE panics here (see docs/estimation.md)
                return None
            return _ceil_div(self.num_magic_states, per_run)
        per_cycle = self.num_magic_states / float(factory.num_output_states * cycles)
        return math.ceil(per_cycle * (factory.duration / patch.cycle_time))

    def cycles_for_states(self, copies: int, factory: TFactory, patch: Patch) -> int:
        runs = _ceil_div(self.num_magic_states, copies * factory.num_output_states)
        return _ceil_div(runs * factory.duration, patch.cycle_time)

    def factories(self, target: float, distance: int) -> list[TFactory]:
        found, qre_hangs = find_factories_checked(
            self.scheme,
            self.qubit,
            self.job.units,
            target,
            distance,
            self.cons.max_distillation_rounds,
        )
        self.qre_hangs = self.qre_hangs or qre_hangs
        return list(found)

    def result(
        self,
        patch: Patch,
        cycles: int,
        factory: TFactory | None,
        copies: int,
        target: float | None,
        required: float,
    ) -> _Result:
        runs = 0
        for_factories = 0
        if factory is not None:
            runs = _ceil_div(self.num_magic_states, copies * factory.num_output_states)
            for_factories = factory.physical_qubits * copies
        for_algorithm = self.algorithm_qubits(patch)
        return _Result(
            patch,
            cycles,
            factory,
            copies,
            runs,
            target,
            required,
            for_factories,
            for_algorithm,
            for_algorithm + for_factories,
            patch.cycle_time * cycles,
            math.ceil(self.logical_qubits * (1e9 / patch.cycle_time)),
        )

    def patch(self, distance: int) -> Patch:
        return make_patch(self.scheme, self.qubit, distance)

    # -- single point without duration or qubit limits
    def without_restrictions(self) -> _Result:
        cycles = self.num_cycles()
        while True:
            required = self.required_rate(cycles)
            distance = distance_for(self.scheme, self.qubit, required)
            max_cycles = self.cycles_for_distance(distance)
            patch = self.patch(distance)
            if self.num_magic_states == 0:
                return self.result(patch, cycles, None, 0, None, required)
            target = self.budget.tstates / self.num_magic_states
            factories = self.factories(target, distance)
            found = None
            if factories:
                duration = cycles * patch.cycle_time
                # QRE evaluates the maxTFactories predicate for every factory first.
                allowed = [self._max_f_ok(patch, f, cycles) for f in factories]
                fits = [
                    f
                    for f, ok in zip(factories, allowed, strict=True)
                    if ok and f.duration <= duration
                ]
                if fits:
                    found = (_first_min(fits, lambda f: f.normalized_volume), cycles)
                else:
                    found = self._within_max_cycles(factories, patch, max_cycles)
            if found is not None:
                factory, cycles = found
                copies = self.num_factories(patch, factory, cycles)
                assert copies is not None
                return self.result(patch, cycles, factory, copies, target, required)
            cycles = max(max_cycles + 1, cycles + 1)
            if not factories:  # none at this distance: none until the distance changes
                cycles = self._next_distance(cycles, distance, target)

    def _next_distance(self, cycles: int, distance: int, target: float) -> int:
        """The fewest cycles from ``cycles`` on at which the code distance is no longer
        ``distance`` (or cannot be computed).

        QRE's search adds one cycle at a time while no factory is found; the factories
        depend on the distance and the T-state target only. So this is where it first
        asks for factories again. Found by doubling and bisection instead of one cycle at
        a time.

        Raises:
            QECError: ``QC124 no-t-factory`` when the distance stays ``distance`` up to
                2**64 cycles (QRE's counter wraps there and its search never ends).
        """

        def moved(count: int) -> bool:
            try:
                return distance_for(self.scheme, self.qubit, self.required_rate(count)) != distance
            except QECError:
                return True  # the distance cannot be computed: that search raises it

        if not moved(cycles):
            if not moved(_U64 - 1):
                raise QECError.of(
                    "no-t-factory",
                    f"no T factory reaches the T-state error rate {target:g} at code distance "
                    f"{distance}, and no other distance is needed within 2**64 logical cycles",
                    target=target,
                    distance=distance,
                )
            low, step = cycles, 1  # moved(low) is false; find a high where it is true
            while not moved(low + step):
                low, step = low + step, step * 2
            high = low + step
            while high - low > 1:
                middle = (low + high) // 2
                if moved(middle):
                    high = middle
                else:
                    low = middle
            cycles = high
        return cycles

    def _max_f_ok(self, patch: Patch, factory: TFactory, cycles: int) -> bool:
        if self.cons.max_t_factories is None:
            return True
        copies = self.num_factories(patch, factory, cycles)
        return copies is not None and self.cons.max_t_factories >= copies

    def _within_max_cycles(
        self, factories: list[TFactory], patch: Patch, max_cycles: int
    ) -> tuple[TFactory, int] | None:
        max_f = self.cons.max_t_factories
        options = []
        for f in factories:
            if max_f is None:
                num = _ceil_div(f.duration, patch.cycle_time)
            else:
                if max_f == 0:
                    continue
                runs = _ceil_div(self.num_magic_states, max_f * f.num_output_states)
                num = _ceil_div(runs * f.duration, patch.cycle_time)
            if num <= max_cycles:
                options.append((f.normalized_volume, num, f))
        if not options:
            return None
        best = _first_min(options, lambda o: (o[0], o[1]))
        return best[2], best[1]

    def _initial(self) -> tuple[int, int, float, float]:
        cycles = self.num_cycles()
        target = _div(self.budget.tstates, float(self.num_magic_states))
        required = self.required_rate(cycles)
        distance = distance_for(self.scheme, self.qubit, required)
        return distance, cycles, required, target

    def _distances(self, lowest: int) -> list[int]:
        return list(range(lowest, self.scheme.max_distance + 1, 2))[::-1]

    # -- single point under maxDuration
    def with_max_duration(self, max_duration: int) -> _Result:
        lowest, cycles, required, target = self._initial()
        too_small = QECError.of(
            "max-duration-too-small",
            "No solution found for the provided maximum duration.",
            qre_code="Qdk.Qsc.Estimates.MaxDurationTooSmall",
        )
        if self.num_magic_states == 0:
            patch = self.patch(lowest)
            if cycles * patch.cycle_time <= max_duration:
                return self.result(patch, cycles, None, 0, None, required)
            raise too_small
        best: _Result | None = None
        factories: list[TFactory] = []
        last: int | None = None
        for distance in self._distances(lowest):
            patch = self.patch(distance)
            by_duration = math.floor(max_duration / patch.cycle_time)
            if by_duration < cycles:
                continue
            by_error = self.cycles_for_distance(distance)
            if by_error < cycles:
                continue
            allowed = min(by_duration, by_error)
            if last is None or last > distance:
                factories = self.factories(target, distance)
                last = max((f.max_distance for f in factories), default=None)
            for factory in factories:
                if _ceil_div(factory.duration, patch.cycle_time) > allowed:
                    continue
                copies = self.num_factories(patch, factory, allowed)
                if copies is None:
                    continue
                used = max(self.cycles_for_states(copies, factory, patch), cycles)
                if self.cons.max_t_factories is not None and copies > self.cons.max_t_factories:
                    continue
                result = self.result(patch, used, factory, copies, target, required)
                if best is None or result.physical_qubits < best.physical_qubits:
                    best = result
        if best is None:
            raise too_small
        return best

    # -- single point under maxPhysicalQubits
    def with_max_qubits(self, max_qubits: int) -> _Result:
        lowest, cycles, required, target = self._initial()
        too_small = QECError.of(
            "max-qubits-too-small",
            "No solution found for the provided maximum number of physical qubits.",
            qre_code="Qdk.Qsc.Estimates.MaxPhysicalQubitsTooSmall",
        )
        if self.num_magic_states == 0:
            patch = self.patch(lowest)
            if self.algorithm_qubits(patch) <= max_qubits:
                return self.result(patch, cycles, None, 0, None, required)
            raise too_small
        best: _Result | None = None
        factories: list[TFactory] = []
        last: int | None = None
        for distance in self._distances(lowest):
            patch = self.patch(distance)
            for_algorithm = self.algorithm_qubits(patch)
            if max_qubits <= for_algorithm:
                continue
            room = max_qubits - for_algorithm
            by_error = self.cycles_for_distance(distance)
            if by_error < cycles:
                continue
            if last is None or last > distance:
                factories = self.factories(target, distance)
                last = max((f.max_distance for f in factories), default=None)
            fitting = [f for f in factories if f.physical_qubits <= room]
            if not fitting:
                continue
            factory = _first_min(fitting, lambda f: f.normalized_volume)
            copies = room // factory.physical_qubits
            if copies == 0:
                continue
            used = max(self.cycles_for_states(copies, factory, patch), cycles)
            if used > by_error:
                continue
            if self.cons.max_t_factories is not None and copies > self.cons.max_t_factories:
                continue
            result = self.result(patch, used, factory, copies, target, required)
            if best is None or result.runtime < best.runtime:
                best = result
        if best is None:
            raise too_small
        return best

    # -- the frontier
    def frontier(self) -> list[_Result]:
        cycles = self.num_cycles()
        required = self.required_rate(cycles)
        target = _div(self.budget.tstates, float(self.num_magic_states))
        lowest = distance_for(self.scheme, self.qubit, required)
        if self.num_magic_states == 0:
            return [self.result(self.patch(lowest), cycles, None, 0, None, required)]
        # Each point is (physical qubits, runtime, what makes its result): the figures of
        # :meth:`result`, computed here; only the points on the frontier become results.
        points: list[tuple[float, int, tuple[Patch, int, TFactory, int]]] = []
        factories: list[TFactory] = []
        last: int | None = None
        states = self.num_magic_states
        for distance in self._distances(lowest):
            if last is None or last > distance:
                factories = self.factories(target, distance)
                last = max((f.max_distance for f in factories), default=None)
            patch = self.patch(distance)
            allowed = self.cycles_for_distance(distance)
            if allowed < cycles:
                continue
            for_algorithm = self.algorithm_qubits(patch)
            cycle_time = patch.cycle_time
            for factory in factories:
                if _ceil_div(factory.duration, cycle_time) > allowed:
                    continue
                copies = self.num_factories(patch, factory, allowed)
                if copies is None:
                    continue
                while True:
                    runs = _ceil_div(states, copies * factory.num_output_states)
                    needed = _ceil_div(runs * factory.duration, cycle_time)  # cycles_for_states
                    used = max(needed, cycles)
                    qubits = for_algorithm + factory.physical_qubits * copies
                    points.append(
                        (float(qubits), cycle_time * used, (patch, used, factory, copies))
                    )
                    if needed <= cycles or runs <= 1:
                        break
                    copies += 1
        return [
            self.result(patch, used, factory, copies, target, required)
            for patch, used, factory, copies in _pareto(points)
        ]


def _saturating_u64(value: float) -> int:
    """Rust's ``f64 as u64`` after ``floor``: NaN -> 0, negatives -> 0, huge -> u64::MAX."""
    if math.isnan(value) or value <= 0:
        return 0
    if value >= _U64:
        return _U64 - 1
    return math.floor(value)


def _first_min(items: Sequence[Any], key: Any) -> Any:
    best = items[0]
    best_key = key(best)
    for item in items[1:]:
        k = key(item)
        if k < best_key:
            best, best_key = item, k
    return best


_Point = TypeVar("_Point")


def _dominated(points: Sequence[tuple[float, int, Any]]) -> list[bool]:
    """For each point, whether another is no worse in both figures and better in one.

    One sweep in order of the first figure: a point is dominated by one with a smaller
    first figure and a second no larger, or by one with the same first figure and a
    smaller second (``O(n log n)`` where comparing every pair is ``O(n^2)``).
    """
    flags = [False] * len(points)
    order = sorted(range(len(points)), key=lambda i: points[i][0])
    below = math.inf  # the least second figure among smaller first figures
    start = 0
    while start < len(order):
        first = points[order[start]][0]
        stop = start
        while stop < len(order) and points[order[stop]][0] == first:
            stop += 1
        group = order[start:stop]
        least = min(points[i][1] for i in group)
        for i in group:
            second = points[i][1]
            flags[i] = below <= second or least < second
        below = min(below, least)
        start = stop
    return flags


def _pareto(points: list[tuple[float, int, _Point]]) -> list[_Point]:
    # QRE's filter: a dominated point swaps with the last kept one; the flags depend on
    # the set of points only, so they are computed once (the order of ties is QRE's).
    dominated = _dominated(points)
    order = list(range(len(points)))
    idx, length = 0, len(order)
    while idx < length:
        if dominated[order[idx]]:
            order[idx], order[length - 1] = order[length - 1], order[idx]
            length -= 1
        else:
            idx += 1
    kept = [points[i] for i in order[:length]]
    kept.sort(key=lambda p: (p[0], p[1]), reverse=True)
    return [p[2] for p in kept]
