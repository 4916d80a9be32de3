"""The ``qmk`` command: wires the subcommands of :mod:`qmk.commands`, parses, runs one,
prints its error and exits.

Callable in-process: ``main(argv)`` returns the exit status, so tests and doc
generation use it without a subprocess. Exit statuses: 0 success; 1 the
program has findings (validate, info); 2 unreadable input or bad usage; 3 an
internal error (a bug: please report it; ``QMK_DEBUG=1`` shows the traceback).
``docs/errors.md`` lists every code with its exit status.

Bad input is always one line on stderr with a stable code, never a traceback; so is
bad usage (``QW011``, not argparse's usage text), and a command or a choice that is not
one names the closest that is:

>>> main(["--version"])  # doctest: +ELLIPSIS
qmk ...
0
>>> import io
>>> err = io.StringIO()
>>> main(["rn", "bell.qasm"], stderr=err)
2
>>> print(err.getvalue(), end="")
QW011 bad-option: unknown command 'rn'; did you mean 'run'?
"""

from __future__ import annotations

import argparse
import gc
import os
import sys
from collections.abc import Sequence
from typing import Any, NoReturn, TextIO

from qmk import __version__
from qmk.abi.errors import CommandError
from qmk.commands import register_all, register_for
from qmk.errors import QMKError, closest, one_line


class _Parser(argparse.ArgumentParser):
    """argparse, with each usage mistake one coded line (``QW011 bad-option``) and a 'did
    you mean' for a command or a choice that is not one (its subcommands' parsers are of
    this class too)."""

    def error(self, message: str) -> NoReturn:
        raise CommandError.of("bad-option", f"{self.prog}: {message} (see {self.prog} --help)")

    def _check_value(self, action: argparse.Action, value: Any) -> None:
        # argparse's own check of a value against its choices, worded with the closest one
        choices = action.choices
        if choices is None or value in choices:
            return
        names = [str(choice) for choice in choices]
        close = closest(str(value), names)
        if isinstance(action, argparse._SubParsersAction):
            # a command: prog's words after "qmk" name the command it is a subcommand of
            above = self.prog.split(" ", 1)[1] + " " if " " in self.prog else ""
            hint = f"did you mean '{above}{close}'?" if close else f"known: {', '.join(names)}"
            raise CommandError.of("bad-option", f"unknown command '{above}{value}'; {hint}")
        hint = f"; did you mean {close!r}?" if close else ""
        raise argparse.ArgumentError(
            action, f"invalid choice {value!r}{hint} (choose from {', '.join(names)})"
        )


def _parser(argv: Sequence[str] | None = None) -> argparse.ArgumentParser:
    """The ``qmk`` parser: with ``argv`` naming a known command first, that command's
    alone (a fresh ``qmk run`` skips every other command's imports); else every command,
    for ``--help``, ``--version`` and the closest name to a mistyped one."""
    parser = _Parser(
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

    first = next(iter(argv), None) if argv is not None else None
    if not register_for(command, first):
        register_all(command)
    return parser


def _parse(parser: argparse.ArgumentParser, argv: Sequence[str] | None) -> argparse.Namespace:
    """``parser.parse_args``, with arguments no parser took refused by the command's own
    parser, and an unknown option answered with the closest of its options."""
    args, extra = parser.parse_known_args(argv)
    if not extra:
        return args
    command = parser  # the innermost (sub)command the arguments named
    while True:
        sub = next((a for a in command._actions if isinstance(a, argparse._SubParsersAction)), None)
        name = None if sub is None else getattr(args, sub.dest, None)
        if sub is None or name not in sub.choices:
            break
        command = sub.choices[name]
    options = [o for action in command._actions for o in action.option_strings]
    close = closest(extra[0].split("=")[0], options)
    hint = f"; did you mean {close!r}?" if extra[0].startswith("-") and close else ""
    command.error(f"unrecognized arguments: {' '.join(extra)}{hint}")


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
    parser = _parser(sys.argv[1:] if argv is None else argv)
    try:
        args = _parse(parser, argv)
    except SystemExit as exc:  # argparse: --help/--version exit 0
        return int(exc.code or 0)
    except QMKError as exc:  # bad usage, one line (_Parser)
        err.write(f"{exc}\n")
        return exc.exit_status
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
        said = one_line(exc)  # whatever a library's message holds
        err.write(f"qmk: internal error {type(exc).__name__}: {said} (QMK_DEBUG=1 shows more)\n")
        return 3


def prepare_process() -> None:
    """Set up this process as a ``qmk`` command's: the cyclic collector's thresholds
    (:data:`~qmk.defaults.GC_THRESHOLDS`), NumPy's huge pages
    (:data:`~qmk.defaults.HUGE_PAGES`, unless ``NUMPY_MADVISE_HUGEPAGE`` is set) and the C
    heap's thresholds (:func:`keep_freed_heap`). Call it before NumPy is imported: NumPy
    reads that variable once, at its import."""
    from qmk import defaults

    gc.set_threshold(*defaults.GC_THRESHOLDS)
    os.environ.setdefault("NUMPY_MADVISE_HUGEPAGE", "1" if defaults.HUGE_PAGES else "0")
    keep_freed_heap()


#: ``mallopt``'s parameter numbers (glibc's ``malloc.h``).
_M_TRIM_THRESHOLD, _M_MMAP_THRESHOLD = -1, -3


def keep_freed_heap(thresholds: tuple[int, int] | None = None) -> str | None:
    """Set glibc's malloc mmap and trim thresholds (default
    :data:`~qmk.defaults.HEAP_THRESHOLDS`), so that memory a stage frees is reused by
    the next without faulting its pages in again. Allocation only: no result changes.

    Returns:
        None once set, or why nothing was set: the C library is not glibc (``mallopt``
        is glibc's), the environment already sets these thresholds (``GLIBC_TUNABLES``
        or ``MALLOC_MMAP_THRESHOLD_``/``MALLOC_TRIM_THRESHOLD_``: the user's choice
        stands), or glibc refused a value.
    """
    import ctypes

    from qmk import defaults

    tunables = os.environ.get("GLIBC_TUNABLES", "")
    if any(f"glibc.malloc.{name}_threshold" in tunables for name in ("mmap", "trim")) or any(
        f"MALLOC_{name}_THRESHOLD_" in os.environ for name in ("MMAP", "TRIM")
    ):
        return "the environment sets glibc's malloc thresholds (GLIBC_TUNABLES, MALLOC_*_)"
    try:
        libc = os.confstr("CS_GNU_LIBC_VERSION")
    except (ValueError, OSError):
        libc = None
    if not libc:
        return "the C library is not glibc: mallopt's thresholds are glibc's"
    mmap, trim = defaults.HEAP_THRESHOLDS if thresholds is None else thresholds
    mallopt = ctypes.CDLL(None).mallopt
    mallopt.argtypes, mallopt.restype = (ctypes.c_int, ctypes.c_int), ctypes.c_int
    if not mallopt(_M_MMAP_THRESHOLD, mmap) or not mallopt(_M_TRIM_THRESHOLD, trim):
        return f"{libc} refused the thresholds {mmap} and {trim}"
    return None


def entry() -> None:
    """Console-script entry point. ``qmk serve`` replaces this process with the kernel's
    entry (:func:`qmk.serve.exec_entry`), so the kernel process holds no command line."""
    if sys.argv[1:2] == ["serve"]:
        from qmk.serve import exec_entry

        exec_entry(sys.argv[2:])
    prepare_process()
    try:
        sys.exit(main())
    except KeyboardInterrupt:
        sys.exit(130)
