"""Each tenant's verification rate (``verify_nodes_per_s``), on a clock the test moves.

A submit takes its graph's nodes from its tenant's token bucket before anything is read;
past the rate it is ``QS1006`` with ``retry_after_s``, and the other tenants' buckets are
untouched. Time is a :class:`~qmk.kernel.manual_clock.ManualClock`: nothing waits.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from qmk.abi import replies
from qmk.errors import ProgramError, QuotaError
from qmk.kernel.config import ConfigError, KernelConfig, config_from_dict
from qmk.kernel.manual_clock import ManualClock
from qmk.kernel.service import Kernel
from support.kernel import KEYS, chain_graph, login, run_kernel


def config(*, alice_rate: float, max_graph_nodes: int = 1000) -> KernelConfig:
    return config_from_dict(
        {
            "machine": {"physical_qubits": 200_000},
            "kernel": {"worker_memory_mb": 1024, "max_graph_nodes": max_graph_nodes},
            "tenants": {
                "alice": {
                    "key": KEYS["alice"],
                    "caps": ["CAP_ALLOC"],
                    "verify_nodes_per_s": alice_rate,
                },
                "bob": {"key": KEYS["bob"], "caps": ["CAP_ALLOC"]},
            },
        }
    )


def test_big_invalid_graphs_past_the_rate_are_refused_with_when_to_retry(tmp_path: Path):
    clock = ManualClock(start=1000.0)

    async def body(kernel: Kernel) -> None:
        alice, bob = await login(kernel, "alice", ["CAP_ALLOC"]), await login(kernel, "bob")
        bad = chain_graph(600, valid=False)
        with pytest.raises(ProgramError):  # verified (and refused): 600 of 1000 nodes taken
            await kernel.q_submit(session_id=alice, graph=bad, shots=1, seed=1)
        with pytest.raises(QuotaError) as caught:
            await kernel.q_submit(session_id=alice, graph=bad, shots=1, seed=1)
        assert caught.value.details == {
            "limit": "verify_nodes_per_s",
            "value": 500.0,
            "needed": 600,
            "retry_after_s": 0.4,
        }
        assert "retry in 0.4 s" in caught.value.message
        # another tenant's rate is its own
        ok = await kernel.q_submit(session_id=bob, graph=chain_graph(900), shots=1, seed=1)
        assert ok.job_id
        clock.advance(0.25)
        with pytest.raises(QuotaError) as caught:
            await kernel.q_submit(session_id=alice, graph=bad, shots=1, seed=1)
        assert caught.value.details["retry_after_s"] == 0.15
        clock.advance(0.25)
        with pytest.raises(ProgramError):  # read and verified again
            await kernel.q_submit(session_id=alice, graph=bad, shots=1, seed=1)

    run_kernel(tmp_path, body, workers=1, config=config(alice_rate=500.0), clock=clock)


def test_a_graph_of_max_graph_nodes_always_fits_a_full_bucket(tmp_path: Path):
    clock = ManualClock(start=1000.0)

    async def body(kernel: Kernel) -> None:
        alice = await login(kernel, "alice", ["CAP_ALLOC"])
        job = await kernel.q_submit(session_id=alice, graph=chain_graph(1000), shots=1, seed=1)
        assert job.job_id
        with pytest.raises(QuotaError) as caught:
            await kernel.q_submit(session_id=alice, graph=chain_graph(10), shots=1, seed=1)
        assert caught.value.details["retry_after_s"] == 10.0
        clock.advance(10.0)
        assert (
            await kernel.q_submit(session_id=alice, graph=chain_graph(10), shots=1, seed=2)
        ).job_id

    run_kernel(tmp_path, body, workers=1, config=config(alice_rate=1.0), clock=clock)


def test_the_rate_is_a_tenant_quota_shown_to_the_tenant(tmp_path: Path):
    async def body(kernel: Kernel) -> replies.Resources:
        alice = await login(kernel, "alice", ["CAP_ALLOC"])
        return await kernel.q_resource_query(session_id=alice)

    reply = run_kernel(tmp_path, body, workers=1, config=config(alice_rate=250.0))
    assert reply.quota["verify_nodes_per_s"] == 250.0


@pytest.mark.parametrize("value", [0, -5, "fast", True])
def test_a_bad_verify_rate_is_a_config_error_naming_its_key(value: Any):
    with pytest.raises(ConfigError) as caught:
        config(alice_rate=value)
    assert caught.value.details["key"] == "tenants.alice.verify_nodes_per_s"
