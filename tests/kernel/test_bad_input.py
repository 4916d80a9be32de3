"""Out-of-range numbers and malformed names in a request are invalid arguments (1012)
with a one-line message, never an overflow or an internal error."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from qmk import defaults
from qmk.errors import InvalidArgument
from qmk.kernel.service import Kernel
from support.kernel import BELL, chain_graph, login, run_kernel

HUGE = 10**400


@pytest.mark.parametrize(
    "policy, key",
    [
        ({"timeout_ms": HUGE}, "policy.timeout_ms"),
        ({"timeout_ms": float("inf")}, "policy.timeout_ms"),
        ({"deadline": HUGE}, "policy.deadline"),
        ({"deadline": -HUGE}, "policy.deadline"),
        ({"profile": "logical:surface_code(d=x)"}, "policy.profile"),
        ({"profile": "logical:toric(d=3)"}, "policy.profile"),
    ],
)
def test_a_policy_value_out_of_range_is_an_invalid_argument(
    tmp_path: Path, policy: dict[str, Any], key: str
) -> None:
    async def body(kernel: Kernel) -> None:
        alice = await login(kernel, "alice")
        with pytest.raises(InvalidArgument) as caught:
            await kernel.q_submit(session_id=alice, graph=BELL, shots=10, seed=1, policy=policy)
        assert caught.value.details["key"] == key
        assert "\n" not in str(caught.value) and len(str(caught.value)) < 200

    run_kernel(tmp_path, body, workers=1)


def test_a_wait_longer_than_a_year_or_negative_is_an_invalid_argument_showing_it(
    tmp_path: Path,
) -> None:
    async def body(kernel: Kernel) -> None:
        alice = await login(kernel, "alice")
        job = await kernel.q_submit(session_id=alice, graph=BELL, shots=10, seed=1)
        with pytest.raises(InvalidArgument) as caught:
            await kernel.q_wait(session_id=alice, job_id=job.job_id, timeout_ms=HUGE)
        assert f"got {str(HUGE)[:40]}... ({len(str(HUGE))} characters)" in caught.value.message
        for value in (-5, defaults.MAX_TIMEOUT_MS + 1):
            with pytest.raises(InvalidArgument) as caught:
                await kernel.q_wait(session_id=alice, job_id=job.job_id, timeout_ms=value)
            assert caught.value.message.endswith(f", got {value}")

    run_kernel(tmp_path, body, workers=1)


def test_a_graph_over_max_graph_nodes_is_refused_before_it_is_read(tmp_path: Path) -> None:
    from qmk.errors import QuotaError
    from support.kernel import make_config

    async def body(kernel: Kernel) -> None:
        alice = await login(kernel, "alice")
        with pytest.raises(QuotaError) as caught:
            await kernel.q_submit(session_id=alice, graph=chain_graph(501), shots=1, seed=1)
        assert caught.value.details["limit"] == "max_graph_nodes"
        ok = await kernel.q_submit(session_id=alice, graph=chain_graph(500), shots=1, seed=1)
        assert ok.state in ("QUEUED", "RUNNING", "COMPLETED")

    run_kernel(tmp_path, body, workers=1, config=make_config(max_graph_nodes=500))


def test_a_big_graph_is_verified_off_the_event_loop_and_a_small_one_on_it(
    tmp_path: Path,
) -> None:
    """Where qmk.qvm.verify.verify runs is recorded by a profile hook (no timing)."""
    import sys
    import threading

    from qmk.kernel.admit.admission import OFFLOAD_NODES

    seen: list[tuple[int, int]] = []  # (graph nodes, thread ident)

    def hook(frame: Any, event: str, arg: Any) -> None:
        code = frame.f_code
        # the kernel verifies with verify_folded (qmk.kernel.records.programs)
        verifies = code.co_name in ("verify", "verify_folded")
        if event == "call" and verifies and code.co_filename.endswith("verify.py"):
            graph = frame.f_locals.get("graph")
            nodes = len(getattr(graph, "nodes", ()))
            seen.append((nodes, threading.get_ident()))

    async def body(kernel: Kernel) -> int:
        alice = await login(kernel, "alice")
        await kernel.q_submit(session_id=alice, graph=chain_graph(OFFLOAD_NODES + 10), seed=1)
        await kernel.q_submit(session_id=alice, graph=chain_graph(20), seed=1)
        return threading.get_ident()

    threading.setprofile(hook)
    sys.setprofile(hook)
    try:
        loop_thread = run_kernel(tmp_path, body, workers=1)
    finally:
        sys.setprofile(None)
        threading.setprofile(None)
    where = dict(seen)
    assert where[OFFLOAD_NODES + 10] != loop_thread
    assert where[20] == loop_thread
