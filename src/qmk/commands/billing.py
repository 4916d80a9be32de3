"""Usage, billing and tenant keys from the shell (docs/billing.md, docs/secrets.md).

- ``qmk usage [--since T] [--until T] [--job J] [--limit N] [--csv [FILE]] [--json]`` --
  the tenant's usage records, totals and invoice (``q_usage``; a client of a running
  kernel, as ``qmk submit`` is); ``--csv`` writes the records as CSV (to stdout without
  FILE, or with ``-``);
- ``qmk billing dead-letters --data-dir D`` -- the webhook records that failed every
  attempt (``QK401``), read from the kernel's database;
- ``qmk billing replay --data-dir D (USAGE_ID... | --all)`` -- make them due again: a
  running kernel delivers them within a second, a stopped one at its next start;
- ``qmk tenant hash-key [KEY]`` -- the scrypt hash of a key (read from stdin unless
  given), for ``key_hash``.
"""

from __future__ import annotations

import argparse
import csv
import datetime
import sys
import time
from typing import Any, TextIO

from qmk import defaults
from qmk.abi.errors import CommandError
from qmk.abi.replies import Usage
from qmk.commands import AddCommand
from qmk.commands.service import _client, _client_options, _dump, _int_in, scalar_text, when_text


def moment(text: str) -> float:
    """An argparse type: seconds since the epoch, or an ISO 8601 date or time (UTC
    unless it names its zone).

    >>> moment("1700000000"), moment("2023-11-14T22:13:20Z"), moment("2023-11-14")
    (1700000000.0, 1700000000.0, 1699920000.0)
    """
    try:
        return float(text)
    except ValueError:
        pass
    try:
        when = datetime.datetime.fromisoformat(text)
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"not a time: {text!r} (seconds since the epoch, or ISO 8601 like 2026-01-31T12:00Z)"
        ) from None
    if when.tzinfo is None:
        when = when.replace(tzinfo=datetime.timezone.utc)
    return when.timestamp()


def _usage_text(reply: Usage) -> str:
    from qmk.kernel.records.usage import FIELDS, UNITS

    lines = [
        f"usage of {reply.tenant}: {reply.count} job end(s) from "
        f"{when_text(reply.since)} until {when_text(reply.until)}"
    ]
    totals = reply.totals
    for name in FIELDS:
        lines.append(f"  {name:<22} {scalar_text(totals.get(name))} ({UNITS[name]}s)")
    bill = reply.invoice
    for line in bill.get("lines") or []:
        lines.append(
            f"  invoice: {line['item']:<22} {scalar_text(line['quantity'])} x "
            f"{scalar_text(line['unit_price'])} = {scalar_text(line['amount'])} "
            f"{bill.get('currency')}"
        )
    lines.append(f"  total {scalar_text(bill.get('total'))} {bill.get('currency')}")
    return "\n".join(lines) + "\n"


def write_csv(records: list[dict[str, Any]], out: TextIO) -> None:
    """The usage records as CSV: a header row, then one row per record (newest first)."""
    from qmk.kernel.records.usage import FIELDS

    columns = ["usage_id", "job_id", "tenant", "state", "ended_at", *FIELDS]
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(columns)
    for record in records:
        writer.writerow([record.get(column) for column in columns])


def _cmd_usage(args: argparse.Namespace, out: TextIO, err: TextIO) -> int:
    with _client(args) as client:
        reply = client.q_usage(args.since, args.until, args.job, args.limit)
    if args.csv is not None:
        if args.csv == "-":
            write_csv(reply.records, out)
            return 0
        try:
            with open(args.csv, "w", newline="", encoding="utf-8") as handle:
                write_csv(reply.records, handle)
        except OSError as exc:
            from qmk.qvm.errors import unwritable

            raise unwritable(args.csv, exc) from None
        if reply.count > len(reply.records):
            err.write(
                f"qmk usage: wrote {len(reply.records)} of {reply.count} records "
                "(raise --limit for the rest)\n"
            )
    if args.json:
        _dump(reply, out)
    elif args.csv != "-":
        out.write(_usage_text(reply))
    return 0


def _cmd_dead_letters(args: argparse.Namespace, out: TextIO, err: TextIO) -> int:
    from qmk.kernel.storage.dead_letters import dead_letters

    letters = dead_letters(args.data_dir)
    if args.json:
        _dump({"dead_letters": letters}, out)
        return 0
    for letter in letters:
        out.write(
            f"{letter['usage_id']}  {letter['tenant']}  {letter['attempts']} attempts  "
            f"{when_text(letter['created_at'])}  {letter['last_error']}\n"
        )
    if not letters:
        out.write("no dead letters\n")
    return 0


def _cmd_replay(args: argparse.Namespace, out: TextIO, err: TextIO) -> int:
    from qmk.kernel.storage.dead_letters import replay

    if bool(args.usage_ids) == bool(args.all):
        raise CommandError.of("bad-option", "qmk billing replay takes USAGE_ID... or --all")
    replayed = replay(args.data_dir, args.usage_ids, now=time.time())
    if args.json:
        _dump({"replayed": replayed}, out)
    else:
        out.write("".join(f"replayed {usage_id}\n" for usage_id in replayed) or "none\n")
    return 0


def _cmd_hash_key(args: argparse.Namespace, out: TextIO, err: TextIO) -> int:
    from qmk.kernel.security.keys import hash_key

    source = sys.stdin
    if args.key is not None:  # on the command line (others can read it: prefer stdin)
        key = args.key
    elif source.isatty():
        import getpass

        key = getpass.getpass("tenant key: ")
    else:
        key = source.readline().rstrip("\r\n")
    if not key:
        raise CommandError.of("bad-option", "qmk tenant hash-key: the key (stdin) is empty")
    stored = hash_key(key, n=2**args.cost)
    if args.json:
        _dump({"key_hash": stored}, out)
    else:
        out.write(stored + "\n")
    return 0


def register(add: AddCommand) -> None:
    """Add ``usage``, ``billing dead-letters``, ``billing replay`` and ``tenant hash-key``."""
    sub = add("usage", "the tenant's usage records, totals and invoice", limits=False)
    sub.add_argument("--since", type=moment, metavar="T", help="from this time (s or ISO 8601)")
    sub.add_argument("--until", type=moment, metavar="T", help="before this time")
    sub.add_argument("--job", metavar="JOB", help="only this job's records")
    sub.add_argument(
        "--limit",
        type=_int_in(1, 10_000),
        default=defaults.JOBS_LIMIT,
        metavar="N",
        help=f"at most N records ({defaults.JOBS_LIMIT}; the totals count all)",
    )
    sub.add_argument(
        "--csv",
        nargs="?",
        const="-",
        metavar="FILE",
        help="write the records as CSV to FILE (none or -: to stdout)",
    )
    _client_options(sub)
    sub.set_defaults(run=_cmd_usage, syscall="q_usage")

    billing = add("billing", "the billing webhook's dead letters (operators)", limits=False)
    actions = billing.add_subparsers(dest="action", required=True, metavar="ACTION")
    letters = actions.add_parser(
        "dead-letters", help="the webhook records that failed every attempt"
    )
    again = actions.add_parser("replay", help="deliver dead letters again")
    again.add_argument("usage_ids", nargs="*", metavar="USAGE_ID")
    again.add_argument("--all", action="store_true", help="every dead letter")
    for parser, run in ((letters, _cmd_dead_letters), (again, _cmd_replay)):
        parser.add_argument(
            "--data-dir", required=True, metavar="DIR", help="the kernel's data directory"
        )
        parser.add_argument("--json", action="store_true", help="print JSON")
        parser.set_defaults(run=run)

    tenant = add("tenant", "tenant keys (operators)", limits=False)
    verbs = tenant.add_subparsers(dest="action", required=True, metavar="ACTION")
    hashed = verbs.add_parser(
        "hash-key", help="print the scrypt hash of a key read from stdin (for key_hash)"
    )
    hashed.add_argument(
        "key",
        nargs="?",
        metavar="KEY",
        help="the key (default: read from stdin, which other users cannot see)",
    )
    hashed.add_argument(
        "--cost",
        type=_int_in(10, 20),
        default=14,
        metavar="K",
        help="scrypt's cost n = 2**K (14: about 50 ms and 16 MiB a check)",
    )
    hashed.add_argument("--json", action="store_true", help='print {"key_hash": ...}')
    hashed.set_defaults(run=_cmd_hash_key)
