"""The capability delegations' table (``delegations``) of the kernel's store.

The store makes the table (:func:`~qmk.kernel.storage.store.create_tables`); this module
reads and writes its rows (their columns: :data:`qmk.kernel.security.delegations.COLUMNS`)
for the delegations' desk (:mod:`qmk.kernel.syscalls.delegations`), which a kernel makes
only where it holds a delegation or is asked a delegation syscall: a kernel of plain jobs
does not import it.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from qmk.kernel.security.delegations import COLUMNS

if TYPE_CHECKING:
    from qmk.kernel.storage.store import Store

_COLUMNS = ", ".join(COLUMNS)


class DelegationRows:
    """The ``delegations`` table of a :class:`Store`: its connection and its transaction
    (a write marks the store dirty, so the group commit holds it with everything else).

    Args:
        store: the kernel's store.
    """

    def __init__(self, store: Store) -> None:
        self.store = store

    def save(self, row: tuple[Any, ...]) -> None:
        """Insert or update a delegation (its :data:`~qmk.kernel.security.delegations.COLUMNS`)."""
        self.store.db.execute(
            f"INSERT OR REPLACE INTO delegations ({_COLUMNS}) "
            f"VALUES ({', '.join('?' * len(COLUMNS))})",
            row,
        )
        self.store.dirty = True

    def live(self, now: float) -> list[tuple[Any, ...]]:
        """The rows of delegations neither revoked nor expired at ``now``."""
        rows: list[tuple[Any, ...]] = self.store.db.execute(
            f"SELECT {_COLUMNS} FROM delegations "
            "WHERE revoked_at IS NULL AND expires_at > ? ORDER BY created_at",
            (now,),
        ).fetchall()
        return rows

    def load(self, delegation_id: str) -> tuple[Any, ...] | None:
        """One delegation's row by id, live or ended."""
        row: tuple[Any, ...] | None = self.store.db.execute(
            f"SELECT {_COLUMNS} FROM delegations WHERE delegation_id=?", (delegation_id,)
        ).fetchone()
        return row

    def delete_ended(self, before: float) -> list[str]:
        """Delete the delegations that ended (revoked, or expired) before ``before``;
        their ids."""
        db = self.store.db
        ended = "MIN(COALESCE(revoked_at, expires_at), expires_at) < ?"
        gone = [
            row[0]
            for row in db.execute(f"SELECT delegation_id FROM delegations WHERE {ended}", (before,))
        ]
        if gone:
            db.execute(f"DELETE FROM delegations WHERE {ended}", (before,))
            self.store.dirty = True
        return gone

    def listed(self, tenant: str, limit: int) -> list[tuple[Any, ...]]:
        """The rows of delegations ``tenant`` made or received, newest first."""
        rows: list[tuple[Any, ...]] = self.store.db.execute(
            f"SELECT {_COLUMNS} FROM delegations "
            "WHERE from_tenant=? OR to_tenant=? ORDER BY created_at DESC, rowid DESC LIMIT ?",
            (tenant, tenant, limit),
        ).fetchall()
        return rows


__all__ = ["DelegationRows"]
