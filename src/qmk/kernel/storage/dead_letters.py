"""The billing outbox's dead letters, for operators: ``qmk billing dead-letters`` lists
them (:func:`dead_letters`) and ``qmk billing replay`` makes them PENDING again
(:func:`replay`), in the kernel's database, running or not (:mod:`qmk.kernel.storage.
billing` delivers them). The kernel process does not import this module.
"""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from qmk.errors import InvalidArgument
from qmk.kernel.datafiles import DB_FILE
from qmk.kernel.storage.billing import DEAD, PENDING


def _connect(data_dir: str | Path) -> sqlite3.Connection:
    path = Path(data_dir) / DB_FILE
    if not path.exists():
        raise InvalidArgument(f"{data_dir}: no kernel database ({DB_FILE})", key="data_dir")
    db = sqlite3.connect(path, timeout=30.0)
    db.row_factory = sqlite3.Row  # columns read by name
    try:
        db.execute("SELECT 1 FROM outbox LIMIT 1")
    except sqlite3.Error:
        db.close()
        raise InvalidArgument(
            f"{data_dir}: its database has no outbox (a kernel older than billing)",
            key="data_dir",
        ) from None
    return db


def dead_letters(data_dir: str | Path) -> list[dict[str, Any]]:
    """The outbox's DEAD records of the kernel database in ``data_dir``, oldest first."""
    db = _connect(data_dir)
    try:
        rows = db.execute(
            "SELECT usage_id, tenant, attempts, created_at, last_error, body FROM outbox "
            "WHERE state=? ORDER BY created_at, rowid",
            (DEAD,),
        ).fetchall()
    finally:
        db.close()
    return [{**dict(row), "body": json.loads(bytes(row["body"]))} for row in rows]


def replay(data_dir: str | Path, usage_ids: Sequence[str], *, now: float) -> list[str]:
    """Make the DEAD records ``usage_ids`` (none: every one) PENDING again, due at
    ``now`` with their attempts counted afresh; the ids replayed. A running kernel
    delivers them within :data:`IDLE_POLL_S`; a stopped one at its next start.

    Raises:
        InvalidArgument: an id that is no dead letter.
    """
    db = _connect(data_dir)
    try:
        with db:
            if usage_ids:
                dead = {
                    row["usage_id"]
                    for row in db.execute(
                        f"SELECT usage_id FROM outbox WHERE state=? AND usage_id IN "
                        f"({', '.join('?' * len(usage_ids))})",
                        (DEAD, *usage_ids),
                    )
                }
                missing = [u for u in usage_ids if u not in dead]
                if missing:
                    raise InvalidArgument(
                        f"{missing[0]} is no dead letter (qmk billing dead-letters lists them)",
                        key="usage_id",
                    )
                chosen = list(dict.fromkeys(usage_ids))
            else:
                chosen = [
                    row["usage_id"]
                    for row in db.execute(
                        "SELECT usage_id FROM outbox WHERE state=? ORDER BY created_at, rowid",
                        (DEAD,),
                    )
                ]
            db.executemany(
                "UPDATE outbox SET state=?, attempts=0, next_at=? WHERE usage_id=? AND state=?",
                [(PENDING, now, usage_id, DEAD) for usage_id in chosen],
            )
    finally:
        db.close()
    return chosen


__all__ = ["dead_letters", "replay"]
