"""Device jobs' artifacts (per-shot measurements, pulse logs, state snapshots): stored
with the job, streamed over the kernel's events, kept within a quota and a time.

A device job whose policy asks for ``stream`` (:class:`qmk.devices.neutral_atom.streams.StreamSpec`)
has its worker build the artifacts beside the result; when the worker is done, before
the job's ``COMPLETED`` line, :meth:`Artifacts.take`:

- **streams** each artifact's records as ``stream`` events, :data:`PART_RECORDS` records a
  part (``{"event": "stream", "job_id", "tenant", "artifact", "kind", "part", "parts",
  "records"}``). Every listener of the audit log hears them (the REST API's SSE streams,
  ``GET /v1/jobs/{id}/events`` and ``/v1/events``). They are not audit lines (the data
  is the artifact's, kept once); their ``seq`` is that of the audit line before;
- **stores** them under ``DATA_DIR/artifacts/<job_id>/`` (one JSON file each and an
  ``index.json``; folders 0700 and files 0600 whatever the umask, and checked at start
  like the rest of the data directory: :func:`qmk.kernel.storage.datadir.lax_paths`), or in
  memory for a kernel without a data directory;
- **bounds** them by each tenant's ``[tenants.NAME] max_artifact_storage_mb``. While a
  tenant's stored artifacts fill it, a job asking for streams is refused at submit
  (``QS1006``, :meth:`qmk.kernel.admit.admission.Admission.admit`). The artifacts of a
  job admitted before it filled are not stored (the index lists them under ``dropped``
  with the reason; their stream events still went out). An artifact is stored while the
  tenant is under the quota, so the last one may pass it by its own size;
- **expires** them ``[kernel] artifact_keep_s`` after they were stored (:meth:`expire`, on
  the epoch ticks and when the kernel opens its data directory), one ``artifact-expired``
  audit line a sweep;
- and writes one ``artifact`` audit line per job: the names, records and bytes kept and
  dropped.

``q_device_artifacts`` (``qmk device artifacts JOB``, ``GET /v1/jobs/{id}/artifacts``) lists
a job's artifacts and reads one in pages of records (:meth:`read`).
"""

from __future__ import annotations

import json
import os
import shutil
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import msgspec

from qmk.errors import InvalidArgument, NotFoundError
from qmk.kernel.config import KernelConfig
from qmk.kernel.datafiles import ARTIFACTS
from qmk.kernel.storage.audit import AuditLog

#: Records per ``stream`` event.
PART_RECORDS = 256
#: The audit event of a job's stored artifacts, and of an expiry sweep.
ARTIFACT_EVENT, EXPIRED_EVENT = "artifact", "artifact-expired"
#: The most records one page of :meth:`Artifacts.read` returns.
MAX_PAGE_RECORDS = 10_000
#: The folder under the data directory.
FOLDER = ARTIFACTS


def _dumps(value: Any) -> bytes:
    return json.dumps(value, separators=(",", ":"), allow_nan=False).encode()


def _private_folder(folder: Path) -> None:
    """``folder`` and its parent (the artifacts folder) made where missing, 0700 whatever
    the umask (``mkdir(parents=True)`` made the parent by the umask)."""
    for path in (folder.parent, folder):
        try:
            os.mkdir(path, 0o700)
        except FileExistsError:
            continue
        os.chmod(path, 0o700)  # mkdir's mode passes through the umask


def _write_private(path: Path, data: bytes) -> None:
    """``data`` into ``path`` through a temporary file, mode 0600 whatever the umask."""
    tmp = path.with_name(path.name + ".tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_NOFOLLOW, 0o600)
    try:
        os.fchmod(fd, 0o600)  # the mode passed through the umask; an old tmp kept its own
        view = memoryview(data)
        while view:
            view = view[os.write(fd, view) :]
    finally:
        os.close(fd)
    os.replace(tmp, path)


class Entry(msgspec.Struct, frozen=True, kw_only=True):
    """One artifact of a job: its name, kind, records and bytes (and, when it was not
    stored, why)."""

    name: str
    kind: str
    records: int
    bytes: int
    reason: str | None = None


class Index(msgspec.Struct, frozen=True, kw_only=True):
    """What the kernel keeps of a job's artifacts (its ``index.json``)."""

    job_id: str
    tenant: str
    stored_at: float
    expires_at: float
    artifacts: tuple[Entry, ...] = ()
    dropped: tuple[Entry, ...] = ()

    @property
    def nbytes(self) -> int:
        """The bytes its stored artifacts take."""
        return sum(a.bytes for a in self.artifacts)

    def to_json(self) -> dict[str, Any]:
        """The listing ``q_device_artifacts`` returns (without the tenant)."""
        return {
            "job_id": self.job_id,
            "stored_at": self.stored_at,
            "expires_at": self.expires_at,
            "artifacts": [
                {"name": a.name, "kind": a.kind, "records": a.records, "bytes": a.bytes}
                for a in self.artifacts
            ],
            "dropped": [msgspec.to_builtins(a) for a in self.dropped],
        }


@dataclass(slots=True)
class _Live:
    """What :meth:`Artifacts.part` holds of one artifact of a running job: the records
    not yet sent (fewer than a part), the shots sent or held, the next part's number."""

    total: int
    held: list[Any] = field(default_factory=list)
    sent: set[Any] = field(default_factory=set)
    part: int = 0


class Artifacts:
    """The artifacts the kernel keeps: per job, each tenant's bytes, their expiry.

    Args:
        config: the kernel configuration (``artifact_keep_s``, each tenant's
            ``max_artifact_storage_mb``).
        audit: the audit log (its listeners hear the stream events).
        directory: where they are stored (None: in memory).
    """

    def __init__(self, config: KernelConfig, audit: AuditLog, directory: Path | None) -> None:
        self.config = config
        self.audit = audit
        self.directory = directory
        #: Each job's index.
        self.indexes: dict[str, Index] = {}
        self._memory: dict[tuple[str, str], bytes] = {}
        self._live: dict[tuple[str, str], _Live] = {}  # (job, artifact) -> parts sent
        #: Bytes stored, by tenant.
        self.usage: Counter[str] = Counter()
        if directory is not None and directory.is_dir():
            for path in sorted(directory.glob("*/index.json")):
                try:
                    index = msgspec.json.decode(path.read_bytes(), type=Index)
                except (OSError, msgspec.DecodeError):
                    shutil.rmtree(path.parent, ignore_errors=True)  # a half-written one
                    continue
                self.indexes[index.job_id] = index
                self.usage[index.tenant] += index.nbytes

    def limit_bytes(self, tenant: str) -> int:
        """The bytes ``tenant`` may keep."""
        mb = self.config.tenants[tenant].max_artifact_storage_mb
        return int(mb * 1024 * 1024)

    def full(self, tenant: str) -> bool:
        """Whether ``tenant``'s artifacts fill its quota."""
        return self.usage[tenant] >= self.limit_bytes(tenant)

    def _send(
        self,
        job_id: str,
        tenant: str,
        artifact: dict[str, Any],
        part: int,
        parts: int,
        records: list[Any],
    ) -> None:
        record = {
            "seq": self.audit.seq,
            "ts": round(time.time(), 6),
            "event": "stream",
            "tenant": tenant,
            "job_id": job_id,
            "artifact": artifact["name"],
            "kind": artifact["kind"],
            "part": part,
            "parts": parts,
            "records": records,
        }
        for listener in self.audit.listeners:
            try:
                listener(record)
            except Exception:  # a listener's failure is its own (the audit log's rule)
                continue

    def part(self, job_id: str, tenant: str, artifact: dict[str, Any], total: int) -> None:
        """Stream records of a running job's artifact (``{"name", "kind", "records"}``;
        each record names its ``shot``) as they come from its worker, in parts of
        :data:`PART_RECORDS`; ``total``: the records the artifact will hold (the job's
        shots), which fixes ``parts``. A part whose records were all sent already (a
        chunk drawn again by a later attempt) is not sent again; :meth:`take` sends the
        rest when the job ends."""
        live = self._live.setdefault((job_id, artifact["name"]), _Live(total=total))
        fresh = [r for r in artifact["records"] if r.get("shot") not in live.sent]
        live.sent.update(r.get("shot") for r in fresh)
        live.held.extend(fresh)
        self._flush(job_id, tenant, artifact, live, final=False)

    def _flush(
        self, job_id: str, tenant: str, artifact: dict[str, Any], live: _Live, *, final: bool
    ) -> None:
        parts = max(
            1, -(-live.total // PART_RECORDS), live.part + -(-len(live.held) // PART_RECORDS)
        )
        while len(live.held) >= PART_RECORDS or (final and (live.held or live.part == 0)):
            records = live.held[:PART_RECORDS]
            del live.held[:PART_RECORDS]
            self._send(job_id, tenant, artifact, live.part, parts, records)
            live.part += 1

    def forget(self, job_id: str) -> None:
        """Drop what :meth:`part` holds of ``job_id`` (it ended without a result)."""
        if not self._live:  # most jobs stream nothing
            return
        for key in [k for k in self._live if k[0] == job_id]:
            del self._live[key]

    def _stream(self, job_id: str, tenant: str, artifact: dict[str, Any]) -> None:
        """Send the records of ``artifact`` that :meth:`part` did not (all of them for an
        artifact it never saw)."""
        live = self._live.pop((job_id, artifact["name"]), None)
        records = artifact["records"]
        if live is None:
            live = _Live(total=len(records))
        live.held.extend(
            r for r in records if not isinstance(r, dict) or r.get("shot") not in live.sent
        )
        live.total = max(live.total, len(records))
        self._flush(job_id, tenant, artifact, live, final=True)

    def take(self, job_id: str, tenant: str, artifacts: list[dict[str, Any]], now: float) -> Index:
        """Stream, store (within the tenant's quota) and index a finished job's artifacts."""
        limit = self.limit_bytes(tenant)
        kept: list[Entry] = []
        dropped: list[Entry] = []
        folder = None if self.directory is None else self.directory / job_id
        for artifact in artifacts:
            self._stream(job_id, tenant, artifact)
            data = _dumps(artifact["records"])
            entry = Entry(
                name=artifact["name"],
                kind=artifact["kind"],
                records=len(artifact["records"]),
                bytes=len(data),
            )
            if self.usage[tenant] >= limit:  # full: what was admitted before it filled
                dropped.append(msgspec.structs.replace(entry, reason="max_artifact_storage_mb"))
                continue
            if folder is not None:
                _private_folder(folder)
                _write_private(folder / f"{artifact['name']}.json", data)
            else:
                self._memory[(job_id, artifact["name"])] = data
            kept.append(entry)
            self.usage[tenant] += len(data)
        self.forget(job_id)
        index = Index(
            job_id=job_id,
            tenant=tenant,
            stored_at=now,
            expires_at=now + self.config.artifact_keep_s,
            artifacts=tuple(kept),
            dropped=tuple(dropped),
        )
        if folder is not None:
            _private_folder(folder)
            _write_private(folder / "index.json", msgspec.json.encode(index))
        self.indexes[job_id] = index
        self.audit.append(
            ARTIFACT_EVENT,
            job_id=job_id,
            tenant=tenant,
            kept=[(a.name, a.records, a.bytes) for a in kept],
            dropped=[(a.name, a.bytes, a.reason) for a in dropped],
        )
        return index

    def expire(self, now: float) -> list[str]:
        """Delete the artifacts whose time is up; the jobs they belonged to."""
        gone = [j for j, index in self.indexes.items() if index.expires_at <= now]
        for job_id in gone:
            index = self.indexes.pop(job_id)
            self.usage[index.tenant] -= index.nbytes
            for a in index.artifacts:
                self._memory.pop((job_id, a.name), None)
            if self.directory is not None:
                shutil.rmtree(self.directory / job_id, ignore_errors=True)
        if gone:
            self.audit.append(EXPIRED_EVENT, jobs=gone)
        return gone

    def listing(self, job_id: str) -> dict[str, Any]:
        """A job's index (no artifacts: empty lists)."""
        index = self.indexes.get(job_id)
        if index is None:
            return {
                "job_id": job_id,
                "stored_at": None,
                "expires_at": None,
                "artifacts": [],
                "dropped": [],
            }
        return index.to_json()

    def read(self, job_id: str, name: str, offset: int, limit: int) -> dict[str, Any]:
        """Records ``offset`` .. ``offset + limit`` of artifact ``name`` of ``job_id``.

        Raises:
            NotFoundError: no such artifact (never stored, dropped or expired).
            InvalidArgument: a bad offset or limit.
        """
        if isinstance(offset, bool) or not isinstance(offset, int) or offset < 0:
            raise InvalidArgument(f"offset must be an integer >= 0, got {offset!r}", key="offset")
        if (
            isinstance(limit, bool)
            or not isinstance(limit, int)
            or not 1 <= limit <= MAX_PAGE_RECORDS
        ):
            raise InvalidArgument(
                f"limit must be an integer 1..{MAX_PAGE_RECORDS}, got {limit!r}", key="limit"
            )
        index = self.indexes.get(job_id)
        entry = None
        if index is not None:
            entry = next((a for a in index.artifacts if a.name == name), None)
        if index is None or entry is None:
            raise NotFoundError(
                f"job {job_id} has no stored artifact {name!r} (never asked for, dropped over "
                "the quota, or expired)",
                job_id=job_id,
                artifact=name,
            )
        if self.directory is not None:
            data = (self.directory / job_id / f"{name}.json").read_bytes()
        else:
            data = self._memory[(job_id, name)]
        records = json.loads(data)
        page = records[offset : offset + limit]
        end = offset + len(page)
        return {
            "job_id": job_id,
            "name": name,
            "kind": entry.kind,
            "total": len(records),
            "offset": offset,
            "records": page,
            "next_offset": end if end < len(records) else None,
        }


__all__ = [
    "ARTIFACT_EVENT",
    "EXPIRED_EVENT",
    "FOLDER",
    "PART_RECORDS",
    "Artifacts",
    "Entry",
    "Index",
]
