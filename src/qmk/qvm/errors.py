"""Errors of the QVM layer; each carries a code from :mod:`qmk.qvm.codes`.

>>> err = FormatError.of("not-json", "prog.json:1:2: Expecting value")
>>> str(err)
'QF004 not-json: prog.json:1:2: Expecting value'
>>> err.exit_status
2
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from qmk.errors import QMKError
from qmk.qvm.codes import BY_NAME

if TYPE_CHECKING:
    from qmk.qvm.verify import Finding


class QVMError(QMKError):
    """Base of the QVM layer's errors."""


class FormatError(QVMError):
    """Input that cannot be read as a graph: not JSON, wrong shape, too large (exit 2)."""

    exit_status = 2

    @classmethod
    def of(cls, name: str, message: str, **details: Any) -> FormatError:
        """Build the error for code ``name`` (a slug from :data:`qmk.qvm.codes.BY_NAME`)."""
        return cls(BY_NAME[name].code, name, message, details=details)

    def located(self, source: str) -> FormatError:
        """The same error with ``source:`` in front of its message."""
        return type(self)(self.code, self.name, f"{source}: {self.message}", details=self.details)


class AsmError(FormatError):
    """Assembly text that does not assemble; the message starts with ``file:line:``."""

    @classmethod
    def at(cls, name: str, source: str, line: int, message: str, text: str = "") -> AsmError:
        """Build the error for code ``name`` at ``source:line``, quoting the offending text."""
        where = f"{source}:{line}: "
        quote = f" [line is: {text.strip()}]" if text.strip() else ""
        return cls(
            BY_NAME[name].code,
            name,
            f"{where}{message}{quote}",
            details={"source": source, "line": line},
        )


class VerificationError(QVMError):
    """A graph with error findings; ``findings`` holds every one of them (exit 1)."""

    exit_status = 1

    def __init__(self, findings: Sequence[Finding]) -> None:
        errors = [f for f in findings if f.is_error]
        first = errors[0] if errors else findings[0]
        more = f" (and {len(errors) - 1} more errors)" if len(errors) > 1 else ""
        super().__init__(
            first.code,
            first.name,
            f"{first.message}{more}",
            details={"findings": [f.to_json() for f in findings]},
        )
        self.findings = tuple(findings)
