"""Verified programs by their QVM JSON text, kept per process: the kernel's admission,
its fault policies, attestation and replay, and every worker verify a text once.

The kernel verifies big programs in threads (:mod:`qmk.kernel.budget`), so the cache
is held under a lock (the verification itself is not).
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from typing import Any

#: How many verified programs a process keeps, by graph text.
VERIFIED_CACHE_SIZE = 256
_VERIFIED: OrderedDict[str, Any] = OrderedDict()
_LOCK = threading.Lock()


def verified(text: str) -> Any:
    """The :class:`~qmk.qvm.verify.VerifiedProgram` of QVM JSON ``text`` (cached by text).

    Raises:
        QMKError: FormatError or VerificationError, as :func:`qmk.qvm.verify.verify`.
    """
    with _LOCK:
        program = _VERIFIED.get(text)
        if program is not None:
            _VERIFIED.move_to_end(text)
            return program
    from qmk.qvm import graph as graph_io
    from qmk.qvm.verify import verify

    program = verify(graph_io.loads(text))
    with _LOCK:
        _VERIFIED[text] = program
        while len(_VERIFIED) > VERIFIED_CACHE_SIZE:
            _VERIFIED.popitem(last=False)
    return program


__all__ = ["VERIFIED_CACHE_SIZE", "verified"]
