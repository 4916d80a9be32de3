"""Every stable code of the QVM layer: ``QF``, ``QA`` and ``QV``, as the layer reads them.

The codes are declared (and registered in :data:`qmk.errors.REGISTRY`) by
:mod:`qmk.qvm.errors`, beside the exception classes that carry them; this module gives
the verifier and the docs their views. ``QF`` codes are input that cannot be read as a
graph, and ``QA`` codes assembly text that does not assemble (both exit status 2).
``QV`` codes are verifier findings about a graph that was read (exit status 1 when any
has severity ``error``).

>>> CODES["QV101"].name
'unknown-op'
>>> BY_NAME["use-after-free"].code
'QV202'
"""

from __future__ import annotations

from collections.abc import Mapping
from types import MappingProxyType

import qmk.qvm.errors  # noqa: F401  (registers the codes read below)
from qmk.errors import REGISTRY, ErrorCode, Severity

#: The QVM layer's codes are :class:`qmk.errors.ErrorCode` entries.
Code = ErrorCode

#: Every code by its code string, in table order.
CODES: Mapping[str, ErrorCode] = REGISTRY.family("QF", "QA", "QV")
#: Every code by its name.
BY_NAME: Mapping[str, ErrorCode] = MappingProxyType({c.name: c for c in CODES.values()})

__all__ = ["BY_NAME", "CODES", "Code", "Severity"]
