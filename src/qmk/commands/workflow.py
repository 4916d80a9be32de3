"""``qmk workflow run FILE``: run a workflow of job templates and sweeps (docs/workflows.md);
``qmk workflow trigger add|list|runs|rm``: a kernel runs one by itself, on a schedule or on
events (docs/workflows.md#triggers).

``run`` runs it locally by default (in this process, as ``qmk run``), or on a kernel:
``--socket ADDR`` (JSON-RPC) or ``--server URL`` (the REST API), as ``--tenant``
(``QMK_TENANT``, key in ``QMK_KEY``). It draws a progress bar on a terminal, prints one
line per step, and writes ``results.json``, ``results.csv`` and ``plots/*.png`` to
``--out``. The default is ``NAME-results/`` in the working directory, ``NAME`` the
file's name without its suffix: never beside the file, which may be in a checkout or
read-only.
Exit 0 when every job COMPLETED, 1 when one did not.
"""

from __future__ import annotations

import argparse
import json
import os
from pathlib import Path
from typing import Any, TextIO

from qmk.abi.errors import CommandError
from qmk.abi.replies import Trigger, TriggerRun
from qmk.commands import AddCommand, plural


def _backend(args: argparse.Namespace) -> tuple[Any, Any]:
    """The backend the options name, and what to close after (or None)."""
    from qmk.workflows.runner import KernelBackend, LocalBackend

    if args.server and args.socket:
        raise CommandError.of("bad-option", "give --server URL or --socket ADDR, not both")
    if not args.server and not args.socket:
        return LocalBackend(), None
    tenant = args.tenant or os.environ.get("QMK_TENANT")
    key = args.key or os.environ.get("QMK_KEY")
    if not tenant or not key:
        raise CommandError.of(
            "bad-option", "a kernel run needs --tenant and a key (QMK_TENANT, QMK_KEY)"
        )
    caps = None if args.caps is None else [c.strip() for c in args.caps.split(",") if c.strip()]
    if args.server:
        from qmk.http.client import RestClient

        rest = RestClient(args.server, tenant=tenant, key=key, caps=caps)
        return (
            KernelBackend(
                lambda graph, shots, seed, policy: rest.submit(
                    graph, shots=shots, seed=seed, policy=policy or None
                ),
                rest.wait,
            ),
            rest,
        )
    from qmk.client import Client

    client = Client.connect(args.socket, tenant=tenant, key=key, caps=caps)
    return (
        KernelBackend(
            lambda graph, shots, seed, policy: client.q_submit(graph, shots, seed, policy or None),
            client.q_wait,
        ),
        client,
    )


def _cmd_run(args: argparse.Namespace, out: TextIO, err: TextIO) -> int:
    from qmk.commands.progress import progress_bar
    from qmk.workflows.report import write_results
    from qmk.workflows.runner import run_workflow
    from qmk.workflows.spec import load

    flow = load(args.file)
    folder = Path(args.out) if args.out else Path(f"{Path(args.file).stem}-results")
    backend, closer = _backend(args)
    try:
        with progress_bar(flow.size, flow.name, err, quiet=args.quiet) as update:
            result = run_workflow(
                flow, backend, progress=lambda done, _, label: update(done, label)
            )
    finally:
        if closer is not None:
            closer.close()
    files = write_results(result, folder, plots=not args.no_plots)
    if args.json:
        out.write(
            json.dumps(
                {
                    "ok": result.ok,
                    "jobs": [j.to_json() for j in result.jobs],
                    "files": [str(f) for f in files],
                }
            )
            + "\n"
        )
        return 0 if result.ok else 1
    where = "locally" if closer is None else (args.server or args.socket)
    out.write(
        f"{flow.name}: {plural(len(result.jobs), 'job')} in {plural(len(flow.steps), 'step')} "
        f"({where}), {result.elapsed_s:.2f} s\n"
    )
    for step in flow.steps:
        jobs = [j for j in result.jobs if j.step == step.name]
        states: dict[str, int] = {}
        for job in jobs:
            states[job.state] = states.get(job.state, 0) + 1
        summary = ", ".join(f"{n} {state}" for state, n in states.items())
        out.write(f"  {step.name}: {summary}\n")
        for job in jobs:
            if job.error:
                out.write(f"    #{job.index} {job.state}: {job.error}\n")
    out.write(f"results: {', '.join(str(f) for f in files[:2])}")
    plots = files[2:]
    out.write(f"; {plural(len(plots), 'plot')} in {folder / 'plots'}\n" if plots else "\n")
    return 0 if result.ok else 1


def _when(seconds: float | None) -> str:
    from qmk.commands.service import when_text

    return "-" if seconds is None else when_text(seconds)


def _starts(trigger: Trigger) -> str:
    """What starts a trigger, in words."""
    if trigger.on == "schedule":
        return f"cron {trigger.cron!r}" if trigger.cron else f"every {trigger.every_s:g} s"
    if trigger.on == "job":
        return f"on a job {'/'.join(trigger.states)}"
    return "on a calibration"


def _trigger_line(trigger: Trigger) -> str:
    last = trigger.last_run
    ran = "never ran" if last is None else f"last {last.state} {_when(last.started_at)}"
    return (
        f"{trigger.trigger_id}  {trigger.name!r}  {_starts(trigger)}  next "
        f"{_when(trigger.next_run_at)}  {ran}  workflow {trigger.workflow} "
        f"({plural(trigger.steps, 'step')}, {plural(trigger.jobs, 'job')})\n"
    )


def _run_line(run: TriggerRun) -> str:
    missed = run.detail.get("missed")
    why = run.reason + (f" ({missed} missed, ran once)" if run.reason == "catch-up" else "")
    text = (
        f"{run.run_id}  {run.state:<11}  {why}  {_when(run.started_at)}  "
        f"{plural(len(run.jobs), 'job')}"
    )
    if run.summary:
        text += "  " + ", ".join(f"{n} {state}" for state, n in run.summary.items())
    if run.error:
        text += f"\n    {run.error}"
    return text + "\n"


def _cmd_trigger(args: argparse.Namespace, out: TextIO, err: TextIO) -> int:
    from qmk.commands.service import _client, _dump

    action = args.trigger_command
    with _client(args) as client:
        if action == "add":
            reply: Any = _add_trigger(client, args)
            text = _trigger_line(reply)
        elif action == "list":
            reply = client.q_list_triggers()
            text = "".join(_trigger_line(t) for t in reply.triggers) or "no triggers\n"
        elif action == "runs":
            reply = client.q_list_triggers(args.trigger, args.limit)
            (shown,) = reply.triggers
            text = "".join(_run_line(r) for r in shown.runs or ()) or "no runs yet\n"
        else:
            reply = client.q_delete_trigger(args.trigger)
            text = f"{reply.trigger_id}  deleted\n"
    if args.json:
        _dump(reply, out)
    else:
        out.write(text)
    return 0


def _add_trigger(client: Any, args: argparse.Namespace) -> Trigger:
    """``q_create_trigger`` of the file (read here: its programs travel as text)."""
    from qmk.workflows.spec import load, to_data

    flow = load(args.file)
    chosen = [
        name
        for name, given in (
            ("--every", args.every is not None),
            ("--cron", args.cron is not None),
            ("--on-job", args.on_job),
            ("--on-calibration", args.on_calibration),
        )
        if given
    ]
    if len(chosen) != 1:
        raise CommandError.of(
            "bad-option",
            "say what starts it: one of --every S, --cron EXPR, --on-job, --on-calibration"
            + (f" (not {' and '.join(chosen)})" if chosen else ""),
        )
    if args.states is not None and not args.on_job:
        raise CommandError.of("bad-option", "--states goes with --on-job")
    on = "job" if args.on_job else "calibration" if args.on_calibration else "schedule"
    states = None if args.states is None else [s for s in args.states.split(",") if s]
    trigger: Trigger = client.q_create_trigger(
        args.name or flow.name, to_data(flow), on, args.every, args.cron, states
    )
    return trigger


def _add_trigger_commands(actions: Any) -> None:
    from qmk.commands.service import _client_options, _int_in, _seconds

    trigger = actions.add_parser(
        "trigger", help="a kernel runs a workflow by itself: on a schedule or on events"
    )
    verbs = trigger.add_subparsers(dest="trigger_command", metavar="ACTION", required=True)
    made = verbs.add_parser(
        "add", help="hand the kernel a workflow file to run on a schedule or on events"
    )
    made.add_argument("file", metavar="FILE")
    made.add_argument("--name", metavar="NAME", help="the trigger's name (the workflow's)")
    starts = made.add_argument_group("what starts a run (one of them)")
    starts.add_argument("--every", type=_seconds, metavar="S", help="every S seconds")
    starts.add_argument("--cron", metavar="EXPR", help="cron's five fields, in UTC")
    starts.add_argument("--on-job", action="store_true", help="when one of this tenant's jobs ends")
    starts.add_argument(
        "--states",
        metavar="S[,S...]",
        help="with --on-job: the end states that start it (COMPLETED)",
    )
    starts.add_argument(
        "--on-calibration", action="store_true", help="when a calibration is ingested"
    )
    listing = verbs.add_parser("list", help="this tenant's triggers, their next and last runs")
    runs = verbs.add_parser("runs", help="a trigger's runs, newest first")
    runs.add_argument("trigger", metavar="TRIGGER")
    runs.add_argument(
        "--limit", type=_int_in(1, 100), default=20, metavar="N", help="at most N (20)"
    )
    removed = verbs.add_parser("rm", help="delete a trigger (its jobs already queued run on)")
    removed.add_argument("trigger", metavar="TRIGGER")
    for parser, syscall in (
        (made, "q_create_trigger"),
        (listing, "q_list_triggers"),
        (runs, "q_list_triggers"),
        (removed, "q_delete_trigger"),
    ):
        _client_options(parser)
        parser.set_defaults(run=_cmd_trigger, syscall=syscall)


def register(add: AddCommand) -> None:
    """Add ``workflow run`` and ``workflow trigger``."""
    sub = add("workflow", "run job templates and sweeps from a workflow file", limits=False)
    actions = sub.add_subparsers(dest="workflow_command", metavar="ACTION", required=True)
    run = actions.add_parser(
        "run", help="run a workflow file (TOML or YAML): locally, or on a kernel"
    )
    run.add_argument("file", metavar="FILE")
    run.add_argument(
        "--out",
        metavar="DIR",
        help="where results go (default: NAME-results/ here, NAME the file's stem)",
    )
    where = run.add_argument_group("where the jobs run (default: in this process)")
    where.add_argument("--server", metavar="URL", help="a kernel's REST API (qmk serve --http)")
    where.add_argument("--socket", metavar="ADDR", help="a kernel's JSON-RPC socket or HOST:PORT")
    where.add_argument("--tenant", metavar="NAME", help="tenant on the kernel (QMK_TENANT)")
    where.add_argument("--key", metavar="KEY", help="tenant key (QMK_KEY; prefer the variable)")
    where.add_argument("--caps", metavar="CAPS", help="capabilities to request, comma-separated")
    run.add_argument("--no-plots", action="store_true", help="write no PNG plots")
    run.add_argument("--quiet", action="store_true", help="no progress bar")
    run.add_argument("--json", action="store_true", help="print the results as JSON")
    run.set_defaults(run=_cmd_run)
    _add_trigger_commands(actions)
