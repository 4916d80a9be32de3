"""QMK's device against Bloqade's own simulators, run in Bloqade's own environment.

Bloqade pins numpy<=2.2.6, so ``make test`` builds ``.venv-bloqade`` (QMK with the
``bloqade`` extra) and these tests talk to it through
:class:`qmk.devices.neutral_atom.bloqade_peer.BloqadePeer`; they skip, saying why, where
that environment is absent. Analog: Bloqade's emulator (bloqade-analog, full space,
rtol 1e-10, atol 1e-12) gives final probabilities; QMK's exact evolution must agree to a
total variation below 1e-7, and QMK's sampled counts must fit Bloqade's probabilities
(chi-square at the stated seeds). Digital: Bloqade's ``qasm2`` kernels, emitted by
bloqade and lowered to the VM dialect by QMK's compiler, run on the device and fit
PyQrack's exact probabilities (PyQrack is single precision: 1e-6 on probabilities).
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from qmk.devices.neutral_atom import analog, run_job
from qmk.devices.neutral_atom.bloqade_peer import BloqadePeer, peer_python
from qmk.devices.neutral_atom.job import parse_job
from support.frontends import homogeneity_p
from support.neutral_atom import assert_counts_match

PEER, WHY = peer_python()
#: The kernels, Bloqade code the peer loads in its own environment.
KERNELS = Path(__file__).resolve().parents[2] / "support" / "bloqade_kernels.py"
pytestmark = pytest.mark.skipif(PEER is None, reason=WHY)


@pytest.fixture(scope="module")
def peer() -> Iterator[BloqadePeer]:
    assert PEER is not None
    with BloqadePeer(PEER) as running:
        running.ask({"op": "versions"})  # Bloqade imports there, or this fails
        yield running


def analog_job(
    positions: list[Any], evolve: dict[str, Any], *, shots: int = 4000
) -> dict[str, Any]:
    n = len(positions)
    return {
        "isa_version": "1.2",
        "hardware": {"positions": positions},
        "shots": shots,
        "seed": 11,
        "program": [
            {"op": "AllocArray", "n_qubits": n},
            {"op": "Evolve", **evolve},
            {"op": "Measure", "targets": list(range(n))},
        ],
    }


def sweep(duration: float) -> dict[str, Any]:
    ramp = 0.1 * duration
    return {
        "duration": duration,
        "omega": [[0, 0.0], [ramp, 15.8], [duration - ramp, 15.8], [duration, 0.0]],
        "delta": [[0, -16.0], [ramp, -16.0], [duration - ramp, 16.0], [duration, 16.0]],
    }


#: The issue's programs: Rabi, blockade, the adiabatic Z2 sweep on a chain and a square.
PROGRAMS = {
    # three atoms 20 um apart (V ~ 0.08 rad/us): each one's Rabi oscillation, phase 0.4
    "rabi": analog_job(
        [0.0, 20.0, 40.0],
        {
            "duration": 700,
            "omega": [[0, 9.0], [700, 9.0]],
            "delta": [[0, 1.5], [700, 1.5]],
            "phase": 0.4,
        },
    ),
    # two atoms 4.5 um apart: blockaded, the pair oscillates at sqrt(2) Omega
    "blockade": analog_job(
        [[0.0, 0.0], [4.5, 0.0]],
        {"duration": 1000, "omega": [[0, 6.0], [1000, 6.0]], "delta": [[0, 0.0], [1000, 0.0]]},
    ),
    # a local detuning (Bloqade's location field) on two atoms of a chain of four
    "local": analog_job(
        [0.0, 6.0, 12.0, 18.0],
        {
            **sweep(1200),
            "local_delta": {"atoms": [0, 3], "scale": [1.0, 0.5], "delta": [[0, 0.0], [1200, 8.0]]},
        },
    ),
    "z2_chain": analog_job([5.5 * i for i in range(7)], sweep(2500)),
    "z2_square": analog_job([[5.5 * x, 5.5 * y] for y in range(3) for x in range(3)], sweep(2500)),
}


def qmk_probabilities(job: dict[str, Any]) -> dict[str, float]:
    model, drives, rates, _ = analog.prepare(parse_job(job))
    probs, _ = analog.evolve(model, drives, rates)
    n = model.n_atoms
    return {
        "".join(str((int(s) >> i) & 1) for i in range(n)): float(p)
        for s, p in zip(model.states, probs, strict=True)
    }


def tvd(a: dict[str, float], b: dict[str, float]) -> float:
    return 0.5 * sum(abs(a.get(k, 0.0) - b.get(k, 0.0)) for k in set(a) | set(b))


@pytest.mark.parametrize("name", sorted(PROGRAMS))
def test_analog_program_gives_bloqades_emulator_distribution(peer, name):
    job = PROGRAMS[name]
    theirs = peer.ask({"op": "analog", "job": job})["probabilities"]
    ours = qmk_probabilities(job)
    assert tvd(ours, theirs) < 1e-7
    result = run_job(job)
    assert result.device_id == "analog-exact"
    assert_counts_match(result.counts(), theirs)


def test_blockade_pair_oscillates_at_root_two_omega_in_both(peer):
    job = PROGRAMS["blockade"]
    theirs = peer.ask({"op": "analog", "job": job})["probabilities"]
    # exact theory in the blockade limit (V = 862690 * 2 pi / 4.5^6 ~ 651 rad/us >> Omega)
    one = math.sin(math.sqrt(2) * 6.0 * 1.0 / 2) ** 2
    assert abs(theirs["10"] + theirs["01"] - one) < 2e-3
    assert theirs.get("11", 0.0) < 1e-3


def test_bloqades_own_shots_and_qmks_come_from_one_distribution(peer):
    job = PROGRAMS["z2_chain"]
    theirs = peer.ask({"op": "analog_run", "job": job, "shots": 3000, "seed": 21})
    ours = run_job(job, shots=3000, seed=5).counts()
    assert sum(theirs["counts"].values()) == 3000
    assert homogeneity_p(ours, theirs["counts"]) > 1e-4
    z2 = "1010101"
    assert ours.get(z2, 0) > 600 and theirs["counts"].get(z2, 0) > 600


@pytest.mark.parametrize("kernel", ["ghz4", "rotated", "toffoli_t"])
def test_a_bloqade_kernel_lowered_to_the_vm_dialect_fits_pyqracks_state(peer, kernel):
    from qmk.devices.neutral_atom.compile import run_program
    from qmk.frontends.qasm import from_qasm

    answer = peer.ask({"op": "kernel", "file": str(KERNELS), "name": kernel})
    n = answer["n_qubits"]
    text = answer["qasm"] + f"creg c[{n}];\nmeasure q -> c;\n"
    program = from_qasm(text, name=f"<bloqade {kernel}>")
    expected = answer["probabilities"]
    run = run_program(program, "ideal_square_grid", shots=4000, seed=9)
    assert run.report.atoms == n
    assert_counts_match(run.counts, expected)
