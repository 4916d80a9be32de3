"""Workflow triggers through a real ``qmk serve``, killed with SIGKILL and started again.

Driven by the ``qmk workflow trigger`` commands: alice hands the kernel a workflow file to
run every hour and one to run after each of her jobs. Her job ends, and the job trigger's
run submits its job, which a :class:`~support.kernel.WorkerGate` holds. The server is
killed (-9) with that run going on; the server's clock (a
:class:`~support.clocks.ShiftedClock` the test moves, never waited for) goes three hours
on; the server starts again on the same data directory. Both triggers are there; the
held run is INTERRUPTED (its job runs on and completes, starting no run of its own); the
hourly schedule, missed three times, runs once and says so; its job's counts are
``qmk run``'s for the same seed.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from qmk.kernel.datafiles import AUDIT_FILE
from support.cli import qmk
from support.clocks import ClockedServer, ClockFile
from support.kernel import WorkerGate, config_toml, stop_all

BELL = """OPENQASM 2.0;
include "qelib1.inc";
qreg q[2];
creg c[2];
h q[0];
cx q[0], q[1];
measure q -> c;
"""


@pytest.fixture
def server(tmp_path: Path) -> Iterator[ClockedServer]:
    config = tmp_path / "k.toml"
    config.write_text(config_toml())
    started = ClockedServer(
        socket=tmp_path / "k.sock",
        data_dir=tmp_path / "k-data",
        config=config,
        workers=2,
        log=tmp_path / "k.log",
        clock=ClockFile(tmp_path / "clock"),
    )
    yield started
    stop_all([started])


def ok_json(*argv: str) -> Any:
    code, out, err = qmk(*argv, "--json")
    assert code == 0, err
    return json.loads(out)


def runs(trigger_id: str) -> list[dict[str, Any]]:
    (trigger,) = ok_json("workflow", "trigger", "runs", trigger_id)["triggers"]
    return list(trigger["runs"])


def until_runs(trigger_id: str, ready: Any, what: str, limit_s: float = 120.0) -> list[Any]:
    """The trigger's runs once ``ready(runs)`` holds (the limit only guards a hang)."""
    end = time.monotonic() + limit_s
    while time.monotonic() < end:
        found = runs(trigger_id)
        if ready(found):
            return found
        time.sleep(0.05)
    raise AssertionError(f"never {what}: {runs(trigger_id)}")


def test_triggers_outlive_a_kill_and_a_missed_schedule_runs_once(
    server: ClockedServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    assert server.clock is not None
    (tmp_path / "bell.qasm").write_text(BELL)
    flow = tmp_path / "flow.toml"
    flow.write_text('name = "bell"\n[[steps]]\nprogram = "bell.qasm"\nshots = 200\nseed = 7\n')
    with WorkerGate(tmp_path) as gate:
        server.start(hooks=gate.hooks())
        for name, value in server.env("alice").items():
            if name.startswith("QMK_"):
                monkeypatch.setenv(name, value)
        hourly = ok_json("workflow", "trigger", "add", str(flow), "--every", "3600")
        after = ok_json(
            "workflow", "trigger", "add", str(flow), "--on-job", "--name", "after my jobs"
        )
        assert (
            hourly["on"] == "schedule" and after["on"] == "job" and after["name"] == "after my jobs"
        )
        listed = ok_json("workflow", "trigger", "list")["triggers"]
        assert [t["trigger_id"] for t in listed] == [hourly["trigger_id"], after["trigger_id"]]

        mine = ok_json("submit", str(tmp_path / "bell.qasm"), "--shots", "10", "--seed", "1")
        gate.release(1)  # alice's own job runs; the trigger run's job is held
        assert ok_json("wait", mine["job_id"])["state"] == "COMPLETED"
        (held,) = until_runs(
            after["trigger_id"], lambda r: bool(r and r[0]["jobs"]), "the run's job submitted"
        )
        assert held["state"] == "RUNNING" and held["reason"] == "job"
        assert held["detail"] == {"job_id": mine["job_id"], "state": "COMPLETED"}
        server.kill()
    server.clock.advance(3 * 3600 + 60)  # down for three hours and a minute
    server.start()

    listed = ok_json("workflow", "trigger", "list")["triggers"]
    assert [t["trigger_id"] for t in listed] == [hourly["trigger_id"], after["trigger_id"]]
    (interrupted,) = runs(after["trigger_id"])
    assert interrupted["run_id"] == held["run_id"] and interrupted["state"] == "INTERRUPTED"
    assert "the kernel stopped during the run" in interrupted["error"]
    (left,) = interrupted["jobs"]
    assert ok_json("wait", left)["state"] == "COMPLETED"  # re-queued, as every job

    (caught,) = until_runs(
        hourly["trigger_id"], lambda r: bool(r) and r[0]["state"] != "RUNNING", "a catch-up"
    )
    assert caught["reason"] == "catch-up" and caught["detail"]["missed"] == 3
    assert caught["detail"]["due_at"] == hourly["next_run_at"]
    assert caught["state"] == "COMPLETED", caught
    (job_id,) = caught["jobs"]
    done = ok_json("status", job_id)
    code, out, err = qmk(
        "run", str(tmp_path / "bell.qasm"), "--shots", "200", "--seed", "7", "--json"
    )
    assert code == 0, err
    assert done["tenant"] == "alice" and done["result"]["counts"] == json.loads(out)["counts"]
    (again,) = ok_json("workflow", "trigger", "list")["triggers"][:1]
    assert again["next_run_at"] == hourly["next_run_at"] + 3 * 3600
    assert again["last_run"]["run_id"] == caught["run_id"]
    assert len(runs(hourly["trigger_id"])) == 1  # once, not three times
    assert len(runs(after["trigger_id"])) == 1  # the run's own job started no run

    code, out, _ = qmk("workflow", "trigger", "runs", hourly["trigger_id"])
    assert code == 0 and "catch-up (3 missed, ran once)" in out
    gone = ok_json("workflow", "trigger", "rm", after["trigger_id"])
    assert gone["state"] == "DELETED"
    assert [t["trigger_id"] for t in ok_json("workflow", "trigger", "list")["triggers"]] == [
        hourly["trigger_id"]
    ]
    audit = (server.data_dir / AUDIT_FILE).read_text()
    actions = [json.loads(line).get("action") for line in audit.splitlines() if '"trigger"' in line]
    assert {"create", "run", "run-ended", "delete"} <= set(actions)
