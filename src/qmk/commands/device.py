"""``qmk device``: the kernel's machine through the device interface (docs/devices.md).

- ``qmk device info`` prints the device: inventory (modules up or down), capabilities,
  health (drift factor, link fidelity, decoder load and backlog), the fault schedule and
  the logical model jobs start with now (the ``device`` section of ``q_resource_query``);
- ``qmk device calibrate FILE`` ingests a calibration (``qmk qec calibrate --output``) or
  custom qubit parameters (QRE's JSON form) into a running kernel (``q_calibrate``; the
  tenant needs ``operator = true``), for every job started from then on.

Both take the kernel and tenant as the other client commands do (``--socket``,
``QMK_TENANT``, ...).
"""

from __future__ import annotations

import argparse
import json
from typing import Any, TextIO

from qmk.abi.errors import CommandError
from qmk.commands import AddCommand


def _summary(device: dict[str, Any]) -> str:
    health = device["health"]
    inventory = device["inventory"]
    modules = ", ".join(
        f"{m['module_id']}: {m['physical_qubits']} {'up' if m['up'] else 'DOWN'}"
        for m in inventory["modules"]
    )
    model = device.get("logical_model") or {}
    lines = [
        f"device {device['kind']} at epoch {health['epoch']}",
        f"  modules: {modules}",
        f"  qubit {inventory['qubit']['name']}, profiles {', '.join(inventory['profiles'])}, "
        f"calibrations ingested {device['calibrations_ingested']}",
        f"  drift factor {health['drift_factor']:g}, link fidelity {health['link_fidelity']:g}",
        f"  decoder load {health['decoder_load_bits_per_second']:g} bits/s, capacity "
        f"{health['decoder_capacity_bits_per_second']}, backlog "
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
        device = client.q_resource_query()["device"]
    if args.json:
        _dump(device, out)
    else:
        out.write(_summary(device))
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


def register(add: AddCommand) -> None:
    """Add ``device info`` and ``device calibrate``."""
    from qmk.commands.service import _client_options

    sub = add("device", "the kernel's machine: inventory, health, calibration ingest", limits=False)
    actions = sub.add_subparsers(dest="device_command", metavar="ACTION", required=True)
    info = actions.add_parser("info", help="print the device: inventory, capabilities, health")
    _client_options(info)
    info.set_defaults(run=_cmd_info)
    calibrate = actions.add_parser(
        "calibrate",
        help="ingest a calibration (qmk qec calibrate --output) or qubit parameters JSON",
    )
    calibrate.add_argument("file", metavar="FILE")
    _client_options(calibrate)
    calibrate.set_defaults(run=_cmd_calibrate)
