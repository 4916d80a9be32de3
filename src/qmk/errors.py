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
     +-- SyscallError                 a qSyscall request the kernel refused (QS1xxx)
          +-- AuthError, SessionError (+ SessionExpired), CapabilityError,
              NotFoundError, QuotaError, AdmissionError, ProgramError, StateError,
              FirewallError, UnavailableError, InvalidArgument

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


# --------------------------------------------------------------------------- qSyscall errors
#
# The kernel raises these; the JSON-RPC layer (qmk.abi) sends them as
# ``{"code": rpc_code, "message": str(error), "data": {"name": name, "code": code, ...details}}``
# and the client (qmk.client) raises the same class again from ``rpc_code``. They live
# here, in the module every layer may import, so the server and the client share one
# table without the client importing the kernel.


class SyscallError(QMKError):
    """A qSyscall request the kernel refused. Subclasses fix ``rpc_code`` and ``name``.

    Args:
        message: one line saying what was wrong.
        details: JSON-able data (e.g. ``missing`` capabilities, ``job_id``, limits).
    """

    rpc_code: int = 1000
    error_name: str = "syscall-error"
    exit_status = 1

    def __init__(self, message: str, **details: Any) -> None:
        super().__init__(f"QS{self.rpc_code}", self.error_name, message, details=details)

    def to_rpc(self) -> dict[str, Any]:
        """The JSON-RPC ``error`` object."""
        return {
            "code": self.rpc_code,
            "message": str(self),
            "data": {"name": self.name, "code": self.code, **self.details},
        }


class AuthError(SyscallError):
    """Unknown tenant or wrong key."""

    rpc_code, error_name = 1001, "auth-failed"


class SessionError(SyscallError):
    """A session id that is forged, malformed, revoked or of no live session."""

    rpc_code, error_name = 1002, "invalid-session"


class SessionExpired(SessionError):
    """A session id whose lifetime is over: negotiate again."""

    rpc_code, error_name = 1003, "session-expired"


class CapabilityError(SyscallError):
    """The session lacks capabilities the request needs; ``details["missing"]`` lists them."""

    rpc_code, error_name = 1004, "capability-denied"


class NotFoundError(SyscallError):
    """No such job, channel or checkpoint for this tenant (another tenant's is "not found")."""

    rpc_code, error_name = 1005, "not-found"


class QuotaError(SyscallError):
    """A tenant quota (qubits, concurrent or queued jobs, channels) would be exceeded."""

    rpc_code, error_name = 1006, "quota-exceeded"


class AdmissionError(SyscallError):
    """The machine cannot hold the job at all (physical-qubit inventory)."""

    rpc_code, error_name = 1007, "admission-refused"


class ProgramError(SyscallError):
    """The submitted program is malformed or fails verification; details carry findings."""

    rpc_code, error_name = 1008, "invalid-program"


class StateError(SyscallError):
    """The request does not fit the object's state (e.g. restore a job with no checkpoint)."""

    rpc_code, error_name = 1009, "invalid-state"


class FirewallError(SyscallError):
    """An operation would entangle two tenants' qubits without a channel between them."""

    rpc_code, error_name = 1010, "entanglement-firewall"


class UnavailableError(SyscallError):
    """The kernel is draining or cannot take the request now; retry later."""

    rpc_code, error_name = 1011, "unavailable"


class InvalidArgument(SyscallError):
    """A parameter has the right type but a value the kernel cannot accept."""

    rpc_code, error_name = 1012, "invalid-argument"


#: rpc_code -> class: the one table the server and the client both read.
SYSCALL_ERRORS: dict[int, type[SyscallError]] = {
    cls.rpc_code: cls
    for cls in (
        AuthError,
        SessionError,
        SessionExpired,
        CapabilityError,
        NotFoundError,
        QuotaError,
        AdmissionError,
        ProgramError,
        StateError,
        FirewallError,
        UnavailableError,
        InvalidArgument,
    )
}


def syscall_error(rpc_code: int, message: str, details: dict[str, Any] | None = None) -> QMKError:
    """The exception for a JSON-RPC error object received from a kernel.

    >>> text = "QS1004 capability-denied: needs CAP_LINK"
    >>> err = syscall_error(1004, text, {"missing": ["CAP_LINK"]})
    >>> type(err).__name__, err.details["missing"]
    ('CapabilityError', ['CAP_LINK'])
    """
    cls = SYSCALL_ERRORS.get(rpc_code, SyscallError)
    details = dict(details or {})
    details.pop("name", None)
    details.pop("code", None)
    prefix = f"QS{cls.rpc_code} {cls.error_name}: "
    return cls(message.removeprefix(prefix), **details)
