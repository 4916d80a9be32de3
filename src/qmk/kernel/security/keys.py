"""Tenant keys at rest: scrypt hashes, and the check of a key a client gives.

A tenant's key is configured one of four ways (``[tenants.NAME]``, docs/secrets.md):

- ``key_hash``: a hash this module makes (``qmk tenant hash-key``);
- ``key_file`` or ``key_env``: a file or an environment variable holding the key or its
  hash (what a Kubernetes Secret or a Vault agent provides);
- ``key``: the key in plain text, still read, with the warning ``QK402 plaintext-key``.

A hash is ``scrypt$n=N,r=R,p=P$SALT$HASH`` (base64url without padding; the parameters
travel with it, so a stronger setting later still checks older hashes). scrypt is slow
on purpose, and takes 16 MiB at the default ``n=2**14, r=8``. :class:`KeyChecker` runs
it off the event loop and remembers a key it accepted as an HMAC under the kernel
secret. So a tenant that logs in often pays the scrypt once, and a guesser pays it for
every guess.

>>> stored = hash_key("s3cret", n=2**10)
>>> stored.startswith("scrypt$n=1024,r=8,p=1$")
True
>>> verify_key(stored, "s3cret"), verify_key(stored, "guess")
(True, False)
"""

from __future__ import annotations

import asyncio
import base64
import functools
import hashlib
import hmac
import re
import secrets
from concurrent.futures import ThreadPoolExecutor

from qmk.errors import UnavailableError

#: scrypt's cost (CPU and memory: 128 * r * n bytes), block size and parallelism.
SCRYPT_N = 2**14
SCRYPT_R = 8
SCRYPT_P = 1
_SALT_BYTES = 16
_HASH_BYTES = 32
_MAXMEM = 256 * 2**20

_HASH = re.compile(
    r"scrypt\$n=(?P<n>[0-9]{1,10}),r=(?P<r>[0-9]{1,3}),p=(?P<p>[0-9]{1,3})"
    r"\$(?P<salt>[A-Za-z0-9_-]{16,128})\$(?P<hash>[A-Za-z0-9_-]{16,256})"
)


def b64(data: bytes) -> str:
    """``data`` as URL-safe base64 without padding (the keys' and tokens' one spelling)."""
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def unb64(text: str) -> bytes:
    """The bytes of :func:`b64`'s ``text``."""
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


@functools.lru_cache(maxsize=256)
def is_hash(text: str) -> bool:
    """Whether ``text`` is a key hash of :func:`hash_key` (else it is a key).

    Remembered: a login asks it of its tenant's stored key, which a pattern match
    answers, every time the same."""
    return parse_hash(text) is not None


def parse_hash(text: str) -> tuple[int, int, int, bytes, bytes] | None:
    """``(n, r, p, salt, hash)`` of a key hash; None when ``text`` is none (or its
    parameters are not ones scrypt takes: n a power of two > 1, r and p >= 1)."""
    found = _HASH.fullmatch(text.strip())
    if found is None:
        return None
    n, r, p = int(found["n"]), int(found["r"]), int(found["p"])
    if n < 2 or n & (n - 1) or r < 1 or p < 1 or 128 * r * n > _MAXMEM:
        return None
    return n, r, p, unb64(found["salt"]), unb64(found["hash"])


def hash_key(key: str, *, n: int = SCRYPT_N, r: int = SCRYPT_R, p: int = SCRYPT_P) -> str:
    """The scrypt hash of ``key`` with a fresh random salt, as ``key_hash`` takes it."""
    salt = secrets.token_bytes(_SALT_BYTES)
    digest = hashlib.scrypt(
        key.encode(), salt=salt, n=n, r=r, p=p, maxmem=_MAXMEM, dklen=_HASH_BYTES
    )
    return f"scrypt$n={n},r={r},p={p}${b64(salt)}${b64(digest)}"


def verify_key(stored: str, given: str) -> bool:
    """Whether ``given`` is the key ``stored`` stands for: a hash of :func:`hash_key`,
    or the key itself (compared in constant time either way)."""
    parsed = parse_hash(stored)
    if parsed is None:
        return hmac.compare_digest(given.encode(), stored.encode())
    n, r, p, salt, digest = parsed
    again = hashlib.scrypt(
        given.encode(), salt=salt, n=n, r=r, p=p, maxmem=_MAXMEM, dklen=len(digest)
    )
    return hmac.compare_digest(again, digest)


@functools.cache
def _decoy() -> str:
    """What an unknown tenant's key is checked against, so that a wrong tenant name
    costs as long as a wrong key (the scrypt of the default parameters)."""
    return hash_key(secrets.token_urlsafe(16))


#: Threads of their own that run key checks (scrypt: tens of ms of CPU each), and the
#: checks that may wait for one; a check past both is refused (``QS1011``,
#: ``key-checks-busy``) rather than queued, and no other work (the assistant, program
#: text) waits behind key checks, or they behind it.
KEY_CHECK_THREADS, KEY_CHECKS_WAITING = 2, 64


class KeyChecker:
    """Checks the keys clients give against the tenants' stored ones.

    Args:
        secret: the kernel secret (a remembered key is an HMAC under it, never the key).
        threads: the threads of its own that run scrypt (:meth:`check_soon`).
        waiting: the checks that may wait for one of them.
    """

    def __init__(
        self,
        secret: bytes,
        *,
        threads: int = KEY_CHECK_THREADS,
        waiting: int = KEY_CHECKS_WAITING,
    ) -> None:
        self._secret = secret
        self._known: dict[str, bytes] = {}  # tenant -> HMAC of the key last accepted
        self.threads = threads
        self.waiting = waiting
        self._pool: ThreadPoolExecutor | None = None  # made at the first check
        self._pending = 0

    async def check_soon(self, tenant: str, stored: str | None, given: str) -> bool:
        """:meth:`check` in the checker's own bounded pool of threads.

        Raises:
            UnavailableError: ``key-checks-busy``: every thread is busy and as many
                checks as may wait are waiting.
        """
        if self._pending >= self.threads + self.waiting:
            raise UnavailableError(
                f"{self._pending} key checks are under way or waiting; retry in a moment",
                reason="key-checks-busy",
                limit=self.threads + self.waiting,
            )
        if self._pool is None:
            self._pool = ThreadPoolExecutor(self.threads, thread_name_prefix="qmk-keys")
        self._pending += 1
        try:
            loop = asyncio.get_running_loop()
            return await loop.run_in_executor(self._pool, self.check, tenant, stored, given)
        finally:
            self._pending -= 1

    def close(self) -> None:
        """Stop the threads (checks still waiting are dropped)."""
        if self._pool is not None:
            self._pool.shutdown(wait=False, cancel_futures=True)
            self._pool = None

    def _mark(self, tenant: str, stored: str, given: str) -> bytes:
        text = f"{tenant}\0{stored}\0{given}".encode()
        return hmac.new(self._secret, text, hashlib.sha256).digest()

    def remembered(self, tenant: str, stored: str | None, given: str) -> bool:
        """Whether ``given`` is the key last accepted for ``tenant`` (no scrypt)."""
        mark = self._known.get(tenant)
        return (
            mark is not None
            and stored is not None
            and hmac.compare_digest(mark, self._mark(tenant, stored, given))
        )

    def check(self, tenant: str, stored: str | None, given: str) -> bool:
        """Whether ``given`` is ``tenant``'s key (``stored`` None: no such tenant; the
        decoy hash is checked all the same). A key accepted is remembered."""
        ok = verify_key(_decoy() if stored is None else stored, given) and stored is not None
        if ok and stored is not None and is_hash(stored):
            if len(self._known) >= 10_000:
                self._known.clear()
            self._known[tenant] = self._mark(tenant, stored, given)
        return ok


__all__ = [
    "SCRYPT_N",
    "SCRYPT_P",
    "SCRYPT_R",
    "KeyChecker",
    "hash_key",
    "is_hash",
    "parse_hash",
    "verify_key",
]
