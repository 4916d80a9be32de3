"""Watches (``q_watch``, ``q_unwatch``): a device job's events pushed down a JSON-RPC
socket connection as ``q_event`` notifications, from a real kernel (real workers, SQLite)
on a real socket, wired as ``qmk serve`` wires it.

Jobs are held by the tests' gates (``tests/support/pools.py``): before they start, so a
watch is open before anything happens, and at their first pause point (after their
first chunk of shots), so what a watch hears while the job runs never depends on the
machine's speed."""

from __future__ import annotations

import asyncio
import io
import json
import logging
import math
import socket
import threading
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import pytest

from qmk.abi.jsonrpc import RpcCore
from qmk.abi.server import Server, ServerConfig
from qmk.cli import main as qmk_main
from qmk.client import AsyncClient, Timeout
from qmk.devices.neutral_atom.emulator import run_job
from qmk.devices.neutral_atom.shots import CHUNK_SHOTS
from qmk.errors import InvalidArgument, NotFoundError, QuotaError
from qmk.kernel.config import config_from_dict
from qmk.kernel.service import Kernel
from qmk.kernel.storage.artifacts import PART_RECORDS
from qmk.serve import _door, _watches
from support.kernel import WorkerGate
from support.neutral_atom import device_submit, gate, job
from support.pools import Hooks
from support.wire import GUARD_S, until

KEY = "dave-key"
DAVE: dict[str, Any] = {"tenant": "dave", "key": KEY, "caps": ["CAP_ALLOC", "CAP_DEVICE_NA"]}
TIMEOUT = Timeout(connect=GUARD_S, call=GUARD_S)

#: Three chunks of shots on a lossy chain: a pause point after the first.
JOB = job(
    3,
    gate("H", 0),
    gate("CX", 0, 1),
    gate("CX", 1, 2),
    profile="lossy_chain",
    shots=2 * CHUNK_SHOTS + 11,
    seed=23,
)
STREAM = {"stream": {"measurements": True, "pulses": True}}


class Gates:
    """The two gates of a test: ``start`` holds jobs before they run, ``pause`` at
    their pause points."""

    def __init__(self, tmp_path: Path) -> None:
        self.start = WorkerGate(tmp_path, "start-gate")
        self.pause = WorkerGate(tmp_path, "pause-gate")

    def hooks(self) -> Hooks:
        return Hooks(gate=str(self.start.path), pause_gate=str(self.pause.path))

    def open(self) -> None:
        self.start.open()
        self.pause.open()


Body = Callable[[Kernel, Server, str, Gates], Awaitable[Any]]


def serving(tmp_path: Path, body: Body, **server: Any) -> Any:
    """``body(kernel, server, socket_path, gates)`` against a kernel served as ``qmk
    serve`` serves it (its watches included), with ``[server]`` options ``server``."""
    config = config_from_dict(
        {
            "machine": {"physical_qubits": 200_000},
            "kernel": {"worker_memory_mb": 1024, "artifact_keep_s": 3600},
            "tenants": {"dave": {"key": KEY, "caps": DAVE["caps"], "max_concurrent_jobs": 4}},
        }
    )
    gates = Gates(tmp_path)
    path = tmp_path / "k.sock"

    async def main() -> Any:
        kernel = await Kernel.open(
            config, tmp_path / "data", workers=2, pool_factory=gates.hooks().factory()
        )
        server_config = ServerConfig(socket_path=path, **server)
        stop, ready = asyncio.Event(), asyncio.Event()
        door, probe = _door(kernel, server_config)  # as qmk serve makes them
        core = RpcCore(kernel, door=door)
        serve = Server(core, server_config, watches=_watches(door, probe), door=door)
        task = asyncio.create_task(serve.serve(stop, ready=lambda _: ready.set()))
        try:
            await asyncio.wait_for(ready.wait(), GUARD_S)
            return await asyncio.wait_for(body(kernel, serve, str(path), gates), 4 * GUARD_S)
        finally:
            gates.open()
            stop.set()
            await asyncio.wait_for(task, GUARD_S)
            await kernel.close()

    try:
        return asyncio.run(main())
    finally:
        gates.open()


def test_a_watch_hears_a_device_jobs_parts_while_it_runs_then_its_result_and_end(tmp_path):
    async def body(kernel, server, path, gates):
        async with await AsyncClient.connect(path, timeout=TIMEOUT, **DAVE) as client:
            job_id = (await device_submit(client.q_submit, job=JOB, policy=STREAM)).job_id
            events: list[dict[str, Any]] = []
            held = None
            async for event in client.watch(job_id, ["measurements"]):
                events.append(event)
                if event["event"] == "state" and len(events) == 1:
                    gates.start.release()  # the watch is open: the job may start
                if event["event"] == "stream" and held is None:
                    held = await client.q_status(job_id)  # on the same connection
                    gates.pause.open()  # heard after its first chunk: let it finish
            page = await client.q_device_artifacts(job_id, "measurements", 0, 10_000)
        return events, held, page

    events, held, page = serving(tmp_path, body)
    assert held.state == "RUNNING"
    names = [e["event"] for e in events]
    assert names[0] == "state" and names[-2:] == ["result", "end"]
    assert events[-1]["data"] == {"reason": "result"} and events[-1]["seq"] is None
    assert events[-2]["data"]["result"]["counts"] == run_job(JOB).counts()
    completed = next(i for i, e in enumerate(events) if e["data"].get("state") == "COMPLETED")
    parts = [e["data"]["record"] for e in events if e["event"] == "stream"]
    assert names.index("stream") < completed and names.count("stream") == len(parts)
    # only the measurements were asked for: every part of them, each shot once
    assert {p["artifact"] for p in parts} == {"measurements"}
    assert [p["part"] for p in parts] == list(range(math.ceil(JOB["shots"] / PART_RECORDS)))
    sent = sorted((r for p in parts for r in p["records"]), key=lambda r: r["shot"])
    assert sent == page.records


def test_watches_past_the_session_and_tenant_limits_are_refused_until_one_ends(tmp_path):
    async def body(kernel, server, path, gates):
        async with (
            await AsyncClient.connect(path, timeout=TIMEOUT, **DAVE) as first,
            await AsyncClient.connect(path, timeout=TIMEOUT, **DAVE) as second,
            await AsyncClient.connect(path, timeout=TIMEOUT, **DAVE) as third,
        ):
            job_id = (await device_submit(first.q_submit, job=JOB)).job_id  # held before it starts
            watch = await first._call("q_watch", {"job_id": job_id, "streams": None})
            refused = []
            for client in (first, second, third):
                try:
                    await client._call("q_watch", {"job_id": job_id, "streams": None})
                except QuotaError as exc:
                    refused.append(exc)
            with pytest.raises(InvalidArgument):
                await second._call("q_watch", {"job_id": job_id, "streams": ["counts"]})
            with pytest.raises(NotFoundError):  # watch ids are the connection's own
                await third._call("q_unwatch", {"watch_id": watch["watch_id"]})
            ended = await first._call("q_unwatch", {"watch_id": watch["watch_id"]})
            again = await third._call("q_watch", {"job_id": job_id, "streams": None})
            return refused, ended, again

    refused, ended, again = serving(
        tmp_path, body, max_streams_per_session=1, max_streams_per_tenant=2
    )
    # first's session holds its one; second's fits the tenant's two; third's does not
    assert [(e.code, e.details["reason"], e.details["scope"]) for e in refused] == [
        ("QS1006", "too-many-streams", "session"),
        ("QS1006", "too-many-streams", "tenant"),
    ]
    assert ended == {"watch_id": "w1", "ended": True} and again["watch_id"] == "w1"


def test_a_client_that_does_not_read_its_events_holds_a_bounded_buffer_and_is_dropped(
    tmp_path, caplog
):
    unsent = 16 * 1024

    async def body(kernel, server, path, gates):
        async with await AsyncClient.connect(path, timeout=TIMEOUT, **DAVE) as client:
            big = dict(JOB, shots=6 * CHUNK_SHOTS)
            job_id = (await device_submit(client.q_submit, job=big, policy=STREAM)).job_id
            watch = {"session_id": client.session_id, "job_id": job_id}

            def open_watch() -> socket.socket:  # blocking: off the loop that serves it
                sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
                sock.settimeout(GUARD_S)
                sock.connect(path)
                lines = sock.makefile("rwb")
                lines.write(b'{"jsonrpc":"2.0","id":1,"method":"q_watch","params":')
                lines.write(json.dumps(watch).encode() + b"}\n")
                lines.flush()
                assert json.loads(lines.readline())["result"]["watch_id"] == "w1"
                return sock

            sock = await asyncio.to_thread(open_watch)
            gates.pause.open()
            gates.start.release()  # the job runs; its events flood a client that reads none
            await until(lambda: server.connection_count == 2)
            await until(lambda: server.connection_count == 1)  # the server dropped it
            # its watch ended with it: the session's one stream is free again
            again = await client._call("q_watch", {"job_id": job_id, "streams": ["pulses"]})
            done = await client.q_wait(job_id, timeout_ms=int(GUARD_S * 1000))
            sock.close()
            return again, done

    with caplog.at_level(logging.WARNING, logger="qmk.abi.door"):  # the connection's guard
        again, done = serving(
            tmp_path, body, max_unsent_bytes=unsent, write_timeout_s=0.2, max_streams_per_session=1
        )
    assert done.state == "COMPLETED" and again["streams"] == ["pulses"]
    # what it held for the client when it dropped it (its own figure, not a poll's, which
    # a busy loop can miss): its bound and one event (a part of 256 records)
    dropping = "JSON-RPC: dropped a connection"
    (dropped,) = (r for r in caplog.records if r.getMessage().startswith(dropping))
    buffered = dropped.args[1] if isinstance(dropped.args, tuple) else None
    assert isinstance(buffered, int) and unsent < buffered <= unsent + 64 * 1024, buffered


def test_qmk_device_artifacts_follow_prints_parts_as_they_come(tmp_path):
    class Lines(io.StringIO):
        """stdout whose lines the test waits on."""

        def __init__(self) -> None:
            super().__init__()
            self.changed = threading.Condition()

        def write(self, text: str) -> int:
            with self.changed:
                count = super().write(text)
                self.changed.notify_all()
            return count

        def wait_for(self, needle: str) -> None:
            with self.changed:
                assert self.changed.wait_for(lambda: needle in self.getvalue(), GUARD_S)

    async def body(kernel, server, path, gates):
        async with await AsyncClient.connect(path, timeout=TIMEOUT, **DAVE) as client:
            job_id = (await device_submit(client.q_submit, job=JOB, policy=STREAM)).job_id
            out, err = Lines(), io.StringIO()
            argv = ["device", "artifacts", job_id, "--follow", "--socket", path]
            argv += ["--tenant", "dave", "--key", KEY]
            follow = asyncio.create_task(asyncio.to_thread(qmk_main, argv, stdout=out, stderr=err))
            await asyncio.to_thread(out.wait_for, "state RUNNING")  # its watch is open
            gates.start.release()
            await asyncio.to_thread(out.wait_for, "measurements part 1/")
            held = (await client.q_status(job_id)).state
            gates.pause.open()
            status = await follow
            return held, status, out.getvalue(), err.getvalue()

    held, status, out, err = serving(tmp_path, body)
    assert held == "RUNNING" and status == 0, err
    lines = out.splitlines()
    parts = math.ceil(JOB["shots"] / PART_RECORDS)
    assert lines[0] == "state RUNNING"
    sizes = [min(PART_RECORDS, JOB["shots"] - i * PART_RECORDS) for i in range(parts)]
    assert [line for line in lines if line.startswith("measurements part")] == [
        f"measurements part {i + 1}/{parts}: {size} records" for i, size in enumerate(sizes)
    ]
    assert "pulses part 1/1: " in out and "state COMPLETED" in out
    assert f"measurements  measurements  {JOB['shots']:>7} records" in out  # the list last


def test_a_watch_resumed_past_a_stream_parts_seq_and_sub_gets_exactly_the_events_after_it(
    tmp_path,
):
    async def body(kernel, server, path, gates):
        gates.open()  # nothing held: the job runs to its end first
        async with await AsyncClient.connect(path, timeout=TIMEOUT, **DAVE) as client:
            now = await client.q_events()
            job_id = (await device_submit(client.q_submit, job=JOB, policy=STREAM)).job_id
            await client.q_wait(job_id, int(GUARD_S * 1000))
            start = {"after": now.cursor, "after_sub": now.cursor_sub}
            whole = [e async for e in client.watch(job_id, **start)]
            parts = [e for e in whole if e["event"] == "stream" and e["sub"] >= 2]
            middle = parts[0]
            after = {"after": middle["seq"], "after_sub": middle["sub"]}
            tail = [e async for e in client.watch(job_id, **after)]
            with pytest.raises(InvalidArgument) as refused:
                params = {"job_id": job_id, "streams": None, "after": 1, "after_sub": -1}
                await client._call("q_watch", params)
        return whole, middle, tail, refused.value

    whole, middle, tail, refused = serving(tmp_path, body)
    cursors = [(e["seq"], e["sub"]) for e in whole if e["seq"] is not None]
    assert cursors == sorted(cursors) and all(isinstance(sub, int) for _, sub in cursors)
    assert whole[-2]["event"] == "result" and whole[-1]["event"] == "end"
    # exactly the events after the part: the parts of its line after it, then the rest
    assert tail == whole[whole.index(middle) + 1 :]
    assert refused.details["key"] == "after_sub"
