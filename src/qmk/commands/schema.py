"""``qmk schema``: the JSON Schema of each kind of file QMK reads, shipped and drift-checked.

``qmk schema`` prints the schema of a QVM graph; ``--kind config`` of a kernel config
(``kernel.toml``), ``--kind workflow`` of a workflow file, ``--kind device-job`` of a
neutral-atom job, ``--kind physics`` of a physics file (``qmk run --physics``). Each is
generated from the table or the msgspec schema that reads such files (:data:`KINDS`
names the module) and shipped in the package. ``--check`` exits 1 when a shipped copy
is not what its schema generates now; ``--write`` rewrites it (without ``--kind``:
every kind). ``python -m qmk.commands.schema --check`` is the same check, which
``make test`` runs (``make docs`` writes).

>>> sorted(KINDS)
['config', 'device-job', 'physics', 'qvm', 'workflow']
>>> KINDS["config"].path.name
'config.schema.json'
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from importlib import import_module
from pathlib import Path
from typing import TextIO

from qmk.commands import AddCommand


@dataclass(frozen=True, slots=True, kw_only=True)
class Kind:
    """One kind of file: the module that generates its schema, and what the schema is of.

    The module has ``SCHEMA_PATH`` (the shipped file) and a function named ``render`` that
    returns the file's text.
    """

    module: str
    render: str
    what: str

    @property
    def path(self) -> Path:
        """The shipped schema file."""
        path: Path = import_module(self.module).SCHEMA_PATH
        return path

    def text(self) -> str:
        """The schema as its module generates it now (the shipped file's text)."""
        render: Callable[[], str] = getattr(import_module(self.module), self.render)
        return render()


#: Every kind, by its ``--kind`` name.
KINDS: dict[str, Kind] = {
    "qvm": Kind(module="qmk.qvm.schema", render="schema_text", what="a QVM graph"),
    "config": Kind(
        module="qmk.kernel.config", render="schema_text", what="a kernel config (kernel.toml)"
    ),
    "workflow": Kind(module="qmk.workflows.spec", render="schema_text", what="a workflow file"),
    "device-job": Kind(
        module="qmk.devices.neutral_atom.schema", render="render", what="a neutral-atom job"
    ),
    "physics": Kind(
        module="qmk.qec.physics",
        render="schema_text",
        what="a physics file (qec_scheme, error_budget, decoder)",
    ),
}


def _cmd_schema(args: argparse.Namespace, out: TextIO, err: TextIO) -> int:
    if not (args.check or args.write):
        out.write(KINDS[args.kind or "qvm"].path.read_text(encoding="utf-8"))
        return 0
    stale = []
    for name in [args.kind] if args.kind else list(KINDS):
        kind = KINDS[name]
        fresh = kind.text()
        try:
            current = kind.path.read_text(encoding="utf-8")
        except OSError:
            current = None
        if current == fresh:
            continue
        if args.write:
            kind.path.write_text(fresh, encoding="utf-8")
        else:
            stale.append(name)
            err.write(
                f"{kind.path} is out of date with the schema of {kind.what}; run: "
                f"qmk schema --kind {name} --write\n"
            )
    return 1 if stale else 0


def register(add: AddCommand) -> None:
    """Add ``schema``."""
    sub = add("schema", "print the JSON Schema of a kind of file QMK reads", limits=False)
    sub.add_argument(
        "--kind",
        choices=list(KINDS),
        help="qvm (a QVM graph, the default), config (kernel.toml), workflow, "
        "device-job (a neutral-atom job), physics (qmk run --physics)",
    )
    mode = sub.add_mutually_exclusive_group()
    mode.add_argument(
        "--check",
        action="store_true",
        help="exit 1 if a shipped schema is out of date (every kind unless --kind)",
    )
    mode.add_argument(
        "--write",
        action="store_true",
        help="rewrite the shipped schemas (every kind unless --kind)",
    )
    sub.set_defaults(run=_cmd_schema)


def main(argv: Sequence[str] | None = None) -> int:
    """``python -m qmk.commands.schema [--kind K] [--check | --write]``, as ``qmk schema``.

    Returns:
        The exit status: 0, or 1 when ``--check`` finds a shipped file out of date.
    """
    parser = argparse.ArgumentParser(prog="python -m qmk.commands.schema")
    commands = parser.add_subparsers(dest="command", required=True)

    def add(name: str, help_text: str, /, *, limits: bool = True) -> argparse.ArgumentParser:
        return commands.add_parser(name, help=help_text, description=help_text)

    register(add)
    args = parser.parse_args(["schema", *(sys.argv[1:] if argv is None else argv)])
    status: int = args.run(args, sys.stdout, sys.stderr)
    return status


if __name__ == "__main__":
    raise SystemExit(main())


__all__ = ["KINDS", "Kind", "main", "register"]
