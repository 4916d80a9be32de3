"""The client's sans-IO core, addresses, credentials and generated methods (no server)."""

from __future__ import annotations

import asyncio
import inspect
import json
import subprocess
import sys

import pytest

from qmk.abi.errors import BadResponse, ConnectError, InvalidParams, MethodNotFound
from qmk.abi.methods import METHODS
from qmk.client import (
    DEFAULT_CAPS,
    Address,
    AsyncClient,
    Client,
    ClientCore,
    Credentials,
    Timeout,
)
from qmk.errors import QuotaError, SessionError


def test_every_method_of_the_table_is_a_method_of_both_clients_with_its_params():
    for name, spec in METHODS.items():
        for cls in (Client, AsyncClient):
            signature = inspect.signature(getattr(cls, name))
            params = [p for p in signature.parameters if p != "self"]
            expected = [p.name for p in spec.params if p.name != "session_id"]
            if spec.needs_session:
                expected.append("session_id")
            assert params == expected, (cls.__name__, name)
            for param in spec.params:
                if not param.required and param.name != "session_id":
                    default = signature.parameters[param.name].default
                    assert default == (
                        list(param.default) if isinstance(param.default, tuple) else param.default
                    )
            assert spec.doc.split()[0].lower() in (getattr(cls, name).__doc__ or "").lower()


def test_the_core_fills_in_the_session_and_checks_types_before_sending():
    core = ClientCore(session_id="sess")
    params = core.params(METHODS["q_wait"], {"job_id": "j"})
    assert params == {"job_id": "j", "session_id": "sess"}
    with pytest.raises(InvalidParams, match="timeout_ms"):
        core.params(METHODS["q_wait"], {"job_id": "j", "timeout_ms": 1.5})
    with pytest.raises(SessionError, match="negotiate first"):
        ClientCore().params(METHODS["q_status"], {"job_id": "j"})


def test_replies_become_results_or_typed_errors():
    core = ClientCore()
    request_id, line = core.request("q_resource_query", {"session_id": "s"})
    assert json.loads(line)["id"] == request_id
    reply = {"jsonrpc": "2.0", "id": request_id, "result": {"ok": True}}
    assert core.result(request_id, json.dumps(reply).encode()) == {"ok": True}
    error = {
        "code": 1006,
        "message": "QS1006 quota-exceeded: too many",
        "data": {"name": "quota-exceeded", "code": "QS1006", "limit": "max_queued_jobs"},
    }
    with pytest.raises(QuotaError) as caught:
        core.result(7, json.dumps({"jsonrpc": "2.0", "id": 7, "error": error}).encode())
    assert caught.value.message == "too many"
    assert caught.value.details == {"limit": "max_queued_jobs"}
    missing = {"code": -32601, "message": "QR32601 method-not-found: no method 'x'"}
    with pytest.raises(MethodNotFound):
        core.result(8, json.dumps({"jsonrpc": "2.0", "id": 8, "error": missing}).encode())
    for bad in (
        b"nope",
        b"[]",
        b'{"id": 1, "result": 1}',
        b'{"jsonrpc": "2.0", "id": 2, "result": 1}',
    ):
        with pytest.raises(BadResponse):
            core.result(1, bad)


@pytest.mark.parametrize(
    "text, address",
    [
        ("/run/qmk.sock", Address(path="/run/qmk.sock")),
        ("unix:relative.sock", Address(path="relative.sock")),
        ("qmk.sock", Address(path="qmk.sock")),
        ("127.0.0.1:7000", Address(host="127.0.0.1", port=7000)),
        ("tcp:[::1]:80", Address(host="::1", port=80)),
    ],
)
def test_addresses_parse_unix_paths_and_tcp_host_ports(text, address):
    assert Address.parse(text) == address


def test_credentials_and_address_fall_back_to_the_environment():
    env = {"QMK_TENANT": "alice", "QMK_KEY": "k", "QMK_CAPS": "CAP_ALLOC, CAP_LINK"}
    assert Credentials.resolve(environ=env) == Credentials(
        tenant="alice", key="k", caps=("CAP_ALLOC", "CAP_LINK")
    )
    assert Credentials.resolve("bob", environ={}).caps == DEFAULT_CAPS
    with pytest.raises(SessionError):
        Credentials.resolve(environ={})


def test_a_call_that_waits_gets_its_own_wait_on_top_of_the_call_timeout():
    timeout = Timeout(call=2.0)
    assert timeout.for_call("q_status", {}) == 2.0
    assert timeout.for_call("q_wait", {"timeout_ms": 10_000}) == pytest.approx(17.0)
    assert timeout.for_call("q_wait", {}) == pytest.approx(37.0)  # its default 30 s
    assert timeout.for_call("q_submit", {"wait_ms": 10_000}) == pytest.approx(17.0)
    assert timeout.for_call("q_submit", {"wait_ms": None}) == 2.0  # answers once queued
    assert timeout.for_call("q_submit", {}) == 2.0
    assert Timeout(call=None).for_call("q_wait", {"timeout_ms": 5}) is None


def test_connecting_to_nothing_is_a_connect_error_for_both_clients(tmp_path):
    with pytest.raises(ConnectError):
        Client(str(tmp_path / "none.sock")).q_resource_query(session_id="s")

    async def main() -> None:
        client = AsyncClient(str(tmp_path / "none.sock"))
        try:
            await client.q_resource_query(session_id="s")
        finally:
            await client.aclose()

    with pytest.raises(ConnectError):
        asyncio.run(main())


def test_importing_the_client_loads_no_kernel_module():
    code = (
        "import sys, qmk.client; "
        "print(sorted(m for m in sys.modules if m.startswith(('qmk.kernel', 'qmk.abi.server'))))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"
