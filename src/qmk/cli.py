"""The ``qmk`` command: wires the subcommands of :mod:`qmk.commands`, parses, runs one,
prints its error and exits.

Callable in-process: ``main(argv)`` returns the exit status, so tests and doc
generation use it without a subprocess. Exit statuses: 0 success; 1 the
program has findings (validate, info); 2 unreadable input or bad usage; 3 an
internal error (a bug: please report it; ``QMK_DEBUG=1`` shows the traceback).
``docs/errors.md`` lists every code with its exit status.

Bad input is always one line on stderr with a stable code, never a traceback.

>>> main(["--version"])  # doctest: +ELLIPSIS
qmk ...
0
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Sequence
from typing import TextIO

from qmk import __version__
from qmk.commands import register_all
from qmk.errors import QMKError


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="qmk",
        description="QMK, a quantum microkernel: run, check, estimate and serve quantum programs.",
        epilog="Exit status: 0 ok, 1 findings, 2 unreadable input or bad usage.",
    )
    parser.add_argument("--version", action="version", version=f"qmk {__version__} (QVM 0.1, 0.2)")
    commands = parser.add_subparsers(dest="command", metavar="COMMAND")

    def command(name: str, help_text: str, /, *, limits: bool = True) -> argparse.ArgumentParser:
        sub = commands.add_parser(name, help=help_text, description=help_text)
        if limits:
            sub.add_argument(
                "--max-nodes", type=int, metavar="N", help="refuse graphs over N nodes"
            )
            sub.add_argument("--max-bytes", type=int, metavar="N", help="refuse files over N bytes")
        return sub

    register_all(command)
    return parser


def main(
    argv: Sequence[str] | None = None, *, stdout: TextIO | None = None, stderr: TextIO | None = None
) -> int:
    """Run the ``qmk`` command; returns its exit status.

    Args:
        argv: the arguments after ``qmk`` (default: ``sys.argv[1:]``).
        stdout: where output goes (default: ``sys.stdout``).
        stderr: where errors go (default: ``sys.stderr``).
    """
    out = stdout or sys.stdout
    err = stderr or sys.stderr
    parser = _parser()
    try:
        args = parser.parse_args(argv)
    except SystemExit as exc:  # argparse: --help/--version exit 0, bad usage exits 2
        return int(exc.code or 0)
    if args.command is None:
        parser.print_help(out)
        return 2
    try:
        status: int = args.run(args, out, err)
        return status
    except QMKError as exc:
        err.write(f"{exc}\n")
        return exc.exit_status
    except (MemoryError, RecursionError) as exc:
        from qmk.qvm.errors import FormatError

        error = FormatError.of("too-deep", f"the input is too large or nested to process ({exc!r})")
        err.write(f"{error}\n")
        return error.exit_status
    except BrokenPipeError:
        return 0
    except Exception as exc:
        if os.environ.get("QMK_DEBUG"):
            raise
        err.write(f"qmk: internal error {type(exc).__name__}: {exc} (QMK_DEBUG=1 shows more)\n")
        return 3


def entry() -> None:
    """Console-script entry point."""
    try:
        sys.exit(main())
    except KeyboardInterrupt:
        sys.exit(130)
