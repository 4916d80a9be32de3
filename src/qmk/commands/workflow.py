"""``qmk workflow run FILE``: run a workflow of job templates and sweeps (docs/workflows.md).

Locally by default (in this process, as ``qmk run``), or on a kernel: ``--socket ADDR``
(JSON-RPC) or ``--server URL`` (the REST API), as ``--tenant`` (``QMK_TENANT``, key in
``QMK_KEY``). It draws a progress bar on a terminal, prints one line per step, and writes
``results.json``, ``results.csv`` and ``plots/*.png`` to ``--out`` (default
``FILE-results/``). Exit 0 when every job COMPLETED, 1 when one did not.
"""

from __future__ import annotations

import argparse
import json
import os
from pathlib import Path
from typing import Any, TextIO

from qmk.abi.errors import CommandError
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
    folder = Path(args.out) if args.out else Path(f"{Path(args.file).with_suffix('')}-results")
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


def register(add: AddCommand) -> None:
    """Add ``workflow run``."""
    sub = add("workflow", "run job templates and sweeps from a workflow file", limits=False)
    actions = sub.add_subparsers(dest="workflow_command", metavar="ACTION", required=True)
    run = actions.add_parser(
        "run", help="run a workflow file (TOML or YAML): locally, or on a kernel"
    )
    run.add_argument("file", metavar="FILE")
    run.add_argument("--out", metavar="DIR", help="where results go (FILE-results/)")
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
