"""A kernel job's waits on the shared machine reach its result as idle logical noise.

A run request's ``machine`` schedule (:class:`~qmk.execution.request.MachineRun`) says
how many logical cycles every qubit live after a node sat idle; the executor puts one
Pauli channel per live qubit there, the code's error for that many cycles (the model's
``1 - (1 - P_L)^W``, split equally among X, Y and Z). Checked against that formula with
a binomial test at stated seeds, on the stabilizer batch sampler and on trajectories.
"""

from __future__ import annotations

import msgspec
import pytest
from scipy import stats

from qmk.execution.footprint import Footprint
from qmk.execution.logical import LogicalTarget
from qmk.execution.request import MachineRun, RunRequest, program_digest
from qmk.qec import logical_model
from qmk.qvm.asm import assemble

PROFILE = "logical:surface_code(d=3)"  # P_L = 3e-4 a cycle on qubit_gate_ns_e3
QUBIT = "qubit_gate_ns_e3"


def _program(body: str, qubits: str = "vq:q") -> str:
    return f".caps CAP_ALLOC\na: ALLOC_LQ {qubits}\n{body}"


def _run(text: str, *, idle: dict[str, float] | None, shots: int, seed: int, noise: bool = True):
    target = LogicalTarget()
    program = target.read(assemble(text))
    request = RunRequest.build(
        program_digest=program_digest(text),
        shots=shots,
        seed=seed,
        noise=noise,
        qubit=QUBIT,
        profile=PROFILE,
    )
    if idle is not None:
        machine = MachineRun(
            arrival_cycle=0,
            start_cycle=0,
            end_cycle=10,
            tiles=9,
            module=0,
            wait_cycles={"factory": int(sum(idle.values()))},
            idle=idle,
        )
        request = msgspec.structs.replace(request, machine=machine)
    return target.compile(program, request).run(shots, seed)


def _flip(cycles: float) -> float:
    """The probability that ``cycles`` logical cycles flip a Z measurement: X or Y of the
    model's channel (``1 - (1 - P_L)^cycles``, a third each)."""
    rates = logical_model(PROFILE, QUBIT).pauli_error(cycles)
    return rates.px + rates.py


def _odd(*flips: float) -> float:
    """The probability of an odd number of independent flips."""
    product = 1.0
    for f in flips:
        product *= 1 - 2 * f
    return (1 - product) / 2


@pytest.mark.parametrize(
    ("body", "ops"),
    [
        ("m: MEASURE_Z vq:q, out:m", ("ALLOC_LQ", "MEASURE_Z")),
        (
            "t: APPLY_T vq:q\ntd: APPLY_TDG vq:q\nm: MEASURE_Z vq:q, out:m",
            ("ALLOC_LQ", "APPLY_T", "APPLY_TDG", "MEASURE_Z"),
        ),
    ],
    ids=["stim-batch", "trajectories"],
)
def test_a_qubit_left_waiting_w_cycles_flips_with_the_models_probability_for_w_cycles(
    body: str, ops: tuple[str, ...]
) -> None:
    waited = 1500.0
    shots = 20_000
    result = _run(_program(body), idle={"a": waited}, shots=shots, seed=20260501)
    model = logical_model(PROFILE, QUBIT)
    expected = _odd(_flip(waited), *(_flip(model.op_cycles(op)) for op in ops))
    flips = result.counts.get("1", 0)
    assert expected == pytest.approx(0.2418, abs=1e-3)  # the waits dominate: visible
    assert stats.binomtest(flips, shots, expected).pvalue > 1e-3
    assert result.telemetry.machine is not None
    assert result.telemetry.machine["wait_cycles"] == {"factory": 1500}


def test_every_qubit_live_after_the_node_waits_and_a_fence_can_carry_the_wait() -> None:
    text = _program(
        "f1: FENCE_EPOCH\nm: MEASURE_Z vq:q, out:m\nn: MEASURE_Z vq:r, out:n", "vq:q, vq:r"
    )
    shots = 20_000
    result = _run(text, idle={"f1": 1000.0}, shots=shots, seed=7)
    model = logical_model(PROFILE, QUBIT)
    each = _odd(_flip(1000.0), _flip(model.op_cycles("ALLOC_LQ")), _flip(1.0))
    ones = {"m": 0, "n": 0}
    for key, count in result.counts.items():
        bits = key.replace(" ", "")
        ones["m"] += count * (bits[-1] == "1")
        ones["n"] += count * (bits[0] == "1")
    for name in ("m", "n"):
        assert stats.binomtest(ones[name], shots, each).pvalue > 1e-3, name


def test_a_wait_after_a_qubits_free_does_not_touch_it() -> None:
    text = _program("m: MEASURE_Z vq:q, out:m\nf: FREE_LQ vq:q")
    with_wait = _run(text, idle={"f": 5000.0}, shots=2000, seed=3)
    without = _run(text, idle=None, shots=2000, seed=3)
    assert with_wait.counts == without.counts


def test_with_noise_off_the_machines_waits_change_nothing() -> None:
    text = _program("h: APPLY_H vq:q\nt: APPLY_T vq:q\nh2: APPLY_H vq:q\nm: MEASURE_Z vq:q, out:m")
    waited = _run(text, idle={"a": 10_000.0, "t": 500.0}, shots=4000, seed=11, noise=False)
    private = _run(text, idle=None, shots=4000, seed=11, noise=False)
    assert waited.counts == private.counts
    assert waited.telemetry.noise_locations == private.telemetry.noise_locations == 0


def test_a_request_with_a_schedule_keeps_it_through_json_and_its_physics() -> None:
    machine = MachineRun(
        arrival_cycle=3,
        start_cycle=100,
        end_cycle=150,
        tiles=9,
        module=0,
        wait_cycles={"queue": 97},
        idle={"a": 2.5},
    )
    request = RunRequest(program_digest="ab" * 32, shots=10, seed=1, machine=machine)
    assert RunRequest.from_json(request.to_json()) == request
    bare = RunRequest(program_digest="ab" * 32, shots=10, seed=1)
    assert "machine" not in bare.physics()  # states saved before schedules compare equal
    assert bare.with_physics(request.physics()).machine == machine


def test_on_lattice_surgery_a_wait_is_idle_noise_on_every_patch_before_the_next_op() -> None:
    from qmk.execution.surgery import SurgeryTarget

    text = _program("h: APPLY_H vq:q\nh2: APPLY_H vq:q\nm: MEASURE_Z vq:q, out:m")
    target = SurgeryTarget()
    program = target.read(assemble(text))
    shots, waited = 20_000, 1500.0
    request = RunRequest.build(
        program_digest=program_digest(text),
        target="lattice-surgery",
        shots=shots,
        seed=12,
        qubit=QUBIT,
        profile=PROFILE,
    )
    machine = MachineRun(
        arrival_cycle=0, start_cycle=0, end_cycle=9, tiles=4, module=0, idle={"a": waited}
    )
    surgery = target.compile(program, msgspec.structs.replace(request, machine=machine))
    assert surgery.schedule.logical_cycles == surgery.schedule.factory_wait_cycles == 0
    result = surgery.run(shots, 12)
    p_l = surgery.model.logical_error_rate
    expected = 2 / 3 * (1 - (1 - p_l) ** waited)  # X or Y of the idle channel flip Z
    assert stats.binomtest(result.counts.get("1", 0), shots, expected).pvalue > 1e-3
    assert result.telemetry.machine is not None
    private = target.compile(program, request).run(shots, 12)
    assert private.counts.get("1", 0) < shots * expected / 10  # the waits made the flips


# --------------------------------------------------------------------------- repeated steps
#
# A footprint step that repeats names only its last repetition's node, so a wait that
# fell in a later repetition is charged after the node before the step
# (docs/machine.md, "A wait inside a repeated step"). Exact when the repetitions are
# single-qubit gates; otherwise the counts differ from the exact placement's by at most
# the chance that the moved channels fire: 1 - (1 - P_L)^(n W) for n qubits, W cycles.

WAIT = 1500.0


def _placed(index: int, cycles: float, footprint: Footprint) -> dict[str, float]:
    """Where the machine charges ``cycles`` waited at step ``index``."""
    from qmk.kernel.machine.jobs import JobRecord

    record = JobRecord(
        id="j", tenant="t", program="", priority=0, arrival_cycle=0, start_cycle=0,
        end_cycle=1, tiles=1, module=0, logical_qubits=1, wait_cycles={},
        idle_logical_error=0.0, waits_at={index: cycles},
    )  # fmt: skip
    return record.idle_after(footprint)


def _footprint(text: str) -> Footprint:
    target = LogicalTarget()
    request = RunRequest.build(
        program_digest=program_digest(text), shots=1, seed=1, qubit=QUBIT, profile=PROFILE
    )
    return target.compile(target.read(assemble(text)), request).footprint


def _distribution(events: list[tuple[float, tuple[int, int]]]) -> dict[tuple[int, int], float]:
    """The two outcome bits' exact distribution: each event flips the bits of its vector
    (an X or Y error propagated to the measurements) with its probability, independently."""
    out = {(0, 0): 1.0, (0, 1): 0.0, (1, 0): 0.0, (1, 1): 0.0}
    for p, (dq, dr) in events:
        out = {(q, r): (1 - p) * v + p * out[(q ^ dq, r ^ dr)] for (q, r), v in out.items()}
    return out


def _bits(counts: dict[str, int]) -> dict[tuple[int, int], int]:
    out = dict.fromkeys([(0, 0), (0, 1), (1, 0), (1, 1)], 0)
    for key, count in counts.items():
        bits = key.replace(" ", "")
        out[(int(bits[0]), int(bits[-1]))] += count  # m (of q), then n (of r)
    return out


def _fits(counts: dict[tuple[int, int], int], expected: dict[tuple[int, int], float]) -> float:
    keys = sorted(expected)
    shots = sum(counts.values())
    return float(
        stats.chisquare([counts[k] for k in keys], [expected[k] * shots for k in keys]).pvalue
    )


def test_a_wait_within_repeated_cnots_is_charged_before_them_within_the_bound() -> None:
    # c1 and c2 are one step repeated twice (node c2). A wait during the second
    # repetition belongs after c1, where an X on q spreads to r through c2; the machine
    # charges it after a, before c1, where c1 c2 = I carries it unchanged. Each run's
    # counts fit their own exact distribution; the two differ by less than the bound
    text = _program(
        "c1: APPLY_CNOT vq:q, vq:r\nc2: APPLY_CNOT vq:q, vq:r\n"
        "m: MEASURE_Z vq:q, out:m\nn: MEASURE_Z vq:r, out:n",
        "vq:q, vq:r",
    )
    footprint = _footprint(text)
    step = footprint.steps[1]
    assert (step.repeat, step.node) == (2, "c2")  # no node for the first repetition
    assert _placed(1, WAIT, footprint) == {"a": WAIT}
    one = _flip(1.0)  # alloc, each CNOT after it, each measurement before it
    wait = _flip(WAIT)
    common = [(one, (1, 0)), (one, (0, 1))] * 2 + [(one, (0, 1)), (one, (1, 0)), (one, (0, 1))]
    common += [(one, (1, 1))]  # c1's error on q, spread by c2
    charged = _distribution([*common, (wait, (1, 0)), (wait, (0, 1))])
    exact = _distribution([*common, (wait, (1, 1)), (wait, (0, 1))])
    shots = 20_000
    for idle, expected in (({"a": WAIT}, charged), ({"c1": WAIT}, exact)):
        result = _run(text, idle=idle, shots=shots, seed=20260512)
        assert _fits(_bits(dict(result.counts)), expected) > 1e-3, idle
    tvd = sum(abs(charged[k] - exact[k]) for k in charged) / 2
    p_l = logical_model(PROFILE, QUBIT).logical_error_per_cycle
    bound = 1 - (1 - p_l) ** (2 * WAIT)  # two qubits live, the same in both places
    assert 0.05 < tvd < bound  # the approximation is visible here, and within the bound


def test_a_wait_within_repeated_single_qubit_gates_is_charged_exactly() -> None:
    # t1 t2 t3 are one step repeated three times (node t3). A wait in the third belongs
    # after t2; charged after h it gives the same distribution: the machine's channel is
    # a third each of X, Y and Z, which commutes with every single-qubit gate. P(1) is
    # (1 - z)/2 with z = cos(3 pi/4) shrunk by (1 - 4 p / 3) for every channel of p
    import math

    text = _program(
        "h: APPLY_H vq:q\nt1: APPLY_T vq:q\nt2: APPLY_T vq:q\nt3: APPLY_T vq:q\n"
        "h2: APPLY_H vq:q\nm: MEASURE_Z vq:q, out:m"
    )
    footprint = _footprint(text)
    step = footprint.steps[1]
    assert (step.repeat, step.node) == (3, "t3")
    assert _placed(1, WAIT, footprint) == {"h": WAIT}
    model = logical_model(PROFILE, QUBIT)

    def fired(cycles: float) -> float:
        return sum(model.pauli_error(cycles).as_tuple())

    shrink = (1 - 4 * fired(WAIT) / 3) * (1 - 4 * fired(1.0) / 3) ** 7  # a h t t t h2 m
    expected = (1 + math.cos(math.pi / 4) * shrink) / 2
    shots = 20_000
    for idle in ({"h": WAIT}, {"t2": WAIT}):
        result = _run(text, idle=idle, shots=shots, seed=20260513)
        ones = result.counts.get("1", 0)
        assert stats.binomtest(ones, shots, expected).pvalue > 1e-3, idle
