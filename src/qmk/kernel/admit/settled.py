"""What admission made of a program, kept for its next job with another seed.

A bench's jobs and a user's sweep submit one program again and again under one policy,
each with its own seed. What :meth:`qmk.kernel.admit.admission.Admission.admit` makes of
it (the policy with the program's ``SET_POLICY`` hints, the firewall's answer, the
physics, the physical qubits, the run request but for its seed, the footprint) depends
only on the verified program, the parsed policy, the configuration, the calibrations
ingested and the shots: :class:`SettledAnswers` keeps it by (graph text, tenant,
target) and gives it back while those are the very ones it was made from. The checks
that depend on the moment are admission's to run each time.

A submit's policy arrives as a new dict each time: :func:`parse_kept` parses one of
plain JSON once by its JSON text, so that the jobs of one policy share its parsed form
(the object :meth:`SettledAnswers.find` compares).
"""

from __future__ import annotations

import math
from collections import OrderedDict
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import msgspec

from qmk.kernel.records.jobs import parse_policy

if TYPE_CHECKING:
    from collections.abc import Mapping

    from qmk.execution.footprint import Footprint
    from qmk.execution.request import Policy, RunRequest
    from qmk.execution.targets import TargetSpec
    from qmk.kernel.config import KernelConfig
    from qmk.memo import Memo

_ENCODE = msgspec.json.Encoder().encode


@dataclass(frozen=True, slots=True, kw_only=True)
class Settled:
    """What admission made of a program under a policy, and what it was made from."""

    program: Any  #: the verified program (the very object)
    given: Policy  #: the submit's parsed policy (the very object) ...
    config: KernelConfig  #: ... under this configuration object ...
    calibrations: int  #: ... after this many calibrations ingested ...
    shots: int  #: ... for these shots
    policy: Policy  #: the policy with the program's SET_POLICY hints (no deadline)
    #: the firewall's answer (no channel bound) less the tenants it holds no qubit of: the
    #: ``qubits`` its jobs share (a mapping never changed)
    qubits: dict[str, int]
    warnings: tuple[dict[str, str], ...]
    request: RunRequest  #: the run request, of another seed
    physical: int  #: peak physical qubits, at most one module's
    #: Syndrome bits per second its plan asks of the decoders (None: not priced so).
    decoder_load: float | None
    #: Each profile's logical error per cycle, as priced (None: not priced so).
    logical_errors: dict[str, float] | None
    footprint: Footprint | None
    cacheable: bool  #: whether its runs may be answered from the result cache, and answer


class SettledAnswers:
    """The last :class:`Settled` of each (graph text, tenant, target), the ``most`` used
    last.

    >>> answers = SettledAnswers(2)
    >>> from qmk.execution.targets import spec
    >>> answers.find(("{}", "alice", spec("logical")), {}, object(), None, None, 0, 10) is None
    True
    """

    def __init__(self, most: int) -> None:
        self.most = most
        self._entries: OrderedDict[tuple[str, str, str], Settled] = OrderedDict()
        #: How many look-ups found an answer.
        self.hits = 0

    def find(
        self,
        job: tuple[str, str, TargetSpec],
        options: Mapping[str, Any],
        program: Any,
        given: Any,
        config: Any,
        calibrations: int,
        shots: int,
    ) -> Settled | None:
        """The answer kept for ``job`` (its graph text, tenant and target) if it was made
        from this very ``program``, parsed policy ``given`` and ``config``, after
        ``calibrations`` ingests, for ``shots``; None otherwise, and for a job with target
        ``options`` or on a target that is not the logical machine."""
        text, tenant, target = job
        if options or not target.logical_machine:
            return None
        key = (text, tenant, target.name)
        settled = self._entries.get(key)
        if (
            settled is None
            or settled.program is not program
            or settled.given is not given
            or settled.config is not config
            or settled.calibrations != calibrations
            or settled.shots != shots
        ):
            return None
        self._entries.move_to_end(key)
        self.hits += 1
        return settled

    def keep(self, key: tuple[str, str, str], settled: Settled) -> None:
        """Keep ``settled`` for ``key`` (the least recently used past ``most`` go)."""
        self._entries[key] = settled
        self._entries.move_to_end(key)
        if len(self._entries) > self.most:
            self._entries.popitem(last=False)

    def clear(self) -> None:
        """Keep nothing made so far."""
        self._entries.clear()

    def __len__(self) -> int:
        return len(self._entries)


def parse_kept(
    memo: Memo[Policy], policy: Any, default_timeout_s: float, default_priority: int
) -> Policy:
    """:func:`~qmk.kernel.records.jobs.parse_policy` of a submit's ``policy``; that of a
    policy of plain JSON (:func:`plain`) is kept in ``memo`` by its JSON text (which
    tells ``1``, ``1.0`` and ``true`` apart) and the defaults; no policy is kept as the
    empty one, so that every submit that gives none shares one. A refused one is parsed
    again each time, its refusal with it."""

    def parse(given: Any) -> Policy:
        return parse_policy(
            given, default_timeout_s=default_timeout_s, default_priority=default_priority
        )

    if policy is None or (type(policy) is dict and not policy):  # none: the empty one's
        return memo.get((b"{}", default_timeout_s, default_priority), None, lambda: parse({}))
    if type(policy) is not dict or not plain(policy):
        return parse(policy)
    try:
        key = _ENCODE(policy)
    except (TypeError, ValueError, OverflowError):  # an integer past 64 bits
        return parse(policy)
    return memo.get((key, default_timeout_s, default_priority), None, lambda: parse(policy))


def plain(value: Any) -> bool:
    """Whether ``value`` is plain JSON data: dicts of string keys, lists, strings,
    integers, finite floats, booleans and nulls, each of exactly its type (so its JSON
    text is one value's only).

    >>> plain({"priority": 3, "channels": {"c": "ch_1"}}), plain({"x": (1,)})
    (True, False)
    >>> plain({"deadline": float("nan")})
    False
    """
    kind = type(value)
    if kind is str or kind is int or kind is bool or value is None:
        return True
    if kind is float:
        return math.isfinite(value)
    if kind is list:
        return all(plain(item) for item in value)
    if kind is dict:
        return all(type(k) is str and plain(item) for k, item in value.items())
    return False


__all__ = ["Settled", "SettledAnswers", "parse_kept", "plain"]
