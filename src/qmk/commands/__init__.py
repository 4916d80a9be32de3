"""Every subcommand of ``qmk``, one module per area; :mod:`qmk.cli` only wires them.

Each module listed in :data:`MODULES` defines ``register(add)``. ``add(name,
help)`` returns a fresh :class:`argparse.ArgumentParser` for the subcommand
(already carrying ``--max-nodes`` and ``--max-bytes``, unless ``limits=False``);
the module adds its arguments and calls ``set_defaults(run=handler)``, where
``handler(args, out, err) -> int`` returns the exit status and raises
:class:`qmk.QMKError` for bad input. Modules import their heavy dependencies
inside the handlers, so ``qmk --help`` stays fast.

:data:`MODULES` maps each module to the top-level commands it adds (a test holds the
two together), so ``qmk run FILE`` builds the parser of ``run`` alone
(:func:`register_for`) and never pays for ``device``'s or ``estimate``'s imports.
"""

from __future__ import annotations

import argparse
from collections.abc import Callable, Mapping
from importlib import import_module
from typing import TYPE_CHECKING, Any, Protocol

from qmk import defaults

if TYPE_CHECKING:
    from qmk.qvm.columns import Columns
    from qmk.qvm.graph import Graph
    from qmk.qvm.limits import Limits


class AddCommand(Protocol):
    """Adds a subcommand: ``add(name, help) -> parser`` (``limits=False``: no
    ``--max-nodes``/``--max-bytes``, for commands that read no program)."""

    def __call__(
        self, name: str, help_text: str, /, *, limits: bool = True
    ) -> argparse.ArgumentParser: ...


#: The command modules, in the order their commands appear in ``qmk --help``, each
#: with the top-level commands its ``register`` adds.
MODULES: dict[str, tuple[str, ...]] = {
    "program": ("validate", "asm", "disasm", "fmt", "qasm", "info"),
    "schema": ("schema",),
    "run": ("run",),
    "engines": ("engines",),
    "estimate": ("plan", "estimate"),
    "qec": ("qec",),
    "service": (
        "serve",
        "submit",
        "status",
        "cancel",
        "wait",
        "jobs",
        "telemetry",
        "resources",
        "audit",
        "load",
    ),
    "gateway": ("gateway",),
    "dask_bridge": ("dask-bridge",),
    "syscalls": (
        "session",
        "result",
        "checkpoint",
        "restore",
        "replay",
        "channel",
        "delegate",
        "syscalls",
    ),
    "device": ("device",),
    "machine": ("machine",),
    "workflow": ("workflow",),
    "assist": ("assist",),
    "billing": ("usage", "billing", "tenant"),
    "admin": ("admin",),
}


def plural(number: int, noun: str) -> str:
    """``1 epoch``, ``2 epochs``.

    >>> plural(1, "epoch"), plural(2, "epoch")
    ('1 epoch', '2 epochs')
    """
    return f"{number} {noun}{'s' * (number != 1)}"


def number_text(value: float) -> str:
    """A real number for people, with its significant digits: fixed notation from 1 up
    (no exponent for a timestamp or an amount), six significant digits below it, so a
    small rate never reads as ``0``.

    >>> number_text(0.9), number_text(1700000000.25), number_text(3.0), number_text(0.0)
    ('0.9', '1700000000.25', '3', '0')
    >>> number_text(1.5e-07), number_text(0.000123456789)
    ('1.5e-07', '0.000123457')
    """
    if value == 0 or abs(value) >= 1 or value != value:  # 0, large, or NaN
        return f"{value:.6f}".rstrip("0").rstrip(".")
    return f"{value:.6g}"


def duration_text(ns: float) -> str:
    """A duration in nanoseconds for people, in the largest unit it reaches, three
    significant digits.

    >>> duration_text(2.5e9), duration_text(1234.0), duration_text(80.0)
    ('2.5 s', '1.23 us', '80 ns')
    """
    for unit, size in (("s", 1e9), ("ms", 1e6), ("us", 1e3)):
        if ns >= size:
            return f"{ns / size:.3g} {unit}"
    return f"{ns:.0f} ns"


def fraction_text(value: float) -> str:
    """A share of shots for people: four decimals, or three significant digits where
    four decimals would round a share that is not zero to ``0.0000``.

    >>> fraction_text(0.5), fraction_text(1 / 3), fraction_text(0.0), fraction_text(1e-06)
    ('0.5000', '0.3333', '0.0000', '1e-06')
    >>> fraction_text(2.5e-05)
    '2.5e-05'
    """
    if value == 0 or abs(value) >= 0.5e-4:
        return f"{value:.4f}"
    return f"{value:.3g}"


def outcome_lines(counts: Mapping[str, int], shots: int, indent: str, top: int = 32) -> list[str]:
    """The ``top`` most frequent outcomes (ties: by key), one line each: the key, its
    count and its share of ``shots`` (:func:`fraction_text`); then how many more.

    >>> outcome_lines({"11": 999_999, "01": 1}, 1_000_000, "  ")
    ['  11    999999   1.0000', '  01         1    1e-06']
    """
    ranked = sorted(counts.items(), key=lambda kv: (-kv[1], kv[0]))
    shown = ranked[: max(top, 0)]
    width = max((len(key) for key, _ in shown), default=0)
    shots = max(shots, 1)
    lines = [
        f"{indent}{key or '(empty)':<{width}}  {count:>8}  {fraction_text(count / shots):>7}"
        for key, count in shown
    ]
    if len(ranked) > len(shown):
        lines.append(f"{indent}... {plural(len(ranked) - len(shown), 'more outcome')}")
    return lines


def shots_arg(text: str) -> int:
    """An argparse type: ``--shots``, checked as every run checks them
    (:func:`qmk.execution.request.check_shots`)."""
    from qmk.execution.request import check_shots

    return _run_parameter(text, check_shots, f"[1, {defaults.MAX_SHOTS}]")


def seed_arg(text: str) -> int:
    """An argparse type: ``--seed``, checked as every run checks them
    (:func:`qmk.execution.request.check_seed`)."""
    from qmk.execution.request import check_seed

    return _run_parameter(text, check_seed, f"[0, 2**{defaults.SEED_BITS})")


def _run_parameter(text: str, check: Callable[[int], int], bounds: str) -> int:
    from qmk.errors import InvalidArgument

    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not an integer: {text!r}") from None
    try:
        return check(value)
    except InvalidArgument:
        raise argparse.ArgumentTypeError(f"must be in {bounds}, got {value}") from None


def limits_of(args: argparse.Namespace) -> Limits:
    """The input limits a command was given (``--max-nodes``, ``--max-bytes``)."""
    from qmk.qvm.limits import Limits

    overrides = {
        name: getattr(args, name)
        for name in ("max_nodes", "max_bytes")
        if getattr(args, name, None) is not None
    }
    return Limits(**overrides)


def read_source(
    args: argparse.Namespace, path: str, limits: Limits | None = None, *, folded: bool = False
) -> Graph:
    """The program in ``path`` as a graph: QVM files as they are, other languages lowered
    (``args.format`` and ``args.source_profile`` come from :func:`source_options`);
    ``folded``: a stim circuit as the stim target runs it (:func:`read_program`)."""
    from qmk.frontends import read_program

    profile = getattr(args, "source_profile", None)
    inputs = dict(getattr(args, "inputs", None) or ())  # qmk run --input NAME=VALUE
    return read_program(
        path,
        format=getattr(args, "format", None),
        profile=profile,
        limits=limits,
        params=inputs or None,
        folded=folded,
    )


def read_flat_source(args: argparse.Namespace, path: str) -> Columns | str:
    """A flat OpenQASM file read in bulk as columns (:mod:`qmk.frontends.qasm_bulk`);
    for any other file, or one of a shape the bulk reader leaves to the statement
    reader, why not (the caller then reads it with :func:`read_source`, as any
    program). A run with ``--input`` values reads by statements: its file declares
    inputs, which the bulk reader does not take."""
    from qmk.frontends import format_of

    kind = getattr(args, "format", None) or format_of(path)
    if kind not in ("qasm", "qasm2", "qasm3"):
        return f"a {kind} file"
    if getattr(args, "inputs", None):
        return "input values given"
    from qmk.frontends.qasm_bulk import Routed, read_flat_file

    version = {"qasm": None, "qasm2": 2, "qasm3": 3}[kind]
    profile = getattr(args, "source_profile", None)
    flat = read_flat_file(path, profile=profile, version=version)
    return flat.reason if isinstance(flat, Routed) else flat


def source_options(sub: argparse.ArgumentParser, *, profile: bool = True) -> None:
    """``--format`` (and ``--profile``) for commands that read programs in any language."""
    from qmk.defaults import FORMATS

    sub.add_argument(
        "--format",
        choices=FORMATS,
        help="the input's format (default: by extension: .json .asm .qasm .ll .bc .stim)",
    )
    if profile:
        sub.add_argument(
            "--profile",
            dest="source_profile",
            metavar="PROFILE",
            help="code profile written on the qubits a .qasm/.ll/.bc program allocates "
            f"(default: none written; runs use {defaults.PROFILE}); qmk submit also takes "
            "auto: the kernel gives the qubits that name none the cheapest code variant",
        )


def log_options(sub: argparse.ArgumentParser) -> None:
    """``--log-level`` and ``--log-format``: how a long-running server logs (the
    kernel's entry's, :func:`qmk.serve.options.log_options`, which its gateways share)."""
    from qmk.serve.options import log_options as add

    add(sub)


def is_stim_source(args: argparse.Namespace) -> bool:
    """Whether the command's FILE is a stim circuit (``--format stim``, or a ``.stim``
    file with no ``--format``): its own target's program, not lowered to QVM."""
    given = getattr(args, "format", None)
    return given == "stim" or (given is None and str(args.file).lower().endswith(".stim"))


def stim_options(sub: argparse.ArgumentParser) -> None:
    """``--detectors``, ``--decode`` and ``--decoder``: the ``stim`` target's options
    (another target refuses them, ``QM102``)."""
    sub.add_argument(
        "--detectors",
        action="store_true",
        help="with a stim circuit: a shot is its detection events then its observables' "
        "flips (stim's detector sampler), in place of its measurement record",
    )
    sub.add_argument(
        "--decode",
        action="store_true",
        help="with a stim circuit: also decode its detection events (by --decoder, on the "
        "circuit's detector error model) and give each observable's logical error rate",
    )
    sub.add_argument(
        "--decoder",
        metavar="NAME",
        help="with a stim circuit: the decoder of --decode (implies it): pymatching "
        "(matching on the model sinter builds; the default) or bposd (BP+OSD on the "
        "undecomposed model, the ldpc package)",
    )


def stim_given(args: argparse.Namespace) -> dict[str, Any]:
    """The ``stim`` target's options the command line gives."""
    given: dict[str, Any] = {
        key: True for key in ("detectors", "decode") if getattr(args, key, False)
    }
    if getattr(args, "decoder", None) is not None:
        given["decoder"] = args.decoder
    return given


def register_all(add: AddCommand) -> None:
    """Let every module in :data:`MODULES` add its subcommands."""
    for name in MODULES:
        import_module(f"qmk.commands.{name}").register(add)


def register_for(add: AddCommand, command: str | None) -> bool:
    """Let only the module of ``command`` add its subcommands; False (nothing added)
    when no module lists ``command``."""
    for name, commands in MODULES.items():
        if command in commands:
            import_module(f"qmk.commands.{name}").register(add)
            return True
    return False
