"""A big program's digest, packed form, firewall answer and epoch records are worked out
in the thread that reads it, never on the event loop (issue 47: a 99,990-node program's
hashed twice, written whole, checked by the firewall and counted for its attestation
there, 20-80 ms each while no other tenant was answered)."""

from __future__ import annotations

import hashlib
import sys
import threading
import zlib
from pathlib import Path
from types import FrameType
from typing import Any

import pytest

from qmk.execution.request import DIGEST_KEPT_FROM, program_digest
from qmk.kernel.admit.admission import OFFLOAD_NODES
from qmk.kernel.service import Kernel
from support.kernel import chain_graph, login, run_kernel

#: The functions that walk a whole program, by name (what the loop must not call on a
#: big one).
WALKS = {"check_firewall", "_epoch_records"}
ZLIB_COMPRESS = zlib.compress


class LoopSpy:
    """What the event loop's thread hashed (sizes) and which program walks it called."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch) -> None:
        self.loop = threading.get_ident()
        self.hashed: list[int] = []
        self.packed: list[int] = []
        self.walked: list[str] = []
        real = hashlib.sha256

        def compress(data: bytes, *args: Any, **kwargs: Any) -> bytes:
            if threading.get_ident() == self.loop:
                self.packed.append(len(data))
            return ZLIB_COMPRESS(data, *args, **kwargs)

        monkeypatch.setattr(zlib, "compress", compress)

        def sha256(data: bytes = b"", **kwargs: Any) -> Any:
            if threading.get_ident() == self.loop:
                self.hashed.append(len(data))
            return real(data, **kwargs)

        monkeypatch.setattr(hashlib, "sha256", sha256)

    def profile(self, frame: FrameType, event: str, arg: Any) -> None:
        if event == "call" and frame.f_code.co_name in WALKS:
            self.walked.append(frame.f_code.co_name)


def test_the_digest_of_a_big_text_is_made_once_for_that_text(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    text = "x" * DIGEST_KEPT_FROM
    expected = hashlib.sha256(text.encode()).hexdigest()
    spy = LoopSpy(monkeypatch)
    first = program_digest(text)
    assert program_digest(text) == first
    assert spy.hashed == [DIGEST_KEPT_FROM]  # hashed once
    twin = "".join(["x" * (DIGEST_KEPT_FROM - 1), "x"])  # equal, another object
    assert program_digest(twin) == first == expected
    assert spy.hashed == [DIGEST_KEPT_FROM] * 2


def test_a_big_programs_digest_packing_firewall_and_epochs_are_made_off_the_event_loop(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    graph = chain_graph(OFFLOAD_NODES + 1000)
    spy = LoopSpy(monkeypatch)

    async def body(kernel: Kernel) -> None:
        alice = await login(kernel, "alice")
        sys.setprofile(spy.profile)  # the loop's thread only
        try:
            job = await kernel.q_submit(session_id=alice, graph=graph, shots=10, seed=1)
            done = await kernel.q_wait(session_id=alice, job_id=job.job_id, timeout_ms=120_000)
        finally:
            sys.setprofile(None)
        assert done.state == "COMPLETED", done

    run_kernel(tmp_path, body)
    assert [size for size in spy.hashed if size >= DIGEST_KEPT_FROM] == []
    assert [size for size in spy.packed if size >= DIGEST_KEPT_FROM] == []
    assert spy.walked == []
