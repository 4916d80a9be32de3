"""A real HTTP receiver of billing webhooks: a threaded server on a real socket.

:class:`Receiver` answers each POST with the next status of its script, then its
``default``; it records every request (headers, body, when) and lets a test wait for the
n-th one (a condition, not a sleep). With ``hold_first`` the first request is held
unanswered until :meth:`Receiver.release`: the kernel's delivery is then in flight, so a
test can kill the kernel at exactly that point. With ``together=N`` every request is held
until N are held at once (a barrier): a sender that delivers one at a time never gets
past it; :attr:`Receiver.most_held` is the most held at once.
"""

from __future__ import annotations

import json
import threading
import time
from collections import deque
from collections.abc import Iterable
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any


@dataclass(frozen=True)
class Received:
    """One request the receiver got."""

    path: str
    headers: dict[str, str]
    body: bytes
    at: float  # time.monotonic() on arrival
    peer: tuple[str, int] = ("", 0)  # the sender's address and port

    def json(self) -> Any:
        return json.loads(self.body)


class Receiver:
    """See the module docstring; use it as a context manager (it stops its server)."""

    def __init__(
        self,
        statuses: Iterable[int] = (),
        *,
        default: int = 200,
        hold_first: bool = False,
        together: int = 0,
    ) -> None:
        self.script = deque(statuses)
        self.default = default
        self.requests: list[Received] = []
        self._hold = hold_first
        self._together = together
        self.held = 0
        self.most_held = 0
        self._released = threading.Event()
        self._arrived = threading.Condition()
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
                received = Received(
                    path=self.path,
                    headers={k.lower(): v for k, v in self.headers.items()},
                    body=body,
                    at=time.monotonic(),
                    peer=self.client_address[:2],
                )
                with receiver._arrived:
                    first = not receiver.requests
                    receiver.requests.append(received)
                    status = receiver.script.popleft() if receiver.script else receiver.default
                    receiver._arrived.notify_all()
                if first and receiver._hold:
                    receiver._released.wait(120)
                if receiver._together:
                    receiver._barrier()
                try:
                    self.send_response(status)
                    self.send_header("Content-Length", "0")
                    self.end_headers()
                except OSError:
                    pass  # the sender is gone (killed): nothing to answer

            def log_message(self, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self._thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self._thread.start()

    @property
    def url(self) -> str:
        host, port = self.server.server_address[:2]
        return f"http://{host}:{port}/billing/hook"

    def wait_for(self, count: int, timeout_s: float = 120.0) -> list[Received]:
        """The first ``count`` requests, once they arrived (the limit only guards a hang)."""
        with self._arrived:
            if not self._arrived.wait_for(lambda: len(self.requests) >= count, timeout_s):
                raise AssertionError(f"{len(self.requests)} of {count} webhooks arrived")
            return list(self.requests[:count])

    def _barrier(self) -> None:
        """Hold this request until ``together`` are held at once (or the receiver closes)."""
        with self._arrived:
            self.held += 1
            self.most_held = max(self.most_held, self.held)
            self._arrived.notify_all()
            self._arrived.wait_for(
                lambda: self.most_held >= self._together or self._released.is_set(), 120
            )
            self.held -= 1

    def release(self) -> None:
        """Answer the held first request."""
        self._released.set()

    def close(self) -> None:
        with self._arrived:
            self._released.set()
            self._arrived.notify_all()
        self.server.shutdown()
        self.server.server_close()

    def __enter__(self) -> Receiver:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
