"""A run in parts (qmk.execution.parts): merged, it is the whole run, bit for bit."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest

from qmk.engines import EngineError
from qmk.execution.checkpoint import ExecutionState
from qmk.execution.parts import SHOTS_PER_SIMULATION, Part, deal, merge, merge_json, split
from qmk.execution.runs import run
from qmk.execution.trajectories import Suspended
from qmk.qec.noise import Depolarizing
from support.kernel import BELL, FENCED

# Noisy enough that a few thousand shots fall into many shot groups (error patterns),
# with a mid-circuit measurement so each group branches.
NOISY: dict[str, Any] = {
    "profile": "logical:surface_code(d=3)",
    "noise": Depolarizing(p=3e-3),
}


@pytest.mark.parametrize("parts", [1, 2, 3, 7, 400])
def test_merged_parts_are_the_whole_run_bit_for_bit_for_any_number_of_parts(parts: int) -> None:
    whole = run(FENCED, shots=3000, seed=11, **NOISY)
    pieces = [run(FENCED, shots=3000, seed=11, part=p, **NOISY) for p in split(parts)]
    merged = merge(pieces[::-1])  # in any order
    assert whole.telemetry.mode == "trajectories" and whole.telemetry.simulations > 50
    assert merged.counts == whole.counts
    assert np.array_equal(merged.bits, whole.bits)
    assert merged.memory == whole.memory
    assert merged.shots == whole.shots == sum(p.shots for p in pieces)
    injected = merged.telemetry.injected_logical_errors
    assert injected == whole.telemetry.injected_logical_errors
    assert merged.telemetry.simulations == whole.telemetry.simulations  # no group twice


def test_parts_share_the_groups_evenly_and_each_holds_whole_groups() -> None:
    pieces = [run(FENCED, shots=3000, seed=11, part=p, **NOISY) for p in split(2)]
    a, b = (p.telemetry.simulations for p in pieces)
    assert abs(a - b) <= max(a, b) // 3  # the error patterns spread over both
    rows = [set(p.rows.tolist()) for p in pieces if p.rows is not None]
    assert rows[0].isdisjoint(rows[1]) and len(rows[0] | rows[1]) == 3000


@pytest.mark.parametrize("parts", [1, 2, 3, 5])
def test_the_deal_gives_every_group_once_and_evens_the_costs_the_big_group_included(
    parts: int,
) -> None:
    rng = np.random.default_rng(7)
    sizes = [900_000, *rng.integers(1, 40, size=300).tolist()]  # error-free + noisy
    shares = deal(sizes, parts)
    assert sorted(g for share in shares for g in share) == list(range(len(sizes)))
    assert all(share == sorted(share) for share in shares)
    costs = [sum(1 + sizes[g] / SHOTS_PER_SIMULATION for g in share) for share in shares]
    assert max(costs) - min(costs) <= 1 + 40 / SHOTS_PER_SIMULATION  # one noisy group
    assert [Part(index=k, of=parts).share(sizes) for k in range(parts)] == shares


def test_the_json_merge_of_parts_has_the_whole_runs_counts_and_totals() -> None:
    whole = run(FENCED, shots=2000, seed=4, **NOISY).to_json()
    merged = merge_json(
        [run(FENCED, shots=2000, seed=4, part=p, **NOISY).to_json() for p in split(3)]
    )
    assert merged["counts"] == whole["counts"]
    assert merged["shots"] == 2000
    for name in ("shots", "injected_logical_errors", "simulations"):
        assert merged["telemetry"][name] == whole["telemetry"][name]


def test_a_one_pass_stim_batch_run_is_done_by_part_zero_and_merges_to_the_whole() -> None:
    whole = run(BELL, shots=5000, seed=2)
    pieces = [run(BELL, shots=5000, seed=2, part=p) for p in split(3)]
    assert whole.telemetry.mode == "stim-batch"
    assert [p.shots for p in pieces] == [5000, 0, 0]
    assert merge(pieces).counts == whole.counts


class _YieldAtFence:
    """A control that stops the run at its second fence, once."""

    urgent = False

    def __init__(self) -> None:
        self.saved: ExecutionState | None = None

    def at_fence(self, epoch: int) -> str | None:
        return "yield" if self.saved is None and epoch == 2 else None

    def at_op(self) -> str | None:
        return None

    def after_segment(self) -> str | None:
        return None

    def save(self, state: Any) -> None:
        self.saved = state


def test_a_part_stopped_at_a_fence_resumes_to_the_same_rows() -> None:
    part = Part(index=1, of=2)
    straight = run(FENCED, shots=1500, seed=8, part=part, **NOISY)
    control = _YieldAtFence()
    with pytest.raises(Suspended):
        run(FENCED, shots=1500, seed=8, part=part, control=control, **NOISY)
    assert control.saved is not None
    state = ExecutionState.from_bytes(control.saved.to_bytes())
    resumed = run(FENCED, shots=1500, seed=8, part=part, resume=state, **NOISY)
    assert np.array_equal(resumed.bits, straight.bits)
    assert resumed.telemetry.resumed_from_epoch == 2
    with pytest.raises(EngineError, match="another run"):  # a state of part 1 is not part 0's
        run(FENCED, shots=1500, seed=8, part=(0, 2), resume=state, **NOISY)


def test_bad_parts_and_bad_merges_are_refused() -> None:
    for bad in ((2, 2), (-1, 2), (0, 0), (0,), "0/2"):
        with pytest.raises(EngineError, match="part"):
            run(BELL, shots=10, seed=1, part=bad)  # type: ignore[arg-type]
    pieces = [run(FENCED, shots=500, seed=3, part=p, **NOISY) for p in split(2)]
    with pytest.raises(EngineError, match="once"):
        merge(pieces[:1])
    with pytest.raises(EngineError, match="once"):
        merge([pieces[0], pieces[0], pieces[1]])
    other = run(FENCED, shots=500, seed=4, part=(1, 2), **NOISY)
    with pytest.raises(EngineError, match="different runs"):
        merge([pieces[0], other])
