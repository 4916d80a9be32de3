"""No tenant reads another's names or job ids from the shared machine, on any wire.

A real ``qmk serve`` with every listener (:class:`support.wires.DoorServer`) whose
machine clock runs one logical cycle a second: dave's and alice's jobs of a hundred T
gates each hold their tiles for about a hundred seconds, side by side on the floorplan.
Every wire of the door's registry that shows the machine (:data:`support.wires.WIRES`:
JSON-RPC, REST, gRPC, GraphQL; the assistant has no tool for it) answers
``q_machine_status``; the text each carried to alice never holds
another tenant's name nor dave's job id. She sees her own name and job, every other
tenant under a label stable for the kernel (the same on every wire), its share and its
patches in place. bob, an operator (``operator = true``), sees every name and id.
"""

from __future__ import annotations

import json
import re
import time
from collections.abc import Iterator
from typing import Any

import pytest

pytest.importorskip("grpc")
pytest.importorskip("starlette")

from support.kernel import TENANTS
from support.wires import GUARD_S, WIRES, DoorServer, Wire, on_wire

LONG = 'OPENQASM 2.0;\ninclude "qelib1.inc";\nqreg q[1];\ncreg c[1];\n' + "t q[0];\n" * 100
LONG += "measure q -> c;\n"
#: bob, who may only allocate, is the machine's operator here
OPERATED = {**TENANTS, "bob": {**TENANTS["bob"], "operator": True}}
#: every tenant the server knows: OPERATED and the door server's scraper, ``ops``
SERVED = {*OPERATED, "ops"}
LABEL = re.compile(r"t-[0-9a-f]{12}")


@pytest.fixture(params=sorted(WIRES))
def wire(request: pytest.FixtureRequest) -> Wire:
    return WIRES[request.param]


@pytest.fixture(scope="module")
def placed(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[DoorServer, dict[str, str]]]:
    """The server, and dave's and alice's jobs, both placed on the machine."""
    server = DoorServer(
        tmp_path_factory.mktemp("machine-tenants"),
        machine={"cycles_per_s": 1.0, "epoch_cycles": 1, "policy": "fair-share"},
        tenants=OPERATED,
    ).start()
    rest = WIRES["rest"]
    jobs = {
        tenant: rest.submit_text(server, rest.login(server, tenant), LONG)
        for tenant in ("dave", "alice")
    }
    watcher = rest.login(server, "bob")
    deadline = time.monotonic() + GUARD_S  # a hang guard: placed within a few cycles
    while True:
        (module,) = _machine(rest, rest.machine(server, watcher))["floorplan"]
        if len(module["jobs"]) == len(jobs):
            break
        assert time.monotonic() < deadline, module
        time.sleep(0.2)
    yield server, jobs
    assert server.stop() == 0, server.log()
    assert "Traceback" not in server.log(), server.log()


def _machine(wire: Wire, text: str) -> dict[str, Any]:
    """The machine object of a wire's answer."""
    answer = json.loads(text)
    if wire.name == "jsonrpc":
        return dict(answer["result"])
    if wire.name == "graphql":
        return dict(answer["data"]["machine"])
    return dict(answer)


def test_a_tenant_sees_its_own_name_and_jobs_and_every_other_tenant_only_by_label(
    placed: tuple[DoorServer, dict[str, str]], wire: Wire
):
    server, jobs = placed
    text = on_wire(lambda: wire.machine(server, wire.login(server, "alice")))
    for other in ("dave", "bob", "carol"):
        assert other not in text, other
    assert jobs["dave"] not in text
    machine = _machine(wire, text)
    shares = machine["tenant_shares"]
    labels = sorted(set(shares) - {"alice"})
    assert "alice" in shares and len(labels) == len(SERVED) - 1
    assert all(LABEL.fullmatch(label) for label in labels), labels
    (module,) = machine["floorplan"]
    by_job = {job["job"]: job for job in module["jobs"]}
    assert by_job[jobs["alice"]]["tenant"] == "alice"
    (theirs,) = [job for job in module["jobs"] if job["tenant"] != "alice"]
    assert theirs["job"] is None and theirs["tenant"] in labels and theirs["tiles"] > 0
    assert shares[theirs["tenant"]] > 0  # dave's share: a fact of the machine
    # the labels are the kernel's, not the wire's or the session's
    again = _machine(
        WIRES["jsonrpc"], WIRES["jsonrpc"].machine(server, WIRES["jsonrpc"].login(server, "alice"))
    )
    assert sorted(set(again["tenant_shares"]) - {"alice"}) == labels


def test_an_operator_sees_every_tenants_name_and_job_ids(
    placed: tuple[DoorServer, dict[str, str]], wire: Wire
):
    server, jobs = placed
    machine = _machine(wire, on_wire(lambda: wire.machine(server, wire.login(server, "bob"))))
    assert set(machine["tenant_shares"]) == SERVED
    (module,) = machine["floorplan"]
    assert {job["job"]: job["tenant"] for job in module["jobs"]} == {
        jobs["dave"]: "dave",
        jobs["alice"]: "alice",
    }
