"""Seals: HMACs keyed by the kernel secret over what the kernel stores outside the audit
log, so an edit by anyone without the secret is seen where the thing is read.

- **Results** (:func:`result_seal`): a stored result's row in ``kernel.db`` carries the
  HMAC of its job id, the SHA-256 of its JSON (:func:`data_digest`, also in the job's
  COMPLETED audit line as ``stored_sha256``) and the SHA-256 of its index. A row whose
  seal does not match is served as ``QK308 result-tampered``, never as counts.
- **Programs** (:func:`program_seal`): a job's row carries the HMAC of its job id, its
  tenant, its run request's ``program_digest`` (the SHA-256 of the program's text) and
  the text's size in bytes, under the results' key (the message names its kind). The
  size is read before a packed text is unpacked: a text is never inflated past the size
  the kernel sealed. A job whose text does not match is refused as ``QK310
  program-tampered``, at a restart and at a restore or replay, never run.
- **Execution states** (:func:`seal_state`, :func:`unseal_state`): a checkpoint file
  (``.qmkstate``) ends with a trailer, :data:`STATE_TRAILER` and the HMAC of everything
  before it. A worker resumes only from a file whose HMAC matches (``QK309
  checkpoint-tampered``): an edited random stream or shot-group index is refused.

Each use has a key of its own, derived from the secret (:func:`derive`): the workers get
the states' key, never the secret (which also signs sessions and the audit log).

>>> key = derive(b"s" * 32, "state")
>>> sealed = seal_state(key, b"npz bytes")
>>> unseal_state(key, sealed)
b'npz bytes'
>>> try:
...     unseal_state(key, sealed.replace(b"npz", b"NPZ"))
... except JobError as exc:
...     print(exc.code, exc.name)
QK309 checkpoint-tampered
"""

from __future__ import annotations

import hashlib
import hmac
from typing import Any

from qmk.kernel.errors import JobError

#: What precedes a sealed state's HMAC at the end of its file.
STATE_TRAILER = b"QMKSEAL1"
_MAC_BYTES = 32


class KeyedMac:
    """HMAC-SHA256 (RFC 2104) under one key, its inner and outer pads hashed once and
    copied for each message: the MAC ``hmac.new`` makes, without the key set up again
    or the hmac module's wrapper object per message. It is for a key that signs many
    (the audit log's lines, the stored results' seals), where those cost more than the
    MAC of a short message.

    >>> KeyedMac(b"k" * 32).hexdigest(b"m") == hmac.new(b"k" * 32, b"m", "sha256").hexdigest()
    True
    """

    __slots__ = ("_inner", "_outer")

    def __init__(self, key: bytes) -> None:
        block = (key if len(key) <= _BLOCK else hashlib.sha256(key).digest()).ljust(_BLOCK, b"\0")
        self._inner = hashlib.sha256(bytes(b ^ 0x36 for b in block))
        self._outer = hashlib.sha256(bytes(b ^ 0x5C for b in block))

    def hexdigest(self, message: bytes) -> str:
        """The HMAC of ``message``, in hex."""
        return self._of(message).hexdigest()

    def digest(self, message: bytes) -> bytes:
        """The HMAC of ``message``."""
        return self._of(message).digest()

    def _of(self, message: bytes) -> Any:
        inner = self._inner.copy()
        inner.update(message)
        outer = self._outer.copy()
        outer.update(inner.digest())
        return outer


_BLOCK = 64  # SHA-256's block, in bytes


def _hex_mac(key: bytes | KeyedMac, message: bytes) -> str:
    if isinstance(key, KeyedMac):
        return key.hexdigest(message)
    return hmac.new(key, message, hashlib.sha256).hexdigest()


def derive(secret: bytes, purpose: str) -> bytes:
    """The key of one use (``"result"``, ``"state"``, ``"audit-head"``) from the secret."""
    return hmac.new(secret, b"qmk-seal:" + purpose.encode(), hashlib.sha256).digest()


def data_digest(data: bytes) -> str:
    """SHA-256 (hex) of a stored result's JSON bytes, as its audit line records it."""
    return hashlib.sha256(data).hexdigest()


def result_seal(
    key: bytes | KeyedMac, job_id: str, digest: str, meta: str, meta_sha256: str | None = None
) -> str:
    """The seal of job ``job_id``'s stored result: its JSON's ``digest``
    (:func:`data_digest`) and its index's text ``meta`` (``key``: the key, or its
    :class:`KeyedMac`, the same seal); ``meta_sha256``: that text's SHA-256, where it was
    taken already (a wrong one makes a seal the result fails when read).

    >>> key = derive(b"s" * 32, "result")
    >>> result_seal(key, "j1", "ab", "{}") == result_seal(
    ...     key, "j1", "ab", "{}", hashlib.sha256(b"{}").hexdigest())
    True
    """
    if meta_sha256 is None:
        meta_sha256 = hashlib.sha256(meta.encode()).hexdigest()
    body = "\0".join(("result", job_id, digest, meta_sha256))
    return _hex_mac(key, body.encode())


def program_seal(key: bytes | KeyedMac, job_id: str, tenant: str, digest: str, size: int) -> str:
    """The seal of job ``job_id``'s stored program: ``"<size>:<HMAC>"`` of the tenant's
    program whose text has SHA-256 ``digest`` (its run request's ``program_digest``) and
    ``size`` bytes of UTF-8.

    >>> key = derive(b"s" * 32, "result")
    >>> seal = program_seal(key, "j1", "alice", "ab", 120)
    >>> seal.split(":")[0], sealed_size(key, "j1", "alice", "ab", seal)
    ('120', 120)
    >>> sealed_size(key, "j1", "bob", "ab", seal), sealed_size(key, "j1", "alice", "ab", None)
    (None, None)
    """
    body = "\0".join(("program", job_id, tenant, digest, str(size)))
    return f"{size}:{_hex_mac(key, body.encode())}"


def sealed_size(
    key: bytes | KeyedMac, job_id: str, tenant: str, digest: str, seal: str | None
) -> int | None:
    """The size in bytes ``seal`` vouches for job ``job_id``'s program of SHA-256
    ``digest``; None when it is no seal of that job, tenant and digest under ``key``."""
    size = (seal or "").partition(":")[0]
    if not size.isdigit() or len(size) > 12:
        return None
    expected = program_seal(key, job_id, tenant, digest, int(size))
    return int(size) if hmac.compare_digest(seal or "", expected) else None


def sealed_result(
    key: bytes | KeyedMac, job_id: str, data: bytes, meta: str, seal: str | None
) -> bool:
    """Whether ``seal`` is the seal of job ``job_id``'s stored result (its JSON ``data``
    and its index's text ``meta``) under ``key``; a missing seal is not.

    >>> key = derive(b"s" * 32, "result")
    >>> seal = result_seal(key, "j1", data_digest(b"{}"), "{}")
    >>> sealed_result(key, "j1", b"{}", "{}", seal), sealed_result(key, "j1", b"{}", "{}", None)
    (True, False)
    """
    expected = result_seal(key, job_id, data_digest(data), meta)
    return seal is not None and hmac.compare_digest(seal, expected)


def seal_state(key: bytes, data: bytes) -> bytes:
    """``data`` (an execution state's bytes) with its trailer."""
    return data + STATE_TRAILER + hmac.new(key, data, hashlib.sha256).digest()


def unseal_state(key: bytes, sealed: bytes) -> bytes:
    """The state's bytes of a sealed file.

    Raises:
        JobError: ``QK309 checkpoint-tampered`` when the trailer is missing or its HMAC
            does not match.
    """
    cut = len(sealed) - _MAC_BYTES - len(STATE_TRAILER)
    if cut < 0 or sealed[cut : cut + len(STATE_TRAILER)] != STATE_TRAILER:
        raise JobError.of(
            "checkpoint-tampered", "the checkpoint carries no seal of this kernel (not its file)"
        )
    data, mac = sealed[:cut], sealed[-_MAC_BYTES:]
    if not hmac.compare_digest(mac, hmac.new(key, data, hashlib.sha256).digest()):
        raise JobError.of(
            "checkpoint-tampered",
            "the checkpoint's seal does not match its content (edited, or not this kernel's)",
        )
    return data


__all__ = [
    "STATE_TRAILER",
    "KeyedMac",
    "data_digest",
    "derive",
    "program_seal",
    "result_seal",
    "seal_state",
    "sealed_result",
    "sealed_size",
    "unseal_state",
]
