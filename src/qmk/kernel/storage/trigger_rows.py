"""The workflow triggers' tables (``triggers``, ``trigger_runs``) of the kernel's store.

The store makes the tables (:func:`~qmk.kernel.storage.store.create_tables`); this module
reads and writes their rows, for the triggers' table (:mod:`qmk.kernel.running.triggers`),
which a kernel makes only where there are triggers: a kernel of plain jobs does not
import it.
"""

from __future__ import annotations

import json
from typing import TYPE_CHECKING

import msgspec

if TYPE_CHECKING:
    from qmk.kernel.storage.store import Store


class TriggerRow(msgspec.Struct, array_like=True, frozen=True):
    """A ``triggers`` row, column by name (``spec``, ``workflow`` and ``caps`` JSON)."""

    trigger_id: str
    tenant: str
    name: str
    spec: str
    workflow: str
    caps: str
    created_at: float
    next_at: float | None


class RunRow(msgspec.Struct, array_like=True, frozen=True):
    """A ``trigger_runs`` row, column by name (``detail``, ``jobs``, ``summary`` JSON)."""

    run_id: str
    trigger_id: str
    tenant: str
    reason: str
    detail: str
    state: str
    started_at: float
    finished_at: float | None
    jobs: str
    summary: str | None
    error: str | None


_TRIGGER_COLUMNS = ", ".join(TriggerRow.__struct_fields__)
_RUN_COLUMNS = ", ".join(RunRow.__struct_fields__)


class TriggerRows:
    """The workflow triggers' tables (``triggers``, ``trigger_runs``) of a :class:`Store`:
    its connection and its transaction (a write marks the store dirty, so the group commit
    holds it with everything else).

    Args:
        store: the kernel's store.
    """

    def __init__(self, store: Store) -> None:
        self.store = store

    def save_trigger(self, row: TriggerRow) -> None:
        """Insert or update a trigger."""
        self.store.db.execute(
            f"INSERT OR REPLACE INTO triggers ({_TRIGGER_COLUMNS}) "
            f"VALUES ({', '.join('?' * len(TriggerRow.__struct_fields__))})",
            tuple(msgspec.structs.astuple(row)),
        )
        self.store.dirty = True

    def set_next_run(self, trigger_id: str, next_at: float | None) -> None:
        """A schedule's next time."""
        self.store.db.execute(
            "UPDATE triggers SET next_at=? WHERE trigger_id=?", (next_at, trigger_id)
        )
        self.store.dirty = True

    def all(self) -> list[TriggerRow]:
        """Every trigger, oldest first."""
        return [
            TriggerRow(*row)
            for row in self.store.db.execute(
                f"SELECT {_TRIGGER_COLUMNS} FROM triggers ORDER BY created_at, rowid"
            )
        ]

    def delete_trigger(self, trigger_id: str) -> None:
        """A trigger and its runs, gone."""
        self.store.db.execute("DELETE FROM triggers WHERE trigger_id=?", (trigger_id,))
        self.store.db.execute("DELETE FROM trigger_runs WHERE trigger_id=?", (trigger_id,))
        self.store.dirty = True

    def save_run(self, row: RunRow, *, keep: int) -> None:
        """Insert or update a trigger's run; its trigger keeps its newest ``keep`` runs."""
        self.store.db.execute(
            f"INSERT OR REPLACE INTO trigger_runs ({_RUN_COLUMNS}) "
            f"VALUES ({', '.join('?' * len(RunRow.__struct_fields__))})",
            tuple(msgspec.structs.astuple(row)),
        )
        self.store.db.execute(
            "DELETE FROM trigger_runs WHERE trigger_id=? AND run_id NOT IN (SELECT run_id "
            "FROM trigger_runs WHERE trigger_id=? ORDER BY started_at DESC, rowid DESC "
            "LIMIT ?)",
            (row.trigger_id, row.trigger_id, keep),
        )
        self.store.dirty = True

    def runs(self, trigger_id: str, limit: int) -> list[RunRow]:
        """A trigger's runs, newest first."""
        return [
            RunRow(*row)
            for row in self.store.db.execute(
                f"SELECT {_RUN_COLUMNS} FROM trigger_runs WHERE trigger_id=? "
                "ORDER BY started_at DESC, rowid DESC LIMIT ?",
                (trigger_id, limit),
            )
        ]

    def unfinished_runs(self) -> list[RunRow]:
        """The runs that were RUNNING when the kernel last stopped."""
        return [
            RunRow(*row)
            for row in self.store.db.execute(
                f"SELECT {_RUN_COLUMNS} FROM trigger_runs WHERE finished_at IS NULL"
            )
        ]

    def run_job_ids(self) -> set[str]:
        """The ids of every job a trigger's run submitted (runs kept)."""
        found: set[str] = set()
        for (jobs,) in self.store.db.execute("SELECT jobs FROM trigger_runs"):
            found.update(json.loads(jobs))
        return found


__all__ = ["RunRow", "TriggerRow", "TriggerRows"]
