"""The metering's ``usage`` rows as ``q_usage`` reads them (:class:`UsageRows`): a
tenant's job ends in a time range, or one job's, newest first, their totals, and the
invoice of those at the price table's unit prices (:func:`invoice`).

A job's end writes its row in the store (:meth:`~qmk.kernel.storage.store.Store.
insert_usage`); the machine's desk (:mod:`qmk.kernel.syscalls.machine`), made at its
first syscall, reads them here, so a kernel of plain jobs does not import it.
"""

from __future__ import annotations

import sqlite3
from typing import TYPE_CHECKING, Any

from qmk.kernel.config import BillingTable
from qmk.kernel.records.usage import FIELDS as USAGE_FIELDS
from qmk.kernel.records.usage import UNITS, Usage
from qmk.kernel.storage.store import USAGE_COLUMNS

if TYPE_CHECKING:
    from qmk.kernel.storage.store import Store

#: The usage rows of one job, by its sequence number (``usage_of_job``), read from its
#: row (a subquery SQLite runs once), and its id.
_OF_JOB = "job_seq = (SELECT seq FROM jobs WHERE job_id=?) AND job_id=?"


def usage_where(
    tenant: str, since: float | None, until: float | None, job_id: str | None
) -> tuple[str, tuple[Any, ...]]:
    """The ``WHERE`` clause of ``tenant``'s rows that ended in [since, until) (of
    ``job_id`` only, unless None), and its values."""
    args: tuple[Any, ...] = (
        tenant,
        -1e300 if since is None else since,
        1e300 if until is None else until,
    )
    if job_id is None:
        return "tenant=? AND ended_at >= ? AND ended_at < ?", args
    # one job's rows by their index, never the tenant's ends (the unary + keeps
    # SQLite off usage_tenant_end, which it would take for its equality on tenant)
    return (
        f"{_OF_JOB} AND +tenant=? AND +ended_at >= ? AND +ended_at < ?",
        (job_id, job_id, *args),
    )


class UsageRows:
    """The ``usage`` table of a :class:`~qmk.kernel.storage.store.Store`, read.

    Args:
        store: the kernel's store.
    """

    def __init__(self, store: Store) -> None:
        self.store = store

    def rows(
        self,
        tenant: str,
        since: float | None,
        until: float | None,
        job_id: str | None,
        limit: int,
    ) -> list[sqlite3.Row]:
        """``tenant``'s usage rows that ended in [since, until) (of ``job_id`` only,
        unless None), newest first, read by their columns' names (``usage_id``,
        ``job_id``, ``tenant``, ``state``, ``ended_at`` and the quantities)."""
        where, args = usage_where(tenant, since, until, job_id)
        cursor = self.store.db.cursor()
        cursor.row_factory = sqlite3.Row
        return cursor.execute(
            f"SELECT {USAGE_COLUMNS} FROM usage WHERE {where} "
            "ORDER BY ended_at DESC, rowid DESC LIMIT ?",
            (*args, limit),
        ).fetchall()

    def totals(
        self, tenant: str, since: float | None, until: float | None, job_id: str | None
    ) -> tuple[int, Usage]:
        """How many of ``tenant``'s usage rows :meth:`rows` would give without a
        limit, and their sum."""
        where, args = usage_where(tenant, since, until, job_id)
        sums = ", ".join(f"COALESCE(SUM({name}), 0)" for name in USAGE_FIELDS)
        count, *totals = self.store.db.execute(
            f"SELECT COUNT(*), {sums} FROM usage WHERE {where}", args
        ).fetchone()
        return int(count), Usage(**dict(zip(USAGE_FIELDS, totals, strict=True)))


def invoice(totals: Usage, billing: BillingTable) -> dict[str, Any]:
    """The invoice lines of ``totals`` at the price table's unit prices.

    >>> from qmk.kernel.config import config_from_dict
    >>> cfg = config_from_dict({"machine": {"physical_qubits": 10},
    ...     "billing": {"currency": "EUR", "prices": {"shots": 0.002}}})
    >>> invoice(Usage(shots=1500), cfg.billing)["total"]
    3.0
    """
    prices = {name: getattr(billing.prices, name) for name in USAGE_FIELDS}
    lines = [
        {
            "item": name,
            "unit": UNITS[name],
            "quantity": quantity,
            "unit_price": price,
            "amount": amount,
        }
        for name, quantity, price, amount in totals.priced(prices)
    ]
    return {
        "currency": billing.currency,
        "lines": lines,
        "total": round(sum(line["amount"] for line in lines), 10),
    }


def usage_record(row: sqlite3.Row) -> dict[str, Any]:
    """A ``usage`` row (its columns by name) as ``q_usage`` answers it."""
    return {
        "usage_id": row["usage_id"],
        "job_id": row["job_id"],
        "tenant": row["tenant"],
        "state": row["state"],
        "ended_at": row["ended_at"],
        **{name: row[name] for name in USAGE_FIELDS},
    }


__all__ = ["UsageRows", "invoice", "usage_record", "usage_where"]
