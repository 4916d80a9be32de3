"""A session's check at every call is as strict after calls that passed it: the check
remembers only that a session's capabilities fit its tenant's configuration, never that
the session is live (:class:`~qmk.kernel.syscalls.sessions.SessionDesk`)."""

from __future__ import annotations

from pathlib import Path

import pytest

from qmk.errors import AuthError, SessionError, SessionExpired
from qmk.kernel.config import config_from_dict
from qmk.kernel.manual_clock import ManualClock
from qmk.kernel.service import Kernel
from support.kernel import KEYS, login, run_kernel


def _config(alice_caps: list[str]) -> dict[str, object]:
    return {
        "machine": {"physical_qubits": 200_000},
        "kernel": {"worker_memory_mb": 1024, "session_ttl_s": 60.0},
        "tenants": {"alice": {"key": KEYS["alice"], "caps": alice_caps}},
    }


def test_a_session_that_passed_calls_is_refused_once_revoked(tmp_path: Path) -> None:
    async def body(kernel: Kernel) -> None:
        sid = await login(kernel, "alice", ["CAP_ALLOC"])
        for _ in range(2):  # the second call's check is the remembered one
            await kernel.q_list_jobs(session_id=sid)
        kernel.revoke_session(sid)
        with pytest.raises(SessionError) as refused:
            await kernel.q_list_jobs(session_id=sid)
        assert "revoked" in refused.value.message

    run_kernel(tmp_path, body, config=config_from_dict(_config(["CAP_ALLOC"])), workers=1)


def test_a_session_that_passed_calls_is_refused_once_expired(tmp_path: Path) -> None:
    clock = ManualClock()

    async def body(kernel: Kernel) -> None:
        sid = await login(kernel, "alice", ["CAP_ALLOC"])
        for _ in range(2):
            await kernel.q_list_jobs(session_id=sid)
        clock.advance(59.0)
        await kernel.q_list_jobs(session_id=sid)
        clock.advance(1.0)
        with pytest.raises(SessionExpired):
            await kernel.q_list_jobs(session_id=sid)

    config = config_from_dict(_config(["CAP_ALLOC"]))
    run_kernel(tmp_path, body, config=config, clock=clock, workers=1)


def test_a_session_that_passed_calls_is_refused_once_its_config_takes_a_cap_away(
    tmp_path: Path,
) -> None:
    async def body(kernel: Kernel) -> None:
        sid = await login(kernel, "alice", ["CAP_ALLOC", "CAP_MAGIC"])
        for _ in range(2):
            await kernel.q_list_jobs(session_id=sid)
        kernel.session_desk.config = config_from_dict(_config(["CAP_ALLOC"]))
        with pytest.raises(SessionError) as refused:
            await kernel.q_list_jobs(session_id=sid)
        assert refused.value.details["revoked"] == ["CAP_MAGIC"]

    config = config_from_dict(_config(["CAP_ALLOC", "CAP_MAGIC"]))
    run_kernel(tmp_path, body, config=config, workers=1)


def test_a_session_that_passed_calls_is_refused_once_its_tenant_is_no_longer_configured(
    tmp_path: Path,
) -> None:
    async def body(kernel: Kernel) -> None:
        sid = await login(kernel, "alice", ["CAP_ALLOC"])
        for _ in range(2):
            await kernel.q_list_jobs(session_id=sid)
        assert kernel.tenant_of(sid) == "alice"  # the door's check: the same remembered one
        kernel.session_desk.config = config_from_dict({**_config(["CAP_ALLOC"]), "tenants": {}})
        for check in (kernel.tenant_of, kernel.session_desk.tenant_of):
            with pytest.raises(AuthError, match="no longer configured"):
                check(sid)
        with pytest.raises(AuthError, match="no longer configured"):
            await kernel.q_list_jobs(session_id=sid)

    run_kernel(tmp_path, body, config=config_from_dict(_config(["CAP_ALLOC"])), workers=1)


def test_a_sign_in_answers_the_quotas_of_its_tenants_configuration_as_it_is_now(
    tmp_path: Path,
) -> None:
    async def quota(kernel: Kernel) -> dict[str, int | float]:
        reply = await kernel.q_negotiate_caps(
            tenant="alice", key=KEYS["alice"], requested=["CAP_ALLOC"]
        )
        return dict(reply.quota)

    async def body(kernel: Kernel) -> None:
        first = await quota(kernel)
        assert first["max_queued_jobs"] == 7
        answered = await kernel.q_negotiate_caps(
            tenant="alice", key=KEYS["alice"], requested=["CAP_ALLOC"]
        )
        answered.quota["max_queued_jobs"] = 1  # a caller's own copy: the next is whole
        assert await quota(kernel) == first
        kernel.session_desk.config = config_from_dict(_queued(9))
        again = await quota(kernel)
        assert again == {**first, "max_queued_jobs": 9}

    run_kernel(tmp_path, body, config=config_from_dict(_queued(7)), workers=1)


def _queued(most: int) -> dict[str, object]:
    """:func:`_config` with CAP_ALLOC, alice's ``max_queued_jobs`` ``most``."""
    alice = {"key": KEYS["alice"], "caps": ["CAP_ALLOC"], "max_queued_jobs": most}
    return {**_config(["CAP_ALLOC"]), "tenants": {"alice": alice}}


def test_a_revoked_session_is_refused_by_the_kernel_that_opens_its_data_next(
    tmp_path: Path,
) -> None:
    sids: list[str] = []

    async def revoke(kernel: Kernel) -> None:
        sids.extend([await login(kernel, "alice", ["CAP_ALLOC"]) for _ in range(2)])
        kernel.revoke_session(sids[0])

    async def again(kernel: Kernel) -> None:
        with pytest.raises(SessionError) as refused:
            await kernel.q_list_jobs(session_id=sids[0])
        assert "revoked" in refused.value.message
        await kernel.q_list_jobs(session_id=sids[1])  # the other one lives on

    config = config_from_dict(_config(["CAP_ALLOC"]))
    run_kernel(tmp_path, revoke, config=config, workers=1)
    run_kernel(tmp_path, again, config=config, workers=1)
