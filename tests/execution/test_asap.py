"""The ASAP schedule of gate rows: its compiled loop and its Python loop agree bit for bit."""

from __future__ import annotations

from array import array

import numpy as np
import pytest

from qmk.execution import asap


def random_rows(seed: int, rows: int, qubits: int) -> tuple[np.ndarray, np.ndarray]:
    """``rows`` rows on one to three distinct qubits of ``qubits``, with cycles that are
    not whole numbers (so that sums round), at seed ``seed``."""
    rng = np.random.default_rng(seed)
    arity = rng.integers(1, 4, size=rows)
    picked = np.argsort(rng.random((rows, qubits)), axis=1)[:, :3]
    picked[arity < 2, 1] = -1
    picked[arity < 3, 2] = -1
    cycles = rng.random(rows) * 3.0 + rng.integers(0, 2, size=rows)
    return picked.astype(np.int64), cycles


def scheduled(
    kernel: str, seed: int, rows: int, fence: float, dtype: type = np.int64
) -> tuple[float, list[float], list[float], list[float], list[float]]:
    qubits, cycles = random_rows(seed, rows, 17)
    qubits = qubits.astype(dtype)
    clock = [float(x) for x in np.random.default_rng(seed + 1).random(17) * 5.0]
    starts, ends = array("d", bytes(8 * (rows + 3))), array("d", bytes(8 * (rows + 3)))
    waits = np.full(int(np.count_nonzero(qubits >= 0)) + 2, -1.0)  # (two places past)
    latest = asap.schedule(
        clock, qubits, cycles, (starts, ends), 3, fence, 0.5, waits=waits, kernel=kernel
    )
    return latest, clock, list(starts), list(ends), waits.tolist()


def compiled_or_skip(bits: int = 64) -> None:
    if asap.compiled(bits) is None:
        pytest.skip(f"no compiled schedule here: {asap.unavailable_reason()}")


@pytest.mark.parametrize(("seed", "rows", "fence"), [(1, 1, 0.0), (2, 5000, 0.0), (3, 70_000, 4.5)])
def test_the_compiled_schedule_equals_the_python_loop_bit_for_bit(
    seed: int, rows: int, fence: float
) -> None:
    compiled_or_skip()
    assert scheduled("compiled", seed, rows, fence) == scheduled("python", seed, rows, fence)


@pytest.mark.parametrize(("dtype", "bits"), [(np.int16, 16), (np.int32, 32)])
def test_qubit_columns_of_16_and_32_bits_are_scheduled_as_they_are_bit_for_bit(
    dtype: type, bits: int
) -> None:
    compiled_or_skip(bits)
    wide = scheduled("python", 5, 70_000, 1.5)
    assert scheduled("compiled", 5, 70_000, 1.5, dtype) == wide
    assert scheduled("python", 5, 70_000, 1.5, dtype) == wide


def test_a_row_starts_at_the_latest_of_the_fence_and_its_qubits_clocks() -> None:
    for kernel in ("python", "compiled"):
        if kernel == "compiled":
            compiled_or_skip()
        clock = [1.0, 6.0, 2.0, 0.0]
        qubits = np.array([[0, 1, 2], [3, -1, -1], [2, 3, -1]], dtype=np.int64)
        starts, ends = array("d", [0.0] * 3), array("d", [0.0] * 3)
        latest = asap.schedule(
            clock, qubits, np.array([1.5, 2.0, 0.25]), (starts, ends), 0, 4.0, 0.0, kernel=kernel
        )
        # row 0 waits for qubit 1 (6.0); row 1 for the fence (4.0); row 2 for row 1's end
        assert (list(starts), list(ends)) == ([6.0, 4.0, 7.5], [7.5, 6.0, 7.75])
        assert clock == [7.5, 7.5, 7.75, 7.75]
        assert latest == 7.75


@pytest.mark.parametrize("kernel", ["python", "compiled"])
def test_each_row_qubits_wait_is_its_start_less_that_qubits_clock_before_it(kernel: str) -> None:
    if kernel == "compiled":
        compiled_or_skip()
    qubits, cycles = random_rows(6, 70_000, 11)
    clock = [float(x) for x in np.random.default_rng(7).random(11) * 5.0]
    before = list(clock)
    timing = (array("d", bytes(8 * 70_000)), array("d", bytes(8 * 70_000)))
    waits = np.full(int(np.count_nonzero(qubits >= 0)) + 2, -1.0)
    asap.schedule(clock, qubits, cycles, timing, 0, 2.5, 0.0, waits=waits, kernel=kernel)
    expected = []
    for row, start, end in zip(qubits.tolist(), timing[0], timing[1], strict=True):
        for q in row:
            if q >= 0:
                expected.append(start - before[q])
                before[q] = end
    assert waits.tolist() == [*expected, -1.0, -1.0]  # (and nothing written past them)


def test_no_rows_leave_the_clocks_and_the_latest_end_as_they_were() -> None:
    compiled_or_skip()
    clock = [3.0, 1.0]
    none = np.zeros((0, 3), dtype=np.int64)
    timing = (array("d"), array("d"))
    assert asap.schedule(clock, none, np.zeros(0), timing, 0, 9.0, 2.0, kernel="compiled") == 2.0
    assert clock == [3.0, 1.0]


def test_timing_arrays_shorter_than_the_rows_are_refused_before_the_loop_writes() -> None:
    compiled_or_skip()
    qubits, cycles = random_rows(4, 10, 5)
    timing = (array("d", [0.0] * 5), array("d", [0.0] * 5))
    with pytest.raises(IndexError):
        asap.schedule([0.0] * 5, qubits, cycles, timing, 0, 0.0, 0.0, kernel="compiled")
