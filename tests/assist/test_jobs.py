"""The assistant's tools on a kernel are the caller's work (src/qmk/kernel/admit/assist.py):
``run`` is a job of the caller's session (admitted, limited, run by the workers,
metered), every tool's program work is charged to the tenant's CPU budget within the
node cap, and questions are answered in the desk's own bounded threads.

The model is a script on a real socket (:mod:`support.chat_server`): these tests need
one exact tool call, which the written-model tests of tests/assist cannot choose."""

from __future__ import annotations

import asyncio
import json
import os
import signal
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from qmk import aio
from qmk.errors import QuotaError, UnavailableError
from qmk.kernel.config import config_from_dict
from qmk.kernel.manual_clock import ManualClock
from support.chat_server import ScriptedChat
from support.kernel import KEYS, login, make_config, run_kernel
from support.paths import EXAMPLES
from support.tinyllm import BELL


@pytest.fixture
def chat() -> Iterator[ScriptedChat]:
    server = ScriptedChat().start()
    try:
        yield server
    finally:
        server.stop()


def _config(assist: dict[str, Any], **tenants: dict[str, Any]) -> Any:
    base = make_config()
    data = {
        "machine": {"physical_qubits": 200_000},
        "kernel": {"worker_memory_mb": 1024},
        "tenants": {
            name: {
                "key": KEYS[name],
                "caps": list(t.caps),
                "max_logical_qubits": t.max_logical_qubits,
                **tenants.get(name, {}),
            }
            for name, t in base.tenants.items()
        },
        "assist": assist,
    }
    return config_from_dict(data)


def _assist_lines(kernel: Any, assist_id: str) -> list[dict[str, Any]]:
    kernel.audit.flush()
    lines = [json.loads(line) for line in kernel.audit.path.read_text().splitlines()]
    return [
        line
        for line in lines
        if line.get("event") == "assist" and line.get("assist_id") == assist_id
    ]


def _qasm(qubits: int, body: str) -> str:
    return (
        f'OPENQASM 3.0;\ninclude "stdgates.inc";\nqubit[{qubits}] q;\nbit[{qubits}] c;\n'
        f"{body}\nc = measure q;\n"
    )


def test_the_run_tool_runs_a_job_of_the_caller_metered_and_listed(chat, tmp_path: Path):
    chat.calls["run"] = {"name": "run", "arguments": {"program": BELL, "shots": 100, "seed": 3}}
    config = _config({"url": chat.url, "model": "calls:run"})

    async def body(kernel: Any) -> Any:
        sid = await login(kernel, "alice")
        answer = await kernel.q_assist(session_id=sid, prompt="run a Bell pair", assist_id="r1")
        ran = answer.tool_results[0]["result"]
        job = await kernel.q_status(session_id=sid, job_id=ran["job_id"])
        usage = await kernel.q_usage(session_id=sid, job_id=ran["job_id"])
        listed = await kernel.q_list_jobs(session_id=sid)
        return answer, ran, job, usage, listed, _assist_lines(kernel, "r1")

    answer, ran, job, usage, listed, lines = run_kernel(tmp_path, body, config=config)
    assert answer.status == "answered" and ran["ok"] is True, ran
    assert job.state == "COMPLETED" and job.tenant == "alice"
    assert (job.shots, job.seed) == (100, 3)
    assert ran["counts"] == dict(job.result["counts"])
    assert set(ran["counts"]) <= {"00", "11"} and sum(ran["counts"].values()) == 100
    assert usage.count == 1 and usage.records[0]["shots"] == 100  # metered
    assert ran["job_id"] in [j.job_id for j in listed.jobs]
    result_line = next(line for line in lines if line["step"] == "tool-result")
    assert result_line["job_id"] == ran["job_id"] and result_line["ok"] is True


def test_the_run_tool_is_refused_past_the_callers_qubits_and_capabilities(chat, tmp_path: Path):
    # bob may hold 4 logical qubits and has no CAP_MAGIC
    config = _config({"url": chat.url, "model": "calls:run"})
    wide = _qasm(6, "h q[0];")
    magic = (EXAMPLES / "t_gate_injection.qvm.asm").read_text()  # INJECT_T_STATE

    async def body(kernel: Any) -> Any:
        sid = await login(kernel, "bob")
        results = []
        for program in (wide, magic):
            chat.calls["run"] = {"name": "run", "arguments": {"program": program, "shots": 10}}
            answer = await kernel.q_assist(session_id=sid, prompt="run it")
            results.append(answer.tool_results[0]["result"])
        jobs = await kernel.q_list_jobs(session_id=sid)
        usage = await kernel.q_usage(session_id=sid)
        return results, jobs, usage

    (wide_run, magic_run), jobs, usage = run_kernel(tmp_path, body, config=config)
    assert wide_run["ok"] is False and wide_run["code"] == "QS1006", wide_run
    assert "max_logical_qubits" in wide_run["error"] or "qubits" in wide_run["error"]
    assert magic_run["ok"] is False and magic_run["code"] == "QS1004", magic_run
    assert "CAP_MAGIC" in magic_run["error"]
    assert jobs.jobs == [] and usage.count == 0  # nothing ran anywhere


def test_with_no_model_a_loop_is_refused_at_the_node_cap_before_it_unrolls(tmp_path: Path):
    loop = 'OPENQASM 3.0;\ninclude "stdgates.inc";\nqubit q;\nfor uint i in [0:1048575] { h q; }\n'

    async def body(kernel: Any) -> Any:
        sid = await login(kernel, "alice")
        return await kernel.q_assist(session_id=sid, prompt="what does it cost?", program=loop)

    answer = run_kernel(tmp_path, body, config=_config({}))
    assert answer.status == "advice"
    refused = answer.advice[-1]
    assert "QMK refuses it" in refused and "QS1006" in refused, refused
    assert "max_graph_nodes" in refused


def test_the_tools_program_work_is_charged_to_the_tenants_cpu_budget(tmp_path: Path):
    # a budget of a tenth of a millisecond that never refills (a manual clock)
    config = _config({}, alice={"cpu_s_per_s": 1e-6, "cpu_burst_s": 1e-4})
    program = _qasm(8, "\n".join(f"rz({i / 100}) q[{i % 8}];" for i in range(3000)))

    async def body(kernel: Any) -> Any:
        sid = await login(kernel, "alice")
        answer = await kernel.q_assist(session_id=sid, prompt="what does it cost?", program=program)
        with pytest.raises(QuotaError) as refused:
            await kernel.q_submit(session_id=sid, graph=_bell_graph(), shots=10)
        return answer, refused.value

    answer, refused = run_kernel(
        tmp_path, body, config=config, clock=ManualClock(start=1_767_225_600.0)
    )
    # the first tool's work spent the budget: the next tools were refused, as the submit
    assert (
        answer.advice[0]
        == "program: verifies; info: QMK refused it: QS1006: "
        + (answer.advice[0].split("QS1006: ", 1)[1])
    )
    assert "cpu_s_per_s" in answer.advice[0], answer.advice
    assert refused.details["limit"] == "cpu_s_per_s"  # the advice's work was alice's


def _bell_graph() -> dict[str, Any]:
    from support.kernel import BELL as BELL_GRAPH

    return BELL_GRAPH


def test_questions_hold_the_desks_own_threads_within_the_caps(chat, tmp_path: Path):
    chat.calls["run"] = {"name": "run", "arguments": {"program": BELL, "shots": 10}}
    config = _config(
        {"url": chat.url, "model": "calls:run", "max_concurrent": 3, "calls_per_minute": 600}
    )
    chat.gate.clear()  # every model request waits until the test says

    async def body(kernel: Any) -> Any:
        alice, bob = await login(kernel, "alice"), await login(kernel, "bob")
        held = [
            asyncio.ensure_future(kernel.q_assist(session_id=sid, prompt="run it"))
            for sid in (alice, alice, bob)
        ]
        async with aio.timeout(120):  # a guard against a hang only
            await asyncio.to_thread(chat.wait_for, 3)
            with pytest.raises(QuotaError) as mine:  # alice has half of the desk
                await kernel.q_assist(session_id=alice, prompt="run it")
            carol = await login(kernel, "carol")  # logins go on meanwhile
            with pytest.raises(UnavailableError) as full:  # the desk is full
                await kernel.q_assist(session_id=carol, prompt="run it")
            chat.gate.set()
            answers = await asyncio.gather(*held)
        return mine.value, full.value, answers

    mine, full, answers = run_kernel(tmp_path, body, config=config)
    assert mine.code == "QS1006" and mine.details["limit"] == "concurrent_questions"
    assert full.code == "QS1011" and full.details["limit"] == "max_concurrent"
    assert [a.tool_results[0]["result"]["ok"] for a in answers] == [True, True, True]


def test_under_qmk_serve_the_tools_syscalls_pass_the_door_as_the_assist_wire(chat, tmp_path: Path):
    from qmk.abi.limits import ServerConfig
    from qmk.serve import _door

    chat.calls["run"] = {"name": "run", "arguments": {"program": BELL, "shots": 20}}
    config = _config({"url": chat.url, "model": "calls:run"})

    async def body(kernel: Any) -> Any:
        door, _ = _door(kernel, ServerConfig(tcp=("127.0.0.1", 0)))  # as qmk serve makes it
        seen: list[tuple[str, str]] = []
        door.observe(lambda wire, method, seconds: seen.append((wire, method)))
        sid = await login(kernel, "alice")
        answer = await kernel.q_assist(session_id=sid, prompt="run it")
        return answer, seen

    answer, seen = run_kernel(tmp_path, body, config=config)
    assert answer.tool_results[0]["result"]["ok"] is True
    assert seen == [("assist", "q_submit"), ("assist", "q_wait")]


def _assistants() -> list[int]:
    """The pids of this test process's assistant processes (named ``qmk-assistant``)."""
    from qmk.kernel.pools.workers import ASSISTANT_NAME

    mine = os.getpid()
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            if (entry / "comm").read_text().strip() != ASSISTANT_NAME:
                continue
            pid = int(entry.name)
            while pid > 1:  # one of ours: a descendant of this process
                pid = int(
                    (Path("/proc") / str(pid) / "stat").read_text().rsplit(")", 1)[1].split()[1]
                )
                if pid == mine:
                    found.append(int(entry.name))
                    break
        except (OSError, ValueError):
            continue
    return found


def test_a_question_is_answered_in_a_process_of_its_own_and_a_killed_one_costs_only_it(
    chat, tmp_path: Path
):
    chat.calls["run"] = {"name": "run", "arguments": {"program": BELL, "shots": 10, "seed": 5}}
    config = _config({"url": chat.url, "model": "calls:run"})
    chat.gate.clear()  # the first question waits in its model until the test says

    async def body(kernel: Any) -> Any:
        sid = await login(kernel, "alice")
        held = asyncio.ensure_future(kernel.q_assist(session_id=sid, prompt="run it"))
        async with aio.timeout(120):  # a guard against a hang only
            await asyncio.to_thread(chat.wait_for, 1)
            answering = _assistants()
            assert answering and os.getpid() not in answering
            for pid in answering:
                os.kill(pid, signal.SIGKILL)
            with pytest.raises(UnavailableError) as lost:
                await held
            chat.gate.set()
            again = await kernel.q_assist(session_id=sid, prompt="run it")
            jobs = await kernel.q_list_jobs(session_id=sid)
        return lost.value, again, jobs

    lost, again, jobs = run_kernel(tmp_path, body, config=config)
    assert lost.code == "QS1011" and lost.details["reason"] == "assistant-died"
    assert again.tool_results[0]["result"]["ok"] is True  # a new process answered
    assert [job.state for job in jobs.jobs] == ["COMPLETED"]  # the lost question ran none


def test_a_tools_program_is_read_in_the_kernels_planner_process_never_the_networked_one(
    chat, tmp_path: Path
):
    # the planner's pool holds each task at a gate: the validate tool's reading waits
    # there, in the planner process, until the test kills that process
    from qmk.kernel.admit.planner import Planner
    from support.kernel import WorkerGate
    from support.pools import GatedPool

    chat.calls["validate"] = {"name": "validate", "arguments": {"program": BELL}}
    config = _config({"url": chat.url, "model": "calls:validate"})
    gate = WorkerGate(tmp_path)
    pools: list[Any] = []

    async def body(kernel: Any) -> Any:
        def start(loop: asyncio.AbstractEventLoop) -> Any:
            pools.append(GatedPool(1, loop=loop, gate=gate.path, isolation=None))
            return pools[-1]

        kernel.admission.planner.close()  # a planner whose tasks the test holds
        kernel.admission.planner = Planner(start)
        sid = await login(kernel, "alice")
        held = asyncio.ensure_future(kernel.q_assist(session_id=sid, prompt="check it"))
        async with aio.timeout(120):  # a guard against a hang only
            while not pools or pools[0].busy() == 0:  # the tool's work is in the planner
                await asyncio.sleep(0.01)
            assert not held.done()  # the question waits for it
            (pid,) = pools[0].pids
            assert pid not in _assistants()
            os.kill(pid, signal.SIGKILL)
            answer = await held
        gate.open()
        return answer

    with gate:
        answer = run_kernel(tmp_path, body, config=config)
    result = answer.tool_results[0]["result"]
    assert result["ok"] is False and result["code"] == "QS1011", result
    assert result["details"]["reason"] == "planner-died"
    tool_messages = [m for m in chat.requests[-1]["messages"] if m.get("role") == "tool"]
    assert "planner-died" in tool_messages[0]["content"]  # the model was told
