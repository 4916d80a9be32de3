"""The kernel's data directory: the name of every file and folder the kernel keeps in it.

One module owns them so that the kernel, the commands that read a data directory
(``qmk audit``, ``qmk serve --recover``) and the workers' confinement agree:

- :data:`DB_FILE`: the SQLite database (:mod:`qmk.kernel.storage.store`, which also owns the
  keys of its ``meta`` table: the audit chain head it committed);
- :data:`AUDIT_FILE`: the hash-chained audit log (:mod:`qmk.kernel.storage.audit`);
- :data:`SECRET_FILE`: the kernel's secret (session ids, the audit log's MACs);
- :data:`LOCK_FILE`: the lock one kernel holds (:mod:`qmk.kernel.storage.datadir`);
- :data:`CHECKPOINTS`: the folder of running jobs' execution states, one folder per job,
  one :data:`STATE_SUFFIX` file per checkpoint (:mod:`qmk.kernel.storage.retention`);
- :data:`ARTIFACTS`: the folder of device jobs' artifacts, one folder per job
  (:mod:`qmk.kernel.storage.artifacts`).
"""

from __future__ import annotations

from typing import Final

DB_FILE: Final = "kernel.db"
AUDIT_FILE: Final = "audit.log"
SECRET_FILE: Final = "kernel.secret"
LOCK_FILE: Final = "kernel.lock"
CHECKPOINTS: Final = "checkpoints"
ARTIFACTS: Final = "artifacts"
#: The suffix of an execution state's file (``<checkpoint_id>.qmkstate``).
STATE_SUFFIX: Final = ".qmkstate"

__all__ = [
    "ARTIFACTS",
    "AUDIT_FILE",
    "CHECKPOINTS",
    "DB_FILE",
    "LOCK_FILE",
    "SECRET_FILE",
    "STATE_SUFFIX",
]
