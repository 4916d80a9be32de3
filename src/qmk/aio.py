"""asyncio names QMK needs that Python 3.10 lacks, from one place.

On 3.11+ these are :class:`asyncio.TaskGroup` and :func:`asyncio.timeout`; on 3.10
they come from the ``taskgroup`` backport (a dependency there only).
"""

from __future__ import annotations

import sys

if sys.version_info >= (3, 11):
    from asyncio import TaskGroup, timeout
else:  # pragma: no cover - exercised on 3.10 only
    from taskgroup import TaskGroup, timeout

__all__ = ["TaskGroup", "timeout"]
