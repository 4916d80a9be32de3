"""The door conformance suite's wires: every wire of ``qmk serve``, driven one way.

A :class:`Wire` knows how to reach its listener of a :class:`DoorServer` (a real ``qmk
serve`` with every listener: JSON-RPC on TCP, ``--http``, ``--grpc``) and how to do, in
its own protocol, what the attack scenarios need: hold a bare connection and learn
whether the door took it or refused it (and why), log in (with a padded request), ask a
job's status, submit program text, watch a job, and ask for a big answer without reading
it. :data:`WIRES` is the registry: ``tests/e2e/test_door_conformance.py`` runs every
scenario against every wire registered here, and ``bench/bench_attacks.py`` times them;
a wire added later registers here (:func:`register`) and gets the whole suite. An
operation a wire does not have (GraphQL takes no program text) raises
:class:`NotOnThisWire`, and the scenario is skipped for it with that reason.

Everything here is blocking (sockets, the clients); :data:`GUARD_S` only stops a hang.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import resource
import select
import socket
import struct
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from support.children import die_with_us, terminate
from support.http import OPS
from support.kernel import TENANTS, config_toml, support_env
from support.pools import Hooks

#: A hang guard: no scenario asserts a timing.
GUARD_S = 60.0
#: Where the wire's syscalls are counted in ``qmk_rpc_seconds`` (the door's label).
HELD = "held"
#: What became of a padded call (:meth:`Wire.padded`): read, or refused for its size.
READ, TOO_LARGE = "read", "too-large"


class NotOnThisWire(Exception):
    """The wire has no such operation (the scenario is skipped for it)."""


def on_wire(operation: Callable[[], Any]) -> Any:
    """``operation()``, the test skipped where the wire does not have it."""
    try:
        return operation()
    except NotOnThisWire as exc:
        pytest.skip(str(exc))


# --------------------------------------------------------------------------- the server


@dataclass
class DoorServer:
    """A real ``qmk serve`` with every listener: JSON-RPC on a Unix socket and on TCP,
    REST (``--http``) and gRPC (``--grpc``), all on 127.0.0.1 (one peer for the door).

    Args:
        root: its folder (config, data, output).
        server: the ``[server]`` table (the door's limits).
        kernel: the ``[kernel]`` table.
        machine: more keys of the ``[machine]`` table.
        tenants: the tenants (default :data:`support.kernel.TENANTS`).
        nofile: RLIMIT_NOFILE of the process.
        hooks: the tests' pool hooks (a :class:`~support.kernel.WorkerGate`'s).
        chat: the URL of a model server (:mod:`support.chat_server`) its ``[assist]``
            asks with the ``prompt`` script (the wire ``assist``); None: no model.
        data: its data directory (default: ``root / "data"``).
        prefix: what its command runs under (a :class:`~support.small_disk.SmallDisk`'s
            ``prefix``: the namespace where its data directory's filesystem is).
    """

    root: Path
    server: dict[str, Any] = field(default_factory=dict)
    kernel: dict[str, Any] = field(default_factory=dict)
    machine: dict[str, Any] = field(default_factory=dict)
    tenants: dict[str, dict[str, Any]] | None = None
    nofile: int | None = None
    hooks: Hooks | None = None
    chat: str | None = None
    workers: int = 1
    data: Path | None = None
    prefix: tuple[str, ...] = ()
    #: How it serves REST and gRPC: on the kernel's loop (inline) or in gateway processes.
    gateway: str = "inline"
    proc: subprocess.Popen[bytes] | None = None
    addresses: list[str] = field(default_factory=list)

    def start(self) -> DoorServer:
        config = self.root / "kernel.toml"
        tables: dict[str, dict[str, Any]] = {"server": self.server} if self.server else {}
        if self.chat is not None:  # questions past the default rate: the door is the subject
            tables["assist"] = {"url": self.chat, "model": "prompt", "calls_per_minute": 600}
        config.write_text(
            config_toml(
                kernel=self.kernel or None,
                tenants={**(self.tenants or TENANTS), "ops": OPS},
                tables=tables,
                machine=self.machine or None,
            )
        )
        options = [
            "--socket", str(self.root / "k.sock"), "--data-dir", str(self.data_dir),
            "--config", str(config), "--workers", str(self.workers), "--json",
            "--tcp", "127.0.0.1:0", "--http", "127.0.0.1:0", "--grpc", "127.0.0.1:0",
            "--gateway", self.gateway,
        ]  # fmt: skip
        hooks = self.hooks
        if hooks is not None and hooks.any:
            command = [sys.executable, "-m", "support.serve", *hooks.argv(), "--", *options]
            env = support_env()
        else:
            command = [sys.executable, "-m", "qmk", "serve", *options]
            env = dict(os.environ)
        limit = self.nofile
        self.proc = subprocess.Popen(
            [*self.prefix, *command],
            stdout=(self.root / "out.txt").open("wb"),
            stderr=(self.root / "log.txt").open("wb"),
            env=env,
            preexec_fn=die_with_us()
            if limit is None
            else die_with_us(lambda: resource.setrlimit(resource.RLIMIT_NOFILE, (limit, limit))),
        )
        deadline = time.monotonic() + GUARD_S
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise AssertionError(f"qmk serve exited {self.proc.returncode}: {self.log()}")
            for line in (self.root / "out.txt").read_text(errors="replace").splitlines():
                if line.startswith("{"):
                    self.addresses = list(json.loads(line)["listening"])
                    return self
            time.sleep(0.02)
        raise AssertionError(f"qmk serve did not listen: {self.log()}")

    @property
    def data_dir(self) -> Path:
        """Its data directory."""
        return self.data or self.root / "data"

    def log(self) -> str:
        """What the server wrote on stderr so far."""
        path = self.root / "log.txt"
        return path.read_text(errors="replace") if path.exists() else ""

    def _address(self, prefix: str) -> str:
        return next(a for a in self.addresses if a.startswith(prefix))

    @property
    def tcp(self) -> tuple[str, int]:
        host, _, port = self._address("tcp:").removeprefix("tcp:").rpartition(":")
        return host, int(port)

    @property
    def url(self) -> str:
        return self._address("http://")

    @property
    def http(self) -> tuple[str, int]:
        host, _, port = self.url.removeprefix("http://").rpartition(":")
        return host, int(port)

    @property
    def grpc(self) -> str:
        return self._address("grpc://").removeprefix("grpc://")

    @property
    def grpc_address(self) -> tuple[str, int]:
        host, _, port = self.grpc.rpartition(":")
        return host, int(port)

    def rss_mb(self) -> float:
        """The server process's resident memory (MB)."""
        assert self.proc is not None
        status = Path(f"/proc/{self.proc.pid}/status").read_text()
        found = re.search(r"VmRSS:\s+(\d+) kB", status)
        return int(found.group(1)) / 1024 if found else 0.0

    def peak_rss_mb(self) -> float:
        """The server process's peak resident memory so far (MB)."""
        assert self.proc is not None
        status = Path(f"/proc/{self.proc.pid}/status").read_text()
        found = re.search(r"VmHWM:\s+(\d+) kB", status)
        return int(found.group(1)) / 1024 if found else 0.0

    def stop(self) -> int:
        """SIGTERM; the exit status."""
        assert self.proc is not None
        return terminate(self.proc, GUARD_S)

    def until_logged(self, text: str, times: int = 1) -> None:
        """Return once the server's log holds ``text`` (``times`` times; the guard stops
        a hang)."""
        deadline = time.monotonic() + GUARD_S
        while self.log().count(text) < times:
            assert time.monotonic() < deadline, f"the server never logged {text!r}: {self.log()}"
            time.sleep(0.02)


def login_params(
    tenant: str,
    padding: int = 0,
    key: str | None = None,
    tenants: dict[str, dict[str, Any]] | None = None,
) -> dict[str, Any]:
    """A login of ``tenant`` (with ``key``, default its key from ``tenants``, the server's
    table, default :data:`TENANTS`) asking every capability the table gives it, its
    request padded with a capability name of ``padding`` bytes."""
    table = (tenants or TENANTS)[tenant]
    caps = list(table["caps"])
    if padding:
        caps.append("X" * padding)
    return {"tenant": tenant, "key": key or table["key"], "requested": caps}


#: The ``[server]`` limits under which one tenant logs in as fast as one connection
#: goes (:func:`flood_logins`): its audit rate and the accept rates out of the way.
FLOOD_LIMITS: dict[str, Any] = {
    "audit_rate_per_tenant": 1e6,
    "audit_burst_per_tenant": 1_000_000,
    "accept_rate": 1e6,
    "accept_rate_per_peer": 1e6,
}


def flood_logins(
    server: DoorServer, tenant: str, count: int, *, watch: Callable[[], int] | None = None
) -> tuple[dict[str, int], int]:
    """``count`` logins of ``tenant`` one after another on one JSON-RPC connection (the
    Unix socket), as fast as it answers: the answers counted (``granted``, or the code and
    reason of a refusal), and the largest ``watch()`` seen, every 50 logins."""
    line = _rpc_line("q_negotiate_caps", login_params(tenant))
    outcomes: dict[str, int] = {}
    largest = 0
    with socket.socket(socket.AF_UNIX) as sock:
        sock.settimeout(GUARD_S)
        sock.connect(str(server.root / "k.sock"))
        reader = sock.makefile("rb")
        for sent in range(count):
            sock.sendall(line)
            reply = json.loads(reader.readline())
            error = reply.get("error")
            reason = None if error is None else (error.get("data") or {}).get("reason")
            key = "granted" if error is None else f"{error['code']} {reason}"
            outcomes[key] = outcomes.get(key, 0) + 1
            if watch is not None and sent % 50 == 0:
                largest = max(largest, watch())
    return outcomes, largest


def _read_until_closed(sock: socket.socket) -> bytes:
    """Read what the server sends until it closes (the guard stops a hang)."""
    sock.settimeout(GUARD_S)
    data = b""
    with contextlib.suppress(ConnectionError):
        while chunk := sock.recv(65536):
            data += chunk
    return data


# --------------------------------------------------------------------------- HTTP/2, bare

H2_PREFACE = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"
DATA, HEADERS, SETTINGS, PING, GOAWAY = 0, 1, 4, 6, 7


def _hpack(name: str, value: str) -> bytes:
    """A header as an HPACK literal of a new name, never indexed (short names and
    values only: lengths below 127)."""
    return bytes((0x10, len(name))) + name.encode() + bytes((len(value),)) + value.encode()


def h2_frame(kind: int, flags: int, stream: int, payload: bytes = b"") -> bytes:
    """One HTTP/2 frame."""
    return (
        struct.pack(">I", len(payload))[1:]
        + bytes((kind, flags))
        + struct.pack(">I", stream)
        + payload
    )


def h2_frames(sock: socket.socket) -> Iterator[tuple[int, int, bytes]]:
    """The frames the peer sends, ``(type, flags, payload)``, until it closes."""
    buffer = b""
    while True:
        while len(buffer) >= 9:
            length = int.from_bytes(buffer[:3], "big")
            if len(buffer) < 9 + length:
                break
            yield buffer[3], buffer[4], buffer[9 : 9 + length]
            buffer = buffer[9 + length :]
        try:
            chunk = sock.recv(65536)
        except ConnectionError:
            return
        if not chunk:
            return
        buffer += chunk


#: A gRPC health check on stream 1: its headers, then an empty request message.
HEALTH_CHECK = h2_frame(
    HEADERS,
    0x4,  # END_HEADERS
    1,
    b"".join(
        _hpack(name, value)
        for name, value in (
            (":method", "POST"),
            (":scheme", "http"),
            (":path", "/grpc.health.v1.Health/Check"),
            (":authority", "127.0.0.1"),
            ("content-type", "application/grpc"),
            ("te", "trailers"),
        )
    ),
) + h2_frame(DATA, 0x1, 1, bytes(5))  # END_STREAM


def goaway_reason(payload: bytes) -> str:
    """The refusal reason a GOAWAY's debug data carries (the door's coded error)."""
    try:
        return str(json.loads(payload[8:])["details"]["reason"])
    except (ValueError, KeyError, TypeError):
        return "goaway"


# --------------------------------------------------------------------------- the wires


class Wire:
    """One wire as the scenarios drive it. Subclasses implement each operation, or raise
    :class:`NotOnThisWire`.

    Attributes:
        name: its name in the registry and in test ids.
        label: its calls' ``transport`` label in ``qmk_rpc_seconds``.
        dropped: what the server logs when it drops a connection of this wire whose
            client does not read.
    """

    name = ""
    label = ""
    dropped = ""
    #: What the server sends a connection it closes at its sign-in deadline (b"": it
    #: only closes it).
    expired = b"auth-timeout"

    # bare connections
    def address(self, server: DoorServer) -> tuple[str, int]:
        raise NotImplementedError

    def hello(self) -> bytes:
        """What a client sends first on a fresh connection, holding it open."""
        return b""

    def open(self, server: DoorServer) -> socket.socket:
        """A bare TCP connection to the wire's listener, its hello sent."""
        sock = socket.create_connection(self.address(server), timeout=GUARD_S)
        if self.hello():
            sock.sendall(self.hello())
        return sock

    def probe(self, sock: socket.socket) -> str:
        """:data:`HELD` once the server has taken the connection (it answered a call
        that needs nothing of the door), else the refusal reason it gave, or
        ``closed``."""
        raise NotImplementedError

    def hold(self, server: DoorServer) -> tuple[socket.socket, str]:
        """A connection, and what became of it (:meth:`probe`)."""
        sock = self.open(server)
        try:
            return sock, self.probe(sock)
        except OSError:
            return sock, "closed"

    def closed_by_server(self, sock: socket.socket) -> bool:
        """Read (and drop) what the server sends until it closes the connection."""
        _read_until_closed(sock)
        return True

    def unfinished(self) -> tuple[bytes, bytes]:
        """A request begun on a fresh connection (after :meth:`hello`) and never
        finished: its first bytes, and the byte it goes on with, one at a time."""
        raise NotImplementedError

    def padded(self, server: DoorServer, session: str, padding: int) -> str:
        """A call of ``session`` whose request holds ``padding`` bytes more (a long job
        id, or program text): :data:`READ` when the server read it (and refused what it
        asked), :data:`TOO_LARGE` when it refused it for its size, unread."""
        raise NotImplementedError

    def hold_signed_in(self, server: DoorServer, session: str) -> tuple[Callable[[], None], str]:
        """A connection signed in by a call of ``session`` and held open: the call that
        closes it, and what became of it (:data:`HELD`, or the refusal's reason)."""
        raise NotOnThisWire(f"{self.name} holds no connection of its own")

    # calls
    def login(
        self, server: DoorServer, tenant: str, *, key: str | None = None, padding: int = 0
    ) -> str:
        """A new session of ``tenant`` over a new connection (``key``: another than its
        own; ``padding``: bytes more in the request); raises the coded refusal."""
        raise NotImplementedError

    def session(self, server: DoorServer, tenant: str) -> str:
        """A session of ``tenant`` for the wire's calls (its own login, where it has one)."""
        return self.login(server, tenant)

    def status(self, server: DoorServer, session: str, job_id: str) -> Any:
        """The job (``q_status``) as the JSON object the wire carried it in."""
        raise NotImplementedError

    def timed(self, server: DoorServer, session: str, job_id: str) -> str:
        """Make one call the door times for this wire; the syscall's name."""
        assert self.status(server, session, job_id)["state"]
        return "q_status"

    def machine(self, server: DoorServer, session: str) -> str:
        """The shared machine as the session sees it (``q_machine_status``), as the text
        the wire carried its answer in (a JSON object)."""
        raise NotImplementedError

    def delegate(self, server: DoorServer, session: str, to_tenant: str) -> str:
        """Lend ``to_tenant`` the session's ``CAP_ALLOC`` for a minute
        (``q_delegate_caps``); the delegation's id, or the coded refusal raised."""
        raise NotImplementedError

    def submit_text(self, server: DoorServer, session: str, text: str) -> str:
        """Submit program text; the job's id."""
        raise NotOnThisWire(f"{self.name} takes no program text")

    def submit_unreadable(self, server: DoorServer, session: str) -> Any:
        """Submit a program that does not read (its error, read first, would be the
        program's); the answer, or the refusal raised."""
        raise NotOnThisWire(f"{self.name} takes no program")

    def submit_job(self, server: DoorServer, session: str, job: bytes, shots: int) -> str:
        """Submit a neutral-atom device job (its wire form's JSON text, encoded before:
        the client spends no time on it) to the target ``neutral-atom``; the job's id."""
        raise NotOnThisWire(f"{self.name} takes no device job")

    def submit_decoded(self, server: DoorServer, session: str, circuit: str, shots: int) -> str:
        """Submit a stim circuit's text to the target ``stim`` with ``decode``; the job's
        id (raises the coded refusal)."""
        raise NotOnThisWire(f"{self.name} takes no stim circuit")

    def watch(self, server: DoorServer, session: str, job_id: str) -> Callable[[], None]:
        """A live watch of ``job_id`` whose first event came (raises the refusal); the
        call that ends it."""
        raise NotOnThisWire(f"{self.name} has no live event streams")

    def stall_on(self, server: DoorServer, session: str, job_id: str) -> socket.socket:
        """Ask for ``job_id``'s big answer on a connection that then reads nothing."""
        raise NotImplementedError


def _rpc_line(method: str, params: Any, request_id: int = 1) -> bytes:
    return (
        json.dumps(
            {"jsonrpc": "2.0", "id": request_id, "method": method, "params": params}
        ).encode()
        + b"\n"
    )


class JsonRpcWire(Wire):
    """JSON-RPC 2.0 lines (``qmk serve --tcp``)."""

    name, label = "jsonrpc", "jsonrpc"
    dropped = "JSON-RPC: dropped a connection whose client read none"

    def address(self, server: DoorServer) -> tuple[str, int]:
        return server.tcp

    def probe(self, sock: socket.socket) -> str:
        sock.sendall(_rpc_line("q_resource_query", ["not-a-session"]))
        line = sock.makefile("rb").readline()
        if not line:
            return "closed"
        reply = json.loads(line)
        error = reply.get("error") or {}
        if error.get("code") == 1011 and reply.get("id") is None:
            return str(error["data"]["reason"])
        return HELD

    def _client(self, server: DoorServer, session: str | None = None) -> Any:
        from qmk.client import Client

        host, port = server.tcp
        return Client(f"tcp:{host}:{port}", session_id=session)

    def hold_signed_in(self, server: DoorServer, session: str) -> tuple[Callable[[], None], str]:
        sock = self.open(server)
        sock.sendall(_rpc_line("q_resource_query", {"session_id": session}))
        line = sock.makefile("rb").readline()
        if not line:
            return sock.close, "closed"
        reply = json.loads(line)
        if "result" in reply:
            return sock.close, HELD
        data = reply["error"].get("data") or {}
        return sock.close, str(data.get("reason") or data.get("code"))

    def login(
        self, server: DoorServer, tenant: str, *, key: str | None = None, padding: int = 0
    ) -> str:
        from qmk.client import Client

        host, port = server.tcp
        params = login_params(tenant, padding, key, server.tenants)
        with Client.connect(
            f"tcp:{host}:{port}", tenant=tenant, key=params["key"], caps=params["requested"]
        ) as client:
            return str(client.session_id)

    def status(self, server: DoorServer, session: str, job_id: str) -> Any:
        with self._client(server, session) as client:
            return client.q_status(job_id).to_json()

    def delegate(self, server: DoorServer, session: str, to_tenant: str) -> str:
        with self._client(server, session) as client:
            return str(client.q_delegate_caps(to_tenant, ["CAP_ALLOC"], 60).delegation_id)

    def machine(self, server: DoorServer, session: str) -> str:
        with socket.create_connection(server.tcp, timeout=GUARD_S) as sock:
            sock.sendall(_rpc_line("q_machine_status", {"session_id": session}))
            line = sock.makefile("rb").readline().decode()
        reply = json.loads(line)
        assert "result" in reply, reply
        return line

    def submit_unreadable(self, server: DoorServer, session: str) -> Any:
        with self._client(server, session) as client:  # a graph the verifier refuses
            return client.q_submit({"version": "0.2", "program": {"nodes": [{"op": "NOPE"}]}})

    def submit_decoded(self, server: DoorServer, session: str, circuit: str, shots: int) -> str:
        with self._client(server, session) as client:
            stim = {"stim": circuit}
            return str(client.q_submit(stim, shots, 1, {"decode": True}, target="stim").job_id)

    def submit_job(self, server: DoorServer, session: str, job: bytes, shots: int) -> str:
        params = (
            b'{"session_id":"' + session.encode() + b'","shots":' + str(shots).encode()
            + b',"target":"neutral-atom","graph":' + job + b"}"
        )  # fmt: skip
        line = b'{"jsonrpc":"2.0","id":2,"method":"q_submit","params":' + params + b"}\n"
        with socket.create_connection(server.tcp, timeout=GUARD_S) as sock:
            reader = sock.makefile("rb")
            # a call with the session first: the connection may then send a long line
            sock.sendall(_rpc_line("q_resource_query", {"session_id": session}))
            json.loads(reader.readline())
            sock.sendall(line)
            reply = json.loads(reader.readline())
        if "error" in reply:
            from qmk.errors import syscall_error

            error = reply["error"]
            raise syscall_error(error["code"], error["message"], error.get("data") or {})
        return str(reply["result"]["job_id"])

    def watch(self, server: DoorServer, session: str, job_id: str) -> Callable[[], None]:
        sock = self.open(server)
        reader = sock.makefile("rb")
        sock.sendall(_rpc_line("q_watch", {"session_id": session, "job_id": job_id}))
        reply = json.loads(reader.readline())
        if "error" in reply:
            from qmk.errors import syscall_error

            sock.close()
            error = reply["error"]
            raise syscall_error(error["code"], error["message"], error.get("data") or {})
        json.loads(reader.readline())  # its first event
        return sock.close

    def stall_on(self, server: DoorServer, session: str, job_id: str) -> socket.socket:
        sock = _small_buffers()
        sock.connect(server.tcp)
        sock.sendall(_rpc_line("q_status", [session, job_id]))
        return sock

    def unfinished(self) -> tuple[bytes, bytes]:
        return _rpc_line("q_negotiate_caps", {"tenant": "alice", "key": "k"}).split(b'"k"')[0], b"k"

    def padded(self, server: DoorServer, session: str, padding: int) -> str:
        with socket.create_connection(server.tcp, timeout=GUARD_S) as sock:
            reader = sock.makefile("rb")
            sock.sendall(_rpc_line("q_resource_query", [session]))  # signs the connection in
            assert "result" in json.loads(reader.readline())
            sock.sendall(_rpc_line("q_status", [session, "x" * padding], 2))
            reply = json.loads(reader.readline())
        error = reply["error"]
        if error["code"] == -32600 and reply["id"] is None:
            assert "limit" in error["data"], reply
            return TOO_LARGE
        assert error["data"]["code"] == "QS1005", reply  # not found: it was read
        return READ


class RestWire(Wire):
    """REST over HTTP/1.1 (``qmk serve --http``)."""

    name, label = "rest", "http"
    dropped = "HTTP: dropped a connection whose client read none"

    def address(self, server: DoorServer) -> tuple[str, int]:
        return server.http

    def probe(self, sock: socket.socket) -> str:
        sock.sendall(b"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")
        return _http_outcome(sock)

    def _client(
        self, server: DoorServer, tenant: str, padding: int = 0, key: str | None = None
    ) -> Any:
        from qmk.http.client import RestClient

        params = login_params(tenant, padding, key, server.tenants)
        return RestClient(server.url, tenant=tenant, key=params["key"], caps=params["requested"])

    def login(
        self, server: DoorServer, tenant: str, *, key: str | None = None, padding: int = 0
    ) -> str:
        client = self._client(server, tenant, padding, key)
        client.close()
        return str(client.session.session_id)

    def hold_signed_in(self, server: DoorServer, session: str) -> tuple[Callable[[], None], str]:
        sock = self.open(server)
        sock.sendall(
            b"GET /v1/machine HTTP/1.1\r\nHost: 127.0.0.1\r\n"
            + f"Authorization: Bearer {session}\r\n\r\n".encode()
        )
        return sock.close, _http_outcome(sock)

    def _http(self, server: DoorServer, session: str) -> Any:
        import httpx

        return httpx.Client(
            base_url=server.url,
            timeout=GUARD_S,
            headers={"authorization": f"Bearer {session}"},
        )

    def status(self, server: DoorServer, session: str, job_id: str) -> Any:
        with self._http(server, session) as http:
            return _answer(http.get(f"/v1/jobs/{job_id}"))

    def delegate(self, server: DoorServer, session: str, to_tenant: str) -> str:
        lend = {"to_tenant": to_tenant, "caps": ["CAP_ALLOC"], "expires_s": 60}
        with self._http(server, session) as http:
            return str(_answer(http.post("/v1/delegations", json=lend))["delegation_id"])

    def machine(self, server: DoorServer, session: str) -> str:
        with self._http(server, session) as http:
            reply = http.get("/v1/machine")
        _answer(reply)
        return reply.text

    def submit_text(self, server: DoorServer, session: str, text: str) -> str:
        with self._http(server, session) as http:
            return str(
                _answer(http.post("/v1/jobs", json={"program": text, "shots": 10}))["job_id"]
            )

    def submit_unreadable(self, server: DoorServer, session: str) -> Any:
        return self.submit_text(server, session, "OPENQASM 3.0;\n}{ not a program")

    def submit_decoded(self, server: DoorServer, session: str, circuit: str, shots: int) -> str:
        body = {
            "program": {"stim": circuit},
            "target": "stim",
            "shots": shots,
            "seed": 1,
            "policy": {"decode": True},
        }
        with self._http(server, session) as http:
            return str(_answer(http.post("/v1/jobs", json=body))["job_id"])

    def submit_job(self, server: DoorServer, session: str, job: bytes, shots: int) -> str:
        body = b'{"shots":' + str(shots).encode() + b',"target":"neutral-atom","program":'
        with self._http(server, session) as http:
            reply = http.post(
                "/v1/jobs", content=body + job + b"}", headers={"content-type": "application/json"}
            )
        return str(_answer(reply)["job_id"])

    def watch(self, server: DoorServer, session: str, job_id: str) -> Callable[[], None]:
        sock = self.open(server)
        sock.sendall(
            f"GET /v1/jobs/{job_id}/events HTTP/1.1\r\nHost: 127.0.0.1\r\n"
            f"Authorization: Bearer {session}\r\n\r\n".encode()
        )
        head, body = _http_head(sock)
        status = int(head.split(b" ", 2)[1])
        if status != 200:
            sock.close()
            raise _problem_error(body)
        return sock.close

    def stall_on(self, server: DoorServer, session: str, job_id: str) -> socket.socket:
        sock = _small_buffers()
        sock.connect(server.http)
        sock.sendall(
            f"GET /v1/jobs/{job_id} HTTP/1.1\r\nHost: 127.0.0.1\r\n"
            f"Authorization: Bearer {session}\r\n\r\n".encode()
        )
        return sock

    def unfinished(self) -> tuple[bytes, bytes]:
        return b"POST /v1/sessions HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Slow: ", b"x"

    def padded(self, server: DoorServer, session: str, padding: int) -> str:
        program = f"// {'x' * padding}\nOPENQASM 3.0;\n}}{{ not a program"
        with self._http(server, session) as http:
            reply = http.post("/v1/jobs", json={"program": program})
        if reply.status_code == 413:
            return TOO_LARGE
        assert reply.status_code == 422, reply.text  # read, and found no program
        return READ


class GrpcWire(Wire):
    """gRPC (``qmk serve --grpc``): HTTP/2, the service ``qmk.v1.Kernel``."""

    name, label = "grpc", "grpc"
    dropped = "grpc: dropped a connection whose client read none"

    def address(self, server: DoorServer) -> tuple[str, int]:
        return server.grpc_address

    def hello(self) -> bytes:
        return H2_PREFACE + h2_frame(SETTINGS, 0, 0)

    def probe(self, sock: socket.socket) -> str:
        """A health check (it needs no session): answered, the connection is held; the
        door's refusal is the call's status, then a GOAWAY that says why."""
        sock.sendall(HEALTH_CHECK)
        refused = False
        for kind, flags, payload in h2_frames(sock):
            if kind == SETTINGS and not flags & 1:
                sock.sendall(h2_frame(SETTINGS, 1, 0))  # its settings, acknowledged
            elif kind == HEADERS and flags & 1:  # the call's end
                refused = b"qmk-error" in payload
                if not refused:
                    return HELD
            elif kind == GOAWAY:
                return goaway_reason(payload)
        return "closed" if not refused else "refused"

    def _client(self, server: DoorServer, session: str | None = None) -> Any:
        from qmk.grpc.client import Client

        return Client(server.grpc, session_id=session)

    def hold_signed_in(self, server: DoorServer, session: str) -> tuple[Callable[[], None], str]:
        from unittest import mock

        import grpc

        from qmk.errors import QMKError

        real = grpc.insecure_channel

        def own(target: str, options: Any = None, **more: Any) -> Any:
            # grpc shares a connection among channels to one target: this one has its own
            local = [*(options or []), ("grpc.use_local_subchannel_pool", 1)]
            return real(target, options=local, **more)

        with mock.patch.object(grpc, "insecure_channel", own):
            client = self._client(server, session)
        try:
            client.q_resource_query()
        except QMKError as exc:
            client.close()
            return (lambda: None), str(exc.details.get("reason") or exc.code)
        return client.close, HELD

    def machine(self, server: DoorServer, session: str) -> str:
        with self._client(server, session) as client:
            return json.dumps(client.q_machine_status().to_json())

    def login(
        self, server: DoorServer, tenant: str, *, key: str | None = None, padding: int = 0
    ) -> str:
        from qmk.grpc.client import Client

        params = login_params(tenant, padding, key, server.tenants)
        with Client.connect(
            server.grpc, tenant=tenant, key=params["key"], caps=params["requested"]
        ) as client:
            return str(client.session_id)

    def status(self, server: DoorServer, session: str, job_id: str) -> Any:
        with self._client(server, session) as client:
            return client.q_status(job_id).to_json()

    def delegate(self, server: DoorServer, session: str, to_tenant: str) -> str:
        with self._client(server, session) as client:
            return str(client.q_delegate_caps(to_tenant, ["CAP_ALLOC"], 60).delegation_id)

    def submit_text(self, server: DoorServer, session: str, text: str) -> str:
        with self._client(server, session) as client:
            return str(client.submit(text, shots=10).job_id)

    def submit_unreadable(self, server: DoorServer, session: str) -> Any:
        return self.submit_text(server, session, "OPENQASM 3.0;\n}{ not a program")

    def submit_job(self, server: DoorServer, session: str, job: bytes, shots: int) -> str:
        with self._client(server, session) as client:
            return str(client.submit(job.decode(), shots=shots, target="neutral-atom").job_id)

    def submit_decoded(self, server: DoorServer, session: str, circuit: str, shots: int) -> str:
        with self._client(server, session) as client:
            policy = {"decode": True}
            return str(
                client.submit(circuit, shots=shots, seed=1, policy=policy, target="stim").job_id
            )

    def watch(self, server: DoorServer, session: str, job_id: str) -> Callable[[], None]:
        client = self._client(server, session)
        events = client.watch_job(job_id)
        try:
            next(events)
        except BaseException:
            client.close()
            raise

        def end() -> None:
            events.close()
            client.close()

        return end

    def stall_on(self, server: DoorServer, session: str, job_id: str) -> socket.socket:
        relay = StallingRelay(server.grpc_address)
        from qmk.grpc.client import Client

        client = Client(f"127.0.0.1:{relay.port}", session_id=session)
        thread = threading.Thread(target=_ignore_errors(client.q_status, job_id), daemon=True)
        thread.start()
        return relay.wait_for_client()

    #: The splice closes it, saying nothing (HTTP/2 has no words for it before a call).
    expired = b""

    def unfinished(self) -> tuple[bytes, bytes]:
        ping = h2_frame(PING, 0, 0, bytes(8))  # a whole frame each time: talking, no call
        return ping, ping

    def padded(self, server: DoorServer, session: str, padding: int) -> str:
        from qmk.abi.errors import BadResponse
        from qmk.errors import QMKError

        with self._client(server, session) as client:
            try:  # program text (a refused job id would carry its id back, past gRPC's caps)
                client.submit(f"// {'x' * padding}\nOPENQASM 3.0;\n}}{{ not a program")
            except BadResponse as exc:  # gRPC's own check of the door's max_line
                assert "RESOURCE_EXHAUSTED" in str(exc), exc
                return TOO_LARGE
            except QMKError:
                return READ  # read, and found no program
        raise AssertionError("a program that does not parse was accepted")


class GraphqlWire(RestWire):
    """GraphQL (``POST /v1/graphql``) on the HTTP listener; logins are REST's."""

    name, label = "graphql", "http"

    def status(self, server: DoorServer, session: str, job_id: str) -> Any:
        query = "query($id: ID!) { job(job_id: $id) { job_id state error } }"
        with self._http(server, session) as http:
            answer = _answer(
                http.post("/v1/graphql", json={"query": query, "variables": {"id": job_id}})
            )
        if answer.get("errors"):
            raise AssertionError(answer["errors"])
        return answer["data"]["job"]

    def machine(self, server: DoorServer, session: str) -> str:
        with self._http(server, session) as http:
            reply = http.post("/v1/graphql", json={"query": "{ machine }"})
        answer = _answer(reply)
        if answer.get("errors"):
            raise AssertionError(answer["errors"])
        return reply.text

    def submit_text(self, server: DoorServer, session: str, text: str) -> str:
        raise NotOnThisWire("GraphQL is read-only: it takes no program")

    def submit_job(self, server: DoorServer, session: str, job: bytes, shots: int) -> str:
        raise NotOnThisWire("GraphQL is read-only: it takes no device job")

    def submit_decoded(self, server: DoorServer, session: str, circuit: str, shots: int) -> str:
        raise NotOnThisWire("GraphQL is read-only: it takes no stim circuit")

    def delegate(self, server: DoorServer, session: str, to_tenant: str) -> str:
        raise NotOnThisWire("GraphQL is read-only: it lends nothing")

    def submit_unreadable(self, server: DoorServer, session: str) -> Any:
        with self._http(server, session) as http:  # a query that does not parse
            return _answer(http.post("/v1/graphql", json={"query": "{ job(job_id: "}))

    def watch(self, server: DoorServer, session: str, job_id: str) -> Callable[[], None]:
        raise NotOnThisWire("GraphQL has no subscriptions")

    def padded(self, server: DoorServer, session: str, padding: int) -> str:
        query = "query($id: ID!) { job(job_id: $id) { job_id } }"
        with self._http(server, session) as http:
            reply = http.post(
                "/v1/graphql", json={"query": query, "variables": {"id": "x" * padding}}
            )
        if reply.status_code == 413:
            return TOO_LARGE
        codes = [error["extensions"]["code"] for error in reply.json()["errors"]]
        assert codes == ["QS1005"], reply.text  # read, and not found
        return READ

    def stall_on(self, server: DoorServer, session: str, job_id: str) -> socket.socket:
        query = json.dumps(
            {
                "query": "query($id: ID!) { job(job_id: $id) { result } }",
                "variables": {"id": job_id},
            }
        ).encode()
        sock = _small_buffers()
        sock.connect(server.http)
        sock.sendall(
            b"POST /v1/graphql HTTP/1.1\r\nHost: 127.0.0.1\r\ncontent-type: application/json\r\n"
            + f"Authorization: Bearer {session}\r\ncontent-length: {len(query)}\r\n\r\n".encode()
            + query
        )
        return sock


class AssistWire(Wire):
    """The assistant's tools (``q_assist``): a model's ``run`` reads its program in the
    tenant's CPU budget within the graph cap, then submits, waits and cancels through
    the door as calls of the wire ``assist``, with the session of the question. The
    question comes by JSON-RPC here; the model is :mod:`support.chat_server`'s
    ``prompt`` script (the question is the tool call), which the server's ``chat``
    names. The tools open no connection, never log in (they carry the question's
    session), keep no stream and answer the model, not a socket: those scenarios are
    not on this wire."""

    name, label = "assist", "assist"

    def address(self, server: DoorServer) -> tuple[str, int]:
        raise NotOnThisWire(
            "the assistant's tools open no connection: they run inside a q_assist call "
            "that came by another wire"
        )

    def login(
        self, server: DoorServer, tenant: str, *, key: str | None = None, padding: int = 0
    ) -> str:
        raise NotOnThisWire(
            "the assistant's tools never log in: they carry the session of the question"
        )

    def session(self, server: DoorServer, tenant: str) -> str:
        return WIRES["jsonrpc"].login(server, tenant)  # the question's wire

    def status(self, server: DoorServer, session: str, job_id: str) -> Any:
        raise NotOnThisWire("the assistant has no tool that asks a job's status")

    def machine(self, server: DoorServer, session: str) -> str:
        raise NotOnThisWire("the assistant has no tool that shows the machine")

    def delegate(self, server: DoorServer, session: str, to_tenant: str) -> str:
        raise NotOnThisWire("the assistant has no tool that lends capabilities")

    def ask(self, server: DoorServer, session: str, tool: str, program: str) -> dict[str, Any]:
        """Have the model call ``tool`` on ``program`` (the question's file); the tool's
        result (a refusal of the question itself is raised, coded)."""
        if server.chat is None:
            raise NotOnThisWire("the server has no model (DoorServer.chat)")
        host, port = server.tcp
        question = json.dumps({"name": tool, "arguments": {"program": "file", "shots": 10}})
        with socket.create_connection((host, port), timeout=GUARD_S) as sock:
            params = {"session_id": session, "prompt": question, "program": program}
            sock.sendall(_rpc_line("q_assist", params))
            reply = json.loads(sock.makefile("rb").readline())
        if "error" in reply:
            from qmk.errors import syscall_error

            error = reply["error"]
            raise syscall_error(error["code"], error["message"], error.get("data") or {})
        results = reply["result"]["tool_results"]
        assert [r["tool"] for r in results] == [tool], reply
        return dict(results[0]["result"])

    def submit_text(self, server: DoorServer, session: str, text: str) -> str:
        result = self.ask(server, session, "run", text)
        if not result["ok"]:  # the syscalls' refusals, as the other wires raise them
            from qmk.errors import syscall_error

            code = str(result["code"])
            assert code.startswith("QS"), f"the run tool refused: {result}"
            raise syscall_error(int(code[2:]), result["error"], result.get("details") or {})
        return str(result["job_id"])

    def submit_unreadable(self, server: DoorServer, session: str) -> Any:
        return self.ask(server, session, "run", "OPENQASM 3.0;\n}{ not a program")

    def timed(self, server: DoorServer, session: str, job_id: str) -> str:
        self.submit_text(server, session, BELL_TEXT)
        return "q_submit"

    def stall_on(self, server: DoorServer, session: str, job_id: str) -> socket.socket:
        raise NotOnThisWire(
            "the assistant's tools answer the model, not a socket: a run's counts are at "
            "most [assist] max_shots outcomes"
        )

    def padded(self, server: DoorServer, session: str, padding: int) -> str:
        raise NotOnThisWire(
            "the assistant's tools make no request of their own: the question's wire "
            "bounds its size"
        )


#: A program every wire that takes text runs (a Bell pair, measured).
BELL_TEXT = (
    'OPENQASM 3.0;\ninclude "stdgates.inc";\nqubit[2] q;\nbit[2] c;\n'
    "h q[0];\ncx q[0], q[1];\nc = measure q;\n"
)


# --------------------------------------------------------------------------- the registry

#: Every wire, by name: the scenarios run against each.
WIRES: dict[str, Wire] = {}


def register(wire: Wire) -> Wire:
    """Add ``wire`` to :data:`WIRES` (its name must be new)."""
    assert wire.name and wire.name not in WIRES, wire.name
    WIRES[wire.name] = wire
    return wire


for _wire in (JsonRpcWire(), RestWire(), GrpcWire(), GraphqlWire(), AssistWire()):
    register(_wire)


def other_wire(wire: Wire) -> Wire:
    """A wire on another listener than ``wire``'s (the assistant's questions come by
    JSON-RPC: REST)."""
    return WIRES["rest"] if isinstance(wire, JsonRpcWire | AssistWire) else WIRES["jsonrpc"]


# --------------------------------------------------------------------------- helpers


def _small_buffers() -> socket.socket:
    """A TCP socket whose receive buffer is as small as the system allows (a client
    that does not read fills it at once)."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    sock.settimeout(GUARD_S)
    return sock


def _http_head(sock: socket.socket) -> tuple[bytes, bytes]:
    """A response's head and what of its body came with it."""
    sock.settimeout(GUARD_S)
    data = b""
    while b"\r\n\r\n" not in data:
        chunk = sock.recv(65536)
        if not chunk:
            break
        data += chunk
    head, _, body = data.partition(b"\r\n\r\n")
    length = re.search(rb"content-length: (\d+)", head, re.IGNORECASE)
    if length is not None:
        while len(body) < int(length.group(1)):
            chunk = sock.recv(65536)
            if not chunk:
                break
            body += chunk
    return head, body


def _http_outcome(sock: socket.socket) -> str:
    head, body = _http_head(sock)
    if not head:
        return "closed"
    status = int(head.split(b" ", 2)[1])
    if status == 200:
        return HELD
    try:
        return str(json.loads(body)["details"]["reason"])
    except (ValueError, KeyError, TypeError):
        return f"HTTP {status}"


def _problem_error(body: bytes) -> Exception:
    from qmk.errors import syscall_error

    problem = json.loads(body)
    return syscall_error(problem["rpc_code"], problem["detail"], problem.get("details") or {})


def _answer(reply: Any) -> Any:
    """A JSON answer, or the coded error of its problem document."""
    if reply.is_success:
        return reply.json()
    from qmk.abi.errors import rpc_error
    from qmk.errors import syscall_error

    problem = reply.json()
    code, details = problem["rpc_code"], problem.get("details") or {}
    if code > 0:
        raise syscall_error(code, problem["detail"], details)
    raise rpc_error(code, problem["detail"], details)


def _ignore_errors(call: Callable[..., Any], *args: Any) -> Callable[[], None]:
    def run() -> None:
        with contextlib.suppress(Exception):
            call(*args)

    return run


class StallingRelay:
    """A relay on 127.0.0.1 for one client connection to ``target``: what the client
    sends goes through; of what the server sends, the first ``allow`` bytes go back
    (its handshake: HTTP/2 settings, a response's head) and then none is read (the
    relay's socket has the smallest receive buffer the system allows), so the server
    sees a client that stopped reading, whatever the client library would do."""

    def __init__(self, target: tuple[str, int], allow: int = 1024) -> None:
        self.target = target
        self.allow = allow
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.port = self.listener.getsockname()[1]
        self._upstream: socket.socket | None = None
        self._ready = threading.Event()
        threading.Thread(target=self._run, daemon=True).start()

    def _run(self) -> None:
        client, _ = self.listener.accept()
        upstream = _small_buffers()
        upstream.connect(self.target)
        self._upstream = upstream
        self._ready.set()
        passed = 0
        with contextlib.suppress(OSError):
            while True:
                watched = [client, upstream] if passed < self.allow else [client]
                ready, _, _ = select.select(watched, [], [], GUARD_S)
                if upstream in ready:
                    data = upstream.recv(self.allow - passed)
                    if not data:
                        return
                    passed += len(data)
                    client.sendall(data)
                if client in ready:
                    data = client.recv(65536)
                    if not data:
                        return
                    upstream.sendall(data)

    def wait_for_client(self) -> socket.socket:
        """The relay's socket to the server (reading none of it), once connected."""
        assert self._ready.wait(GUARD_S), "the client never connected"
        assert self._upstream is not None
        return self._upstream


__all__ = [
    "BELL_TEXT",
    "GUARD_S",
    "HELD",
    "READ",
    "TOO_LARGE",
    "WIRES",
    "AssistWire",
    "DoorServer",
    "GraphqlWire",
    "GrpcWire",
    "JsonRpcWire",
    "NotOnThisWire",
    "RestWire",
    "StallingRelay",
    "Wire",
    "goaway_reason",
    "h2_frame",
    "h2_frames",
    "login_params",
    "other_wire",
    "register",
]
