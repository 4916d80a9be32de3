"""TCP addresses and listeners, and TLS files checked at start: the wire modes a plain
kernel (its Unix socket alone) never uses, loaded where an option asks for one
(``--tcp``, ``--tls-cert``, a gateway's address, the Dask bridge's TLS).
"""

from __future__ import annotations

import socket
from pathlib import Path
from typing import Any

from qmk.abi.errors import CommandError, ServeError
from qmk.defaults import LISTEN_BACKLOG


def parse_tcp(text: str) -> tuple[str, int]:
    """``HOST:PORT`` as ``(host, port)``; ``[::1]:80`` for IPv6.

    >>> parse_tcp("127.0.0.1:7000"), parse_tcp("[::1]:0")
    (('127.0.0.1', 7000), ('::1', 0))
    """
    host, sep, port = text.rpartition(":")
    if not sep or not host or not port.isdigit() or int(port) > 65535:
        raise ServeError.of("bad-address", f"{text!r} is not HOST:PORT")
    return host.removeprefix("[").removesuffix("]"), int(port)


def format_tcp(address: tuple[Any, ...]) -> str:
    """A socket's ``(host, port, ...)`` as ``HOST:PORT`` (:func:`parse_tcp`'s inverse):
    an IPv6 host in brackets.

    >>> format_tcp(("127.0.0.1", 7000)), format_tcp(("::1", 80, 0, 0))
    ('127.0.0.1:7000', '[::1]:80')
    """
    host, port = address[0], address[1]
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


def check_tls_files(cert: Path | None, key: Path | None) -> None:
    """Load a certificate chain and its key once, so a file that does not load is one
    coded line at start, before the kernel starts (every wire's ``--tls-cert`` and
    ``--tls-key``; nothing when either is None).

    Raises:
        CommandError: ``bad-option`` naming the files and why.
    """
    if cert is None or key is None:
        return
    import ssl

    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    try:
        context.load_cert_chain(str(cert), str(key))
    except (OSError, ssl.SSLError) as exc:
        raise CommandError.of(
            "bad-option",
            f"--tls-cert {cert} / --tls-key {key}: cannot load: "
            f"{getattr(exc, 'strerror', None) or exc}",
        ) from None


def load_client_tls(ca: str, cert: str, key: str) -> None:
    """Load a CA and a client's certificate and key as a TLS client does (the Dask
    bridge's ``--dask-tls-*``), so a file that does not load is found at start.

    Raises:
        OSError: a file that does not load (``ssl.SSLError`` is one), with its reason.
    """
    import ssl

    context = ssl.create_default_context(ssl.Purpose.SERVER_AUTH, cafile=ca)
    context.load_cert_chain(cert, key)


def bind_tcp(host: str, port: int, *, backlog: int = LISTEN_BACKLOG) -> socket.socket:
    """A listening, non-blocking TCP socket on ``host:port`` (its first address).

    Raises:
        ServeError: ``cannot-bind``, with the system's reason.
    """
    try:
        family, kind, proto, _, address = socket.getaddrinfo(
            host, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE
        )[0]
        sock = socket.socket(family, kind, proto)
        try:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            if family == socket.AF_INET6:
                sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1)
            sock.bind(address)
            sock.listen(backlog)
        except OSError:
            sock.close()
            raise
    except OSError as exc:
        raise ServeError.of(
            "cannot-bind", f"{host}:{port}: cannot listen: {exc.strerror or exc}"
        ) from None
    sock.setblocking(False)
    return sock


__all__ = ["bind_tcp", "check_tls_files", "format_tcp", "load_client_tls", "parse_tcp"]
