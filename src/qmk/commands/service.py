"""The service commands: ``qmk serve`` runs a kernel; the others are its clients.

``qmk serve --socket PATH --data-dir DIR --config FILE [--tcp HOST:PORT] [--workers N]``
runs the kernel until SIGTERM or SIGINT, then drains and exits 0, removing its socket.

The client commands (``submit``, ``status``, ``wait``, ``cancel``, ``jobs``,
``telemetry``, ``resources``; the other syscalls' commands are in
:mod:`qmk.commands.syscalls`) take the kernel's address from ``--socket`` or
``QMK_SOCKET`` and the tenant from ``--tenant``/``--key``/``--caps`` or
``QMK_TENANT``/``QMK_KEY``/``QMK_CAPS``. A command is one process, so it has no
session to reuse: each one negotiates a fresh session with the tenant's key. Jobs
belong to the tenant, not to the session, so ``qmk status`` finds a job that an
earlier ``qmk submit`` queued. Prefer ``QMK_KEY`` to ``--key``: other users can
read command lines.

Exit statuses:

- 0: success (for ``wait`` and ``submit --wait``: the job COMPLETED);
- 1: the kernel refused the request, the job ended FAILED/CANCELLED/TIMED_OUT or was
  not final in time, the kernel could not be reached, or the audit log is tampered;
- 2: bad input or usage (including JSON-RPC protocol errors);
- 3: an internal error.

Errors are one line on stderr: ``QS1004 capability-denied: ...``.
"""

from __future__ import annotations

import argparse
import json
import os
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any, TextIO

from qmk import defaults
from qmk.abi.errors import CommandError
from qmk.abi.replies import Job, Reply
from qmk.commands import (
    AddCommand,
    is_stim_source,
    limits_of,
    number_text,
    outcome_lines,
    read_source,
    seed_arg,
    shots_arg,
    source_options,
    stim_given,
    stim_options,
)
from qmk.errors import warning_line
from qmk.serve import serve
from qmk.serve.options import SERVE_HELP, add_options
from qmk.serve.options import int_in as _int_in

if TYPE_CHECKING:
    from qmk.client import Client

# --------------------------------------------------------------------------- clients


def _client(args: argparse.Namespace) -> Client:
    from qmk.client import Client, Timeout

    if not (args.socket or os.environ.get("QMK_SOCKET")):
        raise CommandError.of("bad-option", "no kernel address: pass --socket or set QMK_SOCKET")
    if not (args.tenant or os.environ.get("QMK_TENANT")):
        raise CommandError.of("bad-option", "no tenant: pass --tenant or set QMK_TENANT")
    return Client.connect(
        args.socket,
        tenant=args.tenant,
        key=args.key,
        caps=args.caps,
        timeout=Timeout(call=args.timeout),
    )


def _dump(data: Any, out: TextIO) -> None:
    """``data`` (a reply struct, or plain JSON data) as indented JSON text."""
    out.write(_json_text(data.to_json() if isinstance(data, Reply) else data))


def _json_text(data: Any) -> str:
    return json.dumps(data, ensure_ascii=False, indent=2) + "\n"


def scalar_text(value: Any) -> str:
    """A JSON scalar for people: ``-`` for null, a real with its significant digits
    (:func:`~qmk.commands.number_text`: a small rate is never ``0``).

    >>> scalar_text(None), scalar_text(0.9), scalar_text(1700000000.25), scalar_text(3)
    ('-', '0.9', '1700000000.25', '3')
    >>> scalar_text(2.4e-09)
    '2.4e-09'
    """
    if isinstance(value, float):
        return number_text(value)
    if value is None:
        return "-"
    return str(value)


def when_text(seconds: Any) -> str:
    """Unix seconds as UTC time for people (``-`` for null).

    >>> when_text(1700000000.0)
    '2023-11-14T22:13:20Z'
    """
    import datetime

    if not isinstance(seconds, int | float):
        return "-"
    moment = datetime.datetime.fromtimestamp(seconds, tz=datetime.timezone.utc)
    return moment.strftime("%Y-%m-%dT%H:%M:%SZ")


def fields_text(data: Any, indent: str = "") -> str:
    """A JSON reply as indented ``key: value`` lines, for people (``--json`` gives the
    reply itself); lists of scalars on one line in brackets (a list of one is not read
    as its one value), other lists by index.

    >>> print(fields_text({"a": 1, "b": {"c": [1, 2], "d": None}, "e": [], "f": [0]}), end="")
    a: 1
    b:
      c: [1, 2]
      d: -
    e: (none)
    f: [0]
    """
    lines: list[str] = []
    items = data.items() if isinstance(data, dict) else enumerate(data)
    for key, value in items:
        label = f"{indent}{key}" if isinstance(data, dict) else f"{indent}[{key}]"
        if isinstance(value, dict) and value:
            lines.append(f"{label}:")
            lines.append(fields_text(value, indent + "  ").rstrip("\n"))
        elif (
            isinstance(value, list) and value and all(not isinstance(v, dict | list) for v in value)
        ):
            lines.append(f"{label}: [{', '.join(scalar_text(v) for v in value)}]")
        elif isinstance(value, list) and value:
            lines.append(f"{label}:")
            lines.append(fields_text(value, indent + "  ").rstrip("\n"))
        elif isinstance(value, dict | list):
            lines.append(f"{label}: (none)")
        else:
            lines.append(f"{label}: {scalar_text(value)}")
    return "\n".join(lines) + "\n" if lines else ""


def _job_text(job: Job) -> str:
    lines = [
        f"{job.job_id}  {job.state}  shots {job.shots}  seed {job.seed}  priority {job.priority}"
    ]
    error = job.error
    if error is not None:
        lines.append(f"  error: {error.code} {error.name}: {error.message}")
    machine = job.machine
    if isinstance(machine, Mapping):
        lines.append(_machine_line(machine))
    result = job.result
    if result:
        lines.append(_outcomes_line(result))
        lines += outcome_lines(result.get("counts", {}), int(result.get("shots") or 1), "    ")
        if "detection" in result or "decode" in result:  # a stim job's, as qmk run says them
            from qmk.execution.stim_target import summary

            lines.append(summary(result, int(result.get("shots") or 1)).rstrip("\n"))
    return "\n".join(lines) + "\n"


def _machine_line(machine: Mapping[str, Any]) -> str:
    """A job's schedule on the shared machine in one line: its cycles, tiles, waits by
    cause, its stops at fences and the idle error its waits added (docs/machine.md)."""
    waits = ", ".join(f"{cause} {n}" for cause, n in machine.get("wait_cycles", {}).items() if n)
    stops = machine.get("preemptions", 0)
    error = float(machine.get("idle_logical_error", 0.0))
    return (
        f"  machine: cycles {machine.get('arrival_cycle')} arrived, "
        f"{machine.get('start_cycle')} started, {machine.get('end_cycle')} ended; "
        f"{machine.get('tiles')} tiles on module {machine.get('module')}; "
        f"waited {waits or 'nothing'}; preempted {stops} time{'' if stops == 1 else 's'}; "
        f"idle error {error if error >= 1e-15 else 0:.3g}"
    )


def _outcomes_line(result: Mapping[str, Any]) -> str:
    """What ran a job's result and how its outcomes are keyed: a device job's preset and
    backend (keys as ``qmk device run`` writes them), else the engine and events."""
    device = result.get("device")
    if isinstance(device, Mapping):
        return (
            f"  device {device.get('profile') or '(its own hardware)'} on "
            f"{device.get('backend')}; outcomes (keys as qmk device run writes them; "
            "L: a lost atom):"
        )
    events = " ".join(result.get("events", [])) or "(no events)"
    return f"  engine {result.get('engine')}; outcomes (events {events}):"


def _show_job(job: Job, args: argparse.Namespace, out: TextIO) -> None:
    if args.json:
        _dump(job, out)
    else:
        out.write(_job_text(job))


def _wait_status(job: Job, err: TextIO) -> int:
    if job.state == defaults.COMPLETED:
        return 0
    if not job.final:
        err.write(f"{job.job_id}: still {job.state} when the wait ended\n")
    return 1


def _submitted(args: argparse.Namespace) -> tuple[str, Any, dict[str, Any]]:
    """The target the options name (``--lattice-surgery``, ``--device``; else a stim
    circuit's own, ``stim``, and the logical machine for any other, as ``qmk run``
    chooses), the program to submit (a device job's wire form as it is, a stim circuit's
    text, else the source as QVM JSON) and the target's options; the kernel's target
    checks them."""
    from qmk.abi.errors import CommandError

    if args.lattice_surgery and args.device is not None:
        raise CommandError.of(
            "bad-option", "--lattice-surgery and --device name two targets: give one"
        )
    options: dict[str, Any] = stim_given(args)
    if args.device is not None:
        from qmk.devices.neutral_atom.target import is_device_job

        options["preset"] = args.device
        if args.file.endswith(".json"):
            from qmk.devices.neutral_atom.job import read_job

            data = read_job(args.file)
            if is_device_job(data):
                return "neutral-atom", data, options
        graph = read_source(args, args.file, limits_of(args)).to_json()
        return "neutral-atom", graph, options
    if args.block is not None:
        options["block"] = args.block
    if not args.lattice_surgery and is_stim_source(args):
        from qmk.frontends import read_text

        return "stim", {"stim": read_text(args.file)}, options
    graph = read_source(args, args.file, limits_of(args)).to_json()
    return ("lattice-surgery" if args.lattice_surgery else defaults.TARGET), graph, options


def _cmd_submit(args: argparse.Namespace, out: TextIO, err: TextIO) -> int:
    from qmk.execution.request import submit_policy

    auto = args.source_profile == "auto"  # the kernel's choice (policy.profile), not a name
    if auto:
        args.source_profile = None
    target, graph, options = _submitted(args)
    shots = args.shots
    if shots is None:  # a device job's own shots, else the default
        own = graph.get("shots") if target == "neutral-atom" else None
        shots = own if isinstance(own, int) else defaults.SHOTS
    calibration = None
    if args.calibration is not None:  # read and checked as qmk run --calibration reads it
        from qmk.qec.logical import Calibration

        calibration = Calibration.load(args.calibration)
    policy = submit_policy(
        profile="auto" if auto else None,
        priority=args.priority,
        engine=args.engine,
        noise=False if args.no_noise else None,
        timeout_ms=args.job_timeout_ms,
        noise_model=args.noise_model,  # the kernel reads it as qmk run --noise-model does
        calibration=calibration,
        cache=False if args.no_cache else None,
        error_budget=args.error_budget,  # checked here as the kernel checks policy.error_budget
    )
    if options:  # the target's own options, checked by the kernel's target
        policy = {**(policy or {}), **options}
    with _client(args) as client:
        if args.wait:  # one request: the submit waits as q_wait would (wait_ms)
            job = _submit_waiting(client, args, err, graph, shots, policy, target)
        else:
            job = client.q_submit(graph, shots, args.seed, policy, target=target)
    for notice in job.warnings or []:  # an option that changed nothing (QC130): not fatal
        err.write(warning_line(args.file, notice.to_json()))
    _show_job(job, args, out)
    return _wait_status(job, err) if args.wait else 0


def _cmd_status(args: argparse.Namespace, out: TextIO, err: TextIO) -> int:
    with _client(args) as client:
        job = client.q_status(args.job)
    _show_job(job, args, out)
    return 0


def _waiting(client: Client, job_id: str, args: argparse.Namespace, err: TextIO) -> Job:
    """``q_wait``, with a spinner on a terminal (not with --quiet or --json)."""
    from qmk.commands.progress import progress_bar

    with progress_bar(None, f"waiting for {job_id}", err, quiet=args.quiet or args.json):
        return client.q_wait(job_id, args.timeout_ms)


def _submit_waiting(
    client: Client,
    args: argparse.Namespace,
    err: TextIO,
    graph: Any,
    shots: int,
    policy: dict[str, Any] | None,
    target: str,
) -> Job:
    """``q_submit`` with ``wait_ms`` (``--timeout-ms``), with a spinner as
    :func:`_waiting`'s."""
    from qmk.commands.progress import progress_bar

    with progress_bar(None, "submitting and waiting", err, quiet=args.quiet or args.json):
        return client.q_submit(
            graph, shots, args.seed, policy, target=target, wait_ms=args.timeout_ms
        )


def _cmd_wait(args: argparse.Namespace, out: TextIO, err: TextIO) -> int:
    with _client(args) as client:
        job = _waiting(client, args.job, args, err)
    _show_job(job, args, out)
    return _wait_status(job, err)


def _cmd_cancel(args: argparse.Namespace, out: TextIO, err: TextIO) -> int:
    with _client(args) as client:
        job = client.q_cancel(args.job)
    _show_job(job, args, out)
    return 0


def _cmd_jobs(args: argparse.Namespace, out: TextIO, err: TextIO) -> int:
    with _client(args) as client:
        listing = client.q_list_jobs(args.state, args.limit)
    if args.json:
        _dump(listing, out)
        return 0
    for job in listing.jobs:
        out.write(f"{job.job_id}  {job.state:<10}  shots {job.shots}  priority {job.priority}\n")
    return 0


def _cmd_telemetry(args: argparse.Namespace, out: TextIO, err: TextIO) -> int:
    with _client(args) as client:
        reply = client.q_get_telemetry(args.job).to_json()
    out.write(_json_text(reply) if args.json else fields_text(reply))
    return 0


def _cmd_resources(args: argparse.Namespace, out: TextIO, err: TextIO) -> int:
    with _client(args) as client:
        reply = client.q_resource_query().to_json()
    out.write(_json_text(reply) if args.json else fields_text(reply))
    return 0


def _cmd_audit_tail(args: argparse.Namespace, out: TextIO, err: TextIO) -> int:
    """``qmk audit tail``: the tenant's recent audit records (``q_audit``), one a line."""
    with _client(args) as client:
        reply = client.q_audit(args.job, args.limit)
    if args.json:
        _dump(reply, out)
        return 0
    for entry in reply.entries:
        out.write(json.dumps(entry, ensure_ascii=False, sort_keys=True) + "\n")
    return 0


def _cmd_audit_events(args: argparse.Namespace, out: TextIO, err: TextIO) -> int:
    """``qmk audit events``: the tenant's records after a cursor (``q_events``), one a
    line; the cursor to go on from goes to stderr (``--json``: the whole reply)."""
    with _client(args) as client:
        reply = client.q_events(args.after, args.limit, args.wait_ms)
    if args.json:
        _dump(reply, out)
        return 0
    for event in reply.events:
        out.write(json.dumps(event, ensure_ascii=False, sort_keys=True) + "\n")
    dropped = f" ({reply.dropped} records no longer held)" if reply.dropped else ""
    err.write(f"cursor {reply.cursor}{dropped}: go on with --after {reply.cursor}\n")
    return 0


def _cmd_load(args: argparse.Namespace, out: TextIO, err: TextIO) -> int:
    """``qmk load``: the kernel's load and job counters (``q_kernel_load``; CAP_OBSERVE)."""
    with _client(args) as client:
        _dump(client.q_kernel_load(), out)
    return 0


def _cmd_audit_verify(args: argparse.Namespace, out: TextIO, err: TextIO) -> int:
    from qmk.kernel.storage.audit_verify import verify

    try:
        report = verify(args.data_dir)
    except OSError as exc:
        raise CommandError.of(
            "unreadable-data-dir", f"{args.data_dir}: cannot read the audit log: {exc.strerror}"
        ) from None
    if args.json:
        _dump(report.to_json(), out)
    checks = ["hash chain"]
    if report.macs_checked:
        checks.append("MACs")
    if report.head_checked:
        checks.append("database head")
    if report.ok:
        if not args.json:
            out.write(
                f"{args.data_dir}: audit log ok, {report.lines} lines ({', '.join(checks)})\n"
            )
            for line, problems in report.recoveries:
                out.write(
                    f"  line {line}: a kernel started with --recover: {'; '.join(problems)}\n"
                )
        return 0
    err.write(f"{args.data_dir}: tampered at audit line {report.first_bad_line}: {report.reason}\n")
    return 1


def _cmd_audit_replay(args: argparse.Namespace, out: TextIO, err: TextIO) -> int:
    from qmk.kernel.records.stored import digest_counts
    from qmk.kernel.security.replay import find_attestation, replay
    from qmk.kernel.storage.audit_verify import verify
    from qmk.kernel.storage.store import Store

    try:
        report = verify(args.data_dir)
        record = find_attestation(args.data_dir, args.job)
    except OSError as exc:
        raise CommandError.of(
            "unreadable-data-dir", f"{args.data_dir}: cannot read the audit log: {exc.strerror}"
        ) from None
    if not report.ok:
        err.write(
            f"{args.data_dir}: tampered at audit line {report.first_bad_line}: "
            f"{report.reason}; nothing replayed\n"
        )
        return 1
    if record is None:
        raise CommandError.of(
            "no-attestation", f"{args.data_dir}: no attestation of job {args.job!r}"
        )
    store = Store(args.data_dir, seal_key=_result_key(Path(args.data_dir)))
    try:
        job = store.load_job(args.job, record["tenant"])
    finally:
        store.close()
    if job is None:
        raise CommandError.of(
            "no-attestation", f"{args.data_dir}: job {args.job!r} is attested but not stored"
        )
    damage = job.result_damage or job.program_damage
    if damage is not None:  # (audit verify saw it too: a row edited since)
        err.write(f"{args.job}: {damage['code']} {damage['message']}\n")
        return 1
    found = replay(job.graph, record, args.job)
    stored = None if job.result is None else job.result.get("counts")
    if found.same and isinstance(stored, dict) and digest_counts(stored) != found.recorded:
        err.write(f"{args.job}: the stored counts differ from the attested ones (edited)\n")
        return 1
    if args.json:
        _dump(
            {
                "job_id": found.job_id,
                "same": found.same,
                "shots": found.shots,
                "epochs": found.epochs,
                "recorded_sha256": found.recorded,
                "replayed_sha256": found.replayed,
                "reason": found.reason,
            },
            out,
        )
    elif found.same:
        out.write(
            f"{args.job}: replayed {found.shots} shots over {found.epochs} epochs: the same "
            f"counts (sha256 {found.replayed[:16]}...)\n"
        )
    if not found.same:
        err.write(
            f"{args.job}: {found.reason} (recorded {found.recorded[:16]}..., "
            f"replayed {found.replayed[:16]}...)\n"
        )
        return 1
    return 0


def _result_key(data_dir: Path) -> bytes | None:
    """The key of the results' seals of ``data_dir`` (None without its secret)."""
    from qmk.kernel.datafiles import SECRET_FILE
    from qmk.kernel.security.seals import derive

    try:
        return derive((data_dir / SECRET_FILE).read_bytes(), "result")
    except OSError:
        return None


# --------------------------------------------------------------------------- parsers


def _seconds(text: str) -> float:
    """An argparse type: a finite number of seconds > 0 (a loan's ``--expires-s``, a
    trigger's ``--every``)."""
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a number: {text!r}") from None
    if not value > 0 or value == float("inf"):
        raise argparse.ArgumentTypeError(f"must be a number of seconds > 0, got {text}")
    return value


def wait_options(sub: argparse.ArgumentParser) -> None:
    """``--wait`` (for the job to finish), ``--quiet`` and ``--timeout-ms`` of a command
    that queues a job (submit, restore, replay, device submit)."""
    sub.add_argument("--wait", action="store_true", help="wait for the job to finish")
    sub.add_argument("--quiet", action="store_true", help="no spinner while it waits")
    sub.add_argument(
        "--timeout-ms",
        type=_int_in(0),
        default=defaults.WAIT_TIMEOUT_MS,
        metavar="MS",
        help=f"--wait limit ({defaults.WAIT_TIMEOUT_MS})",
    )


def _client_options(sub: argparse.ArgumentParser) -> None:
    group = sub.add_argument_group("kernel and tenant (default: environment)")
    group.add_argument(
        "--socket", metavar="ADDR", help="kernel address: PATH or HOST:PORT (QMK_SOCKET)"
    )
    group.add_argument("--tenant", metavar="NAME", help="tenant name (QMK_TENANT)")
    group.add_argument("--key", metavar="KEY", help="tenant key (QMK_KEY; prefer the variable)")
    group.add_argument(
        "--caps",
        metavar="CAPS",
        help="capabilities to request, comma-separated (QMK_CAPS; "
        "default: all, the kernel grants those allowed)",
    )
    group.add_argument(
        "--timeout",
        type=float,
        default=defaults.CALL_TIMEOUT_S,
        metavar="S",
        help=f"seconds per call ({defaults.CALL_TIMEOUT_S:g})",
    )
    sub.add_argument("--json", action="store_true", help="print the reply as one JSON document")


def register(add: AddCommand) -> None:
    """Add ``serve``, the client commands and ``audit verify``."""
    sub = add("serve", SERVE_HELP)
    add_options(sub)
    sub.set_defaults(run=serve)

    sub = add("submit", "submit a program to a kernel (prints the job; --wait for its result)")
    sub.add_argument("file", metavar="FILE")
    sub.add_argument(
        "--shots",
        type=shots_arg,
        metavar="N",
        help=f"shots ({defaults.SHOTS}; a device job's own with --device)",
    )
    sub.add_argument("--seed", type=seed_arg, metavar="S", help="seed (default: drawn)")
    sub.add_argument(
        "--priority", type=_int_in(0, 9), metavar="P", help=f"priority 0..9 ({defaults.PRIORITY})"
    )
    sub.add_argument(
        "--engine",
        choices=defaults.ENGINES,
        help="engine (default: the router chooses; 'qmk engines' lists those installed)",
    )
    sub.add_argument("--no-noise", action="store_true", help="inject no logical errors")
    sub.add_argument("--job-timeout-ms", type=_int_in(1), metavar="MS", help="job time limit")
    sub.add_argument(
        "--noise-model",
        metavar="MODEL",
        help="physical error rates in place of the machine's, as qmk run --noise-model "
        "(within the kernel's machine.job_noise_models and job_max_error_rate)",
    )
    sub.add_argument(
        "--calibration",
        metavar="FILE.json",
        help="a fitted (a, p*) from qmk qec calibrate --output, in place of the machine's "
        "(if machine.job_calibration allows)",
    )
    sub.add_argument(
        "--no-cache",
        action="store_true",
        help="run the job even if an earlier job of the same run has its result stored",
    )
    sub.add_argument(
        "--error-budget",
        type=float,
        metavar="E",
        help="the idle logical error the shared machine may give the job, in (0, 1] "
        "(policy.error_budget; default: its program's SET_POLICY, else [machine] "
        "error_budget); one no schedule can meet is refused (QK505)",
    )
    sub.add_argument(
        "--lattice-surgery",
        action="store_true",
        help="run it as lattice surgery (the lattice-surgery target, docs/ft-execution.md)",
    )
    sub.add_argument(
        "--block",
        choices=("compact", "intermediate", "fast"),
        help="with --lattice-surgery: Litinski's block the patches are laid out in (fast)",
    )
    sub.add_argument(
        "--device",
        metavar="PRESET",
        help="run it on the neutral-atom device (the neutral-atom target) with this preset "
        "of 'qmk device list': FILE a wire-form device job (JOB.json), or a program "
        "compiled onto the device",
    )
    stim_options(sub)
    wait_options(sub)
    source_options(sub)
    _client_options(sub)
    sub.set_defaults(run=_cmd_submit, syscall="q_submit")

    for name, help_text, handler, syscall in (
        ("status", "print a job's state (and result once COMPLETED)", _cmd_status, "q_status"),
        ("cancel", "cancel a queued or running job", _cmd_cancel, "q_cancel"),
    ):
        sub = add(name, help_text)
        sub.add_argument("job", metavar="JOB")
        _client_options(sub)
        sub.set_defaults(run=handler, syscall=syscall)

    sub = add("wait", "wait for a job to finish; exit 0 when it COMPLETED")
    sub.add_argument("job", metavar="JOB")
    sub.add_argument(
        "--timeout-ms",
        type=_int_in(0),
        default=defaults.WAIT_TIMEOUT_MS,
        metavar="MS",
        help=f"wait limit ({defaults.WAIT_TIMEOUT_MS})",
    )
    sub.add_argument("--quiet", action="store_true", help="no spinner while it waits")
    _client_options(sub)
    sub.set_defaults(run=_cmd_wait, syscall="q_wait")

    sub = add("jobs", "list the tenant's jobs, newest first")
    sub.add_argument("--state", metavar="S", help="only jobs in state S (e.g. RUNNING)")
    sub.add_argument(
        "--limit",
        type=_int_in(1),
        default=defaults.JOBS_LIMIT,
        metavar="N",
        help=f"at most N ({defaults.JOBS_LIMIT})",
    )
    _client_options(sub)
    sub.set_defaults(run=_cmd_jobs, syscall="q_list_jobs")

    sub = add("telemetry", "print a job's telemetry, or the tenant's aggregate")
    sub.add_argument("job", nargs="?", metavar="JOB")
    _client_options(sub)
    sub.set_defaults(run=_cmd_telemetry, syscall="q_get_telemetry")

    sub = add("resources", "print the machine's qubit inventory and the tenant's quota")
    _client_options(sub)
    sub.set_defaults(run=_cmd_resources, syscall="q_resource_query")

    sub = add("audit", "check a kernel's audit log")
    actions = sub.add_subparsers(dest="audit_command", metavar="ACTION", required=True)
    verify = actions.add_parser(
        "verify", help="verify the hash chain of DATA_DIR/audit.log (exit 1 if tampered)"
    )
    verify.add_argument("data_dir", metavar="DATA_DIR")
    verify.add_argument("--json", action="store_true", help="print the report as JSON")
    verify.set_defaults(run=_cmd_audit_verify)
    again = actions.add_parser(
        "replay",
        help="run a completed job again from its attestation and compare the counts "
        "(exit 1 if they differ or the log is tampered)",
    )
    again.add_argument("data_dir", metavar="DATA_DIR")
    again.add_argument("job", metavar="JOB")
    again.add_argument("--json", action="store_true", help="print the finding as JSON")
    again.set_defaults(run=_cmd_audit_replay)
    tail = actions.add_parser(
        "tail", help="print the tenant's recent audit records from a running kernel (q_audit)"
    )
    _client_options(tail)
    tail.add_argument("--job", metavar="JOB", help="only this job's records")
    tail.add_argument(
        "--limit", type=int, default=defaults.AUDIT_LIMIT, metavar="N", help="the newest N"
    )
    tail.set_defaults(run=_cmd_audit_tail, syscall="q_audit")
    events = actions.add_parser(
        "events",
        help="print the tenant's audit records after a cursor from a running kernel (q_events)",
    )
    _client_options(events)
    events.add_argument(
        "--after", type=int, metavar="SEQ", help="the cursor a call before printed (none: now)"
    )
    events.add_argument(
        "--limit", type=int, default=defaults.EVENTS_LIMIT, metavar="N", help="at most N records"
    )
    events.add_argument(
        "--wait-ms", type=int, metavar="MS", help="wait up to MS for the first record"
    )
    events.set_defaults(run=_cmd_audit_events, syscall="q_events")

    sub = add("load", "print a kernel's load and job counters (operators: CAP_OBSERVE)")
    _client_options(sub)
    sub.set_defaults(run=_cmd_load, syscall="q_kernel_load")
