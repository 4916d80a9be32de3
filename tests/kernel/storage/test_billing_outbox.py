"""The billing table and the outbox in process: the webhook's secret sources, a
receiver nobody listens at (each attempt refused, then a dead letter), and the POST made
by a process of the kernel's webhook pool."""

from __future__ import annotations

import asyncio
import contextlib
import os
import socket
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from qmk.errors import InvalidArgument
from qmk.kernel.config import ConfigError, config_from_dict
from qmk.kernel.pools.workers import WEBHOOK_NAME
from qmk.kernel.service import Kernel
from qmk.kernel.storage.dead_letters import dead_letters, replay
from qmk.kernel.storage.outbox import OutboxRows
from support.kernel import BELL, KEYS, login, run_kernel


def _config(**billing: Any) -> Any:
    return config_from_dict(
        {
            "machine": {"physical_qubits": 200_000},
            "kernel": {"worker_memory_mb": 1024},
            "tenants": {"alice": {"key": KEYS["alice"], "caps": ["CAP_ALLOC"]}},
            "billing": billing,
        }
    )


def test_the_webhook_secret_comes_from_the_table_a_file_or_a_variable(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
):
    url = "https://billing.example.com/qmk"
    (tmp_path / "secret").write_text("from-a-file\n")
    monkeypatch.setenv("QMK_TEST_HOOK_SECRET", "from-a-variable")
    for table, secret in (
        ({"webhook_secret": "inline"}, "inline"),
        ({"webhook_secret_file": str(tmp_path / "secret")}, "from-a-file"),
        ({"webhook_secret_env": "QMK_TEST_HOOK_SECRET"}, "from-a-variable"),
    ):
        assert _config(webhook_url=url, **table).billing.webhook_secret == secret


@pytest.mark.parametrize(
    ("table", "key"),
    [
        ({"webhook_url": "https://b.example/x"}, "billing.webhook_secret"),
        ({"webhook_url": "ftp://b.example/x", "webhook_secret": "s"}, "billing.webhook_url"),
        (
            {"webhook_secret": "s", "webhook_secret_env": "HOME"},
            "billing.webhook_secret_env",
        ),
        ({"webhook_secret_env": "QMK_TEST_UNSET_VARIABLE"}, "billing.webhook_secret_env"),
        ({"webhook_secret_file": "/nonexistent/secret"}, "billing.webhook_secret_file"),
        ({"currency": "euro"}, "billing.currency"),
        ({"webhook_attempts": 0}, "billing.webhook_attempts"),
    ],
)
def test_a_bad_billing_table_is_one_coded_line_naming_its_key(table: dict[str, Any], key: str):
    with pytest.raises(ConfigError) as err:
        _config(**table)
    assert err.value.details["key"] == key and "\n" not in str(err.value)


async def _bell_ended(kernel: Kernel) -> str:
    """alice's Bell job (10 shots, seed 2), submitted and ended; its id."""
    sid = await login(kernel, "alice", ["CAP_ALLOC"])
    job = await kernel.q_submit(session_id=sid, graph=BELL, shots=10, seed=2)
    await kernel.q_wait(session_id=sid, job_id=job.job_id, timeout_ms=60_000)
    return job.job_id


@pytest.fixture
def closed_port() -> Iterator[int]:
    """A port bound and never listening, held for the test: a connection is refused, and
    no other test (or worker) can take the port meanwhile."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        yield int(probe.getsockname()[1])


def test_a_receiver_nobody_listens_at_makes_a_dead_letter_after_its_attempts(
    tmp_path: Path, closed_port: int
) -> None:
    config = _config(
        webhook_url=f"http://127.0.0.1:{closed_port}/hook",
        webhook_secret="s",
        webhook_attempts=3,
        webhook_backoff_s=0.01,
    )
    data = tmp_path / "data"

    async def body(kernel: Kernel) -> None:
        job_id = await _bell_ended(kernel)
        end = time.monotonic() + 60  # guards a hang only: the attempts take ~0.03 s
        while not dead_letters(data) and time.monotonic() < end:
            await asyncio.sleep(0.02)
        (letter,) = dead_letters(data)
        assert letter["usage_id"] == f"{job_id}.1" and letter["attempts"] == 3
        assert letter["last_error"].startswith("cannot deliver: ")
        assert letter["body"]["usage"]["shots"] == 10

    run_kernel(tmp_path, body, config=config)
    # the operator replays it while the kernel is stopped: PENDING, delivered at the next start
    with pytest.raises(InvalidArgument):
        replay(data, ["job_unknown.1"], now=time.time())
    (letter,) = dead_letters(data)
    assert replay(data, [], now=time.time()) == [letter["usage_id"]]
    assert dead_letters(data) == []


def test_webhooks_are_delivered_several_at_once_so_one_slow_answer_holds_one_place(
    tmp_path: Path,
) -> None:
    from support.receiver import Receiver

    with Receiver(together=4) as receiver:  # answers none until 4 are held at once
        config = _config(
            webhook_url=receiver.url,
            webhook_secret="s",
            webhook_timeout_s=300,
            webhook_concurrency=8,
        )

        async def body(kernel: Kernel) -> list[str]:
            sid = await login(kernel, "alice", ["CAP_ALLOC"])
            jobs = [
                await kernel.q_submit(session_id=sid, graph=BELL, shots=10, seed=seed)
                for seed in range(4)
            ]
            for job in jobs:
                await kernel.q_wait(session_id=sid, job_id=job.job_id, timeout_ms=60_000)
            await asyncio.to_thread(receiver.wait_for, 4)
            end = time.monotonic() + 60  # guards a hang only
            while OutboxRows(kernel.store).backlog()[0] and time.monotonic() < end:
                await asyncio.sleep(0.02)
            assert OutboxRows(kernel.store).backlog() == (0, None, 0)  # all four DELIVERED
            return [f"{job.job_id}.1" for job in jobs]

        keys = run_kernel(tmp_path, body, config=config)
    assert receiver.most_held == 4  # four in flight at once: one at a time never gets here
    assert sorted(r.headers["idempotency-key"] for r in receiver.requests) == sorted(keys)


def _owner_of_port(port: int) -> int:
    """The process holding the local TCP port ``port`` on 127.0.0.1 (/proc/net/tcp's
    socket inode, found among each process's descriptors)."""
    inode = None
    for row in Path("/proc/net/tcp").read_text().splitlines()[1:]:
        fields = row.split()
        if fields[1] == f"0100007F:{port:04X}":
            inode = fields[9]
    assert inode is not None, f"no socket on port {port}"
    for fd in Path("/proc").glob("[0-9]*/fd/*"):
        with contextlib.suppress(OSError):
            if os.readlink(fd) == f"socket:[{inode}]":
                return int(fd.parts[2])
    raise AssertionError(f"no process holds socket {inode}")


def test_a_webhook_is_posted_by_a_webhook_process_not_the_kernels(tmp_path: Path) -> None:
    from support.receiver import Receiver

    with Receiver(hold_first=True) as receiver:  # the POST held: its sender still connected
        config = _config(webhook_url=receiver.url, webhook_secret="s")

        async def body(kernel: Kernel) -> None:
            await _bell_ended(kernel)
            (held,) = await asyncio.to_thread(receiver.wait_for, 1)
            sender = _owner_of_port(held.peer[1])
            receiver.release()
            assert sender != os.getpid()  # the kernel runs in this process
            assert Path(f"/proc/{sender}/comm").read_text().strip() == WEBHOOK_NAME
            end = time.monotonic() + 60  # guards a hang only
            while OutboxRows(kernel.store).backlog()[0] and time.monotonic() < end:
                await asyncio.sleep(0.02)
            assert OutboxRows(kernel.store).backlog() == (0, None, 0)  # DELIVERED

        run_kernel(tmp_path, body, config=config)


def test_a_receiver_that_does_not_answer_in_time_costs_its_webhook_process_and_an_attempt(
    tmp_path: Path,
) -> None:
    from support.receiver import Receiver

    with Receiver(hold_first=True) as receiver:  # never answers while the test runs
        config = _config(
            webhook_url=receiver.url,
            webhook_secret="s",
            webhook_timeout_s=0.5,
            webhook_attempts=1,
        )
        data = tmp_path / "data"

        async def body(kernel: Kernel) -> None:
            await _bell_ended(kernel)
            (held,) = await asyncio.to_thread(receiver.wait_for, 1)
            sender = _owner_of_port(held.peer[1])
            end = time.monotonic() + 60  # guards a hang only
            while not dead_letters(data) and time.monotonic() < end:
                await asyncio.sleep(0.02)
            (letter,) = dead_letters(data)
            assert letter["last_error"] == "no answer within 0.5 s"
            while Path(f"/proc/{sender}").exists() and time.monotonic() < end:
                await asyncio.sleep(0.02)  # killed (reaped by its pool)
            assert not Path(f"/proc/{sender}").exists()

        run_kernel(tmp_path, body, config=config)
        receiver.release()
