"""Bloqade ``qasm2`` kernels onto the neutral-atom device (the optional ``bloqade`` extra:
skipped where bloqade-circuit is not installed; see qmk.devices.neutral_atom.bloqade for
why it is not in the test extra)."""

from __future__ import annotations

import pytest

qasm2 = pytest.importorskip("bloqade.qasm2")
pytest.importorskip("bloqade.qasm2.emit")

from qmk.devices.neutral_atom.bloqade import compile_kernel, kernel_qasm, run_kernel  # noqa: E402


@qasm2.main
def ghz3():
    q = qasm2.qreg(3)
    c = qasm2.creg(3)
    qasm2.h(q[0])
    qasm2.cx(q[0], q[1])
    qasm2.cx(q[0], q[2])
    qasm2.measure(q, c)
    return c


@qasm2.extended
def rotated():
    q = qasm2.qreg(2)
    c = qasm2.creg(2)
    qasm2.ry(q[0], 0.8)
    qasm2.cx(q[0], q[1])
    qasm2.rz(q[1], 0.4)
    qasm2.h(q[1])
    qasm2.measure(q, c)
    return c


def test_a_bloqade_kernel_is_emitted_as_openqasm2():
    text = kernel_qasm(ghz3)
    assert text.startswith("OPENQASM 2.0;") and "measure" in text


def test_a_bloqade_ghz_kernel_runs_on_the_device_with_its_two_outcomes():
    run = run_kernel(ghz3, "ideal_small_array", shots=500, seed=3)
    assert set(run.counts) == {"000", "111"}
    assert run.report.two_qubit_after == 2


def test_a_rotated_kernel_matches_qmk_run_of_the_same_qasm():
    import qmk
    from qmk.devices.neutral_atom.bloqade import kernel_program
    from support.frontends import homogeneity_p

    job, report = compile_kernel(rotated, "ideal_square_grid")
    assert report.atoms == 2 and job["profile"] == "ideal_square_grid"
    run = run_kernel(rotated, "ideal_square_grid", shots=4000, seed=5)
    reference = qmk.run(kernel_program(rotated), shots=4000, seed=5, noise=False)
    assert homogeneity_p(run.counts, reference.counts) > 1e-4
