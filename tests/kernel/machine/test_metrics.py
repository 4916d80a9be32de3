"""The metrics' formulas on small traces, and on a schedule worked out by hand."""

from __future__ import annotations

import math

import pytest

from qmk.execution.footprint import Footprint, Step
from qmk.kernel.machine import metrics
from qmk.kernel.machine.jobs import JobSpec
from qmk.kernel.machine.simulate import simulate
from qmk.kernel.machine.spec import MachineSpec


def test_utilization_is_busy_over_available_tile_cycles_overall_and_per_epoch():
    trace = [(0.0, 4), (10.0, 10), (20.0, 0)]  # 4 tiles for 10 cycles, 10 for 10, none
    assert metrics.busy(trace, 0.0, 30.0) == 140
    assert metrics.utilization(trace, capacity=10, start=0.0, end=30.0) == pytest.approx(140 / 300)
    spans = metrics.series(trace, capacity=10, start=0.0, end=30.0, width=10.0)
    assert spans == [(0.0, 0.4), (10.0, 1.0), (20.0, 0.0)]
    # a span cut by a change inside it
    assert metrics.series(trace, capacity=10, start=0.0, end=30.0, width=15.0) == [
        (0.0, pytest.approx((40 + 50) / 150)),
        (15.0, pytest.approx(50 / 150)),
    ]


def test_jain_is_one_when_shares_follow_quotas_and_one_over_n_when_one_tenant_has_all():
    assert metrics.jain({"a": 0.25, "b": 0.75}, {"a": 1.0, "b": 3.0}) == pytest.approx(1.0)
    assert metrics.jain({"a": 1.0, "b": 0.0, "c": 0.0}, {}) == pytest.approx(1 / 3)
    # x = (0.8/0.5, 0.2/0.5) = (1.6, 0.4): (2.0)^2 / (2 * (2.56 + 0.16))
    assert metrics.jain({"a": 0.8, "b": 0.2}, {}) == pytest.approx(4.0 / 5.44)


def test_slowdown_percentile_stp_and_throughput():
    assert metrics.percentile([3.0, 1.0, 2.0, 10.0], 0.95) == 10.0
    assert metrics.percentile(list(map(float, range(1, 101))), 0.95) == 95.0
    assert metrics.stp([10.0, 10.0], [10.0, 20.0]) == pytest.approx(1.5)
    # 4 jobs in 1000 cycles of 1 us: 4 jobs per ms
    assert metrics.throughput(4, 1000, 1000) == pytest.approx(4000.0)


def test_a_schedules_metrics_follow_from_its_records():
    # 20 tiles; four 10-tile jobs of 100 cycles, two tenants, all at 0: fair-share runs
    # two at a time (makespan 200, tiles always full), exclusive one (makespan 400,
    # half the tiles busy); slowdowns under fair-share 1, 1, 2, 2
    fp = Footprint(
        target="t",
        logical_qubits=4,
        block="fast",
        data_tiles=8,
        routing_tiles=2,
        code_distance=9,
        steps=(Step(kind="idle", cycles=100),),
    )
    jobs = [
        JobSpec(id=f"j{i}", tenant="ab"[i % 2], footprint=fp, arrival_cycle=0) for i in range(4)
    ]
    machine = MachineSpec.simple(tiles=20)
    runs = simulate(machine, jobs, ["exclusive", "fair-share"], tenants={"a": 1.0, "b": 1.0})
    fair = runs["fair-share"].to_json()
    alone = runs["exclusive"].to_json()
    assert (fair["makespan_cycles"], alone["makespan_cycles"]) == (200, 400)
    assert fair["utilization"]["tiles"] == pytest.approx(1.0)
    assert alone["utilization"]["tiles"] == pytest.approx(0.5)
    assert fair["speedup_vs_exclusive"] == pytest.approx(2.0)
    assert fair["mean_slowdown"] == pytest.approx(1.5)
    assert fair["p95_slowdown"] == pytest.approx(2.0)
    assert alone["mean_slowdown"] == pytest.approx((1 + 2 + 3 + 4) / 4)
    assert fair["tenant_shares"] == {"a": 0.5, "b": 0.5}
    assert fair["jain_fairness"] == pytest.approx(1.0)
    assert fair["throughput_jobs_per_s"] == pytest.approx(4 / (200 * 3600e-9))
    assert fair["stp"] == pytest.approx(1 + 1 + 0.5 + 0.5)


def test_a_gauge_integrates_as_it_goes_and_its_series_is_the_traces():
    trace = [(0.0, 4), (10.0, 10), (20.0, 0), (35.0, 3)]
    gauge = metrics.Gauge(width=10.0)
    gauge.start(0.0)
    for time, value in trace:
        gauge.set(time, value)
    assert gauge.busy(40.0) == metrics.busy(trace, 0.0, 40.0) == 155
    assert gauge.utilization(capacity=10, end=40.0) == pytest.approx(155 / 400)
    assert gauge.series(capacity=10, end=40.0) == metrics.series(
        trace, capacity=10, start=0.0, end=40.0, width=10.0
    )


def test_a_gauge_holds_at_most_its_spans_merging_them_as_its_history_grows():
    # 1 busy from 0 to 1000, 0 after; spans of 10 at first, 4 of them at most: by 1000
    # they are spans of 320 (10 doubled 5 times), and the series says so
    gauge = metrics.Gauge(width=10.0, spans=4)
    gauge.start(0.0)
    gauge.set(0.0, 1)
    gauge.set(1000.0, 0)
    assert len(gauge.bins) <= 4 and gauge.width == 320.0
    trace = [(0.0, 1), (1000.0, 0)]
    assert gauge.series(capacity=1, end=1100.0) == metrics.series(
        trace, capacity=1, start=0.0, end=1100.0, width=320.0
    )
    assert gauge.utilization(capacity=1, end=1100.0) == pytest.approx(1000 / 1100)
    # asked past what its spans hold, the series merges a copy (the gauge keeps its own)
    assert [t for t, _ in gauge.series(capacity=1, end=5000.0)] == [0.0, 1280.0, 2560.0, 3840.0]
    assert gauge.width == 320.0


def test_a_sketch_gives_each_quantile_within_its_relative_error_in_bounded_buckets():
    import random

    rng = random.Random(20260512)
    values = [1.0 + rng.expovariate(0.2) * rng.choice((1, 10, 100)) for _ in range(20_000)]
    sketch = metrics.Sketch()
    for value in values:
        sketch.add(value)
    for q in (0.5, 0.9, 0.95, 0.99, 1.0):
        exact = metrics.percentile(values, q)
        assert abs(sketch.quantile(q) - exact) <= metrics.SKETCH_ERROR * exact * (1 + 1e-9)
    assert sketch.mean == pytest.approx(metrics.mean(values))
    # buckets: log(max / min) / log(gamma), whatever the count
    spread = math.log(max(values) / min(values)) / sketch.log_gamma
    assert len(sketch.buckets) <= spread + 2 < 1000
    tight = metrics.Sketch(buckets=8)
    for value in values:
        tight.add(value)
    assert len(tight.buckets) == 8  # the lowest merged: the top keeps its accuracy
    top = metrics.percentile(values, 1.0)
    assert abs(tight.quantile(1.0) - top) <= metrics.SKETCH_ERROR * top * (1 + 1e-9)


def test_an_error_under_the_residue_bound_prints_as_0_and_one_at_it_as_itself():
    assert metrics.error_text(0.0) == "0"
    assert metrics.error_text(math.nextafter(metrics.ERROR_RESIDUE, 0.0)) == "0"
    assert metrics.error_text(metrics.ERROR_RESIDUE) == "1.0e-15"
    assert metrics.error_text(3.14e-4, 2) == "3.14e-04"
