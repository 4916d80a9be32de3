"""Submits read together (one chunk of a connection, one loop turn) keep each request's
semantics: the same rows, replies, refusals and audit lines as the same submits sent
one at a time, each after the reply to the one before. What any way of taking a turn's
submits together (issue 50, item 3) must keep; the one-by-one run has an observer on its
door, which times every call in a coroutine of its own, so it stays the plain path."""

from __future__ import annotations

import asyncio
import json
import sqlite3
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

from qmk.abi.door import Door
from qmk.abi.limits import ServerConfig
from qmk.abi.server import serve_kernel
from qmk.kernel.datafiles import AUDIT_FILE, DB_FILE
from qmk.kernel.observe import KernelObserver
from qmk.kernel.service import Kernel
from support.kernel import BELL, WorkerGate, ghz_graph, login, run_kernel

#: The submits of the comparison, by session name ("A": alice with CAP_ALLOC and
#: CAP_LINK, "B": alice without CAP_ALLOC, "C": carol, 3 queued jobs at most; "X": no
#: session): accepted ones, the program's first job (checked in full) and the next ones
#: (its settled answer), an idempotency key used twice, a bad param, a missing
#: capability, a wait that ends at its limit, a bad wait, an unknown session, a full queue.
SUBMITS: list[tuple[str, dict[str, Any]]] = [
    ("A", {"graph": BELL, "shots": 10, "seed": 11}),
    ("A", {"graph": BELL, "shots": 10, "seed": 12}),
    ("A", {"graph": BELL, "shots": 10, "seed": 13, "idempotency_key": "k1"}),
    ("A", {"graph": BELL, "shots": 10, "seed": 14, "idempotency_key": "k1"}),
    ("A", {"graph": BELL, "shots": 0, "seed": 15}),
    ("B", {"graph": BELL, "shots": 10, "seed": 16}),
    ("A", {"graph": BELL, "shots": 10, "seed": 17, "wait_ms": 30}),
    ("A", {"graph": BELL, "shots": 10, "seed": 18, "wait_ms": -1}),
    ("X", {"graph": BELL, "shots": 10, "seed": 19}),
    ("C", {"graph": BELL, "shots": 10, "seed": 20}),
    ("C", {"graph": BELL, "shots": 10, "seed": 21}),
    ("C", {"graph": BELL, "shots": 10, "seed": 22}),
    ("C", {"graph": BELL, "shots": 10, "seed": 23}),
    ("A", {"graph": BELL, "shots": 10, "seed": 24, "colour": "red"}),
    ("A", {"graph": ghz_graph(3), "shots": 10, "seed": 25}),
    ("A", {"graph": ghz_graph(3), "shots": 10, "seed": 26}),
    ("A", {"graph": BELL, "shots": 10, "seed": 27, "policy": {"priority": 99}}),
    ("A", {"graph": BELL, "shots": 10, "seed": 28}),
]


def _lines(sessions: dict[str, str]) -> list[bytes]:
    return [
        json.dumps(
            {
                "jsonrpc": "2.0",
                "id": number,
                "method": "q_submit",
                "params": {"session_id": sessions[who], **params},
            }
        ).encode()
        + b"\n"
        for number, (who, params) in enumerate(SUBMITS, 1)
    ]


def _served(
    tmp_path: Path, body: Callable[[Path, Kernel], Awaitable[Any]], *, observed: bool
) -> Any:
    """``body(socket, kernel)`` against a kernel served on a Unix socket, one worker held
    by a job of bob's (so nothing else starts: every job accepted stays queued); with
    ``observed``, the door has an observer (every call timed in a coroutine)."""
    tmp_path.mkdir()
    gate = WorkerGate(tmp_path)
    socket = tmp_path / "k.sock"

    async def main(kernel: Kernel) -> Any:
        blocker = await kernel.q_submit(
            session_id=await login(kernel, "bob"), graph=BELL, shots=10, seed=1
        )
        while (
            await kernel.q_status(session_id=await login(kernel, "bob"), job_id=blocker.job_id)
        ).state != "RUNNING":
            await asyncio.sleep(0.01)
        config = ServerConfig(socket_path=socket)
        door = Door(kernel, config, probe=KernelObserver(kernel))
        if observed:
            door.observe(lambda wire, method, seconds: None)
        stop, ready = asyncio.Event(), asyncio.Event()
        serving = asyncio.create_task(
            serve_kernel(kernel, config, stop=stop, door=door, ready=lambda _: ready.set())
        )
        await asyncio.wait_for(ready.wait(), 10)
        try:
            return await body(socket, kernel)
        finally:
            stop.set()
            await asyncio.wait_for(serving, 30)

    with gate:
        return run_kernel(tmp_path, main, workers=1, gate=gate)


async def _sessions(kernel: Kernel) -> dict[str, str]:
    return {
        "A": await login(kernel, "alice", ["CAP_ALLOC", "CAP_LINK"]),
        "B": await login(kernel, "alice", ["CAP_LINK"]),
        "C": await login(kernel, "carol", ["CAP_ALLOC"]),
        "X": "sess_nope",
    }


async def _read_replies(reader: asyncio.StreamReader, count: int) -> dict[int, Any]:
    replies = {}
    for _ in range(count):
        reply = json.loads(await asyncio.wait_for(reader.readline(), 30))
        replies[reply["id"]] = reply
    return replies


def _run(tmp_path: Path, *, together: bool) -> tuple[Any, Any, Any]:
    """The replies, job rows and audit lines of :data:`SUBMITS`: sent in one write
    (``together``), or each after the reply to the one before (with an observer on the
    door)."""

    async def body(socket: Path, kernel: Kernel) -> Any:
        sessions = await _sessions(kernel)
        lines = _lines(sessions)
        reader, writer = await asyncio.open_unix_connection(str(socket), limit=1 << 22)
        try:
            if together:
                writer.write(b"".join(lines))
                await writer.drain()
                replies = await _read_replies(reader, len(lines))
            else:
                replies = {}
                for line in lines:
                    writer.write(line)
                    await writer.drain()
                    replies.update(await _read_replies(reader, 1))
        finally:
            writer.close()
        return sessions, replies

    data = tmp_path / "data"
    sessions, replies = _served(tmp_path, body, observed=not together)
    with sqlite3.connect(data / DB_FILE) as db:
        rows = db.execute(
            "SELECT job_id, tenant, state, shots, seed, idempotency_key FROM jobs "
            "WHERE tenant != 'bob' ORDER BY seq"
        ).fetchall()
    audit = [json.loads(line) for line in (data / AUDIT_FILE).read_text().splitlines()]
    return _normalized(sessions, replies, rows, audit)


def _normalized(
    sessions: dict[str, str], replies: dict[int, Any], rows: list[Any], audit: list[Any]
) -> tuple[Any, Any, Any]:
    """Ids as the order they first appear in (jobs by ``seq``), sessions by name (the
    audit's short ids by first appearance), dropped: times, MACs, the audit's line
    numbers and the shared machine's cycles (the clock's, which the pace sets)."""
    names = {sid: who for who, sid in sessions.items()}
    jobs = {row[0]: f"job{index}" for index, row in enumerate(rows)}
    sids: dict[str, str] = {}
    dropped = {"created_at", "started_at", "finished_at", "ts", "mac", "mac2", "prev", "seq"}
    dropped |= {"incident", "expires_at", "machine"}

    def named(value: Any, key: str = "") -> Any:
        if isinstance(value, dict):
            return {k: named(item, k) for k, item in value.items() if k not in dropped}
        if isinstance(value, list):
            return [named(item) for item in value]
        if key == "session" and isinstance(value, str):
            return sids.setdefault(value, f"session{len(sids)}")
        if isinstance(value, str):
            return jobs.get(value, names.get(value, value))
        return value

    bobs = {line.get("job_id") for line in audit if line.get("tenant") == "bob"}
    lines = [
        named(line)
        for line in audit
        if line.get("event") in {"job", "cap"}
        and line.get("tenant") != "bob"
        and line.get("job_id") not in bobs
        and line.get("where") != "negotiate"
    ]
    return (
        {number: named(reply) for number, reply in sorted(replies.items())},
        [named(list(row)) for row in rows],
        lines,
    )


def test_submits_read_together_give_the_rows_replies_refusals_and_audit_lines_of_one_by_one(
    tmp_path: Path,
) -> None:
    one_by_one = _run(tmp_path / "one", together=False)
    together = _run(tmp_path / "together", together=True)
    replies, rows, lines = together
    assert replies == one_by_one[0]
    assert rows == one_by_one[1]
    assert lines == one_by_one[2]
    # what the comparison holds: accepted jobs in the order sent, each refusal its own
    assert [row[4] for row in rows] == [11, 12, 13, 17, 20, 21, 22, 25, 26, 28]
    errors = {
        number: reply["error"]["data"]["name"]
        for number, reply in replies.items()
        if "error" in reply
    }
    assert errors == {
        5: "invalid-argument",
        6: "capability-denied",
        8: "invalid-argument",
        9: "invalid-session",
        13: "quota-exceeded",
        14: "invalid-params",
        17: "invalid-argument",
    }
    assert replies[4]["result"]["job_id"] == replies[3]["result"]["job_id"] == "job2"
    assert replies[7]["result"]["state"] == "QUEUED"  # its wait ended at its limit
    queued = [line["job_id"] for line in lines if line.get("state") == "QUEUED"]
    assert queued == [f"job{index}" for index in range(10)]
