"""The root of QMK's exception tree and the one registry of its error codes.

Every error QMK raises on purpose derives from :class:`QMKError` and carries a
stable ``code`` (for machines), a ``name`` (a readable slug) and a one-line
message (for people). Command-line tools print ``str(error)`` and exit with
``error.exit_status``; they never show a traceback for bad input.

Every code is one :class:`ErrorCode` in :data:`REGISTRY`: code, name, exit status,
what it means, what to do, the exception class that carries it (and its JSON-RPC
``error.code`` where it travels as one; its severity for verifier findings). The
families are listed in :data:`FAMILIES`; each registers its codes from the module
that defines its exception classes (so whoever can raise a code has its entry
loaded, and the meaning sits beside the code that raises it). Raising sites name a
code by its slug, never by a literal: ``FormatError.of("not-json", message)``.
``docs/errors.md`` is generated from the registry; a test fails when it drifts.

The whole tree (a test walks every subclass and compares it with this drawing)::

    QMKError                       qmk.errors
     +-- QVMError                  qmk.qvm.errors
     |    +-- FormatError          qmk.qvm.errors         QF001..QF013 (13)
     |    |    +-- AsmError        qmk.qvm.errors         QA001..QA006 (6)
     |    +-- VerificationError    qmk.qvm.errors         QV101..QV706 (37)
     |    +-- UnrollError          qmk.qvm.errors         QV505
     |    +-- PlacementError       qmk.qvm.errors         QV601..QV603 (3)
     +-- QECError                  qmk.qec.errors         QC101..QC133 (22)
     +-- FrontendError             qmk.frontends.errors   QL101..QL114 (14)
     +-- EngineError               qmk.engines.base       QE101..QE118 (18)
     +-- DeviceError               qmk.devices.errors     QD101..QD303 (30)
     +-- FTError                   qmk.ft.errors          QP101..QP107 (7)
     +-- TargetError               qmk.execution.targets  QM101..QM102 (2)
     +-- KernelError               qmk.kernel.errors
     |    +-- ConfigError          qmk.kernel.errors      QK101
     |    +-- DataDirError         qmk.kernel.errors      QK102..QK105 (4)
     |    +-- ExposureError        qmk.kernel.errors      QK120..QK121 (2)
     |    +-- JobError             qmk.kernel.errors      QK201..QK312 (14)
     |    +-- OperationsError      qmk.kernel.errors      QK401..QK402 (2)
     |    +-- MachineError         qmk.kernel.errors      QK501..QK505 (4)
     |         +-- WorkloadError   qmk.kernel.errors      QK502
     +-- ServeError                qmk.abi.errors         QW001..QW006 (6)
     +-- CommandError              qmk.abi.errors         QW010..QW014 (5)
     +-- SyscallError              qmk.errors             QS1000
     |    +-- AuthError            qmk.errors             QS1001
     |    +-- SessionError         qmk.errors             QS1002
     |    |    +-- SessionExpired  qmk.errors             QS1003
     |    +-- CapabilityError      qmk.errors             QS1004
     |    +-- NotFoundError        qmk.errors             QS1005
     |    +-- QuotaError           qmk.errors             QS1006
     |    +-- AdmissionError       qmk.errors             QS1007
     |    +-- ProgramError         qmk.errors             QS1008
     |    +-- StateError           qmk.errors             QS1009
     |    +-- FirewallError        qmk.errors             QS1010
     |    +-- UnavailableError     qmk.errors             QS1011
     |    +-- InvalidArgument      qmk.errors             QS1012
     +-- RpcError                  qmk.abi.errors         QR32000
     |    +-- InvalidRequest       qmk.abi.errors         QR32600
     |    +-- MethodNotFound       qmk.abi.errors         QR32601
     |    +-- InvalidParams        qmk.abi.errors         QR32602
     |    +-- InternalError        qmk.abi.errors         QR32603
     |    +-- ParseError           qmk.abi.errors         QR32700
     +-- TransportError            qmk.abi.errors         QT000
     |    +-- ConnectError         qmk.abi.errors         QT001
     |    +-- ConnectionClosed     qmk.abi.errors         QT002
     |    +-- CallTimeout          qmk.abi.errors         QT003
     |    +-- BadResponse          qmk.abi.errors         QT004
     +-- AssistError               qmk.assist.errors      QI101..QI105 (5)

The kernel's refusals (``QS``) live here, in the module every layer may import, so
the server and the client share one table of JSON-RPC codes
(:data:`SYSCALL_ERRORS`) without the client importing the kernel. This module
imports nothing else of QMK.

>>> err = CapabilityError("needs CAP_LINK", missing=["CAP_LINK"])
>>> str(err), err.exit_status
('QS1004 capability-denied: needs CAP_LINK', 1)
>>> entry = REGISTRY["QS1004"]
>>> entry.name, entry.exception.__name__, entry.rpc_code, entry.exit_status
('capability-denied', 'CapabilityError', 1004, 1)
>>> type(SyscallError.of("not-found", "no job 'j'")).__name__
'NotFoundError'
"""

from __future__ import annotations

import enum
import re
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass
from types import MappingProxyType
from typing import Any, ClassVar, TypeVar, cast

# --------------------------------------------------------------------------- the registry


class Severity(str, enum.Enum):
    """How bad a finding is: errors stop a graph from running (or a command), warnings do
    not (a verifier finding, or a notice that an option changed nothing)."""

    ERROR = "error"
    WARNING = "warning"


@dataclass(frozen=True, slots=True, kw_only=True)
class Family:
    """A family of codes: the two letters every code of it starts with.

    Attributes:
        prefix: e.g. ``"QF"``.
        title: what the family's codes are about, in a few words.
        module: the module that defines the family's exception classes and registers
            its codes (importing it loads the whole family).
    """

    prefix: str
    title: str
    module: str


#: Every family, in the order the docs list them (a program's path through QMK: its
#: format, the physics, front-ends, engines, then the kernel and the wire).
FAMILIES: Mapping[str, Family] = MappingProxyType(
    {
        f.prefix: f
        for f in (
            Family(
                prefix="QF",
                title="files that cannot be read or written, input that cannot be read as a graph",
                module="qmk.qvm.errors",
            ),
            Family(
                prefix="QA", title="assembly text that does not assemble", module="qmk.qvm.errors"
            ),
            Family(prefix="QV", title="verifier findings about a graph", module="qmk.qvm.errors"),
            Family(
                prefix="QC",
                title="the logical-qubit layer, experiments and the resource estimator",
                module="qmk.qec.errors",
            ),
            Family(
                prefix="QL",
                title="source programs a front-end cannot lower",
                module="qmk.frontends.errors",
            ),
            Family(prefix="QE", title="requests an engine refuses", module="qmk.engines.base"),
            Family(
                prefix="QD",
                title="device jobs, profiles and hardware constraints (the neutral-atom VM)",
                module="qmk.devices.errors",
            ),
            Family(
                prefix="QP",
                title="programs and options the layout compiler and lattice surgery cannot take",
                module="qmk.ft.errors",
            ),
            Family(
                prefix="QM",
                title="targets: a target that does not exist, an option a target cannot take",
                module="qmk.execution.targets",
            ),
            Family(
                prefix="QK",
                title="the kernel's configuration, and jobs it ends without a result",
                module="qmk.kernel.errors",
            ),
            Family(
                prefix="QW",
                title="a server or service command that cannot start",
                module="qmk.abi.errors",
            ),
            Family(prefix="QS", title="qSyscall requests the kernel refused", module="qmk.errors"),
            Family(prefix="QR", title="JSON-RPC 2.0's own errors", module="qmk.abi.errors"),
            Family(
                prefix="QT",
                title="a client that cannot exchange messages with a server",
                module="qmk.abi.errors",
            ),
            Family(
                prefix="QI",
                title="the assistant: its model server and drafts that fail verification",
                module="qmk.assist.errors",
            ),
        )
    }
)

_CODE = re.compile(r"Q[A-Z][0-9]{3,5}\Z")
_SLUG = re.compile(r"[a-z0-9]+(?:-[a-z0-9]+)*\Z")


@dataclass(frozen=True, slots=True, kw_only=True)
class ErrorCode:
    """One stable code: what it means, what to do, and who carries it.

    Attributes:
        code: e.g. ``"QF004"``; its first two letters name its :class:`Family`.
        name: a readable slug, unique in its family, e.g. ``"not-json"``.
        summary: what it means, in one line.
        fix: what to do about it, in one line.
        exception: the :class:`QMKError` class whose instances carry the code.
        rpc_code: the JSON-RPC ``error.code`` it travels as, or None.
        severity: for verifier findings (``QV``), error or warning; for a notice of
            another family (an option that changed nothing), warning; else None.
    """

    code: str
    name: str
    summary: str
    fix: str
    exception: type[QMKError]
    rpc_code: int | None = None
    severity: Severity | None = None

    def __post_init__(self) -> None:
        if not _CODE.match(self.code) or self.code[:2] not in FAMILIES:
            raise ValueError(f"{self.code!r} is not a code of a family in FAMILIES")
        if not _SLUG.match(self.name):
            raise ValueError(f"{self.code}: name {self.name!r} is not a lower-case slug")
        for field in ("summary", "fix"):
            text = getattr(self, field)
            if not text or "\n" in text:
                raise ValueError(f"{self.code}: {field} must be one non-empty line")
        if not (isinstance(self.exception, type) and issubclass(self.exception, QMKError)):
            raise ValueError(f"{self.code}: exception must be a QMKError subclass")

    @property
    def family(self) -> Family:
        """The family the code belongs to."""
        return FAMILIES[self.code[:2]]

    @property
    def exit_status(self) -> int:
        """The exit status of a command that stops on this code (0 for a warning)."""
        if self.severity is Severity.WARNING:
            return 0
        return self.exception.exit_status


class Registry:
    """Every :class:`ErrorCode`, by code; families add theirs with :meth:`add`."""

    def __init__(self) -> None:
        self._codes: dict[str, ErrorCode] = {}
        self._named: dict[tuple[type, str], ErrorCode] = {}

    def add(self, *entries: ErrorCode) -> None:
        """Register codes.

        Raises:
            ValueError: a code is registered already, or a name repeats in its family.
        """
        for entry in entries:
            if entry.code in self._codes:
                raise ValueError(f"{entry.code} is registered twice")
            for other in self._codes.values():
                if other.code[:2] == entry.code[:2] and other.name == entry.name:
                    raise ValueError(f"{entry.code} and {other.code} share the name {entry.name!r}")
            self._codes[entry.code] = entry
        self._named.clear()

    def __getitem__(self, code: str) -> ErrorCode:
        return self._codes[code]

    def __contains__(self, code: object) -> bool:
        return code in self._codes

    def __iter__(self) -> Iterator[ErrorCode]:
        """Every entry, families in :data:`FAMILIES` order, codes in registration order."""
        order = {prefix: index for index, prefix in enumerate(FAMILIES)}
        return iter(sorted(self._codes.values(), key=lambda e: order[e.code[:2]]))

    def __len__(self) -> int:
        return len(self._codes)

    def family(self, *prefixes: str) -> Mapping[str, ErrorCode]:
        """The codes of the families ``prefixes`` (e.g. ``"QF", "QA"``), by code."""
        return MappingProxyType({e.code: e for e in self if e.code[:2] in prefixes})

    def named(self, exception: type[QMKError], name: str) -> ErrorCode:
        """The code called ``name`` among those carried by ``exception`` or its subclasses.

        Raises:
            LookupError: no such code (the message lists the names there are).
        """
        key = (exception, name)
        entry = self._named.get(key)
        if entry is not None:
            return entry
        found = [e for e in self._codes.values() if issubclass(e.exception, exception)]
        matches = [e for e in found if e.name == name]
        if len(matches) != 1:
            problem = "no" if not matches else f"{len(matches)}"
            known = ", ".join(sorted({e.name for e in found})) or "none registered"
            raise LookupError(
                f"{problem} code named {name!r} for {exception.__name__}; known: {known}"
            )
        self._named[key] = matches[0]
        return matches[0]


#: Every registered code. Families add theirs when their module is imported.
REGISTRY = Registry()

# --------------------------------------------------------------------------- the root

E = TypeVar("E", bound="QMKError")


class QMKError(Exception):
    """Base class of every error QMK raises on purpose.

    Args:
        code: the stable code, e.g. ``"QF004"``.
        name: a readable slug for the code, e.g. ``"not-json"``.
        message: one line saying what was wrong and, where it helps, what to do.
        details: plain JSON-able data for machines (paths, limits, node ids).
    """

    exit_status: int = 2
    #: True for a class that fixes the one code its instances carry; such a class is
    #: built from a message alone: ``cls(message, **details)``.
    fixed_code: ClassVar[bool] = False

    def __init__(
        self, code: str, name: str, message: str, *, details: dict[str, Any] | None = None
    ) -> None:
        super().__init__(message)
        self.code = code
        self.name = name
        self.message = message
        self.details: dict[str, Any] = dict(details or {})

    @classmethod
    def of(cls: type[E], name: str, message: str, /, **details: Any) -> E:
        """The error for the registered code ``name`` that this class (or a subclass) carries.

        Args:
            name: the code's slug, e.g. ``"not-json"``.
            message: one line saying what was wrong.
            details: JSON-able data for machines.

        Raises:
            LookupError: no code of that name belongs to this class: a bug at the call site.

        (A ``VerificationError`` is built from the verifier's findings, not by name.)
        """
        entry = REGISTRY.named(cls, name)
        build: Any = entry.exception
        if entry.exception.fixed_code:
            return cast(E, build(message, **details))
        return cast(E, build(entry.code, entry.name, message, details=details))

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

    @staticmethod
    def from_json(data: dict[str, Any]) -> QMKError:
        """The error :meth:`to_json` gave (a process's refusal, carried as plain data),
        with its code, name, message and details."""
        return QMKError(data["code"], data["name"], data["message"], details=data["details"])


def closest(name: str, known: Iterable[str]) -> str | None:
    """The known name closest to ``name``, for the 'did you mean' of a refusal: an op, a
    code family, an engine, a command (:func:`difflib.get_close_matches`, ratio >= 0.6);
    None when none is close.

    >>> closest("rn", ["run", "serve"]), closest("statevektor", ["statevector"])
    ('run', 'statevector')
    >>> closest("xyzzy", ["run", "serve"]) is None
    True
    """
    import difflib

    matches = difflib.get_close_matches(name, list(known), n=1)
    return matches[0] if matches else None


def one_line(text: object, limit: int | None = None) -> str:
    """``text`` (a library's exception, say) as one line: its runs of white space, line
    breaks included, one space each; past ``limit`` characters cut, ``...`` after.

    >>> one_line("no libfoo.so in\\n    libbar.so\\n    libbaz.so")
    'no libfoo.so in libbar.so libbaz.so'
    >>> one_line("a b c d", limit=3)
    'a b...'
    """
    words = " ".join(str(text).split())
    return words if limit is None or len(words) <= limit else f"{words[:limit]}..."


def summary_of(cls: type) -> str:
    """The first line of a class's docstring, with RST literals as Markdown ones."""
    return (cls.__doc__ or "").strip().splitlines()[0].replace("``", "`")


def register(exception: type[QMKError], *rows: tuple[str, str, str, str]) -> None:
    """Register the codes ``exception`` carries, one ``(code, name, meaning, what to do)``
    row each."""
    REGISTRY.add(
        *(ErrorCode(code=c, name=n, summary=s, fix=f, exception=exception) for c, n, s, f in rows)
    )


def warning(exception: type[QMKError], name: str, message: str) -> dict[str, str]:
    """The warning called ``name`` of ``exception``'s codes, as a command's JSON and the
    wire carry it: ``{"code", "name", "message"}`` (:func:`warning_line` prints it).

    Raises:
        ValueError: the code is not a warning. LookupError: no such name.
    """
    entry = REGISTRY.named(exception, name)
    if entry.severity is not Severity.WARNING:
        raise ValueError(f"{entry.code} {name} is not a warning")
    return {"code": entry.code, "name": name, "message": message}


def warning_line(where: str, notice: Mapping[str, str]) -> str:
    """``WHERE: warning: CODE name: message`` (as ``qmk validate`` prints a finding)."""
    return f"{where}: warning: {notice['code']} {notice['name']}: {notice['message']}\n"


def class_code(
    cls: type[QMKError], code: str, name: str, fix: str, *, summary: str | None = None
) -> ErrorCode:
    """The entry of a class that fixes its one code (``fixed_code``); its meaning defaults
    to the first line of the class's docstring."""
    rpc_code = getattr(cls, "rpc_code", None)
    return ErrorCode(
        code=code,
        name=name,
        summary=summary or summary_of(cls),
        fix=fix,
        exception=cls,
        rpc_code=rpc_code,
    )


def wire_code(cls: Any, fix: str, summary: str | None = None) -> ErrorCode:
    """The entry of a class that fixes one JSON-RPC code (its ``rpc_code`` and
    ``error_name``): a kernel refusal (``QS`` + the code) or one of JSON-RPC's own
    (``QR`` + its magnitude)."""
    rpc_code: int = cls.rpc_code
    code = f"QS{rpc_code}" if rpc_code > 0 else f"QR{-rpc_code}"
    return class_code(cls, code, cls.error_name, fix, summary=summary)


# --------------------------------------------------------------------------- qSyscall errors
#
# The kernel raises these; the JSON-RPC layer (qmk.abi) sends them as
# ``{"code": rpc_code, "message": str(error), "data": {"name": name, "code": code, ...details}}``
# and the client (qmk.client) raises the same class again from ``rpc_code``.


class SyscallError(QMKError):
    """A qSyscall request the kernel refused. Subclasses fix ``rpc_code`` and ``error_name``.

    A refusal of a fault QMK names in another family (``details["code"]``, as ``QC106``
    for a noise model above threshold) carries that code and its name: one code for one
    fault, in ``qmk run`` and through a kernel. Its class and ``rpc_code`` still say what
    kind of refusal it is on the wire (JSON-RPC's code, the HTTP and gRPC status), and a
    refused request exits 1 either way.

    Args:
        message: one line saying what was wrong.
        details: JSON-able data (e.g. ``missing`` capabilities, ``job_id``, limits).

    >>> import qmk.qec.errors  # the QC family registers its codes
    >>> err = InvalidArgument("policy.noise_model: p at threshold", code="QC106")
    >>> str(err), err.rpc_code, err.exit_status
    ('QC106 above-threshold: policy.noise_model: p at threshold', 1012, 1)
    """

    rpc_code: ClassVar[int] = 1000
    error_name: ClassVar[str] = "syscall-error"
    exit_status = 1
    fixed_code = True

    def __init__(self, message: str, **details: Any) -> None:
        super().__init__(f"QS{self.rpc_code}", self.error_name, message, details=details)
        fault = details.get("code")
        if isinstance(fault, str) and fault[:2] != "QS" and fault in REGISTRY:
            self.code, self.name = fault, REGISTRY[fault].name

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


REGISTRY.add(
    wire_code(
        SyscallError,
        "upgrade the client to the kernel's version; the message says what was refused",
        "a refusal whose code this client does not know (a newer kernel's)",
    ),
    wire_code(AuthError, "give the tenant name and key the kernel's config lists"),
    wire_code(SessionError, "negotiate a new session with q_negotiate_caps"),
    wire_code(SessionExpired, "negotiate again (the client does so once when it holds the key)"),
    wire_code(CapabilityError, "negotiate a session with the missing capabilities, if granted"),
    wire_code(NotFoundError, "check the id; jobs, channels and checkpoints are per tenant"),
    wire_code(QuotaError, "wait for running jobs to finish, or ask for a larger quota"),
    wire_code(AdmissionError, "use a smaller code distance or fewer qubits, or a larger machine"),
    wire_code(ProgramError, "run qmk validate on the program and fix its findings"),
    wire_code(StateError, "check the object's state (q_status) before the request"),
    wire_code(
        FirewallError, "open a channel to the peer (q_open_chan) and bind it in policy.channels"
    ),
    wire_code(UnavailableError, "retry later, or against another kernel"),
    wire_code(InvalidArgument, "give a value in the range the message names"),
)

#: rpc_code -> class: the one table the server and the client both read.
SYSCALL_ERRORS: Mapping[int, type[SyscallError]] = MappingProxyType(
    {
        entry.rpc_code: cast(type[SyscallError], entry.exception)
        for entry in REGISTRY.family("QS").values()
        if entry.rpc_code is not None and entry.exception is not SyscallError
    }
)


def syscall_error(rpc_code: int, message: str, details: dict[str, Any] | None = None) -> QMKError:
    """The exception for a JSON-RPC error object received from a kernel.

    >>> text = "QS1004 capability-denied: needs CAP_LINK"
    >>> err = syscall_error(1004, text, {"missing": ["CAP_LINK"]})
    >>> type(err).__name__, err.details["missing"]
    ('CapabilityError', ['CAP_LINK'])
    >>> text = "QC106 above-threshold: policy.noise_model: p is at the threshold"
    >>> err = syscall_error(1012, text, {"name": "above-threshold", "code": "QC106"})
    >>> type(err).__name__, str(err)
    ('InvalidArgument', 'QC106 above-threshold: policy.noise_model: p is at the threshold')
    """
    cls = SYSCALL_ERRORS.get(rpc_code, SyscallError)
    details = dict(details or {})
    name, code = details.pop("name", None), details.pop("code", None)
    if isinstance(code, str) and code[:2] != "QS" and isinstance(name, str):
        details["code"] = code  # a fault of another family: its code, as the kernel's
        error = cls(message.removeprefix(f"{code} {name}: "), **details)
        error.code, error.name = code, name  # (a family this process has not loaded)
        return error
    prefix = f"QS{cls.rpc_code} {cls.error_name}: "
    return cls(message.removeprefix(prefix), **details)
