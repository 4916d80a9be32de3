"""Tenant keys that are not plaintext: scrypt hashes, files and environment variables, and
the coded warning of a key still written in plain text."""

from __future__ import annotations

import hashlib
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from qmk.errors import AuthError
from qmk.kernel.config import ConfigError, config_from_dict, config_warnings
from qmk.kernel.security.keys import hash_key, is_hash, parse_hash, verify_key
from qmk.kernel.service import Kernel
from support.kernel import run_kernel

#: A cheap cost for tests (the default is 2**14).
N = 2**10


def _config(tenants: dict[str, dict[str, Any]]) -> Any:
    return config_from_dict({"machine": {"physical_qubits": 10_000}, "tenants": tenants})


def test_a_hash_checks_its_key_and_no_other_and_names_its_parameters():
    stored = hash_key("correct horse", n=N)
    n, r, p, salt, digest = parse_hash(stored) or (0, 0, 0, b"", b"")
    assert (n, r, p, len(salt), len(digest)) == (N, 8, 1, 16, 32)
    # the digest is scrypt's, computed independently here
    assert digest == hashlib.scrypt(b"correct horse", salt=salt, n=N, r=8, p=1, dklen=32)
    assert verify_key(stored, "correct horse")
    assert not verify_key(stored, "correct horse ") and not verify_key(stored, "")
    assert hash_key("correct horse", n=N) != stored  # a fresh salt each time


@pytest.mark.parametrize(
    "text",
    [
        "plain-key",
        "scrypt$n=1000,r=8,p=1$AAAAAAAAAAAAAAAAAAAAAA$AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA",
        "scrypt$n=1024,r=0,p=1$AAAAAAAAAAAAAAAAAAAAAA$AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA",
        "scrypt$n=1024,r=8,p=1$short$AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA",
    ],
)
def test_what_is_not_a_well_formed_hash_is_no_hash(text: str):
    assert not is_hash(text)


def test_each_key_source_loads_and_only_a_plaintext_key_warns(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
):
    (tmp_path / "bob.key").write_text("bob-from-a-secret\n")  # as a mounted Secret ends
    (tmp_path / "dave.key").write_text(hash_key("dave-key", n=N))
    monkeypatch.setenv("CAROL_KEY", "carol-from-vault")
    config = _config(
        {
            "alice": {"key_hash": hash_key("alice-key", n=N)},
            "bob": {"key_file": str(tmp_path / "bob.key")},
            "carol": {"key_env": "CAROL_KEY"},
            "dave": {"key_file": str(tmp_path / "dave.key")},
            "erin": {"key": "erin-in-plain-text"},
        }
    )
    stored = {name: t.stored_key for name, t in config.tenants.items()}
    assert verify_key(stored["alice"], "alice-key") and is_hash(stored["alice"])
    assert stored["bob"] == "bob-from-a-secret" and stored["carol"] == "carol-from-vault"
    assert verify_key(stored["dave"], "dave-key")
    assert "erin-in-plain-text" not in repr(config.tenants["erin"])
    (notice,) = config_warnings(config)
    assert notice["code"] == "QK402" and notice["name"] == "plaintext-key"
    assert notice["message"].startswith("tenants.erin.key holds the key in plain text")


@pytest.mark.parametrize(
    ("table", "key"),
    [
        ({"key_hash": "not-a-hash"}, "tenants.t.key_hash"),
        ({"key_file": "/nonexistent/key"}, "tenants.t.key_file"),
        ({"key_env": "QMK_TEST_UNSET_VARIABLE"}, "tenants.t.key_env"),
        ({"key": "a", "key_env": "HOME"}, "tenants.t.key"),
        ({}, "tenants.t.key"),
    ],
)
def test_a_bad_key_source_is_a_one_line_config_error_naming_it(table: dict[str, str], key: str):
    with pytest.raises(ConfigError) as err:
        _config({"t": table})
    assert err.value.details["key"] == key and "\n" not in str(err.value)
    assert str(err.value).startswith("QK101 bad-config: ")


def test_a_kernel_opens_sessions_for_hashed_keys_and_refuses_wrong_ones(tmp_path: Path) -> None:
    config = _config(
        {
            "alice": {"key_hash": hash_key("alice-key", n=N), "caps": ["CAP_ALLOC"]},
            "bob": {"key": "bob-key", "caps": ["CAP_ALLOC"]},
        }
    )

    async def body(kernel: Kernel) -> None:
        # bob's key is plain text: the kernel holds the warning (qmk serve logs it)
        assert [(n["code"], n["message"][:17]) for n in kernel.warnings] == [
            ("QK402", "tenants.bob.key h")
        ]
        for tenant, key in (("alice", "alice-key"), ("bob", "bob-key")):
            reply = await kernel.q_negotiate_caps(tenant=tenant, key=key, requested=["CAP_ALLOC"])
            assert reply.granted == ["CAP_ALLOC"]
        # a key accepted once is remembered (an HMAC under the kernel secret), not re-hashed
        stored = config.tenants["alice"].stored_key
        assert kernel.keys.remembered("alice", stored, "alice-key")
        assert not kernel.keys.remembered("alice", stored, "alice-kez")
        again = await kernel.q_negotiate_caps(tenant="alice", key="alice-key")
        assert again.tenant == "alice"
        for tenant, key in (
            ("alice", "alice-kez"),
            ("alice", stored),  # the hash is no key
            ("mallory", "alice-key"),
            ("bob", "alice-key"),
        ):
            with pytest.raises(AuthError):
                await kernel.q_negotiate_caps(tenant=tenant, key=key)

    run_kernel(tmp_path, body, config=config)


def test_qmk_tenant_hash_key_prints_a_hash_of_the_key_on_stdin(tmp_path: Path) -> None:
    done = subprocess.run(
        [sys.executable, "-m", "qmk", "tenant", "hash-key", "--cost", "10"],
        input="s3cret-key\n",
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    stored = done.stdout.strip()
    assert stored.startswith("scrypt$n=1024,r=8,p=1$") and verify_key(stored, "s3cret-key")
    config = _config({"alice": {"key_hash": stored}})
    assert not config_warnings(config)
    empty = subprocess.run(
        [sys.executable, "-m", "qmk", "tenant", "hash-key"],
        input="",
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert empty.returncode == 2 and empty.stdout == ""
    assert empty.stderr.startswith("QW011 bad-option: ") and empty.stderr.count("\n") == 1


def test_key_checks_run_in_threads_of_their_own_so_a_busy_default_pool_holds_no_login(
    tmp_path: Path,
) -> None:
    import asyncio
    import threading

    config = _config({"alice": {"key_hash": hash_key("alice-key", n=N), "caps": ["CAP_ALLOC"]}})
    release = threading.Event()

    async def body(kernel: Kernel) -> None:
        width = min(32, (os.cpu_count() or 1) + 4)  # the loop's default pool (its default)
        # every thread of the loop's default pool is held (the assistant's model calls,
        # say): a login must not wait behind them
        held = [asyncio.ensure_future(asyncio.to_thread(release.wait, 60)) for _ in range(width)]
        try:
            login = kernel.q_negotiate_caps(tenant="alice", key="alice-key")
            reply = await asyncio.wait_for(login, 30)  # a hang guard, not a timing
            assert reply.tenant == "alice"
        finally:
            release.set()
            await asyncio.gather(*held)

    run_kernel(tmp_path, body, workers=1, config=config)


def test_key_checks_past_their_threads_and_queue_are_refused_not_queued() -> None:
    import asyncio
    import threading

    from qmk.errors import UnavailableError
    from qmk.kernel.security.keys import KeyChecker

    entered, release = threading.Event(), threading.Event()

    class Held(KeyChecker):
        def check(self, tenant: str, stored: str | None, given: str) -> bool:
            entered.set()
            release.wait(60)
            return False

    async def main() -> None:
        checker = Held(b"secret" * 6, threads=1, waiting=1)
        running = asyncio.ensure_future(checker.check_soon("alice", None, "k"))
        waiting = asyncio.ensure_future(checker.check_soon("alice", None, "k"))
        await asyncio.to_thread(entered.wait, 60)
        with pytest.raises(UnavailableError) as busy:
            await checker.check_soon("alice", None, "k")
        assert busy.value.details == {"reason": "key-checks-busy", "limit": 2}
        release.set()
        assert await running is False and await waiting is False
        checker.close()

    asyncio.run(main())
