"""Big JSON-RPC lines weighed by the door before they are decoded (issue 32, item 5;
issue 63: the door weighs them, not the JSON-RPC core beside it).

A request line of a megabyte or more names its session in its first bytes; the JSON-RPC
core finds it there and the door (:meth:`qmk.abi.door.Door.decode`), while that
tenant's CPU budget is spent, refuses the request
under its id, undecoded (``QS1006`` with ``retry_after_s``); otherwise the line is
decoded in the budget's threads, its CPU charged to the tenant, and a submit's graph
travels on as its compact text. The lines below that are refused are not even JSON: a
refusal that decoded them would have said ``-32700``. The clock is the test's (nothing
waits).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from qmk.abi.big_lines import scan_head
from qmk.abi.door import Door
from qmk.abi.jsonrpc import THREAD_BYTES, RpcCore
from qmk.abi.limits import ServerConfig
from qmk.kernel.manual_clock import ManualClock
from qmk.kernel.observe import KernelObserver
from qmk.kernel.service import Kernel
from support.kernel import alice_and_bob, chain_graph, login, run_kernel

#: Nodes of a graph whose submit line is over THREAD_BYTES.
NODES = THREAD_BYTES // 30


def rpc_core(kernel: Kernel) -> RpcCore:
    """The JSON-RPC core of ``kernel`` behind a door that checks its sessions (as in
    ``qmk serve``)."""
    door = Door(kernel, ServerConfig(tcp=("127.0.0.1", 0)), probe=KernelObserver(kernel))
    return RpcCore(kernel, door=door)


def submit_line(session: str, graph: Any, request_id: Any = 41) -> bytes:
    request = {"jsonrpc": "2.0", "id": request_id, "method": "q_submit"}
    params = {"session_id": session, "graph": graph, "shots": 1, "seed": 1}
    return json.dumps({**request, "params": params}).encode() + b"\n"


def junk_line(session: str, request_id: Any = 41) -> bytes:
    """A big q_submit line that is not JSON past its head."""
    head = submit_line(session, "GRAPH", request_id).split(b'"GRAPH"')[0]
    return head + b"{" + b"x" * THREAD_BYTES + b"\n"


def test_scan_head_reads_the_id_method_and_session_before_the_params() -> None:
    line = submit_line("s-1.a", chain_graph(5), "r-9")
    assert scan_head(line) == ("r-9", "q_submit", "s-1.a")
    # an id after the params cannot be read so: the line is decoded as any other
    late = b'{"method": "q_submit", "params": {"session_id": "s"}, "id": 3}'
    assert scan_head(late)[0] is ...


def test_a_big_line_of_a_tenant_past_its_cpu_budget_is_refused_undecoded(
    tmp_path: Path,
) -> None:
    clock = ManualClock(start=1000.0)

    async def body(kernel: Kernel) -> None:
        core = rpc_core(kernel)
        alice, bob = await login(kernel, "alice", ["CAP_ALLOC"]), await login(kernel, "bob")
        # the bucket holds a nanosecond: the first submit spends more than that
        await kernel.q_submit(session_id=alice, graph=chain_graph(50), shots=1, seed=1)
        refused = json.loads(await core.handle_line(junk_line(alice, 41)) or b"")
        assert refused["id"] == 41
        data = refused["error"]["data"]
        assert data["code"] == "QS1006"
        assert data["limit"] == "cpu_s_per_s"
        assert data["retry_after_s"] > 0
        # bob's budget is his own: his junk line is decoded, and found not to be JSON
        decoded = json.loads(await core.handle_line(junk_line(bob, 42)) or b"")
        assert decoded["error"]["code"] == -32700
        # once alice's bucket is out of debt her line is decoded too
        clock.advance(data["retry_after_s"])
        decoded = json.loads(await core.handle_line(junk_line(alice, 43)) or b"")
        assert decoded["error"]["code"] == -32700

    run_kernel(
        tmp_path,
        body,
        workers=1,
        config=alice_and_bob(cpu_burst_s=1e-9, cpu_s_per_s=1.0, verify_nodes_per_s=1e9),
        clock=clock,
    )


def test_a_big_submit_line_is_charged_to_its_tenant_and_stored_as_compact_text(
    tmp_path: Path,
) -> None:
    clock = ManualClock(start=1000.0)
    graph = chain_graph(NODES)

    async def body(kernel: Kernel) -> None:
        core = rpc_core(kernel)
        alice = await login(kernel, "alice", ["CAP_ALLOC"])
        line = submit_line(alice, graph)
        assert len(line) >= THREAD_BYTES
        accepted = json.loads(await core.handle_line(line) or b"")
        job_id = accepted["result"]["job_id"]
        stored = kernel.supervisor.job(job_id, "alice").graph
        assert stored == json.dumps(graph, separators=(",", ":"), ensure_ascii=False)
        # its decoding, verifying and planning were charged: the next big line is refused
        refused = json.loads(await core.handle_line(submit_line(alice, graph, 2)) or b"")
        assert refused["id"] == 2 and refused["error"]["data"]["code"] == "QS1006"

    run_kernel(
        tmp_path,
        body,
        workers=1,
        config=alice_and_bob(cpu_burst_s=1e-6, cpu_s_per_s=1e-6, verify_nodes_per_s=1e9),
        clock=clock,
    )


def test_a_big_line_naming_another_session_first_is_charged_to_the_one_its_params_name(
    tmp_path: Path,
) -> None:
    clock = ManualClock(start=1000.0)

    async def body(kernel: Kernel) -> None:
        core = rpc_core(kernel)
        alice = await login(kernel, "alice", ["CAP_ALLOC"])
        # the first "session_id" of the line is a decoy; params name alice's session
        decoy = {"session_id": "junk", "pad": "x" * THREAD_BYTES}
        request = {"jsonrpc": "2.0", "id": 5, "method": "q_status"}
        line = json.dumps({**request, "params": {"job_id": decoy, "session_id": alice}})
        assert scan_head(line.encode())[2] == "junk"
        reply = json.loads(await core.handle_line(line.encode() + b"\n") or b"")
        assert reply["error"]["code"] == -32602  # job_id is no string: nothing else ran
        # the decoding was charged to alice: her next big line is refused undecoded
        refused = json.loads(await core.handle_line(junk_line(alice, 6)) or b"")
        assert refused["id"] == 6 and refused["error"]["data"]["code"] == "QS1006"

    run_kernel(
        tmp_path,
        body,
        workers=1,
        config=alice_and_bob(cpu_burst_s=1e-9, cpu_s_per_s=1.0),
        clock=clock,
    )
