"""Structured logs: one JSON object per line, with the job id, tenant and trace id.

``qmk serve --log-format json`` formats every record of the ``qmk`` loggers with
:class:`JsonFormatter`. A record's ``extra`` fields named in :data:`FIELDS` become keys
of its line. The HTTP layer logs each request (logger ``qmk.http.access``: method,
route, status, duration, tenant, job id, trace id) at level ``info``, and each job
transition too (``qmk.http.jobs``: job id, tenant, state, trace id).

>>> import logging
>>> record = logging.LogRecord("qmk.http.jobs", logging.INFO, "", 0, "job %s %s",
...     ("job_1", "QUEUED"), None)
>>> record.job_id, record.tenant, record.trace_id = "job_1", "alice", "ab" * 16
>>> line = json.loads(JsonFormatter().format(record))
>>> line["message"], line["job_id"], line["tenant"], line["level"]
('job job_1 QUEUED', 'job_1', 'alice', 'info')
"""

from __future__ import annotations

import json
import logging
from typing import Any

#: The ``extra`` fields a line carries when a record has them, in this order.
FIELDS: tuple[str, ...] = (
    "job_id",
    "tenant",
    "trace_id",
    "span_id",
    "state",
    "method",
    "route",
    "path",
    "status",
    "duration_ms",
    "code",
    "incident",
)


class JsonFormatter(logging.Formatter):
    """Formats a record as one JSON line: ``ts``, ``level``, ``logger``, ``message``, then
    the fields of :data:`FIELDS` it has, and ``exc`` (the traceback) when it carries one."""

    def format(self, record: logging.LogRecord) -> str:
        data: dict[str, Any] = {
            "ts": round(record.created, 6),
            "level": record.levelname.lower(),
            "logger": record.name,
            "message": record.getMessage(),
        }
        for key in FIELDS:
            value = record.__dict__.get(key)
            if value is not None:
                data[key] = value
        if record.exc_info:
            data["exc"] = self.formatException(record.exc_info)
        return json.dumps(data, ensure_ascii=False, default=str)


#: The loggers whose every line counts (one per request, one per job transition): a
#: rate limit on like lines (:class:`qmk.abi.server.RepeatFilter`) must not thin them.
EVERY_LINE: tuple[str, ...] = ("qmk.http.access", "qmk.http.jobs")


class Except(logging.Filter):
    """``inner``, except for the records of the loggers ``names``, which always pass.

    >>> class Never(logging.Filter):
    ...     def filter(self, record): return False
    >>> rule = Except(Never(), EVERY_LINE)
    >>> def record(name): return logging.LogRecord(name, logging.INFO, "", 0, "x", None, None)
    >>> rule.filter(record("qmk.http.access")), rule.filter(record("qmk.abi.server"))
    (True, False)
    """

    def __init__(self, inner: logging.Filter, names: tuple[str, ...]) -> None:
        super().__init__()
        self.inner = inner
        self.names = names

    def filter(self, record: logging.LogRecord) -> bool:
        return record.name in self.names or bool(self.inner.filter(record))
