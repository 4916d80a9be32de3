"""Every FENCE_EPOCH is a pause point, whatever follows it: a program of gates and fences
whose only measurements are terminal (the shape of every QASM or Qiskit circuit) stops,
checkpoints and rolls back at its fences, saves the engine state at the fence, and
resumed gives the bits of a run that never stopped; a ``stim-batch`` run pauses between
its chunks of shots."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from qmk.engines import EngineError, make_engine
from qmk.engines.gates import unitary
from qmk.execution import batch, executor
from qmk.execution.checkpoint import ExecutionState
from qmk.execution.parts import merge, split
from qmk.execution.request import program_digest
from qmk.execution.runs import build_request, run
from qmk.execution.trajectories import CHECKPOINT, YIELD, YIELD_NOW, Suspended
from qmk.qvm.asm import assemble
from qmk.qvm.sorted_text import canonical_graph_text
from support.exact import assert_distribution
from support.kernel import FENCED_CLIFFORD, GATES_THEN_MEASURE

#: The gates of each epoch of GATES_THEN_MEASURE (qubit k is q<k>).
EPOCHS = [
    [("h", (0,), ()), ("t", (0,), ()), ("ry", (1,), (0.8,))],
    [("cx", (0, 1), ()), ("rx", (2,), (1.9,)), ("h", (0,), ())],
    [("cx", (1, 2), ()), ("t", (2,), ()), ("h", (2,), ())],
]
OPTIONS: dict[str, Any] = {"shots": 3000, "seed": 29, "engine": "statevector", "noise": False}


def exact_state(epochs: int) -> np.ndarray:
    """The three qubits' state after the gates of the first ``epochs`` epochs."""
    gates = [g for epoch in EPOCHS[:epochs] for g in epoch]
    return unitary(gates, 3)[:, 0]


class Asks:
    """A control that answers ``answers[epoch]`` at each fence (once), records every fence
    it is asked at, asks to stop now before micro-op ``stop_op`` (0: never), and keeps
    what was saved (through the file format)."""

    def __init__(self, answers: dict[int, str] | None = None, stop_op: int = 0) -> None:
        self.answers = dict(answers or {})
        self.stop_op = stop_op
        self.asked: list[int] = []
        self.saved: list[ExecutionState] = []
        self.ops = 0

    @property
    def urgent(self) -> bool:
        return self.stop_op > 0

    def at_fence(self, epoch: int) -> str | None:
        self.asked.append(epoch)
        return self.answers.pop(epoch, None)

    def at_op(self) -> str | None:
        self.ops += 1
        return YIELD_NOW if self.ops == self.stop_op and not self.saved else None

    def after_segment(self) -> str | None:
        return None

    def save(self, state: ExecutionState) -> None:
        self.saved.append(ExecutionState.from_bytes(state.to_bytes()))


def test_a_gates_then_measurements_program_is_asked_at_every_fence() -> None:
    control = Asks()
    asked = run(GATES_THEN_MEASURE, control=control, **OPTIONS)
    assert control.asked == [1, 2]
    assert asked.counts == run(GATES_THEN_MEASURE, **OPTIONS).counts
    expected = np.abs(exact_state(3)) ** 2
    assert_distribution(
        asked.counts, {format(i, "03b"): float(p) for i, p in enumerate(expected)}, 3000
    )


@pytest.mark.parametrize("epoch", [1, 2])
def test_stopped_at_a_fence_it_saves_the_state_there_and_resumes_bit_for_bit(epoch: int) -> None:
    whole = run(GATES_THEN_MEASURE, **OPTIONS)
    control = Asks({epoch: YIELD})
    with pytest.raises(Suspended):
        run(GATES_THEN_MEASURE, control=control, **OPTIONS)
    (state,) = control.saved
    assert state.epoch == epoch
    # the engine state saved is the state at that fence: every gate before it, none after
    (branch,) = state.branches
    engine = make_engine("statevector", seed=0)
    engine.restore(branch.snapshot)
    saved = engine.state_vector([branch.qmap[f"q{k}"] for k in range(3)])
    assert math.isclose(abs(np.vdot(exact_state(epoch), saved)), 1.0, abs_tol=1e-9)
    resumed = run(GATES_THEN_MEASURE, resume=state, **OPTIONS)
    assert np.array_equal(resumed.bits, whole.bits)
    assert resumed.telemetry.resumed_from_epoch == epoch
    assert resumed.telemetry.preempted_at_epochs == (epoch,)


def test_an_in_process_run_digests_its_program_for_the_key_of_the_state_it_saves() -> None:
    # runs.run builds its request without the digest (nobody reads it there); the state
    # it saves carries the key of the digested request a kernel worker runs
    control = Asks({1: YIELD})
    with pytest.raises(Suspended):
        run(GATES_THEN_MEASURE, control=control, **OPTIONS)
    (state,) = control.saved
    program = executor.load_program(GATES_THEN_MEASURE)
    assert build_request(program, digest=False, **OPTIONS).program_digest == ""
    digested = build_request(program, **OPTIONS)
    assert digested.program_digest == program_digest(canonical_graph_text(program.graph))
    resumed = executor.execute(program, digested, resume=state)
    assert np.array_equal(resumed.bits, run(GATES_THEN_MEASURE, **OPTIONS).bits)


def test_checkpoints_that_go_on_change_nothing_and_each_resumes_to_the_same_bits() -> None:
    whole = run(GATES_THEN_MEASURE, **OPTIONS)
    control = Asks({1: CHECKPOINT, 2: CHECKPOINT})
    checked = run(GATES_THEN_MEASURE, control=control, **OPTIONS)
    assert np.array_equal(checked.bits, whole.bits)
    assert checked.telemetry.checkpoints == 2 and [s.epoch for s in control.saved] == [1, 2]
    for state in control.saved:
        assert np.array_equal(run(GATES_THEN_MEASURE, resume=state, **OPTIONS).bits, whole.bits)


def test_a_stop_now_before_the_last_fence_rolls_the_segment_back_and_resumes_exactly() -> None:
    whole = run(GATES_THEN_MEASURE, **OPTIONS)
    # micro-ops one by one: alloc x3, h, t, ry, fence 1, cx, rx, h, fence 2 (the rest is
    # the tail after the last fence): stop before the 10th (h), after cx and rx
    control = Asks(stop_op=10)
    with pytest.raises(Suspended):
        run(GATES_THEN_MEASURE, control=control, **OPTIONS)
    (state,) = control.saved
    assert state.epoch == 1  # the segment began at fence 1, where the state goes back to
    (branch,) = state.branches
    engine = make_engine("statevector", seed=0)
    engine.restore(branch.snapshot)
    saved = engine.state_vector([branch.qmap[f"q{k}"] for k in range(3)])
    assert math.isclose(abs(np.vdot(exact_state(1), saved)), 1.0, abs_tol=1e-9)
    resumed = run(GATES_THEN_MEASURE, resume=state, **OPTIONS)
    assert np.array_equal(resumed.bits, whole.bits)
    assert (resumed.telemetry.rollbacks, resumed.telemetry.rollback_gates) == (1, 2)


def test_a_noisy_part_stopped_at_a_fence_resumes_and_the_parts_merge_to_the_whole_run() -> None:
    noisy = {**OPTIONS, "noise": True, "profile": "logical:surface_code(d=3)"}
    noisy["qubit"] = "qubit_gate_us_e3"
    whole = run(GATES_THEN_MEASURE, **noisy)
    assert whole.telemetry.injected_logical_errors > 0
    pieces = []
    for part in split(2):
        control = Asks({2: YIELD})
        try:
            pieces.append(run(GATES_THEN_MEASURE, control=control, part=part, **noisy))
        except Suspended:
            (state,) = control.saved
            pieces.append(run(GATES_THEN_MEASURE, resume=state, part=part, **noisy))
    merged = merge(pieces)
    assert np.array_equal(merged.bits, whole.bits)
    assert merged.telemetry.resumed_from_epoch == 2


def test_each_epoch_of_a_gates_then_measurements_program_is_passed_once_in_its_spans() -> None:
    from qmk.execution.spans import recording

    with recording("00-" + "ab" * 16 + "-" + "cd" * 8 + "-01", seed=1) as recorder:
        assert recorder is not None
        run(GATES_THEN_MEASURE, **OPTIONS)
    epochs = [r for r in recorder.records if r.name == "qmk.epoch"]
    # one group, one branch: every epoch passed once, the fences one micro-op at a time
    assert sorted(int(e.attributes["qmk.epoch"]) for e in epochs) == [0, 1, 2]
    assert all(e.attributes["qmk.passes"] == 1 for e in epochs)
    assert all("qmk.tail" not in e.attributes for e in epochs)


def test_fences_after_the_last_measurement_hold_no_measurement_back() -> None:
    # nothing but frees after the last fence: no work is left to pause before, so the
    # terminal measurements are still sampled at once from one simulation
    trailing = assemble(
        ".caps CAP_ALLOC\na: ALLOC_LQ vq:q0, vq:q1\nh: APPLY_H vq:q0\nf1: FENCE_EPOCH\n"
        "c: APPLY_CNOT vq:q0, vq:q1\nm0: MEASURE_Z vq:q0, out:m0\nm1: MEASURE_Z vq:q1, out:m1\n"
        "f2: FENCE_EPOCH\nfree: FREE_LQ vq:q0, vq:q1\nf3: FENCE_EPOCH\n"
    )
    control = Asks()
    result = run(trailing, control=control, **OPTIONS)
    assert control.asked == [1]
    assert result.telemetry.simulations == 1
    assert set(result.counts) == {"00", "11"}


def test_a_qasm_circuit_with_barriers_pauses_at_each_barrier(tmp_path: Path) -> None:
    source = tmp_path / "barriers.qasm"
    source.write_text(
        'OPENQASM 2.0;\ninclude "qelib1.inc";\nqreg q[2];\ncreg c[2];\n'
        "h q[0];\nt q[0];\nbarrier q;\ncx q[0],q[1];\nbarrier q;\nh q[1];\n"
        "measure q -> c;\n"
    )
    options = {**OPTIONS, "shots": 500}
    whole = run(source, **options)
    control = Asks({2: YIELD})
    with pytest.raises(Suspended):
        run(source, control=control, **options)
    assert control.asked == [1, 2]
    assert run(source, resume=control.saved[0], **options).counts == whole.counts


# --------------------------------------------------------------------------- stim-batch

CLIFFORD = FENCED_CLIFFORD
NOISY_CLIFFORD: dict[str, Any] = {
    "seed": 13,
    "profile": "logical:surface_code(d=3)",
    "qubit": "qubit_gate_us_e3",
}
#: Two chunk boundaries: three passes of the batch sampler.
CHUNKED = 2 * batch.CHUNK_SHOTS + 7


def test_a_stim_batch_run_of_a_fenced_program_is_asked_between_its_chunks() -> None:
    control = Asks()
    asked = run(CLIFFORD, shots=CHUNKED, control=control, **NOISY_CLIFFORD)
    assert asked.telemetry.mode == "stim-batch"
    assert control.asked == [2, 2]  # between chunks 0-1 and 1-2, at the program's last epoch
    assert np.array_equal(asked.bits, run(CLIFFORD, shots=CHUNKED, **NOISY_CLIFFORD).bits)
    one_chunk = Asks()
    run(CLIFFORD, shots=batch.CHUNK_SHOTS, control=one_chunk, **NOISY_CLIFFORD)
    assert one_chunk.asked == []  # one pass: no pause point inside it


def test_a_stim_batch_run_without_a_fence_is_never_asked() -> None:
    unfenced = assemble(
        ".caps CAP_ALLOC\na: ALLOC_LQ vq:q0, vq:q1\nh: APPLY_H vq:q0\n"
        "c: APPLY_CNOT vq:q0, vq:q1\nm0: MEASURE_Z vq:q0, out:m0\nm1: MEASURE_Z vq:q1, out:m1\n"
    )
    control = Asks()
    run(unfenced, shots=CHUNKED, control=control, **NOISY_CLIFFORD)
    assert control.asked == []


@pytest.mark.parametrize("stop_at", [1, 2])
def test_a_stim_batch_run_stopped_between_chunks_resumes_bit_for_bit(stop_at: int) -> None:
    whole = run(CLIFFORD, shots=CHUNKED, **NOISY_CLIFFORD)
    assert whole.telemetry.injected_logical_errors > 0
    answers = [None] * (stop_at - 1) + [YIELD]

    class StopAtBoundary(Asks):
        def at_fence(self, epoch: int) -> str | None:
            self.asked.append(epoch)
            return answers[len(self.asked) - 1] if len(self.asked) <= len(answers) else None

    control = StopAtBoundary()
    with pytest.raises(Suspended):
        run(CLIFFORD, shots=CHUNKED, control=control, **NOISY_CLIFFORD)
    (state,) = control.saved
    assert state.group == stop_at and state.epoch == 2
    resumed = run(CLIFFORD, shots=CHUNKED, resume=state, **NOISY_CLIFFORD)
    assert resumed.telemetry.mode == "stim-batch"
    assert np.array_equal(resumed.bits, whole.bits)
    assert resumed.telemetry.injected_logical_errors == whole.telemetry.injected_logical_errors
    assert resumed.telemetry.resumed_from_epoch == 2
    assert resumed.telemetry.preempted_at_epochs == (2,)
    with pytest.raises(EngineError) as err:
        run(CLIFFORD, shots=CHUNKED, resume=state, **{**NOISY_CLIFFORD, "seed": 14})
    assert err.value.code == "QE106"


def test_a_run_of_at_most_one_chunk_is_the_one_pass_it_always_was() -> None:
    lowered, sampler = _clifford_batch(noise=True)
    for shots, chunk in ((1000, 1000), (1000, batch.CHUNK_SHOTS)):
        one, injected = batch.sample(lowered, sampler, shots, 5, np.random.default_rng(3))
        chunked, same, progress = batch.sample_chunked(
            lowered, sampler, shots, 5, np.random.default_rng(3), chunk=chunk
        )
        assert np.array_equal(one, chunked) and injected == same
        assert progress.simulations == 1
    # in chunks of 400: chunk k is one pass of 400 shots under chunk_seed(5, k)
    three, injected3, _ = batch.sample_chunked(
        lowered, sampler, 1000, 5, np.random.default_rng(3), chunk=400
    )
    assert injected3 == injected and three.shape == one.shape
    clean, clean_sampler = _clifford_batch(noise=False)
    rows, _, _ = batch.sample_chunked(
        clean, clean_sampler, 1000, 5, np.random.default_rng(3), chunk=400
    )
    for k, (lo, hi) in enumerate(((0, 400), (400, 800), (800, 1000))):
        alone, _ = clean_sampler.sample(
            hi - lo, batch.chunk_seed(5, k), clean.event_columns, clean.herald_columns
        )
        assert np.array_equal(rows[lo:hi], alone)


def _clifford_batch(*, noise: bool) -> tuple[Any, Any]:
    """The Clifford program lowered for stim (with its noise sites where ``noise``), and
    its compiled sampler."""
    from qmk.engines import engine_class
    from qmk.engines.batch import batch_compiler
    from qmk.execution.executor import load_program
    from qmk.execution.plan import build_plan

    plan = build_plan(
        load_program(CLIFFORD),
        noise=noise,
        qubit="qubit_gate_us_e3",
        default_profile="logical:surface_code(d=3)",
    )
    lowered = batch.lower(plan)
    assert lowered is not None and bool(lowered.sites) == noise
    compiler = batch_compiler(engine_class("stabilizer"))
    assert compiler is not None
    sampler = compiler(lowered.circuit)
    assert sampler is not None
    return lowered, sampler


def test_a_noisy_chunked_run_is_each_chunk_sampled_alone_with_the_errors_that_strike_it() -> None:
    from qmk.engines.batch import Errors

    lowered, sampler = _clifford_batch(noise=True)
    shots, chunk, seed = 5000, 1200, 5
    chunked, injected, _ = batch.sample_chunked(
        lowered, sampler, shots, seed, np.random.default_rng(3), chunk=chunk
    )
    # the errors every shot takes are drawn first, from the run's noise stream
    probs = np.array([(loc.px, loc.py, loc.pz) for loc in lowered.sites])
    errors = batch.draw_errors(probs, shots, np.random.default_rng(3))
    assert injected == len(errors) > 0
    for k, lo in enumerate(range(0, shots, chunk)):
        hi = min(shots, lo + chunk)
        mine = (errors.shots >= lo) & (errors.shots < hi)
        alone, _ = sampler.sample(
            hi - lo,
            batch.chunk_seed(seed, k),
            lowered.event_columns,
            lowered.herald_columns,
            Errors(
                shots=errors.shots[mine] - lo, sites=errors.sites[mine], paulis=errors.paulis[mine]
            ),
        )
        assert np.array_equal(chunked[lo:hi], alone)


def test_each_checkpoint_between_chunks_holds_the_bits_of_the_chunks_done_and_zeros_after() -> None:
    lowered, sampler = _clifford_batch(noise=True)
    shots, chunk = 5000, 1200
    whole, injected, _ = batch.sample_chunked(
        lowered, sampler, shots, 5, np.random.default_rng(3), chunk=chunk
    )

    class EveryChunk(Asks):
        def at_fence(self, epoch: int) -> str | None:
            self.asked.append(epoch)
            return CHECKPOINT if len(self.asked) % 2 else None  # once per pause point

    control = EveryChunk()
    bits, same, progress = batch.sample_chunked(
        lowered, sampler, shots, 5, np.random.default_rng(3), chunk=chunk, fences=2,
        control=control, key="k", engine_name="stabilizer",
    )  # fmt: skip
    assert np.array_equal(bits, whole) and same == injected
    assert [state.group for state in control.saved] == [1, 2, 3, 4]
    assert progress.checkpoints == 4
    for state in control.saved:
        done = state.group * chunk
        assert np.array_equal(state.bits[:done], whole[:done])
        assert not state.bits[done:].any()
        resumed, again, _ = batch.sample_chunked(
            lowered, sampler, shots, 5, np.random.default_rng(3), chunk=chunk, resume=state,
            key="k",
        )  # fmt: skip
        assert np.array_equal(resumed, whole) and again == injected


def test_a_run_saved_on_one_set_of_kernels_resumes_on_the_other() -> None:
    # which kernels run depends on what the process compiled already (a fresh one runs a
    # tiny job on numpy), so a checkpoint must not be tied to them
    pytest.importorskip("llvmlite")
    numpy_run = {**OPTIONS, "engine_options": {"kernels": "numpy"}}
    whole = run(GATES_THEN_MEASURE, **numpy_run)
    control = Asks({1: YIELD})
    with pytest.raises(Suspended):
        run(GATES_THEN_MEASURE, control=control, **numpy_run)
    (state,) = control.saved
    compiled_run = {**OPTIONS, "engine_options": {"kernels": "simd"}}
    resumed = run(GATES_THEN_MEASURE, resume=state, **compiled_run)
    assert resumed.telemetry.resumed_from_epoch == 1
    expected = np.abs(exact_state(3)) ** 2
    assert_distribution(
        resumed.counts, {format(i, "03b"): float(p) for i, p in enumerate(expected)}, 3000
    )
    assert sum(whole.counts.values()) == sum(resumed.counts.values()) == 3000
