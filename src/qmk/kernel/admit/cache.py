"""The result cache: a submit whose run is a completed job's run is answered with that
job's stored result, at once and without a worker.

A job's **run** is its run request as its worker ran it, with the fault policies'
changes made (:func:`qmk.kernel.admit.adjusted.adjust`). It leaves out what does not change
a result: the policy, the trace context, the save cadence
(:func:`qmk.execution.request.run_key`). What remains is the program's digest, shots,
seed, the engine and precision asked for, and the physics (noise, qubit, profile, noise
model, calibration, the program's rewrite). Its **cache key** is the SHA-256 of the
tenant's name and that digest (:func:`cache_key`), so no tenant's key is another's.

- A job that COMPLETEs after a run of its own keeps its key (``jobs.cache_key``, an
  indexed column of the store: :meth:`ResultCache.index`).
- A job being accepted looks up the key of the run it would start now
  (:meth:`ResultCache.lookup`). That run takes the fault policies' answer at this epoch.
  The newest COMPLETED job of the same tenant with that key answers it, if its result
  is stored and younger than ``result_keep_s``. The new job is COMPLETED in the same
  turn with a copy of that result. Its telemetry says ``cache_hit: true`` and
  ``cached_from`` (the source job). Its attest line is its own run request with
  ``cache_hit: true``, ``cached_from`` and the source's counts digest. So ``qmk audit
  replay`` runs it and finds the same counts.
- Some jobs are not cached, neither answered nor answering. Those are a job whose
  policy says ``cache: false`` and a job bound to channels (its qubits meet another
  tenant's). So is a job whose target streams artifacts while it runs (a device job).
  A job whose
  seed the kernel drew is never answered (its seed is fresh: a run of its own), though
  its result answers a later submit that names that seed. A job whose deadline has
  passed when it is accepted is not answered either: it ends TIMED_OUT as any would.

A source's result that retention deleted, or that is past ``result_keep_s``, answers
nothing; a job answered from the cache is never a source itself, so a result is served
no longer than its own run's retention.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import msgspec
from msgspec.structs import replace

from qmk.errors import QMKError
from qmk.execution.request import DEFAULT_TARGET, Policy, RunRequest, run_key, run_key_text
from qmk.execution.targets import spec
from qmk.kernel.admit.faults import FaultPolicies
from qmk.kernel.config import KernelConfig
from qmk.kernel.records.jobs import Job
from qmk.kernel.records.stored import StoredResult, with_telemetry
from qmk.kernel.storage.store import Store


def cacheable(policy: Policy, target: str = DEFAULT_TARGET) -> bool:
    """Whether a job of ``policy`` on ``target`` may be answered from the cache and answer
    others: not a job that streams artifacts while it runs (its target's ``streams``: a
    device job), whose streams a cached answer would not have."""
    return policy.cache and not policy.channels and not spec(target).streams


def cache_key(tenant: str, request: RunRequest) -> str:
    """The cache key of ``tenant``'s run ``request`` (see the module docstring).

    >>> request = RunRequest(program_digest="ab" * 32, shots=10, seed=1)
    >>> cache_key("alice", request) == cache_key("bob", request)
    False
    >>> traced = replace(request, trace_context="00-" + "1" * 32 + "-" + "2" * 16 + "-01")
    >>> cache_key("alice", request) == cache_key("alice", traced)  # a trace changes no result
    True
    """
    return _made(tenant, request)[1]


def _made(tenant: str, request: RunRequest) -> tuple[RunRequest, str]:
    """The run of ``request`` as the cache key reads it (:func:`_keyed`) and the key of
    ``tenant``'s run: a later run of the same tenant equal to that one has that key."""
    keyed = _keyed(request)
    return keyed, _key_of(tenant, keyed, _ENCODE(keyed))


def _key_of(tenant: str, keyed: RunRequest, encoded: bytes) -> str:
    """:func:`cache_key` made from ``keyed`` and its encoding ``encoded``.

    It is the SHA-256 of the tenant and ``keyed``'s run key. That key's text is its run's
    but for the seed's digits. It is kept once per run (:data:`_TEXTS`, by ``encoded``
    without those digits). So a job with a seed of its own hashes that text, but does
    not make it again."""
    digits = str(keyed.seed).encode()
    start = encoded.find(_SEED_KEY) + len(_SEED_KEY)
    end = start + len(digits)
    around: tuple[Any, bytes] | None = None
    if (
        start >= len(_SEED_KEY)  # found
        and encoded.startswith(digits, start)
        and not encoded[end : end + 1].isdigit()
        and encoded.find(_SEED_KEY, end) < 0  # the seed's own key alone
    ):
        template = encoded[:start] + encoded[end:]
        around = _TEXTS.get(template, _UNKNOWN)
        if around is _UNKNOWN:
            if len(_TEXTS) >= _TEXTS_MOST:
                _TEXTS.clear()
            around = _TEXTS[template] = _around_seed(replace(keyed, seed=_SEED_MARK))
    if around is None:  # the mark is not the seed alone: the text made whole
        digest = run_key(keyed)
    else:  # the text before the seed hashed once: the hash goes on from there
        before, after = around
        hashed = before.copy()
        hashed.update(digits)
        hashed.update(after)
        digest = hashed.hexdigest()
    return hashlib.sha256(f"{tenant}\n{digest}".encode()).hexdigest()


def _around_seed(template: RunRequest) -> tuple[Any, bytes] | None:
    """The run key text of ``template`` (seeded :data:`_SEED_MARK`) before its seed's
    digits, hashed (a SHA-256 to copy and go on with), and after them, in UTF-8; or None
    when the mark appears more than once."""
    text = run_key_text(template)
    mark = f'"seed":{_SEED_MARK}'
    if text.count(str(_SEED_MARK)) != 1 or text.count(mark) != 1:
        return None
    before, after = text.split(mark)
    return hashlib.sha256((before + '"seed":').encode("utf-8")), after.encode("utf-8")


def _keyed(request: RunRequest) -> RunRequest:
    """``request`` less what :func:`~qmk.execution.request.run_key` leaves out, hashed once.

    That is the policy, the trace and the save cadence, and a machine schedule with no
    idle noise. So a job's run encodes alike at its acceptance (no schedule yet, no
    trace) and as its worker ran it. :meth:`ResultCache.index` compares the two."""
    machine = request.machine
    if machine is not None and request.noise and machine.idle:
        return replace(request, policy=None, trace_context=None, checkpoint_every_ops=0)
    return replace(request, policy=None, trace_context=None, checkpoint_every_ops=0, machine=None)


_ENCODE = msgspec.json.Encoder().encode
#: The run key texts around the seed (:func:`_around_seed`), by the encoded run less its
#: seed's digits (:func:`_key_of`; cleared when :data:`_TEXTS_MOST` are kept): the kernel
#: runs a few programs at a few settings with many seeds.
_TEXTS: dict[bytes, tuple[Any, bytes] | None] = {}
_TEXTS_MOST = 256
_UNKNOWN: Any = object()  # not kept in :data:`_TEXTS`
_SEED_KEY = b'"seed":'
#: The seed a run's template is made with: no job's (seeds are below 2**63).
_SEED_MARK = 2**64 + 1_234_567


class KeyFilter:
    """The cache keys the store may hold, as a Bloom filter of fixed size.

    A key it never saw is answered False at once, without the store's query. That query
    would first write the job rows waiting to be written. A key it saw is looked up, and
    so is one that shares its bits. At this size that is about 1 in 2,000 at 100,000
    keys, 1 in 20 at a million.

    The kernel is the one writer of its store (the data directory is locked), so the
    keys are those of the store when the kernel opened and those it indexed since.

    >>> keys = KeyFilter()
    >>> keys.add("ab" * 32)
    >>> keys.may_hold("ab" * 32), keys.may_hold("cd" * 32)
    (True, False)
    """

    BITS = 1 << 23  # 1 MiB

    def __init__(self) -> None:
        self._bits = bytearray(self.BITS // 8)

    def _at(self, key: str) -> tuple[int, int]:
        # a key is a SHA-256 in hex: two 48-bit slices of it are two independent hashes
        mask = self.BITS - 1
        return int(key[:12], 16) & mask, int(key[12:24], 16) & mask

    def add(self, key: str) -> None:
        for bit in self._at(key):
            self._bits[bit >> 3] |= 1 << (bit & 7)

    def may_hold(self, key: str) -> bool:
        first, second = self._at(key)
        bits = self._bits
        return bool(bits[first >> 3] & (1 << (first & 7))) and bool(
            bits[second >> 3] & (1 << (second & 7))
        )


@dataclass(frozen=True, slots=True, kw_only=True)
class Hit:
    """A job the cache answers: the job whose result answers it, the copy of that result
    it gets, and the run it stands for (its attest line's request)."""

    source: str
    result: StoredResult
    request: RunRequest


class ResultCache:
    """The result cache of one kernel (see the module docstring).

    Args:
        config: the kernel configuration (``result_keep_s``).
        store: the database whose ``jobs_cache`` index holds the keys.
        faults: the fault policies, which decide the run a job would start.
        finished: the finished job of an id the kernel holds in memory, or None.
    """

    def __init__(
        self,
        config: KernelConfig,
        store: Store,
        faults: FaultPolicies,
        finished: Callable[[str], Job | None],
    ) -> None:
        self.config = config
        self.store = store
        self.faults = faults
        self.finished = finished
        self.keys = KeyFilter()
        for key in store.cache_keys():
            self.keys.add(key)

    def index(self, job: Job, ran: RunRequest) -> None:
        """``job`` completed after running ``ran``: its result answers later runs of
        ``ran`` (``job.cache_key``, stored with the job), if its policy allows."""
        job.cached_from = None
        looked_up, job.looked_up = job.looked_up, None
        if not cacheable(job.policy, ran.target):
            job.cache_key = None
            return
        if looked_up is not None and looked_up[0] == _keyed(ran):
            job.cache_key = looked_up[1]  # it ran the run its acceptance looked up (its
            # tenant's: the job's own), compared as values, not encoded again
        else:
            job.cache_key = cache_key(job.tenant, ran)
        self.keys.add(job.cache_key)

    def lookup(self, job: Job, epoch: int, now: float) -> Hit | None:
        """The hit answering ``job`` (accepted at ``epoch``, ``now``), or None."""
        if not job.cache_lookup:
            return None
        if job.deadline is not None and job.deadline <= now:
            return None  # past its deadline already: it ends TIMED_OUT, as any job would
        try:  # the run it would start now (its start reuses it); a refusal is the start's
            request = self.faults.foresee(job, epoch)
        except QMKError:
            return None
        # kept for its end (:meth:`index`), which then hashes nothing again
        job.looked_up = _made(job.tenant, request)
        key = job.looked_up[1]
        if not self.keys.may_hold(key):  # no job has had this key
            return None
        since = now - self.config.result_keep_s
        source_id = self.store.cache_source(job.tenant, key, since)
        if source_id is None:
            return None
        source = self.finished(source_id) or self.store.load_job(source_id, job.tenant)
        if source is None or source.result is None:
            return None
        result = with_telemetry(source.result, cache_hit=True, cached_from=source_id)
        return Hit(source=source_id, result=result, request=request)


__all__ = ["Hit", "KeyFilter", "ResultCache", "cache_key", "cacheable"]
