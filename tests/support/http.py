"""A real ``qmk serve --http`` for the HTTP tests: a process, a socket, an ephemeral port.

:class:`HttpServer` starts ``python -m qmk serve`` with a Unix socket (JSON-RPC) and
``--http 127.0.0.1:0``, reads the URL it listens on from its ready line, and keeps the
JSON log lines (``--log-format json``) and the trace file (``--trace jsonl:PATH``) where
the tests read them. :func:`session` opens a session over REST with plain httpx.
"""

from __future__ import annotations

import json
import os
import re
import resource
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from support.children import die_with_us, terminate
from support.kernel import TENANTS, config_toml

_URL = re.compile(r"(https?://[^\s]+)")
#: The scraper of ``/metrics`` every server here knows: a tenant holding only
#: ``CAP_OBSERVE`` (an operator's read-only view; docs/http.md, Metrics).
OPS = {"key": "ops-secret-key", "caps": ["CAP_OBSERVE"]}
#: Its login, as ``httpx``'s ``auth=`` sends it (``Authorization: Basic``).
SCRAPER = ("ops", OPS["key"])


@dataclass
class HttpServer:
    """A running ``qmk serve --http`` and where it keeps its things."""

    root: Path
    workers: int = 2
    extra: tuple[str, ...] = ()
    tenants: dict[str, dict[str, Any]] | None = None
    kernel: dict[str, Any] | None = None
    tables: dict[str, dict[str, Any]] | None = None
    #: The config's ``[http]`` table (``metrics_tenants``, ``allowed_hosts``, ...).
    http: dict[str, Any] | None = None
    #: The kernel config's ``[server]`` table (the wire's limits).
    server: dict[str, Any] | None = None
    #: RLIMIT_NOFILE of the server process (None: inherited).
    nofile: int | None = None
    #: More keys of the config's ``[machine]`` table (its clock, policy, factories...).
    machine: dict[str, Any] | None = None
    proc: subprocess.Popen[bytes] | None = None
    url: str = ""
    stopped: bool = field(default=False)

    @property
    def socket(self) -> Path:
        return self.root / "k.sock"

    @property
    def spans_path(self) -> Path:
        return self.root / "spans.jsonl"

    @property
    def out_path(self) -> Path:
        return self.root / "out.txt"

    @property
    def log_path(self) -> Path:
        return self.root / "log.jsonl"

    def start(self, timeout_s: float = 60.0) -> HttpServer:
        config = self.root / "kernel.toml"
        tables = {**(self.tables or {}), **({"http": self.http} if self.http else {})}
        if self.server:
            tables["server"] = self.server
        config.write_text(
            config_toml(
                kernel=self.kernel,
                tenants={**(self.tenants or TENANTS), "ops": OPS},
                tables=tables,
                machine=self.machine,
            )
        )
        cmd = [
            sys.executable,
            "-m",
            "qmk",
            "serve",
            "--socket",
            str(self.socket),
            "--data-dir",
            str(self.root / "data"),
            "--config",
            str(config),
            "--workers",
            str(self.workers),
            "--http",
            "127.0.0.1:0",
            "--trace",
            f"jsonl:{self.spans_path}",
            "--log-format",
            "json",
            "--log-level",
            "info",
            *self.extra,
        ]
        limit = self.nofile
        self.proc = subprocess.Popen(
            cmd,
            stdout=self.out_path.open("wb"),
            stderr=self.log_path.open("wb"),
            preexec_fn=die_with_us()
            if limit is None
            else die_with_us(lambda: resource.setrlimit(resource.RLIMIT_NOFILE, (limit, limit))),
        )
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise AssertionError(f"qmk serve exited {self.proc.returncode}: {self.output()}")
            found = _URL.search(self.out_path.read_text(errors="replace"))
            if found:
                self.url = found.group(1)
                return self
            time.sleep(0.02)
        raise AssertionError(f"qmk serve did not listen within {timeout_s} s: {self.output()}")

    def output(self) -> str:
        text = self.out_path.read_text(errors="replace") if self.out_path.exists() else ""
        log = self.log_path.read_text(errors="replace") if self.log_path.exists() else ""
        return text + log

    def logs(self) -> list[dict[str, Any]]:
        """The JSON log lines written so far."""
        lines = self.log_path.read_text(errors="replace").splitlines()
        return [json.loads(line) for line in lines if line.startswith("{")]

    def spans(self) -> list[dict[str, Any]]:
        """The spans exported so far (one JSON object each)."""
        if not self.spans_path.exists():
            return []
        return [json.loads(line) for line in self.spans_path.read_text().splitlines() if line]

    def stop(self, timeout_s: float = 60.0) -> int:
        """SIGTERM; the exit status."""
        assert self.proc is not None
        if self.stopped:
            return int(self.proc.returncode or 0)
        self.stopped = True
        return terminate(self.proc, timeout_s)

    def env(self) -> dict[str, str]:
        return dict(os.environ)


def session(client: Any, tenant: str = "alice", caps: list[str] | None = None) -> str:
    """A session id of ``tenant`` over ``POST /v1/sessions`` (``client``: an httpx.Client)."""
    reply = client.post(
        "/v1/sessions",
        json={
            "tenant": tenant,
            "key": TENANTS[tenant]["key"],
            "requested": caps or ["CAP_ALLOC", "CAP_TELEPORT", "CAP_LINK", "CAP_MAGIC"],
        },
    )
    assert reply.status_code == 201, reply.text
    return str(reply.json()["session_id"])


def bearer(session_id: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {session_id}"}
