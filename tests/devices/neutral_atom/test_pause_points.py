"""A neutral-atom device job pauses between its chunks of shots: a control is asked there,
a saved state resumes to the bits of a job that never stopped (through the file format,
on both backends, with loss and noise), and a state of another job is a coded error."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest

from qmk.devices.neutral_atom.emulator import run_job
from qmk.devices.neutral_atom.shots import CHUNK_SHOTS
from qmk.engines import EngineError
from qmk.execution.checkpoint import ExecutionState
from qmk.execution.trajectories import CHECKPOINT, YIELD, YIELD_NOW, Suspended
from support.neutral_atom import wide_ghz

#: Three chunks of shots (when the job loses no atom: one loss group).
SHOTS = 2 * CHUNK_SHOTS + 5


def job(profile: str, backend: str, *, t_gate: bool = False) -> dict[str, Any]:
    """GHZ on 4 atoms (with a T on atom 0 for the statevector backend to have work)."""
    program: list[dict[str, Any]] = [
        {"op": "AllocArray", "n_qubits": 4},
        {"op": "ApplyGate", "name": "H", "targets": [0]},
    ]
    if t_gate:
        program.append({"op": "ApplyGate", "name": "T", "targets": [0]})
    program += [
        {"op": "ApplyGate", "name": "CX", "targets": [0, 1]},
        {"op": "ApplyGate", "name": "CX", "targets": [1, 2]},
        {"op": "ApplyGate", "name": "CX", "targets": [2, 3]},
        {"op": "ApplyGate", "name": "H", "targets": [3]},
        {"op": "Measure", "targets": [0, 1, 2, 3]},
    ]
    return {
        "job_id": "pause",
        "profile": profile,
        "device_id": backend,
        "shots": SHOTS,
        "seed": 19,
        "program": program,
    }


class Asks:
    """Answers ``answers[k]`` the k-th time it is asked (None after), records where it
    was asked, and keeps what was saved (through the file format)."""

    def __init__(self, *answers: str | None) -> None:
        self.answers = list(answers)
        self.asked: list[int] = []
        self.saved: list[ExecutionState] = []

    urgent = False

    def at_fence(self, epoch: int) -> str | None:
        self.asked.append(epoch)
        return self.answers.pop(0) if self.answers else None

    def at_op(self) -> str | None:
        return None

    def after_segment(self) -> str | None:
        return None

    def save(self, state: ExecutionState) -> None:
        self.saved.append(ExecutionState.from_bytes(state.to_bytes()))


CASES = [
    ("ideal_small_array", "stabilizer", False),
    ("lossy_chain", "auto", False),
    ("noisy_square_array", "auto", False),
    ("ideal_small_array", "state-vector", True),
    ("readout_stress", "state-vector", True),
]


@pytest.mark.parametrize(("profile", "backend", "t_gate"), CASES)
def test_a_device_job_stopped_between_chunks_resumes_to_the_same_bits(
    profile: str, backend: str, t_gate: bool
) -> None:
    wire = job(profile, backend, t_gate=t_gate)
    whole = run_job(wire)
    control = Asks(None, YIELD)  # go on at the first pause point, stop at the second
    with pytest.raises(Suspended):
        run_job(wire, control=control)
    assert control.asked == [1, 2]
    (state,) = control.saved
    assert state.epoch == state.group == 2
    resumed = run_job(wire, resume=state)
    assert np.array_equal(resumed.bits, whole.bits)
    assert resumed.counts() == whole.counts()
    assert resumed.telemetry["resumed_from_epoch"] == 2
    assert resumed.telemetry["preempted_at_epochs"] == [2]
    assert resumed.telemetry["mode"] == whole.telemetry["mode"]


def test_checkpoints_that_go_on_change_nothing_and_each_resumes() -> None:
    wire = job("lossy_chain", "auto")
    whole = run_job(wire)
    control = Asks(CHECKPOINT, CHECKPOINT)
    checked = run_job(wire, control=control)
    assert np.array_equal(checked.bits, whole.bits)
    assert checked.telemetry["checkpoints"] == 2
    for state in control.saved:
        assert np.array_equal(run_job(wire, resume=state).bits, whole.bits)


def test_a_stop_now_stops_at_the_next_pause_point() -> None:
    wire = job("ideal_small_array", "stabilizer")
    control = Asks(YIELD_NOW)
    with pytest.raises(Suspended) as stopped:
        run_job(wire, control=control)
    assert stopped.value.state.epoch == 1
    assert np.array_equal(run_job(wire, resume=control.saved[0]).bits, run_job(wire).bits)


def test_a_wide_statevector_job_pauses_within_what_a_stabilizer_draws_in_one_chunk() -> None:
    # its 4,096 shots were one chunk: a q_checkpoint of it waited for all of them
    wire = wide_ghz(2100, seed=29)
    assert wire["shots"] < CHUNK_SHOTS
    whole = run_job(wire)
    control = Asks(None, YIELD)
    with pytest.raises(Suspended):
        run_job(wire, control=control)
    assert control.asked == [1, 2]
    (state,) = control.saved
    resumed = run_job(wire, resume=state)
    assert np.array_equal(resumed.bits, whole.bits)
    assert resumed.telemetry["mode"] == whole.telemetry["mode"] == "trajectories"


def test_a_job_of_one_chunk_is_never_asked() -> None:
    wire = {**job("ideal_small_array", "stabilizer"), "shots": CHUNK_SHOTS}
    control = Asks(YIELD)
    run_job(wire, control=control)
    assert control.asked == []


def test_a_state_of_another_job_is_refused_with_a_code() -> None:
    wire = job("ideal_small_array", "stabilizer")
    control = Asks(YIELD)
    with pytest.raises(Suspended):
        run_job(wire, control=control)
    with pytest.raises(EngineError) as other_seed:
        run_job({**wire, "seed": 20}, resume=control.saved[0])
    assert other_seed.value.code == "QE106"
    with pytest.raises(EngineError) as other_backend:
        run_job({**wire, "device_id": "state-vector"}, resume=control.saved[0])
    assert other_backend.value.code == "QE106"
