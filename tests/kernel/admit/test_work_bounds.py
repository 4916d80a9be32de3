"""A job's work is bounded at submit, on every target, from its program's numbers counted
folded: a stim circuit's qubits against the tenant's ``max_logical_qubits``, its
operations x shots against ``max_job_operations``, its measurement record against a
worker's memory; a folded QVM program's unrolled operations x shots likewise. A refusal
is a coded error before anything is queued; a job within them runs as before."""

from __future__ import annotations

from typing import Any

import pytest

from qmk import defaults
from qmk.errors import AdmissionError, QuotaError
from qmk.kernel.config import config_from_dict
from support.kernel import run_kernel
from support.stim_circuits import unwritable

KEY = "erin-key"
#: stim's smallest bomb: 27 bytes, 10^9 measurements of one qubit.
BOMB = "REPEAT 1000000000 {\n M 0\n}\n"


def config(**quota: Any) -> Any:
    return config_from_dict(
        {
            "machine": {"physical_qubits": 200_000},
            "kernel": {"worker_memory_mb": 1024},
            "tenants": {"erin": {"key": KEY, "caps": ["CAP_ALLOC"], **quota}},
        }
    )


async def login(kernel: Any) -> str:
    reply = await kernel.q_negotiate_caps(tenant="erin", key=KEY, requested=["CAP_ALLOC"])
    return str(reply.session_id)


async def submit(kernel: Any, graph: Any, shots: int, target: str, seed: int = 5) -> Any:
    sid = await login(kernel)
    accepted = await kernel.q_submit(
        session_id=sid, graph=graph, shots=shots, seed=seed, target=target
    )
    return await kernel.q_wait(session_id=sid, job_id=accepted.job_id, timeout_ms=60_000)


def refusal(tmp_path: Any, graph: Any, shots: int, target: str, **quota: Any) -> Any:
    async def body(kernel: Any) -> Any:
        with pytest.raises((QuotaError, AdmissionError)) as caught:
            await submit(kernel, graph, shots, target)
        listed = await kernel.q_list_jobs(session_id=await login(kernel))
        return caught.value, listed

    refused, listed = run_kernel(tmp_path, body, config=config(**quota))
    assert not listed.jobs, listed  # nothing was queued
    return refused


def test_the_27_byte_repeat_bomb_is_refused_at_submit_over_the_operations_quota(tmp_path):
    assert len(BOMB) == 27
    refused = refusal(tmp_path, {"stim": BOMB}, 1000, "stim")
    assert refused.code == "QS1006", refused
    assert refused.details["limit"] == "max_job_operations"
    # the verified program's operations: the 10^9 measurements, its qubit's ALLOC and FREE
    assert refused.details["needed"] == (10**9 + 2) * 1000


def test_the_repeat_bomb_at_one_shot_is_refused_for_its_record_a_worker_cannot_hold(tmp_path):
    refused = refusal(tmp_path, {"stim": BOMB}, 1, "stim")
    assert refused.code == "QS1007", refused
    assert refused.details["needed"] > refused.details["total"]


def test_a_bomb_whose_gates_read_an_earlier_turn_is_refused_before_it_is_unrolled(tmp_path):
    # its block is written unrolled (a gate reads the turn before): its rows, counted
    # from its first turn's, pass max_graph_nodes, and no more of it is read
    bomb = "M 0\nREPEAT 1000000000 {\n M 0\n CX rec[-2] 1\n}\n"
    refused = refusal(tmp_path, {"stim": bomb}, 1, "stim")
    assert refused.code == "QS1006", refused
    assert refused.details["limit"] == "max_graph_nodes"
    assert refused.details["needed"] == 2 + 2 * 10**9


def test_a_30000_qubit_stim_circuit_is_refused_for_a_tenant_of_16_qubits(tmp_path):
    wide = "H 29999\nM 0 29999\n"
    refused = refusal(tmp_path, {"stim": wide}, 10, "stim", max_logical_qubits=16)
    assert refused.code == "QS1006", refused
    assert refused.details["limit"] == "max_logical_qubits"
    assert refused.details["needed"] == 30_000 and refused.details["value"] == 16


def test_a_stim_circuit_within_the_quotas_runs_with_the_counts_of_a_run_in_process(tmp_path):
    import qmk

    # 4 qubits; 206 operations of the verified program (ALLOC, H, CX, then 50 turns of
    # CX, X_ERROR and 2 M, then 2 M and FREE) at 400 shots: 82,400, within a quota of
    # 110,000; the counts are stim's at seed 5 either way
    circuit = "H 0\nCX 0 1\nREPEAT 50 {\n CX 0 2\n X_ERROR(0.1) 3\n M 2 3\n}\nM 0 1\n"

    async def body(kernel: Any) -> Any:
        return await submit(kernel, {"stim": circuit}, 400, "stim", seed=5)

    done = run_kernel(
        tmp_path, body, config=config(max_logical_qubits=16, max_job_operations=110_000)
    )
    assert done.state == "COMPLETED", done.error
    here = qmk.run(circuit, shots=400, seed=5, format="stim")
    assert done.result["counts"] == dict(here.counts)


def folded(turns: int) -> dict[str, Any]:
    """A QVM 0.3 program: H then measure a qubit ``turns`` times (2 x turns + 2 nodes)."""
    return {
        "version": "0.3",
        "program": {
            "nodes": [
                {"id": "a", "op": "ALLOC_LQ", "vqs": ["q"]},
                {
                    "id": "r",
                    "op": "REPEAT",
                    "args": {"count": turns},
                    "body": [
                        {"id": "h", "op": "APPLY_H", "vqs": ["q"]},
                        {"id": "m", "op": "MEASURE_Z", "vqs": ["q"], "produces": ["e"]},
                    ],
                },
                {"id": "f", "op": "FREE_LQ", "vqs": ["q"]},
            ]
        },
        "resources": {"vqs": ["q"], "chs": [], "events": ["e"]},
        "caps": ["CAP_ALLOC"],
    }


def test_a_folded_qvm_program_over_the_operations_quota_is_refused_at_submit(tmp_path):
    # 2,002 operations unrolled x 10 shots = 20,020, past a quota of 20,000
    refused = refusal(tmp_path, folded(1000), 10, "logical", max_job_operations=20_000)
    assert refused.code == "QS1006", refused
    assert refused.details["limit"] == "max_job_operations"
    assert refused.details["needed"] == 2002 * 10


def test_a_folded_qvm_program_within_the_operations_quota_runs(tmp_path):
    async def body(kernel: Any) -> Any:
        return await submit(kernel, folded(1000), 9, "logical")

    done = run_kernel(tmp_path, body, config=config(max_job_operations=20_000))
    assert done.state == "COMPLETED", done.error
    assert sum(done.result["counts"].values()) == 9


def loop(turns: int) -> dict[str, Any]:
    """A QVM 0.3 program of ``turns`` turns of ``t q0; cx q0, q1``, then both measured
    (2 x turns + 4 operations unrolled, 7 stored rows)."""
    return {
        "version": "0.3",
        "program": {
            "nodes": [
                {"id": "a", "op": "ALLOC_LQ", "vqs": ["q0", "q1"]},
                {
                    "id": "r",
                    "op": "REPEAT",
                    "args": {"count": turns},
                    "body": [
                        {"id": "t", "op": "APPLY_T", "vqs": ["q0"]},
                        {"id": "c", "op": "APPLY_CNOT", "vqs": ["q0", "q1"]},
                    ],
                },
                {"id": "m0", "op": "MEASURE_Z", "vqs": ["q0"], "produces": ["e0"]},
                {"id": "m1", "op": "MEASURE_Z", "vqs": ["q1"], "produces": ["e1"]},
                {"id": "f", "op": "FREE_LQ", "vqs": ["q0", "q1"]},
            ]
        },
        "resources": {"vqs": ["q0", "q1"], "chs": [], "events": ["e0", "e1"]},
        "caps": ["CAP_ALLOC"],
    }


def fast_machine(*, budget: float | None = defaults.ERROR_BUDGET, **kernel: Any) -> Any:
    """:func:`config` on a machine whose clock runs 10^13 cycles a second: a 10^9-cycle
    schedule ends in a tenth of a millisecond of wall time; ``budget``: its jobs' error
    budget (None: none)."""
    machine = {"physical_qubits": 200_000, "cycles_per_s": 1e13, "error_budget": budget}
    return config_from_dict(
        {
            "machine": machine,
            "kernel": {"worker_memory_mb": 1024, **kernel},
            "tenants": {"erin": {"key": KEY, "caps": ["CAP_ALLOC"]}},
        }
    )


def test_a_10_9_operation_loop_within_quota_is_accepted_scheduled_and_ends_unrolled_too_large(
    tmp_path,
):
    # 5 x 10^8 turns: 10^9 + 4 operations x 1 shot, within the default max_job_operations;
    # past kernel.max_unrolled_nodes, so it is admitted and placed by its folded totals
    async def body(kernel: Any) -> Any:
        sid = await login(kernel)
        accepted = await kernel.q_submit(
            session_id=sid, graph=loop(500_000_000), shots=1, seed=5, target="logical"
        )
        assert accepted.state == "QUEUED"
        # said at once: the machine places it, no worker will run it
        (warned,) = accepted.warnings
        assert (warned.code, warned.name) == ("QK311", "placed-not-run"), warned
        assert "1000000004 nodes" in warned.message
        return await kernel.q_wait(session_id=sid, job_id=accepted.job_id, timeout_ms=60_000)

    # no error budget: a budget covers the job's own error, and 10^9 operations at the
    # machine's distances pass any budget under 1 (QK505 names it "memory")
    done = run_kernel(tmp_path, body, config=fast_machine(budget=None))
    # scheduled on the machine: a turn is its T then its CNOT, a cycle each, then the two
    # measurements in one cycle
    record = done.machine
    assert record["end_cycle"] - record["start_cycle"] == 2 * 500_000_000 + 2, record
    assert record["tiles"] == 9
    # then its worker, which applies operations one at a time, refuses to unroll it
    assert done.state == "FAILED"
    assert done.error.code == "QV505", done.error


def test_max_graph_nodes_counts_stored_rows_not_unrolled_nodes(tmp_path):
    # 7 stored rows, 2,004 nodes unrolled: within a cap of 10 rows; 11 rows are not
    wide = loop(1000)
    wide["program"]["nodes"][1]["body"] += [
        {"id": f"x{i}", "op": "APPLY_X", "vqs": ["q1"]} for i in range(4)
    ]

    async def body(kernel: Any) -> Any:
        done = await submit(kernel, loop(1000), 3, "logical")
        with pytest.raises(QuotaError) as caught:
            await submit(kernel, wide, 3, "logical")
        return done, caught.value

    done, refused = run_kernel(tmp_path, body, config=fast_machine(max_graph_nodes=10))
    assert done.state == "COMPLETED", done.error
    assert sum(done.result["counts"].values()) == 3
    assert refused.code == "QS1006", refused  # before it is read
    assert refused.details["limit"] == "max_graph_nodes"
    assert "the graph stores 11 rows" in str(refused)


def test_a_folded_program_larger_than_any_module_runs_over_two_unrolled_for_its_rewrite(
    tmp_path,
):
    from support.kernel import ghz_graph

    # 8 qubits of d=9 on two modules of 1000 physical qubits: admitted folded, unrolled
    # (within max_unrolled_nodes) for its cross-module gates to be teleported
    graph = ghz_graph(8)
    nodes = graph["program"]["nodes"]
    # after the CNOT chain, X on the last qubit twice: the identity unrolled, a flip if
    # one turn were taken for the program
    flip = [{"id": "x", "op": "APPLY_X", "vqs": ["q7"]}]
    nodes.insert(9, {"id": "r", "op": "REPEAT", "args": {"count": 2}, "body": flip})
    graph["version"] = "0.3"
    cfg = config_from_dict(
        {
            "machine": {"physical_qubits": 2000, "modules": 2},
            "kernel": {"worker_memory_mb": 1024},
            "tenants": {"erin": {"key": KEY, "caps": ["CAP_ALLOC", "CAP_LINK"]}},
        }
    )

    async def body(kernel: Any) -> Any:
        reply = await kernel.q_negotiate_caps(
            tenant="erin", key=KEY, requested=["CAP_ALLOC", "CAP_LINK"]
        )
        sid = str(reply.session_id)
        job = await kernel.q_submit(
            session_id=sid, graph=graph, shots=400, seed=7, policy={"noise": False}
        )
        return await kernel.q_wait(session_id=sid, job_id=job.job_id, timeout_ms=120_000)

    done = run_kernel(tmp_path, body, config=cfg)
    assert done.state == "COMPLETED", done.error
    assert set(done.result["counts"]) == {"0" * 8, "1" * 8}


def test_a_stim_job_past_the_qubit_quota_is_refused_from_its_totals_before_it_is_written(
    tmp_path,
):
    # the quota's refusal comes from the verified totals, before the program is written
    # as a stim circuit (seconds on a 30,000-qubit circuit): this one cannot be written
    # (its T), and is refused for its qubits, not for its T
    refused = refusal(tmp_path, unwritable(17), 10, "stim", max_logical_qubits=16)
    assert refused.code == "QS1006", refused
    assert refused.details["limit"] == "max_logical_qubits"
    assert refused.details["needed"] == 17 and refused.details["value"] == 16


def test_a_stim_job_within_the_quotas_that_stim_cannot_write_is_refused_at_submit(tmp_path):
    from qmk.errors import ProgramError

    async def body(kernel: Any) -> Any:
        with pytest.raises(ProgramError) as caught:
            await submit(kernel, unwritable(16), 10, "stim")
        return caught.value

    refused = run_kernel(tmp_path, body, config=config(max_logical_qubits=16))
    assert refused.code == "QE103" and "'t' (APPLY_T)" in str(refused), refused


def test_a_stim_circuit_past_the_qubit_quota_is_refused_before_it_is_read_into_rows(tmp_path):
    # its qubits as stim parses it: this one's rows would pass max_graph_nodes (its block
    # is written unrolled), and it is refused for its 17 qubits before they are counted
    bomb = "H 16\nM 0\nREPEAT 1000000000 {\n M 0\n CX rec[-2] 1\n}\n"
    refused = refusal(tmp_path, {"stim": bomb}, 1, "stim", max_logical_qubits=16)
    assert refused.code == "QS1006", refused
    assert refused.details["limit"] == "max_logical_qubits"
    assert refused.details["needed"] == 17 and refused.details["value"] == 16


def test_a_stim_job_whose_result_the_kernel_could_not_keep_is_refused_at_submit(tmp_path):
    from qmk.execution.stim_target import StimTarget, least_result_bytes

    # 2,000 measurements: their events' names and one outcome take 16,891 bytes of JSON,
    # past a max_result_mb of 0.01 (10,485 bytes); its worker would end it QK305
    circuit = "REPEAT 2000 {\n M 0\n}\n"
    least = least_result_bytes(StimTarget().read(circuit), {})
    assert least == 16_891
    cfg = config_from_dict(
        {
            "machine": {"physical_qubits": 200_000},
            "kernel": {"worker_memory_mb": 1024, "max_result_mb": 0.01},
            "tenants": {"erin": {"key": KEY, "caps": ["CAP_ALLOC"]}},
        }
    )

    async def body(kernel: Any) -> Any:
        with pytest.raises(AdmissionError) as caught:
            await submit(kernel, {"stim": circuit}, 5, "stim")
        listed = await kernel.q_list_jobs(session_id=await login(kernel))
        return caught.value, listed

    refused, listed = run_kernel(tmp_path, body, config=cfg)
    assert refused.code == "QK305", refused
    assert refused.details["needed"] == least and refused.details["total"] == 10_485
    assert not listed.jobs


def test_a_qvm_job_past_the_qubit_quota_is_refused_from_its_totals_before_it_is_planned(
    tmp_path,
):
    from support.kernel import ghz_graph

    # 17 qubits for a tenant of 16, on a machine too small for them: the quota's refusal
    # comes from the verified program, before its plan prices the physical qubits the
    # machine lacks (which was the refusal: QK501)
    cfg = config_from_dict(
        {
            "machine": {"physical_qubits": 2000},
            "kernel": {"worker_memory_mb": 1024},
            "tenants": {"erin": {"key": KEY, "caps": ["CAP_ALLOC"], "max_logical_qubits": 16}},
        }
    )

    async def body(kernel: Any) -> Any:
        with pytest.raises(QuotaError) as caught:
            await submit(kernel, ghz_graph(17), 10, "logical")
        return caught.value

    refused = run_kernel(tmp_path, body, config=cfg)
    assert refused.code == "QS1006", refused
    assert refused.details["limit"] == "max_logical_qubits"
    assert refused.details["needed"] == 17 and refused.details["value"] == 16
