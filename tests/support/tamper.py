"""Edits of a stopped kernel's data directory, made as someone who may write its files but
holds no secret would make them: a job's program swapped (in its row, or kept apart in
``graph_texts``), its run request's ``program_digest`` swapped with it; a packed program
swapped for a decompression bomb."""

from __future__ import annotations

import json
import sqlite3
import zlib
from pathlib import Path
from typing import Any

from qmk.execution.request import program_digest
from qmk.kernel.datafiles import DB_FILE
from qmk.kernel.service import Kernel
from qmk.kernel.storage.store import GRAPH_APART, pack_graph
from support.kernel import BELL, WorkerGate, login, run_kernel

#: Bell's program with its H swapped for X on both qubits: always 11, if it ever ran.
FORGED = {
    **BELL,
    "program": {
        "nodes": [
            BELL["program"]["nodes"][0],
            {"id": "x0", "op": "APPLY_X", "vqs": ["q0"]},
            {"id": "x1", "op": "APPLY_X", "vqs": ["q1"]},
            *BELL["program"]["nodes"][3:],
        ]
    },
}


def unfinished_jobs(tmp_path: Path, graph: dict[str, Any]) -> tuple[str, str]:
    """A kernel on ``tmp_path / "data"`` closed with alice's job of ``graph`` held in its
    one worker and bob's Bell job queued behind it: both unfinished; their ids."""

    async def before(kernel: Kernel) -> tuple[str, str]:
        alice, bob = await login(kernel, "alice"), await login(kernel, "bob")
        held = await kernel.q_submit(session_id=alice, graph=graph, shots=50, seed=3)
        queued = await kernel.q_submit(session_id=bob, graph=BELL, shots=50, seed=4)
        return str(held.job_id), str(queued.job_id)

    with WorkerGate(tmp_path) as gate:
        return run_kernel(tmp_path, before, workers=1, gate=gate)  # type: ignore[no-any-return]


def _set_program(db: sqlite3.Connection, job_id: str, digest: str, packed: bytes | None) -> None:
    """Point ``job_id``'s row at ``packed`` kept apart under ``digest`` (None: leave the
    text in its row), and its run request at ``digest``."""
    tenant, request = db.execute(
        "SELECT tenant, request FROM jobs WHERE job_id=?", (job_id,)
    ).fetchone()
    changed = json.loads(request)
    changed["program_digest"] = digest
    db.execute("UPDATE jobs SET request=? WHERE job_id=?", (json.dumps(changed), job_id))
    if packed is not None:
        db.execute(
            "INSERT OR REPLACE INTO graph_texts (tenant, digest, graph) VALUES (?, ?, ?)",
            (tenant, digest, packed),
        )
        db.execute("UPDATE jobs SET graph='', graph_digest=? WHERE job_id=?", (digest, job_id))


def swap_program(data: Path, job_id: str, text: str) -> None:
    """Swap ``job_id``'s stored program for ``text`` where the kernel keeps a text of its
    size (in the row, or packed apart), with the digest its run request names."""
    digest = program_digest(text)
    with sqlite3.connect(data / DB_FILE) as db:
        if len(text) >= GRAPH_APART:
            _set_program(db, job_id, digest, pack_graph(text))
        else:
            db.execute("UPDATE jobs SET graph=? WHERE job_id=?", (text, job_id))
            _set_program(db, job_id, digest, None)


def zlib_bomb(mib: int) -> bytes:
    """A zlib stream that inflates to ``mib`` MiB of spaces (about 1 KB packed a MiB)."""
    pack = zlib.compressobj(9)
    chunk = b" " * 2**20
    return b"".join([*(pack.compress(chunk) for _ in range(mib)), pack.flush()])


def bomb_program(data: Path, job_id: str, mib: int) -> int:
    """Swap ``job_id``'s stored program for a packed one that inflates to ``mib`` MiB,
    kept apart (the digest its run request names is left as it was); the bomb's size."""
    bomb = zlib_bomb(mib)
    with sqlite3.connect(data / DB_FILE) as db:
        (request,) = db.execute("SELECT request FROM jobs WHERE job_id=?", (job_id,)).fetchone()
        _set_program(db, job_id, json.loads(request)["program_digest"], bomb)
    return len(bomb)
