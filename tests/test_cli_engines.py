"""``qmk engines`` and ``qmk run --explain``: what is installed, and why an engine ran."""

from __future__ import annotations

import json
import re

import pytest

from qmk import defaults
from qmk.engines.registry import availability, gpu_present
from support.cli import qmk
from support.paths import EXAMPLES


def test_engines_lists_every_engine_installed_or_why_not() -> None:
    status, out, err = qmk("engines")
    assert (status, err) == (0, "")
    installed = [n for n in defaults.ENGINES if availability(n).available]
    assert out.startswith(f"{len(installed)} of {len(defaults.ENGINES)} engines installed here:")
    for name in defaults.ENGINES:
        assert f"  {name} " in out
    if len(installed) < len(defaults.ENGINES):
        assert "not available:" in out


def test_engines_json_gives_each_engines_capabilities() -> None:
    status, out, _ = qmk("engines", "--json")
    assert status == 0
    engines = {e["name"]: e for e in json.loads(out)["engines"]}
    assert list(engines) == list(defaults.ENGINES)
    stabilizer = engines[defaults.STABILIZER]
    assert stabilizer["available"] and stabilizer["clifford_only"] and stabilizer["batch"]
    assert stabilizer["precisions"] == ["exact"]
    statevector = engines[defaults.STATEVECTOR]
    assert statevector["state"] == "native" and statevector["mid_circuit"]
    assert statevector["max_qubits"] >= 20 and "t" in statevector["gates"]
    for entry in engines.values():
        assert entry["available"] == (entry["reason"] is None)


def test_run_explain_prints_the_choice_the_candidates_and_the_refusals() -> None:
    path = str(EXAMPLES / "t_gate_injection.qvm.asm")
    status, out, err = qmk("run", path, "--shots", "20", "--seed", "1", "--explain")
    assert (status, err) == (0, "")
    first = out.splitlines()[0]
    assert first.startswith("engine: statevector (cheapest of ")
    assert " * statevector " in out
    assert "stabilizer           refused: not Clifford" in out
    assert f"{path}: 20 shots, seed 1, engine statevector" in out


def test_run_explain_json_carries_the_engine_choice() -> None:
    path = str(EXAMPLES / "bell.qvm.asm")
    status, out, _ = qmk("run", path, "--shots", "10", "--seed", "2", "--json", "--explain")
    assert status == 0
    data = json.loads(out)
    assert data["engine"] == data["engine_choice"]["engine"] == defaults.STABILIZER
    assert data["telemetry"]["engine_reason"] == data["engine_choice"]["reason"]
    plain = json.loads(qmk("run", path, "--shots", "10", "--seed", "2", "--json")[1])
    assert "engine_choice" not in plain


def test_run_with_an_engine_that_cannot_run_the_program_is_one_coded_line() -> None:
    pytest.importorskip("qsimcirq")
    path = str(EXAMPLES / "t_gate_injection.qvm.asm")
    status, out, err = qmk("run", path, "--engine", "qsim", "--precision", "double")
    assert (status, out) == (2, "")
    assert err.startswith("QE110 operation-unsupported: the qsim engine cannot run")
    assert "single precision, not double" in err
    assert err.count("\n") == 1


@pytest.mark.skipif(gpu_present(), reason="a GPU is here")
def test_run_on_a_gpu_engine_without_a_gpu_is_qe108() -> None:
    status, _, err = qmk("run", str(EXAMPLES / "bell.qvm.asm"), "--engine", "custatevec")
    assert status == 2
    assert (
        err == "QE108 engine-unavailable: the custatevec engine cannot run here: no CUDA GPU here\n"
    )


@pytest.mark.parametrize(
    "engine", ["qsim", "aer-statevector", "aer-mps", "cirq", "qutip", "lightning", "braket"]
)
def test_run_on_a_named_adapter_gives_the_programs_outcomes(engine: str) -> None:
    if not availability(engine).available:
        pytest.skip(f"{engine} is not installed")
    path = str(EXAMPLES / "teleport_cond_pauli.qvm.asm")
    status, out, _ = qmk(
        "run", path, "--engine", engine, "--shots", "200", "--seed", "4", "--no-noise", "--json"
    )
    assert status == 0
    data = json.loads(out)
    assert data["engine"] == engine
    assert all(key.endswith("0") for key in data["counts"])  # m_bob is 0 when teleport works


def _capped(mib: int) -> None:
    import resource

    resource.setrlimit(resource.RLIMIT_AS, (mib * 2**20, resource.RLIM_INFINITY))


def test_run_explain_prints_the_caps_it_used_and_refuses_what_does_not_fit_them() -> None:
    """A real ``qmk run`` under a 1 GiB address-space cap (``ulimit -v``): the second line
    names the cap, an engine whose package does not fit is refused saying so, and the
    engine chosen runs the program."""
    import subprocess
    import sys

    path = str(EXAMPLES / "t_gate_injection.qvm.asm")
    done = subprocess.run(
        [sys.executable, "-m", "qmk", "run", path, "--shots", "20", "--seed", "1", "--explain"],
        capture_output=True,
        text=True,
        timeout=300,
        preexec_fn=lambda: _capped(1024),
    )
    assert done.returncode == 0, done.stderr
    lines = done.stdout.splitlines()
    assert lines[0].startswith("engine: statevector (")
    assert lines[1].startswith("worker: memory: 1 GiB address space (RLIMIT_AS), ")
    assert re.search(r"\b\d+ threads? \(", lines[1]) and "sandbox: none" in lines[1]
    if availability(defaults.AER_STATEVECTOR).available:
        (aer,) = (line for line in lines if line.strip().startswith("aer-statevector "))
        assert "refused: needs ~" in aer and "under its 1 GiB cap (RLIMIT_AS)" in aer
    assert f"{path}: 20 shots, seed 1, engine statevector" in done.stdout
