"""The benchmarks in ``bench/`` are not run by the suite (CI never gates on a timing), but
each must still start: a name qmk no longer has stops a bench at its import."""

from __future__ import annotations

import sqlite3
import subprocess
import sys
import time

import pytest

from qmk.client import Client
from qmk.qec.noise import Depolarizing
from support.paths import ROOT

BENCH = ROOT / "bench"

#: Imports every bench script as ``python bench/NAME.py`` would (its folder first on the
#: path, for ``_common``), in one process: their shared imports are paid once.
IMPORT_ALL = """
import importlib, pathlib, sys
sys.path.insert(0, sys.argv[1])
names = sorted(p.stem for p in pathlib.Path(sys.argv[1]).glob("*.py") if p.stem != "_common")
for name in names:
    importlib.import_module(name)
print(len(names))
"""


def test_every_bench_script_imports_against_todays_qmk():
    done = subprocess.run(
        [sys.executable, "-c", IMPORT_ALL, str(BENCH)],
        capture_output=True,
        text=True,
        timeout=300,
        cwd=BENCH,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    assert int(done.stdout.split()[-1]) == len(list(BENCH.glob("*.py"))) - 1


@pytest.mark.parametrize("kind", ["blocking", "asyncio", "durable"])
def test_each_least_server_of_a_session_open_answers_the_client(kind, tmp_path):
    config = tmp_path / "bench.toml"
    config.write_text(
        "[machine]\nphysical_qubits = 1_000_000\n"
        '[tenants.bench]\nkey = "bench-tenant-key"\ncaps = ["CAP_ALLOC"]\n'
    )
    address = tmp_path / "floor.sock"
    argv = [sys.executable, str(BENCH / "open_floor.py"), kind, str(address), str(config)]
    server = subprocess.Popen([*argv, str(tmp_path)], stderr=subprocess.PIPE)
    try:
        deadline = time.monotonic() + 60
        while not address.exists():  # put in place once it listens (bind_unix)
            assert server.poll() is None, server.stderr.read() if server.stderr else ""
            assert time.monotonic() < deadline
            time.sleep(0.02)
        for _ in range(2):  # one connection after another, as the bench opens them
            with Client.connect(str(address), tenant="bench", key="bench-tenant-key") as client:
                session = client.core.session
            assert session is not None and session.granted == ["CAP_ALLOC"]
    finally:
        server.terminate()
        server.wait(30)
    if kind == "durable":  # the row and the audit line, written before each answer
        rows = sqlite3.connect(tmp_path / "floor.db").execute("SELECT count(*) FROM sessions")
        assert rows.fetchone() == (2,)
        assert len((tmp_path / "audit.log").read_text().splitlines()) == 2


def _exact_plan_probabilities(plan, n):
    """The plan's outcome distribution by a numpy density matrix: each gate, then each
    noise location's Pauli channel (its Kraus operators) where the plan puts it; the
    measurements last (keys: qubit 0 first)."""
    import numpy as np

    from qmk.execution.plan import gate_of

    dim = 2**n

    def one(rho, q, u):
        # U rho U^dagger for U = u on qubit q (the index's bit n-1-q), as the 2x2 matrix it
        # is on that axis of rho's rows, then of its columns: 4^n work, not 8^n
        rows = np.einsum("ab,ibjk->iajk", u, rho.reshape(2**q, 2, 2 ** (n - 1 - q), dim))
        both = np.einsum("ab,kibj->kiaj", u.conj(), rows.reshape(dim, 2**q, 2, -1))
        return both.reshape(dim, dim)

    def gate(rho, node):
        qs = [int(q[1:]) for q in node.vqs]
        name, params = gate_of(node)
        if name == "rz":
            (t,) = params
            return one(rho, qs[0], np.diag([np.exp(-0.5j * t), np.exp(0.5j * t)]))
        if name == "ry":
            (t,) = params
            c, s = np.cos(t / 2), np.sin(t / 2)
            return one(rho, qs[0], np.array([[c, -s], [s, c]], dtype=complex))
        assert name == "cz", name
        bits = [[(i >> (n - 1 - q)) & 1 for q in qs] for i in range(dim)]
        sign = np.array([-1.0 if a and b else 1.0 for a, b in bits])
        return sign[:, None] * rho * sign[None, :]  # a real diagonal U: U rho U

    locations = {}
    for loc in plan.noise:
        locations.setdefault((loc.step, loc.before), []).append(loc)
    index = np.arange(dim)

    def noise(rho, step, before):
        # each Pauli Kraus operator K rho K^dagger as what it does: X permutes rows and
        # columns, Z signs them, Y is both (its phases cancel)
        for loc in locations.get((step, before), ()):
            bit = n - 1 - int(loc.qubit[1:])
            flip = index ^ (1 << bit)
            sign = 1 - 2 * ((index >> bit) & 1)
            x = rho[flip][:, flip]
            z = sign[:, None] * rho * sign[None, :]
            y = z[flip][:, flip]
            rho = (1 - loc.total) * rho + loc.px * x + loc.py * y + loc.pz * z
        return rho

    rho = np.zeros((dim, dim), dtype=complex)
    rho[0, 0] = 1.0
    for at, (node, kind) in enumerate(zip(plan.steps.nodes, plan.steps.kinds, strict=True)):
        rho = noise(rho, at, True)
        if kind == "gate":
            rho = gate(rho, node)
        else:
            assert kind in ("alloc", "measure", "free"), kind
        rho = noise(rho, at, False)
    return {format(i, f"0{n}b"): float(rho[i, i].real) for i in range(2**n)}


def test_the_noisy_reference_is_the_exact_density_matrix_of_the_plans_channels(monkeypatch):
    """bench_noisy_dense's Aer reference (noise model plus inline channels) has exactly
    the plan's channels, each once: its exact distribution equals a numpy density
    matrix built from the plan's Kraus operators (a channel counted twice moves the
    probabilities by about its rate, far above the tolerance)."""
    pytest.importorskip("qiskit_aer")
    monkeypatch.syspath_prepend(str(BENCH))
    from bench_engines import random_gates
    from bench_execute import qvm_graph
    from bench_noisy_dense import aer_circuit, exact_counts, grid_plan

    n = 4
    plan = grid_plan(qvm_graph(n, random_gates(n, 4, seed=3)), Depolarizing(p=3e-3))
    assert {loc.cause for loc in plan.noise} >= {"op", "idle", "measure"}  # inline ones too
    circuit, model = aer_circuit(plan, n)
    reference = exact_counts(circuit, model, n)
    exact = _exact_plan_probabilities(plan, n)
    assert sorted(reference) == sorted(exact)
    worst = max(abs(reference[k] - exact[k]) for k in exact)
    assert worst < 1e-9, worst


def test_qmks_route_for_random_8_at_1_77_errors_a_shot_passes_chi_square_at_10_5_shots(
    monkeypatch,
):
    """Issue 78's goal: random-8 depth 20 under ``depolarizing(p=3e-3)`` on the d=3
    surface-code profile (654 noise locations, 1.77 errors a shot). At 10^5 shots QMK's
    counts on the route the router chooses (the statevector's exact density matrix) pass
    a chi-square test (alpha 1e-3, cells under 5 expected pooled, seed 78) against a numpy
    density matrix of the plan's own Kraus operators."""
    monkeypatch.syspath_prepend(str(BENCH))
    import qmk
    from bench_engines import random_gates
    from bench_execute import qvm_graph
    from bench_noisy_dense import GRID_PROFILE, exact_check, grid_plan

    n = 8
    g = qvm_graph(n, random_gates(n, 20, seed=0))
    noise = Depolarizing(p=3e-3)
    plan = grid_plan(g, noise)
    assert abs(sum(loc.total for loc in plan.noise) - 1.7658) < 1e-3
    exact = _exact_plan_probabilities(plan, n)
    result = qmk.run(g, shots=100_000, seed=78, noise=noise, profile=GRID_PROFILE)
    assert result.telemetry.engine == "statevector"
    assert result.telemetry.mode == "density-matrix"
    check = exact_check(result.counts, exact)
    assert check["p"] > 1e-3, check


def test_the_decoder_bench_compares_a_row_with_sinter_under_todays_decoder_settings(monkeypatch):
    """bench_decoders reads ``BPOSD_SETTINGS`` by decoder name (it read them by their old
    shape and stopped with a KeyError): one small row runs both sides and reports the
    model each decoded."""
    pytest.importorskip("stimbposd")
    monkeypatch.syspath_prepend(str(BENCH))
    from bench_decoders import row

    out = row(3, 0.005, 200, ["pymatching"])
    ours = out["pymatching"]
    assert ours["model"] == "decomposed" and 0 <= ours["errors"] <= 200
    assert ours["sinter:pymatching"]["shots"] == 200
