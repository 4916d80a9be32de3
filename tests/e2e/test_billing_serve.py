"""Billing webhooks from a real ``qmk serve`` to a real HTTP receiver on a real socket:
signed, retried with backoff, dead letters an operator replays, and a delivery cut by
``kill -9`` delivered again after the restart (at least once, one idempotency key)."""

from __future__ import annotations

import csv
import hashlib
import hmac
import io
import json
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from qmk.client import Client
from support.kernel import BELL, TENANTS, ServerProcess, config_toml, toml_value
from support.receiver import Receiver

SECRET = "whsec-test-0123456789"
ALICE = {"tenant": "alice", "key": TENANTS["alice"]["key"], "caps": ["CAP_ALLOC"]}


@pytest.fixture
def servers() -> Iterator[list[ServerProcess]]:
    started: list[ServerProcess] = []
    yield started
    for server in started:
        if not server.stopped:
            assert server.stop() == 0, server.output()


def _serve(root: Path, started: list[ServerProcess], url: str, **billing: Any) -> ServerProcess:
    table = {
        "webhook_url": url,
        "webhook_secret_env": "QMK_TEST_WEBHOOK_SECRET",
        "webhook_backoff_s": 0.05,
        "webhook_timeout_s": 30.0,
        **billing,
    }
    config = root / "kernel.toml"
    config.write_text(
        config_toml()
        + "[billing]\n"
        + "".join(f"{key} = {toml_value(value)}\n" for key, value in table.items())
    )
    server = ServerProcess(
        socket=root / "k.sock",
        data_dir=root / "data",
        config=config,
        workers=1,
        log=root / "k.log",
    )
    started.append(server)
    return server.start(env={"QMK_TEST_WEBHOOK_SECRET": SECRET})


def _run_job(server: ServerProcess, seed: int = 5) -> dict[str, Any]:
    with Client.connect(str(server.socket), **ALICE) as client:
        job = client.q_submit(BELL, 40, seed)
        done = client.q_wait(job.job_id, 60_000)
        assert done.state == "COMPLETED", done
        usage = client.q_usage(job_id=job.job_id)
    (record,) = usage.records
    return record


def _qmk(*argv: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "qmk", *argv],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def _dead_letters(server: ServerProcess) -> list[dict[str, Any]]:
    done = _qmk("billing", "dead-letters", "--data-dir", str(server.data_dir), "--json")
    assert done.returncode == 0, done.stderr
    letters: list[dict[str, Any]] = json.loads(done.stdout)["dead_letters"]
    return letters


def _until(condition: Any, limit_s: float = 120.0) -> Any:
    """Poll ``condition`` until it holds (the limit only guards against a hang)."""
    end = time.monotonic() + limit_s
    while time.monotonic() < end:
        value = condition()
        if value:
            return value
        time.sleep(0.05)
    raise AssertionError("the condition never held")


def _check_signed(received: Any, record: dict[str, Any]) -> None:
    expected = "sha256=" + hmac.new(SECRET.encode(), received.body, hashlib.sha256).hexdigest()
    assert received.headers["x-qmk-signature"] == expected
    assert received.headers["idempotency-key"] == record["usage_id"]
    assert received.headers["content-type"] == "application/json"
    body = received.json()
    assert body["tenant"] == "alice" and body["job_id"] == record["job_id"]
    assert body["usage_id"] == record["usage_id"] and body["state"] == "COMPLETED"
    assert body["usage"] == {
        name: record[name]
        for name in (
            "shots",
            "logical_qubit_seconds",
            "physical_qubit_cycles",
            "device_seconds",
            "result_bytes",
        )
    }


def test_a_job_end_is_posted_signed_with_its_usage_and_an_idempotency_key(
    tmp_path: Path, servers: list[ServerProcess]
) -> None:
    with Receiver() as receiver:
        server = _serve(tmp_path, servers, receiver.url)
        record = _run_job(server)
        (received,) = receiver.wait_for(1)
        assert received.path == "/billing/hook"
        _check_signed(received, record)
        assert record["shots"] == 40
    # the test tenants' keys are plain text: the start said so, with its code
    assert "warning: QK402 plaintext-key: tenants.alice.key" in server.output()


def test_a_refused_delivery_is_retried_with_backoff_until_the_receiver_takes_it(
    tmp_path: Path, servers: list[ServerProcess]
) -> None:
    with Receiver([503, 500]) as receiver:
        server = _serve(tmp_path, servers, receiver.url)
        record = _run_job(server)
        first, second, third = receiver.wait_for(3)
        for received in (first, second, third):
            _check_signed(received, record)  # the same body and key each time
        assert first.body == second.body == third.body
        # backoff 0.05 s, then doubled: a retry never comes sooner
        assert second.at - first.at >= 0.05 and third.at - second.at >= 0.1
    assert _dead_letters(server) == []


def test_a_record_refused_at_every_attempt_is_a_dead_letter_that_an_operator_replays(
    tmp_path: Path, servers: list[ServerProcess]
) -> None:
    with Receiver(default=500) as receiver:
        server = _serve(tmp_path, servers, receiver.url, webhook_attempts=2)
        record = _run_job(server)
        receiver.wait_for(2)
        (letter,) = _until(lambda: _dead_letters(server))
        assert letter["usage_id"] == record["usage_id"] and letter["attempts"] == 2
        assert letter["last_error"] == "the receiver answered 500"
        assert letter["body"]["job_id"] == record["job_id"]
        assert "QK401 webhook-undelivered" in _until(
            lambda: "QK401" in server.output() and server.output()
        )
        wrong = _qmk("billing", "replay", "--data-dir", str(server.data_dir), "job_nope.1")
        assert wrong.returncode == 1 and wrong.stderr.startswith("QS1012 invalid-argument: ")
        receiver.default = 200  # the receiver is fixed; the operator replays
        done = _qmk("billing", "replay", "--data-dir", str(server.data_dir), record["usage_id"])
        assert done.returncode == 0 and done.stdout == f"replayed {record['usage_id']}\n"
        third = receiver.wait_for(3)[2]  # the running kernel picks it up
        _check_signed(third, record)
        _until(lambda: _dead_letters(server) == [])


def test_a_delivery_cut_by_kill_9_is_delivered_again_after_the_restart(
    tmp_path: Path, servers: list[ServerProcess]
) -> None:
    with Receiver(hold_first=True) as receiver:
        server = _serve(tmp_path, servers, receiver.url)
        record = _run_job(server)
        (first,) = receiver.wait_for(1)  # the delivery is in flight, unanswered
        server.kill()  # kill -9: the kernel never hears the answer
        receiver.release()
        server.start(env={"QMK_TEST_WEBHOOK_SECRET": SECRET})
        second = receiver.wait_for(2)[1]
        assert second.headers["idempotency-key"] == first.headers["idempotency-key"]
        assert second.body == first.body
        _check_signed(second, record)
        with Client.connect(str(server.socket), **ALICE) as client:
            assert client.q_usage().records == [record]  # metered once, delivered twice
    assert len(receiver.requests) == 2


def test_qmk_usage_prints_totals_json_and_csv_of_the_tenants_records(
    tmp_path: Path, servers: list[ServerProcess]
) -> None:
    with Receiver() as receiver:
        server = _serve(tmp_path, servers, receiver.url)
        records = [_run_job(server, seed) for seed in (1, 2)]
        env = server.env("alice")

        def usage(*argv: str) -> subprocess.CompletedProcess[str]:
            return subprocess.run(
                [sys.executable, "-m", "qmk", "usage", *argv],
                capture_output=True,
                text=True,
                timeout=120,
                env=env,
                check=False,
            )

        as_json = usage("--json")
        assert as_json.returncode == 0, as_json.stderr
        reply = json.loads(as_json.stdout)
        assert reply["count"] == 2 and reply["totals"]["shots"] == 80
        assert sorted(r["usage_id"] for r in reply["records"]) == sorted(
            r["usage_id"] for r in records
        )
        text = usage()
        assert text.returncode == 0 and "usage of alice: 2 job end(s)" in text.stdout
        to_stdout = usage("--csv")
        rows = list(csv.DictReader(io.StringIO(to_stdout.stdout)))
        assert [row["usage_id"] for row in rows] == [r["usage_id"] for r in reply["records"]]
        assert [int(row["shots"]) for row in rows] == [40, 40]
        assert float(rows[0]["device_seconds"]) == reply["records"][0]["device_seconds"]
        path = tmp_path / "usage.csv"
        to_file = usage("--csv", str(path), "--limit", "1")
        assert to_file.returncode == 0, to_file.stderr
        assert "wrote 1 of 2 records" in to_file.stderr
        assert len(list(csv.DictReader(path.open()))) == 1
        window = usage("--since", "2000-01-01T00:00Z", "--until", "2000-01-02", "--json")
        assert json.loads(window.stdout)["count"] == 0
