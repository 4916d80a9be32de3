"""``qmk serve`` stopped by a signal closes its kernel and exits 0 even when a second stop
signal comes while it closes: a Ctrl-C in a terminal reaches the kernel and the script
that started it, which then sends a SIGTERM of its own (``examples/http_demo.py --keep``
ended ``kernel stopped: exit -15``). The second signal changes nothing: the kernel keeps
the job it had accepted and not finished, and runs it on its next start."""

from __future__ import annotations

import json
import signal
import time
from pathlib import Path

import pytest

from qmk.kernel.storage.audit_verify import verify
from support.cli import qmk
from support.kernel import ServeFactory, WorkerGate
from support.paths import EXAMPLES

BELL = str(EXAMPLES / "bell.qvm.asm")


def _gone(path: Path, timeout_s: float = 60.0) -> None:
    """Return once ``path`` is removed (the server stopped listening)."""
    deadline = time.monotonic() + timeout_s
    while path.exists():
        assert time.monotonic() < deadline, f"{path} still there"
        time.sleep(0.001)


@pytest.mark.parametrize(
    ("first", "second"),
    [(signal.SIGINT, signal.SIGTERM), (signal.SIGTERM, signal.SIGINT)],
    ids=["sigint-then-sigterm", "sigterm-then-sigint"],
)
def test_a_second_stop_signal_while_the_kernel_closes_changes_nothing(
    tmp_path: Path,
    serve: ServeFactory,
    monkeypatch: pytest.MonkeyPatch,
    first: signal.Signals,
    second: signal.Signals,
) -> None:
    with WorkerGate(tmp_path) as gate:
        server = serve("signals", hooks=gate.hooks())
        for name, value in server.env("alice").items():
            if name.startswith("QMK_"):
                monkeypatch.setenv(name, value)
        gate.release(1)
        code, _, err = qmk("submit", BELL, "--shots", "100", "--seed", "1", "--wait", "--quiet")
        assert code == 0, err
        code, out, err = qmk("submit", BELL, "--shots", "100", "--seed", "2", "--json")
        assert code == 0, err
        held = json.loads(out)["job_id"]  # accepted, held in its worker at the gate
        assert server.proc is not None
        server.proc.send_signal(first)
        _gone(server.socket)  # it stopped listening: now it closes the kernel
        server.proc.send_signal(second)
        code = server.proc.wait(60)
        server.stopped = True
    output = server.output()
    assert code == 0, output
    assert "Traceback" not in output and "KeyboardInterrupt" not in output, output
    assert verify(server.data_dir).ok  # closed as one signal closes it
    server.start()  # the same data directory: the held job runs now
    code, out, err = qmk("wait", held, "--json", "--quiet")
    assert code == 0, err
    reply = json.loads(out)
    assert reply["state"] == "COMPLETED"
    assert sum(reply["result"]["counts"].values()) == 100
