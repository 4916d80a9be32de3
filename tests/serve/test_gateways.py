"""The supervisor of ``qmk serve --gateway process`` (qmk.serve.gateways): a gateway
that keeps dying is started again with a doubling wait, each restart a log line."""

from __future__ import annotations

import asyncio
import logging
import sys

from qmk.abi.server import bind_tcp
from qmk.serve.gateways import READY, RESTART_FIRST_S, Supervisor

#: A stand-in gateway: it says it serves, then ends with status 3 (its extra arguments,
#: the socket and pipe it is handed, are its sys.argv).
DYING = [sys.executable, "-c", f"import sys; print({READY + 'http://x:1'!r}); sys.exit(3)"]


class _Lines(logging.Handler):
    def __init__(self, enough: int, stop: asyncio.Event) -> None:
        super().__init__()
        self.lines: list[str] = []
        self.enough, self.stop = enough, stop

    def emit(self, record: logging.LogRecord) -> None:
        self.lines.append(record.getMessage())
        if len(self.lines) >= self.enough:
            self.stop.set()


def test_a_dying_gateway_restarts_with_a_doubling_wait_and_a_line_each() -> None:
    async def scenario() -> tuple[Supervisor, list[str]]:
        stop = asyncio.Event()
        lines = _Lines(3, stop)
        logger = logging.getLogger("qmk.gateway")
        logger.addHandler(lines)
        sock = bind_tcp("127.0.0.1", 0)
        supervisor = Supervisor(DYING, sock, "http")
        try:
            assert await supervisor.start() == "http://x:1"
            await asyncio.wait_for(supervisor.supervise(stop), 60)  # a hang guard
        finally:
            logger.removeHandler(lines)
            sock.close()
        return supervisor, lines.lines

    supervisor, lines = asyncio.run(scenario())
    assert supervisor.restarts == 3
    waits = [RESTART_FIRST_S * 2**n for n in range(3)]
    for n, (line, wait) in enumerate(zip(lines, waits, strict=True), start=1):
        assert line.startswith("the http gateway (pid ")
        assert line.endswith(f"ended with 3; restart {n} in {wait:.3g} s"), line
