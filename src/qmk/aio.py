"""asyncio names QMK needs that Python 3.10 lacks, from one place.

On 3.11+ these are :class:`asyncio.TaskGroup`, :class:`asyncio.Timeout`,
:func:`asyncio.timeout` and :func:`asyncio.timeout_at`; on 3.10 they come from the
``taskgroup`` backport (a dependency there only). Both raise the builtin
:class:`TimeoutError` when a scope expires.
"""

from __future__ import annotations

import sys

if sys.version_info >= (3, 11):
    from asyncio import TaskGroup, Timeout, timeout, timeout_at
else:  # pragma: no cover - exercised on 3.10 only
    from taskgroup import TaskGroup, Timeout, timeout, timeout_at

__all__ = ["TaskGroup", "Timeout", "timeout", "timeout_at"]
