"""The wires in the kernel's own process (``qmk serve --gateway inline``): the configs of
``--http`` and ``--grpc``, checked before the kernel opens.

The default, ``--gateway process``, serves each wire in a process of its own
(:mod:`qmk.serve.gateways`), so a kernel started that way, or with no wire, loads none of
this (issue 79: its trusted core).
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from qmk.abi.errors import CommandError


def http_config(args: argparse.Namespace) -> Any:
    """The HTTP API's config from ``--http`` and its options (None without --http)."""
    given = [
        flag
        for flag, value in (
            ("--tls-cert", args.tls_cert),
            ("--tls-key", args.tls_key),
            ("--trace", args.trace),
        )
        if value is not None
    ]
    if args.http is None:
        if args.grpc is not None:  # --tls-cert/--tls-key serve gRPC over TLS alone
            given = [flag for flag in given if not flag.startswith("--tls-")]
        if given:
            raise CommandError.of("bad-option", f"{given[0]} is an option of --http HOST:PORT")
        return None
    try:
        from qmk.http.server import HttpConfig
    except ImportError as exc:
        raise CommandError.of(
            "bad-option",
            f"--http needs the http extra (pip install 'quantum-microkernel[http]'): {exc}",
        ) from None
    from qmk.abi.tcp import parse_tcp
    from qmk.http.server import check_tls

    host, port = parse_tcp(args.http)
    config = HttpConfig(
        host=host,
        port=port,
        tls_cert=None if args.tls_cert is None else Path(args.tls_cert),
        tls_key=None if args.tls_key is None else Path(args.tls_key),
        trace=args.trace or "none",
    )
    check_tls(config)  # a certificate that does not load stops the start before the kernel
    return config


def grpc_config(args: argparse.Namespace) -> Any:
    """The gRPC API's config from ``--grpc`` and the TLS options (None without --grpc)."""
    if args.grpc is None:
        return None
    try:
        from qmk.grpc.server import GrpcConfig, check_credentials, check_free
    except ImportError as exc:
        raise CommandError.of(
            "bad-option",
            f"--grpc needs the grpc extra (pip install 'quantum-microkernel[grpc]'): {exc}",
        ) from None
    from qmk.abi.tcp import parse_tcp

    host, port = parse_tcp(args.grpc)
    config = GrpcConfig(
        host=host,
        port=port,
        tls_cert=None if args.tls_cert is None else Path(args.tls_cert),
        tls_key=None if args.tls_key is None else Path(args.tls_key),
    )
    check_credentials(config)  # a certificate that does not load stops the start here
    check_free(config)  # so does a port in use, before the kernel opens
    return config


__all__ = ["grpc_config", "http_config"]
