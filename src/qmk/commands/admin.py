"""``qmk admin``: an operator's work on a kernel's data directory, with no kernel holding it.

- ``qmk admin migrate DATA_DIR [--config kernel.toml] [--json]`` -- bring a data
  directory an older kernel wrote forward to this kernel's formats
  (:mod:`qmk.kernel.storage.migrate`): a kernel refuses an older one with ``QK105
  data-dir-outdated`` until then. ``--config`` gives the ``[machine]`` the older kernel
  ran its jobs under, for jobs stored before they kept their run requests.
"""

from __future__ import annotations

import argparse
import json
from typing import TextIO

from qmk.commands import AddCommand


def _cmd_migrate(args: argparse.Namespace, out: TextIO, err: TextIO) -> int:
    from qmk.kernel.storage.migrate import migrate

    machine = None
    if args.config is not None:
        from qmk.kernel.config import load_config

        machine = load_config(args.config).machine
    report = migrate(args.data_dir, machine=machine)
    if args.json:
        out.write(json.dumps(report.to_json(), ensure_ascii=False) + "\n")
        return 0
    if not report.changed:
        out.write(f"{args.data_dir}: already of format {report.version_to}: nothing to do\n")
        return 0
    found = "unnumbered" if report.version_from is None else report.version_from
    out.write(f"{args.data_dir}: brought forward from format {found} to {report.version_to}\n")
    lines = [
        ("columns added", len(report.columns_added)),
        ("stored results indexed", report.results_indexed),
        ("stored results sealed (stored before seals)", report.results_sealed),
        ("graphs moved under their digest", report.graphs_moved),
        ("run requests built", report.requests_built),
        ("policies without the device key of before targets", report.policies_updated),
        ("device jobs now of the neutral-atom target", report.device_jobs),
        ("device results in the form every target returns", report.device_results),
        ("attest lines written in today's form", report.attest_lines),
    ]
    out.writelines(f"  {what}: {count}\n" for what, count in lines)
    return 0


def register(add: AddCommand) -> None:
    """Add ``admin``."""
    admin = add("admin", "operator work on a data directory (no kernel may hold it)", limits=False)
    actions = admin.add_subparsers(dest="action", required=True, metavar="ACTION")
    migrate = actions.add_parser(
        "migrate", help="bring a data directory an older kernel wrote forward to this one's"
    )
    migrate.add_argument("data_dir", metavar="DATA_DIR", help="the kernel's data directory")
    migrate.add_argument(
        "--config",
        metavar="KERNEL.toml",
        help="the kernel's config: its [machine] for jobs stored before run requests "
        "(default: QMK's defaults)",
    )
    migrate.add_argument("--json", action="store_true", help="print what changed as JSON")
    migrate.set_defaults(run=_cmd_migrate)
