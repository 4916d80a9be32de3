"""``qmk device``: the kernel's machine through the device interface, and the neutral-atom VM.

The kernel's machine (docs/devices.md); both take the kernel and tenant as the other client
commands do (``--socket``, ``QMK_TENANT``, ...):

- ``qmk device info`` prints the device: inventory (modules up or down), capabilities,
  health (drift factor, link fidelity, decoder load and backlog), the fault schedule and
  the logical model jobs start with now (the ``device`` section of ``q_resource_query``);
- ``qmk device submit JOB.json`` queues a neutral-atom job (its wire form) on the kernel
  (``q_submit`` to the target ``neutral-atom``, at the job's own shots and seed unless
  given, as ``qmk submit JOB.json --device PRESET``; the tenant needs ``CAP_DEVICE_NA``),
  ``--wait`` for its result;
- ``qmk device calibrate FILE`` ingests a calibration (``qmk qec calibrate --output``) or
  custom qubit parameters (QRE's JSON form) into a running kernel (``q_calibrate``; the
  tenant needs ``operator = true``), for every job started from then on.

The neutral-atom VM (docs/neutral-atom.md), in-process:

- ``qmk device list`` -- the shipped presets;
- ``qmk device show PRESET [--json]`` -- a preset's geometry, catalog, limits and noise
  (``--json``: the profile, a template for a profile file);
- ``qmk device isa [--json]`` -- the supported ISA versions, ops and gates (``--json``: with
  the job schema);
- ``qmk device run JOB.json [--shots N] [--seed S] [--device PRESET] [--backend B]
  [--strict-timing] [--json]`` -- run a wire-form job; ``--json`` prints one object with
  ``status``, ``counts``, ``measurements``, ``timeline`` (us) and ``telemetry``;
  ``--mitigate readout|zne|both --observable Z0Z1 [--zne-scales 1,2,3] [--zne-linear]``
  prints the raw and mitigated expectation instead (:mod:`qmk.devices.neutral_atom.mitigation`).
"""

from __future__ import annotations

import argparse
import json
from typing import Any, TextIO

from qmk.abi.errors import CommandError
from qmk.abi.replies import Device
from qmk.commands import AddCommand, seed_arg, shots_arg


def _summary(device: Device) -> str:
    health = device.health
    inventory = device.inventory
    modules = ", ".join(
        f"{m['module_id']}: {m['physical_qubits']} {'up' if m['up'] else 'DOWN'}"
        for m in inventory["modules"]
    )
    model = device.logical_model
    capacity = health["decoder_capacity_bits_per_second"]  # None: the decoder keeps up always
    lines = [
        f"device {device.kind} at epoch {health['epoch']}",
        f"  modules: {modules}",
        f"  qubit {inventory['qubit']['name']}, profiles {', '.join(inventory['profiles'])}, "
        f"calibrations ingested {device.calibrations_ingested}",
        f"  drift factor {health['drift_factor']:g}, link fidelity {health['link_fidelity']:g}",
        f"  decoder load {health['decoder_load_bits_per_second']:g} bits/s, capacity "
        f"{'no limit' if capacity is None else f'{capacity:g} bits/s'}, backlog "
        f"{health['decoder_backlog_bits_per_second']:g} bits/s",
    ]
    if "logical_error_per_cycle" in model:
        lines.append(
            f"  logical error per cycle now {model['logical_error_per_cycle']:.3e} "
            f"({model['profile']})"
        )
    elif "error" in model:
        lines.append(f"  logical model now: {model['error']}")
    return "\n".join(lines) + "\n"


def _cmd_info(args: argparse.Namespace, out: TextIO, err: TextIO) -> int:
    from qmk.commands.service import _client, _dump

    with _client(args) as client:
        device = client.q_resource_query().device  # q_calibrate's reply, as JSON
    if args.json:
        _dump(device, out)
    else:
        out.write(_summary(Device.from_json(device)))
    return 0


def _cmd_calibrate(args: argparse.Namespace, out: TextIO, err: TextIO) -> int:
    from qmk.commands.service import _client, _dump
    from qmk.qec.logical import CALIBRATION_KIND

    try:
        with open(args.file, encoding="utf-8") as handle:
            data = json.load(handle)
    except (OSError, ValueError) as exc:
        raise CommandError.of(
            "bad-option", f"{args.file}: not a readable JSON file: {exc}"
        ) from None
    if not isinstance(data, dict):
        raise CommandError.of("bad-option", f"{args.file}: expected a JSON object")
    is_calibration = data.get("kind") == CALIBRATION_KIND
    with _client(args) as client:
        if is_calibration:
            device = client.q_calibrate(calibration=data)
        else:
            device = client.q_calibrate(qubit=data)
    if args.json:
        _dump(device, out)
    else:
        what = "calibration" if is_calibration else "qubit parameters"
        out.write(f"ingested {what} from {args.file}\n" + _summary(device))
    return 0


def _cmd_submit(args: argparse.Namespace, out: TextIO, err: TextIO) -> int:
    """``qmk device submit``: a wire-form job queued on the kernel (``q_submit`` to the
    target ``neutral-atom``; ``--device`` is its ``preset``)."""
    from qmk.commands.service import _client, _show_job, _wait_status, _waiting
    from qmk.devices.neutral_atom.job import read_job

    job = read_job(args.job)
    policy: dict[str, Any] = {}
    for key, given in (
        ("priority", args.priority),
        ("backend", args.backend),
        ("timeout_ms", args.job_timeout_ms),
    ):
        if given is not None:
            policy[key] = given
    if args.strict_timing:
        policy["strict_timing"] = True
    stream = _stream_request(args)
    if stream:
        policy["stream"] = stream
    if args.device is not None:
        policy["preset"] = args.device
    own = job if isinstance(job, dict) else {}
    shots = own.get("shots", 1) if args.shots is None else args.shots
    seed = own.get("seed") if args.seed is None else args.seed
    with _client(args) as client:
        queued = client.q_submit(job, shots, seed, policy or None, target="neutral-atom")
        if args.wait:
            queued = _waiting(client, queued.job_id, args, err)
    _show_job(queued, args, out)
    return _wait_status(queued, err) if args.wait else 0


def _stream_request(args: argparse.Namespace) -> dict[str, Any]:
    """The policy's ``stream`` object from ``--stream`` and ``--snapshot``."""
    from qmk.devices.neutral_atom.streams import parse_spec

    names = [n.strip() for n in (args.stream or "").split(",") if n.strip()]
    points = [p.strip() for p in (args.snapshot or "").split(",") if p.strip()]
    request: dict[str, Any] = {name: True for name in names if name != "snapshots"}
    if points:
        try:
            request["snapshots"] = [float(p) for p in points]
        except ValueError:
            request["snapshots"] = points  # parse_spec says what is wrong
    parse_spec([n for n in names if n != "snapshots"])  # QD114 for an unknown name
    if request:
        parse_spec(request)
    return request


def _write_artifacts(
    args: argparse.Namespace, result: Any, stream: dict[str, Any], err: TextIO
) -> None:
    """``qmk device run --artifacts DIR``: the run's artifacts, one JSON file each."""
    from pathlib import Path

    from qmk.devices.neutral_atom.job import parse_job, read_job
    from qmk.devices.neutral_atom.streams import artifacts, parse_spec

    parsed = parse_job(
        read_job(args.job),
        preset=args.device,
        shots=result.shots,
        seed=result.seed,
        device_id=args.backend,
    )
    folder = Path(args.artifacts)
    folder.mkdir(parents=True, exist_ok=True)
    for artifact in artifacts(parsed, result, parse_spec(stream)):
        path = folder / f"{artifact['name']}.json"
        path.write_text(json.dumps(artifact["records"]), encoding="utf-8")
        err.write(f"wrote {path} ({len(artifact['records'])} records)\n")


def _cmd_artifacts(args: argparse.Namespace, out: TextIO, err: TextIO) -> int:
    """``qmk device artifacts JOB``: a device job's artifacts (``q_device_artifacts``)."""
    from qmk.commands.service import _client

    with _client(args) as client:
        if args.follow:
            status = _follow(client, args, out, err)
            if status or args.name is not None:
                return status
        reply = client.q_device_artifacts(args.job_id, args.name, args.offset, args.limit)
    if args.json:
        json.dump(reply.to_json(), out)
        out.write("\n")
        return 0
    if args.name is None:
        listed = reply.artifacts or []
        kept = reply.expires_at
        out.write(
            f"job {reply.job_id} ({reply.state}): {len(listed)} artifacts"
            + (f", kept until {kept:.0f}" if kept else "")
            + "\n"
        )
        for a in listed:
            out.write(
                f"  {a['name']:<13} {a['kind']:<13} {a['records']:>7} records "
                f"{a['bytes']:>9} bytes\n"
            )
        for a in reply.dropped or []:
            out.write(f"  {a['name']:<13} dropped ({a['reason']}): {a['bytes']} bytes\n")
        return 0
    for record in reply.records or []:
        out.write(json.dumps(record) + "\n")
    after, total = reply.next_offset, reply.total
    if isinstance(after, int) and isinstance(total, int):
        err.write(f"... {total - after} more: --offset {after}\n")
    return 0


def _follow(client: Any, args: argparse.Namespace, out: TextIO, err: TextIO) -> int:
    """``--follow``: the job's stream parts as they come (``q_watch``), until it ends;
    with ``--name`` that artifact's records as JSON lines (its other events on stderr),
    with ``--json`` every event as one JSON line. 1 when the job did not complete."""
    streams = None if args.name is None else [args.name]
    notes = err if args.name is not None and not args.json else out
    state, records = None, 0
    for event in client.watch(args.job_id, streams):
        name, data = event["event"], event["data"]
        if args.json:
            out.write(json.dumps(event) + "\n")
        elif name == "stream":
            part = data["record"]
            if args.name is not None:
                for record in part["records"]:
                    out.write(json.dumps(record) + "\n")
            else:
                out.write(
                    f"{part['artifact']} part {part['part'] + 1}/{part['parts']}: "
                    f"{len(part['records'])} records\n"
                )
        elif name in ("state", "closing"):
            notes.write(f"{name} {data.get('state') or data.get('reason')}\n")
        out.flush()
        if name == "stream":
            records += len(data["record"]["records"])
        if name == "result":
            state = data.get("state")
            if data.get("error"):
                err.write(f"job {args.job_id} {state}: {data['error'].get('message')}\n")
    if state is not None and state != "COMPLETED":
        return 1
    if args.name is not None and not records:
        err.write(
            f"no {args.name} record came while following (the job had sent them, or it has "
            f"none): qmk device artifacts {args.job_id} --name {args.name}\n"
        )
    return 0 if state == "COMPLETED" else 1


def _add_artifacts(actions: Any) -> None:
    from qmk.commands.service import _client_options, _int_in

    artifacts = actions.add_parser(
        "artifacts",
        help="a device job's artifacts on the kernel: streamed measurements, pulse log, "
        "snapshots (the list, or --name one's records as JSON lines)",
    )
    artifacts.add_argument("job_id", metavar="JOB")
    artifacts.add_argument("--name", help="an artifact's records (measurements, pulses, snapshots)")
    artifacts.add_argument("--offset", type=_int_in(0), default=0, help="first record (0)")
    artifacts.add_argument("--limit", type=_int_in(1, 10_000), default=1000, help="records (1000)")
    artifacts.add_argument(
        "--follow",
        action="store_true",
        help="watch the job and print its stream parts as they come (with --name, that "
        "artifact's records), then the list",
    )
    _client_options(artifacts)
    artifacts.set_defaults(run=_cmd_artifacts, syscall="q_device_artifacts")


def _add_submit(actions: Any) -> None:
    from qmk.commands.service import _client_options, _int_in, wait_options

    submit = actions.add_parser(
        "submit",
        help="queue a neutral-atom job (the v1 wire form, JSON) on the kernel (CAP_DEVICE_NA)",
    )
    submit.add_argument("job", metavar="JOB.json")
    submit.add_argument("--shots", type=shots_arg, help="shots (default: the job's, else 1)")
    submit.add_argument("--seed", type=seed_arg, help="seed (default: the job's, else drawn)")
    submit.add_argument(
        "--device", metavar="PRESET", help="a preset of qmk device list (default: the job's)"
    )
    submit.add_argument("--priority", type=_int_in(0, 9), metavar="P", help="priority 0..9")
    submit.add_argument(
        "--backend",
        choices=_device_ids(),
        help="the backend (default: the job's device_id, else auto; qmk device show lists "
        "each with its capabilities)",
    )
    submit.add_argument(
        "--strict-timing",
        action="store_true",
        help="refuse operations inside a measurement cooldown instead of waiting (QD209)",
    )
    submit.add_argument("--job-timeout-ms", type=_int_in(1), metavar="MS", help="job time limit")
    submit.add_argument(
        "--stream",
        metavar="NAMES",
        help="stream and keep as artifacts: measurements,pulses (qmk device artifacts JOB)",
    )
    submit.add_argument(
        "--snapshot",
        metavar="POINTS",
        help="state snapshots after these instruction indices (ns for an analog job), e.g. 2,5",
    )
    wait_options(submit)
    _client_options(submit)
    submit.set_defaults(run=_cmd_submit, syscall="q_submit")


# --------------------------------------------------------------------------- neutral atom


def _cmd_list(args: argparse.Namespace, out: TextIO, err: TextIO) -> int:
    from qmk.devices.neutral_atom.profiles import load_profile, presets

    rows = [load_profile(name).summary() for name in presets()]
    if args.json:
        json.dump(rows, out, indent=2)
        out.write("\n")
        return 0
    width = max(len(r["name"]) for r in rows)
    for r in rows:
        noisy = "noisy" if r["noisy"] else "ideal"
        out.write(
            f"{r['name']:<{width}}  {r['atoms']:>3} atoms / {r['sites']:>3} sites  "
            f"blockade {r['blockade_radius']:g}  {noisy:<5}  {r['label']}\n"
        )
    return 0


def _cap(value: float) -> str:
    """A limit for the summary: 0 is no limit."""
    return f"{value:g}" if value else "any"


def _show(profile: Any) -> str:
    hw, noise = profile.hardware, profile.noise
    t = hw.timing
    lines = [
        f"{profile.name}: {profile.label}",
        f"  {profile.description}",
        f"  ISA {profile.isa_version}; lattice {len(hw.sites)} sites, nearest-neighbour spacing "
        f"{hw.neighbour_distance:g} um, zones {', '.join(map(str, hw.zones))}",
        f"  configuration {profile.default_configuration or 'all'}: {len(hw.site_ids)} atoms on "
        f"sites {list(hw.site_ids)}",
        "  configurations: "
        + (", ".join(f"{c.name} ({len(c.site_ids)} atoms)" for c in profile.configurations) or "-"),
        f"  blockade radius {hw.blockade.radius:g}"
        + (
            f", per axis x {hw.blockade.radius_x:g} y {hw.blockade.radius_y:g} z "
            f"{hw.blockade.radius_z:g}"
            if (hw.blockade.radius_x or hw.blockade.radius_y or hw.blockade.radius_z)
            else ""
        )
        + (
            ", zones " + ", ".join(f"{z}: {r:g}" for z, r in hw.blockade.zone_overrides)
            if hw.blockade.zone_overrides
            else ""
        ),
        "  native gates: "
        + (
            ", ".join(
                f"{g.name} {g.duration_ns:g} ns"
                + (f" {g.connectivity.value}" if g.arity > 1 else "")
                for g in hw.native_gates
            )
            or "every ISA gate (no catalog)"
        ),
        f"  timing: measurement {t.measurement_duration_ns:g} ns, cooldown "
        f"{t.measurement_cooldown_ns:g} ns, parallel 1q {t.max_parallel_single_qubit or 'any'}, "
        f"2q {t.max_parallel_two_qubit or 'any'}, per zone {t.max_parallel_per_zone or 'any'}",
        f"  transport: {len(hw.transport_edges)} edges; moves per atom "
        f"{hw.move_limits.max_moves_per_atom or 'any'}, min spacing {hw.move_limits.min_spacing:g}",
        f"  analog drive (ISA 1.2 Evolve): Omega <= {_cap(hw.drive.omega_max)} rad/us, "
        f"Delta in [{hw.drive.delta_min:g}, {hw.drive.delta_max:g}] rad/us, slew "
        f"{_cap(hw.drive.omega_slew_max)} / {_cap(hw.drive.delta_slew_max)} rad/us per us, "
        f"at most {_cap(hw.drive.duration_max_ns)} ns; C6 {hw.c6:.6g} rad/us um^6",
        "  noise: " + ("none" if noise.is_noiseless else json.dumps(_nonzero(noise.to_json()))),
    ]
    return "\n".join(lines) + "\n"


def _nonzero(value: Any) -> Any:
    if isinstance(value, dict):
        kept = {k: _nonzero(v) for k, v in value.items()}
        return {k: v for k, v in kept.items() if v not in (0, 0.0, {}, None)}
    if isinstance(value, list):
        return value if any(any(row) for row in value) else 0
    return value


def _device_ids() -> tuple[str, ...]:
    from qmk.devices.neutral_atom.job import DEVICE_IDS

    return DEVICE_IDS


def _backends(table: list[dict[str, Any]]) -> str:
    """The backends' capability metadata, one block each."""
    lines = ["  backends (device_id; auto picks stabilizer or state-vector):"]
    for b in table:
        where = "available" if b["available"] else f"not available: {b['reason']}"
        lines.append(f"    {b['name']:<17} {b['engine']}: {b['summary']} [{where}]")
        lines.append(
            f"      {b['max_atoms'] or '-'} atoms; {b['gates']}; noise: {', '.join(b['noise'])}; "
            f"analog {'yes' if b['analog'] else 'no'}; mid-circuit "
            f"{'yes' if b['mid_circuit'] else 'no'}; {'GPU' if b['gpu'] else 'CPU'}; "
            f"for {b['for']}"
        )
    return "\n".join(lines) + "\n"


def _cmd_show(args: argparse.Namespace, out: TextIO, err: TextIO) -> int:
    from qmk.devices.neutral_atom.backends import capability_table
    from qmk.devices.neutral_atom.profiles import load_profile

    profile = load_profile(args.preset)
    table = capability_table()
    if args.json:
        json.dump({**profile.to_json(), "backends": table}, out, indent=2)
        out.write("\n")
    else:
        out.write(_show(profile) + _backends(table))
    return 0


def _cmd_isa(args: argparse.Namespace, out: TextIO, err: TextIO) -> int:
    from qmk.devices.neutral_atom.isa import GATES, OPS, VERSIONS
    from qmk.devices.neutral_atom.schema import build_schema

    if args.json:
        data = {
            "versions": [str(v) for v in VERSIONS],
            "ops": [
                {
                    "name": spec.name,
                    "since": str(spec.since),
                    "fields": [f.name for f in spec.fields],
                    "description": spec.description,
                }
                for spec in OPS.values()
            ],
            "gates": [
                {
                    "name": g.name,
                    "arity": g.arity,
                    "params": list(g.params),
                    "since": str(g.since),
                    "description": g.description,
                }
                for g in GATES.values()
            ],
            "schema": build_schema(),
        }
        json.dump(data, out, indent=2)
        out.write("\n")
        return 0
    out.write(f"neutral-atom ISA versions: {', '.join(str(v) for v in VERSIONS)}\n")
    out.write("ops:\n")
    for spec in OPS.values():
        fields = ", ".join(f.name + ("" if f.required else "?") for f in spec.fields)
        out.write(f"  {spec.name:<11} ({fields})  since {spec.since}: {spec.description}\n")
    out.write("gates:\n")
    for g in GATES.values():
        params = f"({', '.join(g.params)})" if g.params else ""
        out.write(f"  {g.name + params:<26} {g.arity}q  since {g.since}: {g.description}\n")
    return 0


def _cmd_mitigate(args: argparse.Namespace, out: TextIO) -> int:
    """``qmk device run --mitigate``: :func:`~qmk.devices.neutral_atom.mitigation.mitigate`."""
    from qmk.devices.errors import DeviceError
    from qmk.devices.neutral_atom.job import read_job
    from qmk.devices.neutral_atom.mitigation import DEFAULT_SCALES, mitigate, parse_scales

    if args.observable is None:
        raise DeviceError.of("mitigation-invalid", "--mitigate needs --observable (e.g. Z0Z1)")
    if args.strict_timing:
        raise DeviceError.of("mitigation-invalid", "--mitigate does not take --strict-timing")
    if args.mitigate == "readout" and (args.zne_scales is not None or args.zne_linear):
        raise DeviceError.of(
            "mitigation-invalid", "--zne-scales/--zne-linear need --mitigate zne or both"
        )
    scales = DEFAULT_SCALES if args.zne_scales is None else parse_scales(args.zne_scales)
    m = mitigate(
        read_job(args.job),
        args.observable,
        method=args.mitigate,
        scales=scales,
        linear=args.zne_linear,
        shots=args.shots,
        seed=args.seed,
        device=args.device,
        backend=args.backend,
    )
    if args.json:
        json.dump(m.to_json(), out)
        out.write("\n")
        return 0
    out.write(
        f"<{m.observable}> on {m.shots} shots, seed {m.seed} ({m.discarded} shots with a lost "
        f"atom dropped)\n  raw       {m.raw:+.4f} +- {m.raw_stderr:.4f}\n"
    )
    if m.readout is not None:
        out.write(f"  readout   {m.readout:+.4f}  (inverse calibrated confusion, clipped)\n")
        counts = sorted((m.corrected_counts or {}).items(), key=lambda kv: -kv[1])
        out.write(
            "  corrected counts: " + ", ".join(f"{k} {v:g}" for k, v in counts[: args.top]) + "\n"
        )
    if m.zne is not None:
        points = ", ".join(f"x{s:g}: {v:+.4f}" for s, v in zip(m.scales, m.scaled, strict=True))
        out.write(f"  scaled    {points}\n  zne       {m.zne:+.4f}  ({m.extrapolation})\n")
    return 0


def _cmd_run(args: argparse.Namespace, out: TextIO, err: TextIO) -> int:
    from qmk.devices.errors import DeviceError
    from qmk.devices.neutral_atom.emulator import run_job
    from qmk.devices.neutral_atom.job import read_job

    if args.mitigate is not None:
        if args.stream or args.snapshot or args.artifacts:
            raise DeviceError.of(
                "stream-invalid", "--stream, --snapshot and --artifacts do not go with --mitigate"
            )
        return _cmd_mitigate(args, out)
    if args.observable is not None or args.zne_scales is not None or args.zne_linear:
        raise DeviceError.of(
            "mitigation-invalid", "--observable, --zne-scales and --zne-linear need --mitigate"
        )
    stream = _stream_request(args)
    if stream and args.artifacts is None:
        raise DeviceError.of("stream-invalid", "--stream and --snapshot need --artifacts DIR")
    result = run_job(
        read_job(args.job),
        shots=args.shots,
        seed=args.seed,
        device=args.device,
        backend=args.backend,
        strict_timing=args.strict_timing,
    )
    if stream:
        _write_artifacts(args, result, stream, err)
    if args.json:
        json.dump(result.to_json(measurements=not args.no_measurements), out)
        out.write("\n")
        return 0
    tel = result.telemetry
    out.write(
        f"job {result.job_id}: {result.status} on {result.device_id} ({tel['mode']}), "
        f"profile {result.profile or 'none'}, ISA {result.isa_version}, {result.shots} shots, "
        f"seed {result.seed}\n"
    )
    out.write(
        f"  {tel['atoms']} atoms, {tel['instructions']} instructions, program time "
        f"{tel['duration_ns'] / 1000:g} us, {tel['inserted_waits']} inserted waits, "
        f"{tel['atoms_lost']} atom losses, {tel['elapsed_s']:.3f} s\n"
    )
    if tel["mode"] == "analog":
        out.write(
            f"  analog: {tel['method']}, {tel['basis_states']} of {tel['full_states']} basis "
            f"states, {tel['integrator']}; bit 1 = Rydberg, atom 0 leftmost\n"
        )
    counts = sorted(result.counts().items(), key=lambda kv: (-kv[1], kv[0]))
    out.write(f"counts ({len(counts)} outcomes, L = lost atom):\n")
    for key, count in counts[: args.top]:
        out.write(f"  {key or '(none)'}  {count}\n")
    if len(counts) > args.top:
        out.write(f"  ... {len(counts) - args.top} more (--top N, or --json)\n")
    return 0


def _cmd_qec(args: argparse.Namespace, out: TextIO, err: TextIO) -> int:
    """``qmk device qec``: a memory experiment on a device profile
    (:mod:`qmk.devices.neutral_atom.qec`)."""
    from qmk.devices.neutral_atom.qec import memory_experiment

    result = memory_experiment(
        args.code,
        distance=args.distance,
        rounds=args.rounds,
        device=args.device,
        shots=args.shots,
        seed=args.seed,
        loss=not args.no_loss,
        routing=args.routing,
    )
    if args.json:
        json.dump(result.to_json(), out)
        out.write("\n")
        return 0
    low, high = result.per_round_interval
    out.write(
        f"{result.code} code d={result.distance}, {result.rounds} rounds on {result.profile} "
        f"({result.backend}), loss {'on' if result.loss else 'off'}, {result.shots} shots, "
        f"seed {result.seed}\n"
        f"  {result.atoms} atoms, {result.moves} moves and {result.swaps} swaps routed, "
        f"{result.duration_ns / 1000:g} us per shot\n"
        f"  {result.errors} logical errors ({result.shot_error_rate:.4g} per shot); "
        f"logical error per round {result.per_round:.4g} [{low:.3g}, {high:.3g}]\n"
        f"  {result.detection_events} detection events, {result.lost_bits} bits of lost atoms "
        f"(read as coin flips), {result.seconds:.2f} s\n"
    )
    return 0


def _add_qec(actions: Any) -> None:
    qec = actions.add_parser(
        "qec",
        help="a repetition or surface-code memory experiment on a neutral-atom profile "
        "(stim with atom loss, decoded by pymatching)",
    )
    qec.add_argument(
        "--code",
        default="repetition",
        help="repetition or surface (any name of their families: surface_code, surfaceCode, ...)",
    )
    qec.add_argument("--distance", type=int, default=3, help="odd code distance (3)")
    qec.add_argument("--rounds", type=int, help="syndrome rounds (default: the distance)")
    qec.add_argument(
        "--device", metavar="PRESET", default="benchmark_chain", help="preset or profile file"
    )
    qec.add_argument("--shots", type=shots_arg, default=10_000, help="shots (10000)")
    qec.add_argument("--seed", type=seed_arg, help="seed (default: drawn, printed)")
    qec.add_argument("--no-loss", action="store_true", help="set the profile's loss rates to 0")
    qec.add_argument(
        "--routing", choices=("auto", "move", "swap"), default="auto", help="compiler routing"
    )
    qec.add_argument("--json", action="store_true", help="print one JSON object")
    qec.set_defaults(run=_cmd_qec)


def register(add: AddCommand) -> None:
    """Add ``device info|calibrate|submit`` (the kernel's machine) and ``device list|show|isa|run``
    (the neutral-atom VM)."""
    from qmk.commands.service import _client_options

    sub = add(
        "device",
        "devices: the kernel's machine (info, calibrate, submit, artifacts) and the "
        "neutral-atom VM "
        "(list, show, isa, run)",
        limits=False,
    )
    actions = sub.add_subparsers(dest="device_command", metavar="ACTION", required=True)
    info = actions.add_parser("info", help="print the device: inventory, capabilities, health")
    _client_options(info)
    info.set_defaults(run=_cmd_info, syscall="q_resource_query")
    calibrate = actions.add_parser(
        "calibrate",
        help="ingest a calibration (qmk qec calibrate --output) or qubit parameters JSON",
    )
    calibrate.add_argument("file", metavar="FILE")
    _client_options(calibrate)
    calibrate.set_defaults(run=_cmd_calibrate, syscall="q_calibrate")
    _add_submit(actions)
    _add_artifacts(actions)

    listing = actions.add_parser("list", help="the neutral-atom presets")
    listing.add_argument("--json", action="store_true", help="print JSON")
    listing.set_defaults(run=_cmd_list)
    show = actions.add_parser(
        "show",
        help="a neutral-atom preset: geometry, catalog, limits, noise, and the backends "
        "with what each can do here",
    )
    show.add_argument("preset", metavar="PRESET", help="a preset name or a profile file")
    show.add_argument(
        "--json", action="store_true", help="print the profile as JSON, with its backends"
    )
    show.set_defaults(run=_cmd_show)
    isa = actions.add_parser("isa", help="the neutral-atom ISA: versions, ops, gates")
    isa.add_argument("--json", action="store_true", help="print JSON, with the job schema")
    isa.set_defaults(run=_cmd_isa)
    run = actions.add_parser("run", help="run a neutral-atom job (the v1 wire form, JSON)")
    run.add_argument("job", metavar="JOB.json")
    run.add_argument("--shots", type=shots_arg, help="shots (default: the job's, else 1)")
    run.add_argument(
        "--seed", type=seed_arg, help="RNG seed (default: the job's, else a fresh one)"
    )
    run.add_argument(
        "--device", metavar="PRESET", help="run on this preset (default: the job's profile)"
    )
    run.add_argument(
        "--backend",
        choices=_device_ids(),
        help="the backend (default: the job's device_id, else auto; qmk device show lists "
        "each with its capabilities)",
    )
    run.add_argument(
        "--strict-timing",
        action="store_true",
        help="refuse operations inside a measurement cooldown instead of waiting (QD209)",
    )
    run.add_argument("--json", action="store_true", help="print one JSON object")
    run.add_argument(
        "--no-measurements", action="store_true", help="with --json, leave out measurements"
    )
    run.add_argument("--top", type=int, default=16, help="outcomes to print (default 16)")
    run.add_argument(
        "--stream", metavar="NAMES", help="artifacts to write: measurements,pulses (--artifacts)"
    )
    run.add_argument(
        "--snapshot",
        metavar="POINTS",
        help="state snapshots after these instruction indices (ns for an analog job)",
    )
    run.add_argument(
        "--artifacts", metavar="DIR", help="write the streams here, one NAME.json each"
    )
    run.add_argument(
        "--mitigate",
        choices=("readout", "zne", "both"),
        help="mitigate the --observable's expectation: readout (inverse calibrated confusion), "
        "zne (noise scaled, extrapolated to 0), or both",
    )
    run.add_argument(
        "--observable", metavar="ZSTRING", help="a Z string on the recorded bits, e.g. Z0Z1"
    )
    run.add_argument(
        "--zne-scales", metavar="1,2,3", help="noise-scale factors for zne (default 1,2,3)"
    )
    run.add_argument(
        "--zne-linear",
        action="store_true",
        help="extrapolate a least-squares line (default: Richardson, degree len(scales)-1)",
    )
    run.set_defaults(run=_cmd_run)
    _add_qec(actions)
