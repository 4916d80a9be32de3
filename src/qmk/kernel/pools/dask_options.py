"""``qmk serve --dask``'s options, checked before anything starts: the scheduler's address
(:func:`parse_dask`), that it is a TLS one (:func:`check_exposure`) and the kernel's TLS
files for it (:func:`check_tls`).
"""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from qmk.kernel.errors import ConfigError, ExposureError


def parse_dask(text: str) -> tuple[str, int | None]:
    """``--dask``'s value: ``("local", N)`` for ``local:N``, else ``(address, None)``.

    >>> parse_dask("local:2"), parse_dask("tcp://10.0.0.5:8786")
    (('local', 2), ('tcp://10.0.0.5:8786', None))

    Raises:
        ConfigError: neither ``local:N`` (N >= 1) nor a ``scheme://host:port`` address.
    """
    if text.startswith("local:"):
        count = text.partition(":")[2]
        if count.isdigit() and int(count) >= 1:
            return "local", int(count)
    elif "://" in text and text.rpartition(":")[2].isdigit():
        return text, None
    raise ConfigError(
        f"--dask takes local:N or a scheduler address such as tcp://host:8786, not {text!r}",
        key="dask",
    )


def check_exposure(text: str, *, insecure: bool = False, dashboard: bool = False) -> None:
    """Refuse a scheduler that anyone who reaches it may use: ``--dask``'s address must be
    ``tls://`` (``local:N`` makes a TLS cluster of its own) unless ``insecure``
    (``--dask-insecure``); ``dashboard`` (``--dask-dashboard``) only with ``local:N``.

    >>> check_exposure("local:2"); check_exposure("tcp://10.0.0.5:8786", insecure=True)
    >>> try:
    ...     check_exposure("tcp://10.0.0.5:8786")
    ... except ExposureError as exc:
    ...     print(exc.code, exc.name)
    QK120 insecure-dask

    Raises:
        ExposureError: ``QK120 insecure-dask``.
        ConfigError: ``dashboard`` with a scheduler's address (its dashboard is its own).
    """
    where, count = parse_dask(text)
    if count is not None:
        return
    if dashboard:
        raise ConfigError(
            "--dask-dashboard goes with --dask local:N (a remote scheduler's dashboard is "
            "its own to configure)",
            key="dask_dashboard",
        )
    if where.startswith("tls://") or insecure:
        return
    raise ExposureError.of(
        "insecure-dask",
        f"--dask {where} is not TLS: whoever reaches that scheduler runs code in the "
        "kernel's workers and reads what they hold; use tls:// with --dask-tls-*, or "
        "pass --dask-insecure to accept it (docs/scale-out.md)",
        address=where,
    )


#: The ``qmk serve`` options of TLS to the scheduler, in the order of :func:`check_tls`.
TLS_OPTIONS = ("--dask-tls-ca", "--dask-tls-cert", "--dask-tls-key")


@dataclass(frozen=True, slots=True, kw_only=True)
class TlsFiles:
    """The kernel's side of TLS to the scheduler: the CA that signed the cluster's
    certificates, and the kernel's own certificate and key (PEM files)."""

    ca: str
    cert: str
    key: str

    def security(self) -> Any:
        """Dask's ``Security`` for these files, encryption required."""
        from distributed.security import Security

        return Security(
            tls_ca_file=self.ca,
            tls_client_cert=self.cert,
            tls_client_key=self.key,
            require_encryption=True,
        )


def check_tls(
    text: str | None,
    ca: str | None,
    cert: str | None,
    key: str | None,
    *,
    load: Callable[[str, str, str], None] | None = None,
) -> TlsFiles | None:
    """``qmk serve``'s TLS options for ``--dask text``, checked before anything starts:
    None when none is given (Dask's own configuration applies, docs/scale-out.md).

    Raises:
        ConfigError: some of the three but not all; any of them without a ``tls://``
            scheduler address; a file that is missing, or that Dask cannot load as a
            CA, a certificate or the certificate's key (the message has its reason).
    """
    given = (ca, cert, key)
    if all(value is None for value in given):
        return None
    if any(value is None for value in given):
        missing = [name for name, value in zip(TLS_OPTIONS, given, strict=True) if value is None]
        raise ConfigError(
            f"{', '.join(TLS_OPTIONS)} go together: {', '.join(missing)} is missing",
            key="dask_tls",
        )
    if text is None or not text.startswith("tls://"):
        raise ConfigError(
            f"{', '.join(TLS_OPTIONS)} need a tls:// scheduler address "
            f"(--dask tls://HOST:PORT), not {text!r}",
            key="dask_tls",
        )
    assert ca is not None and cert is not None and key is not None
    for option, path in zip(TLS_OPTIONS, given, strict=True):
        if not os.path.isfile(str(path)):
            raise ConfigError(f"{option}: no such file: {path}", key="dask_tls")
    files = TlsFiles(ca=ca, cert=cert, key=key)
    if load is None:  # Dask's own load of them

        def load(ca: str, cert: str, key: str) -> None:
            try:
                security = files.security()
            except ImportError:  # no dask extra: the pool's start says so, in one line
                return
            security.get_connection_args("client")

    try:  # as Dask will load them when it connects: the CA, the certificate and its key
        load(ca, cert, key)
    except (OSError, ValueError) as exc:  # ssl.SSLError is an OSError
        named = ", ".join(f"{o} {p}" for o, p in zip(TLS_OPTIONS, given, strict=True))
        raise ConfigError(
            f"{named}: Dask cannot load them as a CA, a certificate and its key: {exc}",
            key="dask_tls",
        ) from None
    return files


__all__ = [
    "TLS_OPTIONS",
    "TlsFiles",
    "check_exposure",
    "check_tls",
    "parse_dask",
]
