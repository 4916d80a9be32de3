"""Capability delegation through a real ``qmk serve``, driven by the ``qmk`` commands: alice
lends bob CAP_MAGIC, bob negotiates it and runs a job that needs it (with ``qmk run``'s
counts), alice revokes it and bob's next submit is refused with its code, also in a
session bob opened before; a second loan expires when the server's clock (moved by the
test, never waited for) passes its end; the audit log holds every step."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from qmk.client import Client
from qmk.errors import CapabilityError
from support.cli import qmk
from support.clocks import ClockedServer, ClockFile
from support.kernel import TENANTS, ServerProcess, config_toml, stop_all
from support.paths import EXAMPLES

MAGIC = str(EXAMPLES / "t_gate_injection.qvm.asm")


@pytest.fixture
def server(tmp_path: Path) -> Iterator[ClockedServer]:
    config = tmp_path / "k.toml"
    config.write_text(config_toml(kernel={"max_delegation_s": 3600}))
    started = ClockedServer(
        socket=tmp_path / "k.sock",
        data_dir=tmp_path / "k-data",
        config=config,
        workers=1,
        log=tmp_path / "k.log",
        clock=ClockFile(tmp_path / "clock"),
    )
    yield started.start()
    stop_all([started])


def as_tenant(monkeypatch: pytest.MonkeyPatch, server: ServerProcess, tenant: str) -> None:
    for name, value in server.env(tenant).items():
        if name.startswith("QMK_"):
            monkeypatch.setenv(name, value)
    monkeypatch.delenv("QMK_CAPS", raising=False)


def ok_json(*argv: str) -> Any:
    code, out, err = qmk(*argv, "--json")
    assert code == 0, err
    return json.loads(out)


def refused(*argv: str) -> str:
    """``qmk ARGV``'s error line: exit 1, nothing on stdout, one coded line on stderr."""
    code, out, err = qmk(*argv)
    assert code == 1 and out == "", (code, out, err)
    assert err.count("\n") == 1
    return err


def test_a_loan_is_granted_used_revoked_and_expires_through_a_real_server(
    server: ClockedServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    assert server.clock is not None
    as_tenant(monkeypatch, server, "bob")
    assert refused("submit", MAGIC).startswith("QS1004 capability-denied: ")
    assert ok_json("session")["denied"] == [
        "CAP_TELEPORT",
        "CAP_MAGIC",
        "CAP_LINK",
        "CAP_DEVICE_NA",
        "CAP_OBSERVE",
    ]

    as_tenant(monkeypatch, server, "alice")
    loan = ok_json("delegate", "create", "bob", "CAP_MAGIC", "--expires-s", "600")
    assert loan["state"] == "LIVE" and loan["to_tenant"] == "bob" and loan["caps"] == ["CAP_MAGIC"]
    dlg = loan["delegation_id"]
    code, _, err = qmk("delegate", "create", "bob", "CAP_DEVICE_NA", "--expires-s", "60")
    assert code == 1 and err.startswith("QS1004 capability-denied: cannot delegate")

    as_tenant(monkeypatch, server, "bob")
    session = ok_json("session")
    assert "CAP_MAGIC" in session["granted"] and session["delegated"] == ["CAP_MAGIC"]
    assert [
        d["delegation_id"] for d in ok_json("delegate", "list", "--state", "LIVE")["delegations"]
    ] == [dlg]
    job = ok_json("submit", MAGIC, "--shots", "400", "--seed", "9", "--wait")
    assert job["state"] == "COMPLETED" and job["tenant"] == "bob"
    code, out, _ = qmk("run", MAGIC, "--shots", "400", "--seed", "9", "--json")
    assert code == 0 and job["result"]["counts"] == json.loads(out)["counts"]
    # a session bob opens now, while the loan is live, and keeps
    held = Client.connect(
        str(server.socket), tenant="bob", key=TENANTS["bob"]["key"], caps=["CAP_ALLOC", "CAP_MAGIC"]
    )

    as_tenant(monkeypatch, server, "alice")
    ended = ok_json("delegate", "revoke", dlg)
    assert ended["state"] == "REVOKED" and ended["revoked_by"] == "alice"

    as_tenant(monkeypatch, server, "bob")
    assert refused("submit", MAGIC).startswith("QS1004 capability-denied: ")
    with held, pytest.raises(CapabilityError) as caught:  # the open session lost it too
        held.q_submit(json.loads(Path(EXAMPLES / "t_gate_injection.qvm.json").read_text()), 10, 1)
    assert caught.value.code == "QS1004" and caught.value.details["missing"] == ["CAP_MAGIC"]

    # a second loan, ended by the server's clock
    as_tenant(monkeypatch, server, "alice")
    short = ok_json("delegate", "create", "bob", "CAP_MAGIC", "--expires-s", "600")
    as_tenant(monkeypatch, server, "bob")
    assert ok_json("submit", MAGIC, "--shots", "10", "--seed", "1")["state"] == "QUEUED"
    server.clock.advance(600)  # exactly its end, on the server's clock: over
    assert refused("submit", MAGIC).startswith("QS1004 capability-denied: ")
    assert ok_json("session")["delegated"] == []
    as_tenant(monkeypatch, server, "alice")
    states = {d["delegation_id"]: d["state"] for d in ok_json("delegate", "list")["delegations"]}
    assert states == {dlg: "REVOKED", short["delegation_id"]: "EXPIRED"}
    code, line, _ = qmk("delegate", "list", "--state", "EXPIRED")
    assert code == 0 and line.startswith(
        f"{short['delegation_id']}  EXPIRED  alice -> bob  CAP_MAGIC"
    )

    assert server.stop() == 0
    code, _, err = qmk("audit", "verify", str(server.data_dir))
    assert code == 0, err
    lines = (server.data_dir / "audit.log").read_text().splitlines()
    steps = [
        (r["action"], r["delegation_id"], r.get("where"))
        for r in map(json.loads, lines)
        if r["event"] == "deleg"
    ]
    assert steps == [
        ("delegate", dlg, None),
        ("use", dlg, "negotiate"),  # qmk session
        ("use", dlg, "negotiate"),  # qmk delegate list: every command negotiates
        ("use", dlg, "negotiate"),  # qmk submit --wait
        ("use", dlg, "submit"),
        ("use", dlg, "negotiate"),  # the held session
        ("revoke", dlg, None),
        ("delegate", short["delegation_id"], None),
        ("use", short["delegation_id"], "negotiate"),
        ("use", short["delegation_id"], "submit"),
    ]
