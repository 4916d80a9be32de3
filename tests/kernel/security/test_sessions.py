"""Session tokens: signature, expiry, revocation, and the secret file."""

from __future__ import annotations

import base64
import json
import stat
from pathlib import Path

import pytest

from qmk.errors import SessionError, SessionExpired
from qmk.kernel.datafiles import SECRET_FILE
from qmk.kernel.security.sessions import Sessions, load_secret

SECRET = b"s" * 32


def test_a_token_checks_back_to_its_tenant_and_caps() -> None:
    sessions = Sessions(SECRET, ttl_s=10)
    token = sessions.issue("alice", ["CAP_ALLOC", "CAP_LINK"], now=100.0)
    session = sessions.check(token, now=105.0)
    assert (session.tenant, session.caps, session.expires_at) == (
        "alice",
        ("CAP_ALLOC", "CAP_LINK"),
        110.0,
    )


@pytest.mark.parametrize("delegated", [[], ["CAP_LINK"]])
def test_an_issued_tokens_session_is_the_one_a_fresh_check_reads_back(delegated: list[str]) -> None:
    sessions = Sessions(SECRET, ttl_s=10)
    token = sessions.issue("alice", ["CAP_ALLOC", "CAP_LINK"], now=100, delegated=delegated)
    kept = sessions.check(token, now=105.0)  # the issuer's own, kept at issue
    read = Sessions(SECRET, ttl_s=10).check(token, now=105.0)  # parsed from the token
    assert kept == read and type(kept.expires_at) is float


def test_a_token_signed_by_another_secret_is_refused() -> None:
    token = Sessions(b"x" * 32, ttl_s=10).issue("alice", [], now=0.0)
    with pytest.raises(SessionError, match="signature"):
        Sessions(SECRET, ttl_s=10).check(token, now=1.0)


def test_a_token_with_an_edited_payload_is_refused() -> None:
    sessions = Sessions(SECRET, ttl_s=10)
    head, payload, mac = sessions.issue("bob", ["CAP_ALLOC"], now=0.0).split(".")
    data = json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))
    data["t"], data["c"] = "alice", ["CAP_ALLOC", "CAP_LINK", "CAP_MAGIC"]
    forged = base64.urlsafe_b64encode(json.dumps(data).encode()).rstrip(b"=").decode()
    with pytest.raises(SessionError) as err:
        sessions.check(f"{head}.{forged}.{mac}", now=1.0)
    assert not isinstance(err.value, SessionExpired)


@pytest.mark.parametrize("token", ["", "s1", "s1.a.b", "x.y.z", "s1..", 42, None, "s1.a.b.c"])
def test_malformed_tokens_are_session_errors(token: object) -> None:
    with pytest.raises(SessionError):
        Sessions(SECRET, ttl_s=10).check(token, now=0.0)


@pytest.mark.parametrize("suffix", ["=", "==", "!", " ", "\n", ".", "%3D"])
def test_a_good_token_with_anything_appended_is_refused(suffix: str) -> None:
    sessions = Sessions(SECRET, ttl_s=10)
    token = sessions.issue("alice", ["CAP_ALLOC"], now=0.0)
    with pytest.raises(SessionError) as err:
        sessions.check(token + suffix, now=1.0)
    assert not isinstance(err.value, SessionExpired)
    assert sessions.check(token, now=1.0).tenant == "alice"


def test_an_expired_token_is_session_expired() -> None:
    sessions = Sessions(SECRET, ttl_s=10)
    token = sessions.issue("alice", [], now=0.0)
    with pytest.raises(SessionExpired):
        sessions.check(token, now=10.0)


def test_a_revoked_token_is_refused_and_stays_refused() -> None:
    sessions = Sessions(SECRET, ttl_s=10)
    token = sessions.issue("alice", [], now=0.0)
    sid = sessions.check(token, now=1.0).sid
    sessions.revoke(sid)
    with pytest.raises(SessionError, match="revoked"):
        sessions.check(token, now=1.0)
    with pytest.raises(SessionError, match="revoked"):
        Sessions(SECRET, ttl_s=10, revoked=[sid]).check(token, now=1.0)


def test_the_secret_is_made_once_with_mode_0600(tmp_path: Path) -> None:
    first = load_secret(tmp_path)
    assert len(first) == 32
    assert stat.S_IMODE((tmp_path / SECRET_FILE).stat().st_mode) == 0o600
    assert load_secret(tmp_path) == first
    (tmp_path / SECRET_FILE).chmod(0o644)
    assert load_secret(tmp_path) == first
    assert stat.S_IMODE((tmp_path / SECRET_FILE).stat().st_mode) == 0o600
