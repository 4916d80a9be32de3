"""How long execution states (checkpoint files) stay in the data directory.

(Results have their own rules, ``[kernel] result_keep_s`` and each tenant's
``max_result_storage_mb``: :mod:`qmk.kernel.storage.results`.)

A running job saves a state file at each checkpoint and each preemption
(``DATA_DIR/checkpoints/<job_id>/<checkpoint_id>.qmkstate``). Three rules bound them:

- **Per job** (``[kernel] checkpoints_per_job``, default 3): saving one more state deletes
  the job's oldest beyond that number, checkpoint and file (:func:`prune_job`); restoring
  a deleted checkpoint by its id is ``NotFoundError`` then.
- **After the end** (``[kernel] checkpoint_keep_s``, default a day): the states of a job
  that reached a final state that long ago are deleted (:func:`expire`, at the epoch
  ticks); ``q_restore`` of such a job is ``StateError`` (no checkpoint).
- **Orphans**: a state file no checkpoint names (the kernel crashed after the worker wrote
  it and before the checkpoint was committed), and a half-written temporary file, are
  deleted when the kernel opens its data directory (:func:`remove_orphans`).

Checkpoints share a file when ``q_checkpoint`` of a stopped job re-records its latest
state: a file is deleted only once no checkpoint names it. Each deletion is a
``checkpoint-pruned`` line in the audit log. A state is found by its job folder and file
name under the data directory's ``checkpoints`` (:func:`state_file`), so a data directory
that moved (or was named by another relative path) keeps its states.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from qmk.kernel.storage.audit import AuditLog
from qmk.kernel.storage.store import Store

#: The audit event of deleted checkpoints.
PRUNED_EVENT = "checkpoint-pruned"


def state_file(directory: Path, recorded: str) -> Path:
    """Where the state a checkpoint recorded as ``recorded`` is in ``directory`` (the
    data directory's ``checkpoints``): its job folder and file name there."""
    path = Path(recorded)
    return directory / path.parent.name / path.name


def prune_job(store: Store, audit: AuditLog, directory: Path, job: Any, keep: int) -> list[str]:
    """Delete the execution states of ``job`` beyond its ``keep`` newest; their ids."""
    states = store.saved_states(job.job_id)
    old = states[keep:]
    if not old:
        return []
    ids = [checkpoint_id for checkpoint_id, _ in old]
    _delete(store, directory, ids, (p for _, p in old), kept=(p for _, p in states[:keep]))
    audit.append(
        PRUNED_EVENT, job_id=job.job_id, tenant=job.tenant, reason="per-job", checkpoint_ids=ids
    )
    return ids


def expire(store: Store, audit: AuditLog, directory: Path, before: float) -> list[str]:
    """Delete the execution states of the jobs that ended before ``before``; their ids."""
    rows = store.ended_states(before)
    if not rows:
        return []
    # every state of those jobs goes (a file is only ever shared within its own job)
    _delete(store, directory, [row[0] for row in rows], (row[3] for row in rows), kept=())
    by_job: dict[tuple[str, str], list[str]] = {}
    for checkpoint_id, job_id, tenant, _ in rows:
        by_job.setdefault((job_id, tenant), []).append(checkpoint_id)
    for (job_id, tenant), ids in by_job.items():
        audit.append(PRUNED_EVENT, job_id=job_id, tenant=tenant, reason="ended", checkpoint_ids=ids)
    return [row[0] for row in rows]


def remove_orphans(store: Store, directory: Path) -> list[Path]:
    """Delete the files under ``directory`` that no checkpoint names (and the job folders
    left empty); the files deleted. Call it while no worker runs."""
    if not directory.is_dir():
        return []
    named = {state_file(directory, path) for path in store.all_state_paths()}
    removed = []
    for folder in directory.iterdir():
        if not folder.is_dir():
            continue
        for path in folder.iterdir():
            if path.is_file() and path not in named:
                path.unlink(missing_ok=True)
                removed.append(path)
        with contextlib.suppress(OSError):  # not empty: it holds named states
            folder.rmdir()
    return removed


def _delete(
    store: Store, directory: Path, ids: list[str], paths: Iterable[str], *, kept: Iterable[str]
) -> None:
    """Forget checkpoints ``ids`` and delete each of ``paths`` that is not also one of
    ``kept``: the paths the job's remaining checkpoints name (a file is shared only by
    checkpoints of one job, when q_checkpoint re-records its latest state)."""
    store.delete_checkpoints(ids)
    named = {state_file(directory, path) for path in kept}
    for path in {state_file(directory, path) for path in paths} - named:
        path.unlink(missing_ok=True)


__all__ = ["PRUNED_EVENT", "expire", "prune_job", "remove_orphans", "state_file"]
