"""The kernel's observer (:mod:`qmk.kernel.observe`): the audit log's events, to its callbacks."""

from __future__ import annotations

import json
from pathlib import Path

from qmk.abi.probe import KernelEvent
from qmk.kernel.observe import KernelObserver
from qmk.kernel.security.attest import REQUEST_FIELDS
from qmk.kernel.security.replay import find_attestation
from qmk.kernel.service import Kernel
from support.kernel import BELL, login, run_kernel


def test_an_observer_listens_to_the_audit_log_only_while_it_has_callbacks(
    tmp_path: Path,
) -> None:
    """No listener while no callback would hear a line (a completed job's line is then
    encoded from its run request alone); a callback hears each line's whole record, its
    attestation as plain data, as the line reads."""

    async def body(kernel: Kernel) -> tuple[list[KernelEvent], int, int, int]:
        probe = KernelObserver(kernel)
        idle = len(kernel.audit.listeners)
        heard: list[KernelEvent] = []
        stop = probe.listen(heard.append)
        listening = len(kernel.audit.listeners)
        sid = await login(kernel, "alice")
        await kernel.q_submit(session_id=sid, graph=BELL, shots=20, seed=3, wait_ms=60_000)
        stop()
        return heard, idle, listening, len(kernel.audit.listeners)

    heard, idle, listening, stopped = run_kernel(tmp_path, body)
    assert (idle, listening, stopped) == (0, 1, 0)
    completed = [e for e in heard if e.state == "COMPLETED"]
    assert len(completed) == 1
    record = completed[0].record
    line = find_attestation(tmp_path / "data", str(completed[0].job_id))
    assert line is not None
    for key in (*REQUEST_FIELDS, "engine", "epochs", "result_sha256", "stored_sha256"):
        assert json.loads(json.dumps(record[key])) == line[key], key
    assert isinstance(record["policy"], dict) and record["seed"] == 3


def test_a_completed_jobs_event_tells_its_results_facts_without_decoding_its_head(
    tmp_path: Path,
) -> None:
    """The facts an event carries of a completed job (its engine, sampling mode, the
    logical errors it injected) are its result's, read without its head (which the
    finished jobs the kernel keeps do not hold decoded: the collector walks them)."""

    async def body(kernel: Kernel) -> tuple[list[KernelEvent], dict[str, object], bool]:
        probe = KernelObserver(kernel)
        heard: list[KernelEvent] = []
        stop = probe.listen(heard.append)
        sid = await login(kernel, "alice")
        done = await kernel.q_submit(session_id=sid, graph=BELL, shots=20, seed=4, wait_ms=60_000)
        stop()
        result = kernel.supervisor.job(done.job_id, "alice").result
        assert result is not None
        return heard, json.loads(result.data), result._head is None

    heard, result, undecoded = run_kernel(tmp_path, body)
    (completed,) = [e for e in heard if e.state == "COMPLETED"]
    assert completed.job is not None and completed.job.final
    telemetry = result["telemetry"]
    assert isinstance(telemetry, dict) and telemetry["mode"]
    assert completed.job.engine == result["engine"]
    assert completed.job.mode == telemetry["mode"]
    assert completed.job.injected_logical_errors == telemetry["injected_logical_errors"]
    assert undecoded
