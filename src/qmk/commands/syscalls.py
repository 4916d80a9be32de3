"""The kernel's other syscalls from the shell: sessions, results, checkpoints, channels and
capability delegation; and ``qmk syscalls``, the table of which command makes which call.

Each of these commands is a client of a running kernel, as ``qmk submit`` is
(:mod:`qmk.commands.service`: ``--socket``/``QMK_SOCKET``, ``--tenant``/``QMK_TENANT``,
``--key``/``QMK_KEY``, ``--caps``/``QMK_CAPS``, a fresh session per command):

- ``qmk session`` -- negotiate a session and print what it grants (``q_negotiate_caps``);
- ``qmk result JOB [--cursor C] [--limit N] [--all]`` -- a COMPLETED job's counts in pages
  (``q_get_result``);
- ``qmk checkpoint JOB`` -- checkpoint a running job at its next fence (``q_checkpoint``);
- ``qmk restore JOB [--checkpoint ID] [--wait]`` -- re-queue a job from a checkpoint
  (``q_restore``);
- ``qmk replay JOB [--wait]`` -- a new job with the same graph, shots, seed and policy
  (``q_replay``);
- ``qmk channel open PEER`` / ``accept CHANNEL [--peer TENANT]`` / ``close CHANNEL`` /
  ``status CHANNEL`` / ``list [--state S]`` -- entanglement channels between tenants
  (``q_open_chan``, ``q_close_chan``, ``q_chan_status``, ``q_list_channels``); ``open``
  proposes, ``accept`` is the peer's side;
- ``qmk delegate create TENANT CAP[,CAP...] --expires-s S`` / ``revoke ID`` / ``list`` --
  lend capabilities to another tenant for a while, end a loan, list them
  (``q_delegate_caps``, ``q_revoke_delegation``, ``q_list_delegations``).

Every command that makes a call says so in its parser (the default ``syscall``), and
:func:`verbs` reads that back from the parsers: ``qmk syscalls`` prints it, and a test
walks the method table (:data:`qmk.abi.methods.METHODS`) against it, so a syscall without
a command fails the tests. Every command prints one JSON document with ``--json``.
"""

from __future__ import annotations

import argparse
from collections.abc import Iterator
from typing import TextIO

import msgspec

from qmk import defaults
from qmk.abi.errors import CommandError
from qmk.abi.replies import Channel, Delegation, Reply
from qmk.commands import AddCommand
from qmk.commands.service import (
    _client,
    _client_options,
    _dump,
    _int_in,
    _seconds,
    _show_job,
    _wait_status,
    _waiting,
    fields_text,
    scalar_text,
    wait_options,
    when_text,
)

# --------------------------------------------------------------------------- the table


def _leaves(
    parser: argparse.ArgumentParser, words: tuple[str, ...] = ()
) -> Iterator[tuple[tuple[str, ...], argparse.ArgumentParser]]:
    """Every command (a parser without subcommands) under ``parser``, with its words."""
    sub = next((a for a in parser._actions if isinstance(a, argparse._SubParsersAction)), None)
    if sub is None:
        yield words, parser
        return
    for name, child in sub.choices.items():
        yield from _leaves(child, (*words, name))


def command_tree() -> argparse.ArgumentParser:
    """Every ``qmk`` command as a bare parser tree (:func:`qmk.commands.register_all`),
    as ``qmk.cli`` wires them."""
    from qmk.commands import register_all

    parser = argparse.ArgumentParser(prog="qmk", add_help=False)
    commands = parser.add_subparsers(dest="command")

    def add(name: str, help_text: str, /, *, limits: bool = True) -> argparse.ArgumentParser:
        return commands.add_parser(name, help=help_text)

    register_all(add)
    return parser


def commands() -> dict[str, argparse.ArgumentParser]:
    """Every ``qmk`` command, by its words (``"channel open"``), with its parser."""
    return {" ".join(words): parser for words, parser in _leaves(command_tree())}


def verbs() -> dict[str, str]:
    """Every command that makes a qSyscall, by its words, with the syscall it makes: the
    ``syscall`` default each client command's parser sets.

    >>> table = verbs()
    >>> table["checkpoint"], table["channel accept"], table["delegate revoke"]
    ('q_checkpoint', 'q_open_chan', 'q_revoke_delegation')
    """
    found = {}
    for words, parser in commands().items():
        syscall = parser.get_default("syscall")
        if syscall is not None:
            found[words] = str(syscall)
    return found


def _cmd_syscalls(args: argparse.Namespace, out: TextIO, err: TextIO) -> int:
    from qmk.abi.methods import METHODS

    table = verbs()
    by_call: dict[str, list[str]] = {name: [] for name in METHODS}
    for words, syscall in table.items():
        by_call.setdefault(syscall, []).append(f"qmk {words}")
    if args.json:
        _dump({"syscalls": by_call}, out)
        return 0
    width = max(len(name) for name in by_call)
    for name, commands_of in by_call.items():
        out.write(f"{name:<{width}}  {', '.join(commands_of) or '(none)'}\n")
    return 0


# --------------------------------------------------------------------------- output


def _show(data: Reply, args: argparse.Namespace, out: TextIO, text: str | None = None) -> None:
    """The reply as JSON with ``--json``, else ``text`` (default: :func:`fields_text`)."""
    if args.json:
        _dump(data, out)
    else:
        out.write(fields_text(data.to_json()) if text is None else text)


def _channel_line(channel: Channel) -> str:
    proposer, peer = channel.tenants if len(channel.tenants) == 2 else ["?", "?"]
    return (
        f"{channel.channel_id}  {channel.state:<8}  {proposer} -> {peer}  "
        f"fidelity {scalar_text(channel.fidelity)}\n"
    )


def _delegation_line(delegation: Delegation) -> str:
    return (
        f"{delegation.delegation_id}  {delegation.state:<7}  "
        f"{delegation.from_tenant} -> {delegation.to_tenant}  {','.join(delegation.caps)}  "
        f"until {when_text(delegation.expires_at)}\n"
    )


# --------------------------------------------------------------------------- handlers


def _cmd_session(args: argparse.Namespace, out: TextIO, err: TextIO) -> int:

    with _client(args) as client:  # connecting is the q_negotiate_caps call
        reply = client.core.session
    assert reply is not None  # connecting opened it, or raised
    text = (
        f"session of {reply.tenant} until {when_text(reply.expires_at)}\n"
        f"  granted: {', '.join(reply.granted) or '(none)'}\n"
        f"  denied: {', '.join(reply.denied) or '(none)'}\n"
        f"  delegated: {', '.join(reply.delegated) or '(none)'}\n"
        f"  session id: {reply.session_id}\n"
    )
    _show(reply, args, out, text)
    return 0


def _cmd_result(args: argparse.Namespace, out: TextIO, err: TextIO) -> int:

    with _client(args) as client:
        page = client.q_get_result(args.job, args.cursor, args.limit)
        if args.all:  # every page, as one document
            counts = dict(page.counts)
            while page.next_cursor:
                page = client.q_get_result(args.job, page.next_cursor, args.limit)
                counts.update(page.counts)
            page = msgspec.structs.replace(page, counts=counts, cursor=None)
    if args.json:
        _dump(page, out)
        return 0
    out.write(
        f"{page.job_id}  {page.state}  {len(page.counts)} of {page.entries} entries"
        + (f"  next cursor {page.next_cursor}" if page.next_cursor else "")
        + "\n"
    )
    for key, value in page.counts.items():
        out.write(f"  {key or '(empty)'}  {value}\n")
    return 0


def _cmd_checkpoint(args: argparse.Namespace, out: TextIO, err: TextIO) -> int:

    with _client(args) as client:
        saved = client.q_checkpoint(args.job)
    _show(saved, args, out)
    return 0


def _cmd_requeue(args: argparse.Namespace, out: TextIO, err: TextIO) -> int:
    """``qmk restore`` and ``qmk replay``: a job queued again (or anew), waited for with
    ``--wait``."""

    with _client(args) as client:
        if args.syscall == "q_restore":
            job = client.q_restore(args.job, args.checkpoint)
        else:
            job = client.q_replay(args.job)
        if args.wait:
            job = _waiting(client, job.job_id, args, err)
    _show_job(job, args, out)
    return _wait_status(job, err) if args.wait else 0


def _cmd_channel(args: argparse.Namespace, out: TextIO, err: TextIO) -> int:

    action = args.channel_command
    with _client(args) as client:
        if action == "list":
            listing = client.q_list_channels(args.state)
            _show(listing, args, out, "".join(_channel_line(c) for c in listing.channels))
            return 0
        if action == "open":
            reply = client.q_open_chan(args.peer, None, args.fidelity)
        elif action == "accept":
            peer = args.peer
            if peer is None:  # the proposer, as the channel names it
                peer = client.q_chan_status(args.channel).tenants[0]
            reply = client.q_open_chan(peer, args.channel, args.fidelity)
        elif action == "close":
            reply = client.q_close_chan(args.channel)
        else:
            reply = client.q_chan_status(args.channel)
    _show(reply, args, out, _channel_line(reply))
    return 0


def _caps_list(text: str) -> list[str]:
    caps = [cap.strip() for cap in text.split(",") if cap.strip()]
    if not caps:
        raise CommandError.of("bad-option", "name at least one capability, e.g. CAP_MAGIC")
    return caps


def _cmd_delegate(args: argparse.Namespace, out: TextIO, err: TextIO) -> int:

    action = args.delegate_command
    with _client(args) as client:
        if action == "list":
            listing = client.q_list_delegations(args.state, args.limit)
            text = "".join(_delegation_line(d) for d in listing.delegations)
            _show(listing, args, out, text)
            return 0
        if action == "create":
            reply = client.q_delegate_caps(
                args.to_tenant, _caps_list(args.caps_lent), args.expires_s
            )
        else:
            reply = client.q_revoke_delegation(args.delegation)
    _show(reply, args, out, _delegation_line(reply))
    return 0


# --------------------------------------------------------------------------- parsers


def _fidelity(sub: argparse.ArgumentParser) -> None:
    sub.add_argument(
        "--fidelity", type=float, default=1.0, metavar="F", help="Bell-pair fidelity (1.0)"
    )


def _add_channel(add: AddCommand) -> None:

    sub = add("channel", "entanglement channels between tenants", limits=False)
    actions = sub.add_subparsers(dest="channel_command", metavar="ACTION", required=True)
    opened = actions.add_parser("open", help="propose a channel to a peer tenant")
    opened.add_argument("peer", metavar="PEER")
    _fidelity(opened)
    accept = actions.add_parser("accept", help="accept a peer's proposal (the peer's side)")
    accept.add_argument("channel", metavar="CHANNEL")
    accept.add_argument(
        "--peer", metavar="TENANT", help="the proposer (default: as the channel names it)"
    )
    _fidelity(accept)
    close = actions.add_parser("close", help="close a channel (either end)")
    close.add_argument("channel", metavar="CHANNEL")
    status = actions.add_parser("status", help="print a channel's state")
    status.add_argument("channel", metavar="CHANNEL")
    listing = actions.add_parser("list", help="this tenant's channels, newest first")
    listing.add_argument("--state", metavar="S", help="only channels in state S (e.g. OPEN)")
    for parser, syscall in (
        (opened, "q_open_chan"),
        (accept, "q_open_chan"),
        (close, "q_close_chan"),
        (status, "q_chan_status"),
        (listing, "q_list_channels"),
    ):
        _client_options(parser)
        parser.set_defaults(run=_cmd_channel, syscall=syscall)


def _add_delegate(add: AddCommand) -> None:

    sub = add(
        "delegate", "lend capabilities to another tenant for a while, end a loan", limits=False
    )
    actions = sub.add_subparsers(dest="delegate_command", metavar="ACTION", required=True)
    create = actions.add_parser(
        "create",
        help="lend this tenant's own capabilities to TENANT for --expires-s seconds",
    )
    create.add_argument("to_tenant", metavar="TENANT")
    create.add_argument("caps_lent", metavar="CAP[,CAP...]")
    create.add_argument(
        "--expires-s",
        type=_seconds,
        required=True,
        metavar="S",
        help="seconds the loan lasts (at most the kernel's [kernel] max_delegation_s)",
    )
    revoke = actions.add_parser("revoke", help="end a delegation now (either tenant may)")
    revoke.add_argument("delegation", metavar="DELEGATION")
    listing = actions.add_parser("list", help="the delegations this tenant made or received")
    listing.add_argument("--state", metavar="S", help="only LIVE, REVOKED or EXPIRED ones")
    listing.add_argument(
        "--limit",
        type=_int_in(1),
        default=defaults.JOBS_LIMIT,
        metavar="N",
        help=f"at most N ({defaults.JOBS_LIMIT})",
    )
    for parser, syscall in (
        (create, "q_delegate_caps"),
        (revoke, "q_revoke_delegation"),
        (listing, "q_list_delegations"),
    ):
        _client_options(parser)
        parser.set_defaults(run=_cmd_delegate, syscall=syscall)


def register(add: AddCommand) -> None:
    """Add ``session``, ``result``, ``checkpoint``, ``restore``, ``replay``, ``channel``,
    ``delegate`` and ``syscalls``."""

    sub = add("session", "negotiate a session and print what it grants", limits=False)
    _client_options(sub)
    sub.set_defaults(run=_cmd_session, syscall="q_negotiate_caps")

    sub = add("result", "print a COMPLETED job's counts, a page at a time", limits=False)
    sub.add_argument("job", metavar="JOB")
    sub.add_argument("--cursor", metavar="C", help="the next cursor of the page before")
    sub.add_argument(
        "--limit",
        type=_int_in(1, defaults.MAX_RESULT_PAGE_ENTRIES),
        default=defaults.RESULT_PAGE_ENTRIES,
        metavar="N",
        help=f"entries a page ({defaults.RESULT_PAGE_ENTRIES})",
    )
    sub.add_argument("--all", action="store_true", help="every page, as one")
    _client_options(sub)
    sub.set_defaults(run=_cmd_result, syscall="q_get_result")

    sub = add("checkpoint", "checkpoint a running job at its next fence", limits=False)
    sub.add_argument("job", metavar="JOB")
    _client_options(sub)
    sub.set_defaults(run=_cmd_checkpoint, syscall="q_checkpoint")

    sub = add("restore", "queue a job again from a checkpoint (default: its latest)", limits=False)
    sub.add_argument("job", metavar="JOB")
    sub.add_argument("--checkpoint", metavar="ID", help="the checkpoint (default: the latest)")
    wait_options(sub)
    _client_options(sub)
    sub.set_defaults(run=_cmd_requeue, syscall="q_restore")

    sub = add("replay", "submit a job again: same graph, shots, seed and policy", limits=False)
    sub.add_argument("job", metavar="JOB")
    wait_options(sub)
    _client_options(sub)
    sub.set_defaults(run=_cmd_requeue, syscall="q_replay")

    _add_channel(add)
    _add_delegate(add)

    sub = add("syscalls", "list every qSyscall and the qmk commands that make it", limits=False)
    sub.add_argument("--json", action="store_true", help="print the table as JSON")
    sub.set_defaults(run=_cmd_syscalls)
