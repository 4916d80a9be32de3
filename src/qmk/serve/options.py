"""``qmk serve``'s options: their table, and the parser that reads them.

The command line reads them (``qmk serve``, :func:`qmk.serve.exec_entry`), and hands the
kernel process what it read, checked (:func:`qmk.serve.options_of`): the kernel holds no
option table of its own (issue 79: its trusted core). ``python -m qmk.serve`` given plain
options reads them here too. ``qmk dask-bridge`` and the gateways share parts of the table.
"""

from __future__ import annotations

import argparse
from collections.abc import Callable
from typing import NoReturn, TypeVar

from qmk import defaults
from qmk.abi.errors import CommandError

#: What a number option's text must be, in the error of a text that is not one.
_NUMBER_WORDS: dict[type, str] = {int: "an integer", float: "a number"}
N = TypeVar("N", int, float)


def number_in(kind: type[N], low: N, high: N | None = None) -> Callable[[str], N]:
    """An argparse type: a number of ``kind`` in [low, high] (no upper bound when None)."""

    def parse(text: str) -> N:
        try:
            value = kind(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"not {_NUMBER_WORDS[kind]}: {text!r}") from None
        if not (low <= value and (high is None or value <= high)):  # NaN is in no range
            bounds = f"in [{low}, {high}]" if high is not None else f">= {low}"
            raise argparse.ArgumentTypeError(f"must be {bounds}, got {value}")
        return value

    return parse


def int_in(low: int, high: int | None = None) -> Callable[[str], int]:
    """An argparse type: an integer in [low, high]."""
    return number_in(int, low, high)


def float_in(low: float, high: float) -> Callable[[str], float]:
    """An argparse type: a finite number in [low, high]."""
    return number_in(float, low, high)


def log_options(sub: argparse.ArgumentParser) -> None:
    """``--log-level`` and ``--log-format``: how a long-running server logs."""
    sub.add_argument(
        "--log-level", choices=("debug", "info", "warning", "error"), default="warning"
    )
    sub.add_argument(
        "--log-format",
        choices=("text", "json"),
        default="text",
        help="log lines as text, or as JSON objects with job id, tenant and trace id",
    )


def add_dask_options(sub: argparse.ArgumentParser, *, required: bool = False) -> None:
    """``--dask`` and its options, on ``qmk serve`` (which starts the Dask bridge with
    them) and on ``qmk dask-bridge`` (``required``: ``--dask`` must be given)."""
    if required:  # qmk serve's --workers says it for the kernel
        sub.add_argument(
            "--workers",
            type=int_in(1),
            metavar="N",
            help="jobs at once on the cluster (default: the cluster's threads)",
        )
    sub.add_argument(
        "--dask",
        metavar="ADDR",
        required=required,
        help="run jobs on a Dask cluster: tcp://HOST:PORT of its scheduler, or local:N for "
        "N local worker processes, through the Dask bridge (the dask extra; "
        "docs/scale-out.md)",
    )
    for option, what in (
        ("ca", "the CA of"),
        ("cert", "the kernel's certificate for"),
        ("key", "the kernel's key for"),
    ):
        sub.add_argument(
            f"--dask-tls-{option}",
            metavar="FILE",
            help=f"{what} TLS to a tls:// Dask scheduler (PEM; the three go together)",
        )
    sub.add_argument(
        "--dask-insecure",
        action="store_true",
        help="accept a tcp:// Dask scheduler (no TLS: whoever reaches it runs code in the "
        "workers; refused otherwise, QK120)",
    )
    sub.add_argument(
        "--dask-connect-s",
        type=float_in(0.1, 3600.0),
        metavar="SECONDS",
        help="with --dask: how long the start waits for the scheduler to answer (then "
        f"QS1011) and for its first worker ({defaults.DASK_CONNECT_S:g})",
    )
    sub.add_argument(
        "--dask-dashboard",
        action="store_true",
        help="with --dask local:N: serve Dask's dashboard on a free port of 127.0.0.1 "
        "(default: none)",
    )


def add_options(sub: argparse.ArgumentParser) -> None:
    """``qmk serve``'s options on ``sub`` (its parser in ``qmk``, and the entry's own)."""
    sub.add_argument("--socket", metavar="PATH", help="Unix socket path (QMK_SOCKET)")
    sub.add_argument("--data-dir", required=True, metavar="DIR", help="jobs, audit log, secret")
    sub.add_argument("--config", required=True, metavar="FILE", help="kernel config (TOML)")
    sub.add_argument("--tcp", metavar="HOST:PORT", help="also listen on TCP (no TLS)")
    sub.add_argument(
        "--workers",
        type=int_in(1),
        metavar="N",
        help="worker processes (with --dask: jobs at once; default: the cluster's threads)",
    )
    add_dask_options(sub)
    sub.add_argument(
        "--dask-bridge",
        metavar="PATH",
        help="run jobs on the Dask bridge that listens there (qmk dask-bridge, started "
        "alone; docs/deploy.md)",
    )
    sub.add_argument(
        "--max-line",
        type=int_in(1024),
        metavar="BYTES",
        help=f"longest request line (server.max_line; {defaults.MAX_LINE_BYTES // 2**20} MiB)",
    )
    log_options(sub)
    web = sub.add_argument_group("HTTP API (the http extra; docs/http.md)")
    web.add_argument(
        "--http",
        metavar="HOST:PORT",
        help="also serve the REST API, metrics and the web console (port 0: a free one)",
    )
    web.add_argument(
        "--tls-cert", metavar="PEM", help="serve HTTPS (and gRPC over TLS): the certificate chain"
    )
    web.add_argument(
        "--tls-key", metavar="PEM", help="serve HTTPS (and gRPC over TLS): the private key"
    )
    web.add_argument(
        "--trace",
        metavar="EXPORTER",
        help="OpenTelemetry traces: console, jsonl:PATH, otlp or otlp:URL (default: off)",
    )
    web.add_argument(
        "--gateway",
        choices=("inline", "process"),
        default="process",
        help="serve --http and --grpc each in a gateway process of its own that qmk serve "
        "starts and restarts (process, the default; docs/deploy.md), or in the kernel's "
        "process (inline)",
    )
    rpc = sub.add_argument_group("gRPC API (the grpc extra; docs/grpc.md)")
    rpc.add_argument(
        "--grpc",
        metavar="HOST:PORT",
        help="also serve the gRPC service qmk.v1.Kernel, with health and reflection (port 0: "
        "a free one; TLS with --tls-cert/--tls-key)",
    )
    rpc.add_argument("--grpc-metrics", metavar="HOST:PORT", help="the gRPC gateway's /metrics")
    sub.add_argument(
        "--kernel-only",
        action="store_true",
        help="start the kernel alone (its gateways run as their own commands: qmk gateway)",
    )
    sub.add_argument(
        "--recover",
        action="store_true",
        help="start on a damaged data directory (QK103), recording the damage in the audit log",
    )
    sub.add_argument(
        "--repair-perms",
        action="store_true",
        help="take away other users' access to the data directory's files (else a lax "
        "mode is QK121), recording it in the audit log",
    )
    sub.add_argument(
        "--json",
        action="store_true",
        help="print the listening line as one JSON object {listening, data_dir}",
    )


class _Parser(argparse.ArgumentParser):
    """argparse, with a usage mistake one coded line (``QW011 bad-option``), as ``qmk``'s."""

    def error(self, message: str) -> NoReturn:
        raise CommandError.of("bad-option", f"{self.prog}: {message} (see {self.prog} --help)")


def parser() -> argparse.ArgumentParser:
    """The entry's parser: ``qmk serve``'s options (and ``qmk``'s ``--max-nodes`` and
    ``--max-bytes``, which every command takes)."""
    found = _Parser(prog="qmk serve", description=SERVE_HELP)
    found.add_argument("--max-nodes", type=int, metavar="N", help="refuse graphs over N nodes")
    found.add_argument("--max-bytes", type=int, metavar="N", help="refuse files over N bytes")
    add_options(found)
    return found


#: ``qmk serve``'s one line of help.
SERVE_HELP = "run a kernel: JSON-RPC 2.0 over a Unix socket (and optional TCP)"


__all__ = [
    "SERVE_HELP",
    "add_dask_options",
    "add_options",
    "float_in",
    "int_in",
    "log_options",
    "number_in",
    "parser",
]
