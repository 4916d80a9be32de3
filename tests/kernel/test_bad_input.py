"""Out-of-range numbers and malformed names in a request are invalid arguments (1012)
with a one-line message, never an overflow or an internal error."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from qmk.errors import InvalidArgument
from qmk.kernel.service import Kernel
from support.kernel import BELL, login, run_kernel

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


def test_a_wait_longer_than_a_year_is_an_invalid_argument(tmp_path: Path) -> None:
    async def body(kernel: Kernel) -> None:
        alice = await login(kernel, "alice")
        job = await kernel.q_submit(session_id=alice, graph=BELL, shots=10, seed=1)
        with pytest.raises(InvalidArgument) as caught:
            await kernel.q_wait(session_id=alice, job_id=job["job_id"], timeout_ms=HUGE)
        assert "a huge number" in caught.value.message

    run_kernel(tmp_path, body, workers=1)
