"""Work bounded at submit through a real ``qmk serve`` (issue 76): an OpenQASM 3 loop of
10^9 turns, read folded by ``qmk submit``, is accepted within the tenant's quota and
placed on the shared machine by its folded footprint; stim's 27-byte ``REPEAT`` bomb and
a 30,000-qubit stim circuit are refused at submit with coded errors, nothing queued."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from qmk.client import Client
from qmk.errors import QuotaError
from support.cli import qmk
from support.kernel import TENANTS

#: 10^9 turns of T and CX on two qubits: 2 x 10^9 + 4 operations unrolled, 7 rows stored.
LOOP = """OPENQASM 3.0;
include "stdgates.inc";
qubit[2] q;
bit[2] c;
for uint i in [0:999999999] { t q[0]; cx q[0], q[1]; }
c = measure q;
"""
#: stim's smallest bomb: 27 bytes, 10^9 measurements of one qubit.
BOMB = "REPEAT 1000000000 {\n M 0\n}\n"


def test_a_qasm_loop_of_10_9_turns_is_accepted_and_placed_on_the_machine(
    serve: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    source = tmp_path / "loop.qasm"
    source.write_text(LOOP)
    server = serve("loop", workers=1)
    monkeypatch.setenv("QMK_SOCKET", str(server.socket))
    monkeypatch.setenv("QMK_TENANT", "alice")
    monkeypatch.setenv("QMK_KEY", TENANTS["alice"]["key"])
    monkeypatch.delenv("QMK_CAPS", raising=False)
    # a budget of 1: 10^9 turns at the machine's distances pass any smaller one (QK505)
    code, out, err = qmk(
        "submit", str(source), "--shots", "2", "--seed", "5", "--error-budget", "1", "--json"
    )
    assert code == 0, err
    job = json.loads(out)
    assert job["state"] == "QUEUED", job
    assert [w["code"] for w in job["warnings"]] == ["QK311"], job  # placed, not run
    with Client.connect(str(server.socket), tenant="alice", key=TENANTS["alice"]["key"]) as c:
        machine = c.q_machine_status()
        # on the machine for its 10^9 turns of machine time (real time: an hour), its
        # two patches and their routing in one module's tiles
        assert machine.jobs["running"] + machine.jobs["queued"] == 1, machine.jobs
        placed = [j for m in machine.floorplan for j in m["jobs"]]
        cancelled = c.q_cancel(job["job_id"])
    assert cancelled.state == "CANCELLED"
    assert len(placed) == 1 and placed[0]["tiles"] == 9, placed


def test_stims_27_byte_bomb_and_a_30000_qubit_circuit_are_refused_through_qmk_serve(
    serve: Any,
) -> None:
    tenants = {
        "alice": {**TENANTS["alice"], "max_logical_qubits": 16},
    }
    server = serve("bombs", workers=1, tenants=tenants)
    with Client.connect(str(server.socket), tenant="alice", key=TENANTS["alice"]["key"]) as c:
        with pytest.raises(QuotaError) as bomb:
            c.q_submit({"stim": BOMB}, 1000, 5, target="stim")
        with pytest.raises(QuotaError) as wide:
            c.q_submit({"stim": "H 29999\nM 0 29999\n"}, 10, 5, target="stim")
        listed = c.q_list_jobs()
    assert bomb.value.code == "QS1006" and bomb.value.details["limit"] == "max_job_operations"
    assert wide.value.code == "QS1006" and wide.value.details["limit"] == "max_logical_qubits"
    assert not listed.jobs
