"""What a worker answers for one attempt of a job: a tagged union of msgspec structs.

An attempt (:func:`qmk.kernel.pools.attempt.run_job`) ends one of four ways, each a frozen
struct that crosses the process boundary (the local pool's framed line, a Dask cluster)
as it is and is read back by its type, never by looking for keys:

- :class:`Done`: the run's result, encoded once in the worker (its JSON bytes, index and
  SHA-256: :func:`qmk.kernel.records.encoded.encode_result`), with the artifacts a device job
  streamed;
- :class:`Ran`: a result as its object, for the kernel to encode: a part of a split job
  (:mod:`qmk.execution.parts`), or the parts merged by the Dask pool;
- :class:`Failed`: a refusal or an error of the program or engine (``{code, name,
  message}``);
- :class:`Yielded`: the kernel asked the job to stop and it did, its state saved at the
  program's fence ``epoch``.

Each carries the spans of a traced attempt (:mod:`qmk.execution.spans`), empty
otherwise. What crosses the pool's line is plain data (the pool unpickles plain data
only, so a worker cannot make it run code): a worker's outcome as its MessagePack
(:func:`pack`: bytes, which the pool unpickles at once, read back by the union's typed
decoder, where a dict of a few dozen keys is slow to unpickle). Or it crosses as its tag
``kind`` and fields (:func:`encode`: the Dask pool's merged parts, a test's probe).
:func:`decode` reads either back, checked, as the struct.

>>> outcome = Failed(error=Failure(code="QK202", name="worker-failed", message="died"))
>>> import msgspec; msgspec.to_builtins(outcome)["kind"]
'failed'
>>> decode(encode(outcome)) == outcome == decode(pack(outcome))
True
"""

from __future__ import annotations

from typing import Any, Union

import msgspec

from qmk.errors import QMKError
from qmk.kernel.records.stored import StoredResult


class _Outcome(msgspec.Struct, frozen=True, kw_only=True, tag_field="kind"):
    """An attempt's end (see the module docstring)."""

    #: The spans a traced attempt recorded in its worker (none untraced).
    spans: list[dict[str, Any]] = []


class Done(_Outcome, frozen=True, kw_only=True, tag="done"):
    """A result encoded in the worker, once: the kernel stores and serves these bytes."""

    result_json: bytes
    #: Its index (:class:`~qmk.kernel.records.stored.StoredResult`'s ``meta``) as the store
    #: keeps it, without the head (the text holds it; the kernel reads what it needs of
    #: it with :attr:`~qmk.kernel.records.stored.StoredResult.facts`), taken as it is
    #: (typed ``Any`` so that reading an outcome back does not walk it, a dict of every
    #: mark of the counts: the kernel reads one per job). An index that holds the head
    #: is read as it comes: the store drops it (:func:`~qmk.kernel.storage.store.meta_text`).
    result_meta: Any
    result_sha256: str
    #: Its index's text as the store writes it and that text's SHA-256, which the result's
    #: seal covers (:func:`qmk.kernel.storage.store.meta_text`), made here off the kernel's
    #: loop; "" for the kernel to make them.
    result_meta_text: str = ""
    result_meta_sha256: str = ""
    #: The artifacts a device job's ``stream`` asked for (:mod:`qmk.kernel.storage.artifacts`).
    artifacts: list[dict[str, Any]] = []


class Ran(_Outcome, frozen=True, kw_only=True, tag="ran"):
    """A result as its object (a :class:`~qmk.execution.result.RunResult`'s JSON): a part
    of a split job, or the parts merged, for the kernel to encode."""

    result: dict[str, Any]


class Failure(msgspec.Struct, frozen=True, kw_only=True):
    """A coded error as a failed job keeps it (its ``error``)."""

    code: str
    name: str
    message: str

    @classmethod
    def of(cls, error: QMKError) -> Failure:
        """The failure of a coded error."""
        return cls(code=error.code, name=error.name, message=error.message)

    def to_json(self) -> dict[str, str]:
        """``{code, name, message}``: a job's ``error`` member."""
        return {"code": self.code, "name": self.name, "message": self.message}


class Failed(_Outcome, frozen=True, kw_only=True, tag="failed"):
    """A refusal or an error of the program or engine."""

    error: Failure

    @classmethod
    def of(cls, error: QMKError) -> Failed:
        """The outcome of a coded error."""
        return cls(error=Failure.of(error))


class Yielded(_Outcome, frozen=True, kw_only=True, tag="yielded"):
    """The job stopped as the kernel asked, its state saved at the program's fence."""

    epoch: int | None


#: An attempt's end, one of the four.
Outcome = Union[Done, Ran, Failed, Yielded]  # noqa: UP007 (a value: the union msgspec reads)

#: Every form of :data:`Outcome`, by tag (a test holds each to a golden JSON file).
OUTCOMES: dict[str, type[_Outcome]] = {
    cls.__struct_config__.tag: cls  # type: ignore[misc]
    for cls in (Done, Ran, Failed, Yielded)
}


def encode(outcome: Outcome) -> dict[str, Any]:
    """``outcome`` as the plain data a worker sends: its tag and fields (their values
    are plain data already, bytes kept as bytes; a failure's its ``{code, name,
    message}``), not copied."""
    data: dict[str, Any] = {"kind": outcome.__struct_config__.tag}
    for name in outcome.__struct_fields__:
        data[name] = getattr(outcome, name)
    if isinstance(outcome, Failed):
        data["error"] = outcome.error.to_json()
    return data


def pack(outcome: Outcome) -> bytes | dict[str, Any]:
    """``outcome`` as a worker sends it: its MessagePack (the tag ``kind`` first), or
    its plain data (:func:`encode`) where a value is past what MessagePack holds (an
    integer beyond 64 bits, a complex number: the pool's plain data holds them, as it
    always did). :func:`decode` reads either back as the same struct."""
    try:
        return _PACK(outcome)
    except (OverflowError, TypeError):
        return encode(outcome)


_PACK = msgspec.msgpack.Encoder().encode
_UNPACK = msgspec.msgpack.Decoder(Outcome).decode


def decode(data: Any) -> Outcome:
    """The outcome a worker's answer is: :func:`pack`'s bytes, or :func:`encode`'s plain
    data.

    Raises:
        msgspec.ValidationError, msgspec.DecodeError (ValueErrors): ``data`` is no
            outcome (a worker that answered junk).
    """
    if isinstance(data, bytes):
        packed: Outcome = _UNPACK(data)
        return packed
    # the form by its tag, then that struct checked (msgspec converts to one struct
    # much faster than to the union, which the kernel would pay per job)
    form = (
        OUTCOMES[data["kind"]] if isinstance(data, dict) and data.get("kind") in OUTCOMES else None
    )
    if form is None:
        raise msgspec.ValidationError(f"not a worker's outcome: {str(data)[:200]}")
    outcome: Outcome = msgspec.convert(data, form)  # type: ignore[assignment]
    return outcome


def result_of(outcome: Done | Ran) -> StoredResult:
    """The result of a worker's successful ``outcome``: its JSON and index as the worker
    encoded them (:class:`Done`, with the digests it took), or a result object (a
    part's, or a Dask job's parts merged in the kernel) encoded here."""
    if isinstance(outcome, Done):
        return StoredResult(
            outcome.result_json,
            outcome.result_meta,
            sha256=outcome.result_sha256,  # the worker's (a wrong one fails its own seal)
            meta_text=(outcome.result_meta_text, outcome.result_meta_sha256)
            if outcome.result_meta_text
            else None,
        )
    from qmk.kernel.records.encoded import encode_result  # a result not encoded yet

    return encode_result(outcome.result)


__all__ = [
    "OUTCOMES",
    "Done",
    "Failed",
    "Failure",
    "Outcome",
    "Ran",
    "Yielded",
    "decode",
    "encode",
    "pack",
    "result_of",
]
