"""``qmk submit --error-budget`` against a real ``qmk serve``: the budget is the submit's
``policy.error_budget``, so it reaches the job's machine record, and one that no schedule
can meet is refused with ``QK505``.

The machine: one factory copy of 1 T state per 100 cycles and no store. The program's 20
T cycles take ~2,000 cycles alone, its one d=9 patch idling ~1,980 of them: ~5.9e-4 of
idle logical error (``tests/kernel/running/test_shared_machine.py`` checks that figure),
ten times less a step of two of distance the kernel may place it at. A budget covers the
job's whole error: its 20 T states alone, at the factories' output error, pass 1e-7.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest

from qmk.qvm.asm import assemble
from support.cli import qmk
from support.kernel import ServerProcess, config_toml, stop_all

T_HEAVY = assemble(
    ".caps CAP_ALLOC\na: ALLOC_LQ vq:q\nh: APPLY_H vq:q\n"
    + "\n".join(f"t{i}: APPLY_{'T' if i % 2 else 'TDG'} vq:q" for i in range(20))
    + "\nh2: APPLY_H vq:q\nm: MEASURE_Z vq:q, out:m"
).to_json()
MACHINE = {
    "policy": "fidelity",
    "factory": {"copies": 1, "states_per_run": 1, "duration_cycles": 100, "store": 0},
}


@pytest.fixture
def slow_factory(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    """A ``qmk serve`` of that machine, the CLI's environment alice's; the program's path."""
    config = tmp_path / "k.toml"
    config.write_text(config_toml(physical_qubits=200_000, machine=MACHINE))
    server = ServerProcess(
        socket=tmp_path / "k.sock",
        data_dir=tmp_path / "data",
        config=config,
        workers=1,
        log=tmp_path / "k.log",
    ).start()
    for name, value in server.env("alice").items():
        if name.startswith("QMK_"):
            monkeypatch.setenv(name, value)
    monkeypatch.delenv("QMK_CAPS", raising=False)
    program = tmp_path / "t_heavy.qvm.json"
    program.write_text(json.dumps(T_HEAVY))
    try:
        yield program
    finally:
        stop_all([server])


def test_submit_error_budget_reaches_the_jobs_machine_record_and_one_too_tight_is_qk505(
    slow_factory,
):
    program = str(slow_factory)
    code, out, err = qmk(
        "submit", program, "--shots", "20", "--seed", "4", "--no-noise", "--error-budget",
        "0.5", "--wait", "--json",
    )  # fmt: skip
    assert code == 0, err
    job = json.loads(out)
    record = job["machine"]
    assert job["state"] == "COMPLETED"
    assert record["error_budget"] == 0.5 and record["within_budget"] is True
    assert 1e-4 < record["idle_logical_error"] < 1e-3  # the ~5.9e-4 its run alone gives
    code, out, err = qmk("submit", program, "--shots", "20", "--error-budget", "1e-7")
    assert code == 1 and out == ""
    assert err.startswith("QK505 over-budget: ") and err.count("\n") == 1, err
    assert "past its error budget 1e-07" in err
    code, out, _ = qmk("jobs", "--json")
    assert code == 0 and len(json.loads(out)["jobs"]) == 1  # the refused submit stored nothing


def test_submit_error_budget_outside_0_1_is_refused_as_the_kernel_refuses_it(tmp_path):
    # checked by the client against the kernel's own policy schema, before any request
    program = tmp_path / "t_heavy.qvm.json"
    program.write_text(json.dumps(T_HEAVY))
    for budget in ("0", "1.5"):
        code, out, err = qmk("submit", str(program), "--error-budget", budget)
        assert (code, out) == (1, ""), err
        assert err.startswith("QS1012 invalid-argument: policy.error_budget: ")
    code, out, err = qmk("submit", str(program), "--error-budget", "soon")
    assert (code, out) == (2, "") and "--error-budget" in err
