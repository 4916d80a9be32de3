"""The root of QMK's exception tree.

Every error QMK raises on purpose derives from :class:`QMKError` and carries a
stable ``code`` (for machines), a ``name`` (a readable slug) and a one-line
message (for people). Command-line tools print ``str(error)`` and exit with
``error.exit_status``; they never show a traceback for bad input.

Tree (later layers add their own branches under the same root)::

    QMKError
     +-- qmk.qvm.QVMError             the program format
          +-- qmk.qvm.FormatError     unreadable or malformed input (exit 2)
          |    +-- qmk.qvm.AsmError   assembly text that does not assemble (exit 2)
          +-- qmk.qvm.VerificationError   a graph with findings (exit 1)

This module imports nothing else of QMK, so every layer may use it.

>>> err = QMKError("QX000", "example", "something went wrong")
>>> str(err)
'QX000 example: something went wrong'
"""

from __future__ import annotations

from typing import Any


class QMKError(Exception):
    """Base class of every error QMK raises on purpose.

    Args:
        code: the stable code, e.g. ``"QF101"``.
        name: a readable slug for the code, e.g. ``"not-json"``.
        message: one line saying what was wrong and, where it helps, what to do.
        details: plain JSON-able data for machines (paths, limits, node ids).
    """

    exit_status: int = 2

    def __init__(
        self, code: str, name: str, message: str, *, details: dict[str, Any] | None = None
    ) -> None:
        super().__init__(message)
        self.code = code
        self.name = name
        self.message = message
        self.details: dict[str, Any] = dict(details or {})

    def __str__(self) -> str:
        return f"{self.code} {self.name}: {self.message}"

    def to_json(self) -> dict[str, Any]:
        """The error as plain JSON: ``{"code", "name", "message", "details"}``."""
        return {
            "code": self.code,
            "name": self.name,
            "message": self.message,
            "details": self.details,
        }
