"""Errors of the front-ends: where in the source, and what is wrong (exit status 2).

>>> err = FrontendError.at("unsupported", "prog.qasm", 7, "gate rccx is not supported")
>>> str(err)
'QL104 unsupported: prog.qasm:7: gate rccx is not supported'
>>> err.exit_status, err.details["line"]
(2, 7)
"""

from __future__ import annotations

from typing import Any

from qmk.errors import QMKError

#: name -> (code, what it means). The codes are stable.
CODES: dict[str, tuple[str, str]] = {
    "syntax": ("QL101", "the source does not parse"),
    "undefined": ("QL102", "a gate, register, variable or function that is not defined"),
    "arity": ("QL103", "a gate or call with the wrong number of qubits or parameters"),
    "unsupported": ("QL104", "a construct QMK does not support (named, never dropped)"),
    "unreadable": ("QL105", "a file that cannot be read, or truncated/invalid bitcode"),
    "missing-extra": ("QL106", "an optional dependency the front-end needs is not installed"),
    "bad-value": ("QL107", "a value out of range (index, angle, width, shots)"),
    "unknown-format": ("QL108", "a file type QMK cannot tell: pass --format"),
}


class FrontendError(QMKError):
    """A source program the front-end cannot lower (exit 2)."""

    exit_status = 2

    @classmethod
    def of(cls, name: str, message: str, **details: Any) -> FrontendError:
        """The error for ``name`` (a key of :data:`CODES`)."""
        return cls(CODES[name][0], name, message, details=details)

    @classmethod
    def at(
        cls, name: str, source: str, line: int | None, message: str, **details: Any
    ) -> FrontendError:
        """The error for ``name`` at ``source:line`` (``line`` None: the whole source)."""
        where = f"{source}:{line}: " if line is not None else f"{source}: "
        return cls.of(name, where + message, source=source, line=line, **details)
