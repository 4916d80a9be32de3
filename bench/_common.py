"""What every bench script shares: the machine it ran on, timing by minimum, the JSON file.

Each ``bench_*.py`` imports this module by name (a script's own folder is on
``sys.path``), so the record of the machine, the timing loop and the output file are
written once:

- :func:`machine`: QMK's version, Python, the CPU and its count, numpy and the load
  averages now, plus the peers' versions a script passes (:func:`installed` looks up
  those of distributions it does not import); :func:`describe` is its one-line form;
- :func:`timed`: the minimum and median wall time (and least CPU time) of some runs
  after warm-ups; :func:`timed_group` the same for several contenders in interleaved
  rounds, so a change of machine load hits them alike;
- :func:`percentiles` (and :func:`call_latencies`, which times one call after another):
  the round-trip figures of many single calls, p50/p99/mean in milliseconds;
  :func:`spread`: min, median and max of a figure measured in several repeats;
- :func:`write_json`: the record, indented, to a path (``RESULTS / "NAME.json"`` by
  default in the scripts);
- :func:`cpu_seconds` and :func:`descendants`: a process's CPU time so far and the
  processes below it, read in ``/proc`` (the CPU a job costs each side of a pool).
"""

from __future__ import annotations

import contextlib
import json
import os
import platform
import statistics
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path
from typing import Any

from qmk import __version__

_TICK = os.sysconf("SC_CLK_TCK") if hasattr(os, "sysconf") else 100

#: Where the scripts write their JSON (ignored by git).
RESULTS = Path(__file__).resolve().parent / "results"

#: The keys of :func:`machine` that are not a peer's version.
_MACHINE_KEYS = frozenset(
    ("qmk", "python", "machine", "processor", "cpu_count", "load_average_at_start")
)


def load_averages() -> list[float]:
    """The 1-, 5- and 15-minute load averages (zeros where the platform has none)."""
    return list(os.getloadavg()) if hasattr(os, "getloadavg") else [0.0, 0.0, 0.0]


#: The bench tenant's key, in every script's kernel config.
KEY = "bench-tenant-key"


def kernel_config(*, max_concurrent_jobs: int = 64, more: str = "") -> str:
    """The kernel config (TOML) of a bench server: a big machine and tenant ``bench``
    with every capability and room to queue; ``more`` adds tables (other tenants)."""
    return f"""
[machine]
physical_qubits = 100_000_000
[tenants.bench]
key = "{KEY}"
caps = ["CAP_ALLOC", "CAP_TELEPORT", "CAP_LINK", "CAP_MAGIC"]
max_logical_qubits = 1000
max_concurrent_jobs = {max_concurrent_jobs}
max_queued_jobs = 100000
{more}"""


def load_average() -> float:
    """The one-minute load average (0.0 where the platform has none)."""
    return load_averages()[0]


def installed(*names: str) -> dict[str, str]:
    """Name -> version of those of the distributions ``names`` that are installed
    (without importing them)."""
    found: dict[str, str] = {}
    for name in names:
        with contextlib.suppress(metadata.PackageNotFoundError):
            found[name] = metadata.version(name)
    return found


def machine(**versions: str) -> dict[str, Any]:
    """The machine and versions a run's figures belong to; ``versions`` names the peers'.
    ``load_average_at_start`` is the three load averages now (call this at the start)."""
    import numpy as np  # here: a script's helper processes (bench_attacks') need no numpy

    return {
        "qmk": __version__,
        "python": platform.python_version(),
        "machine": platform.machine(),
        "processor": platform.processor(),
        "cpu_count": os.cpu_count(),
        "numpy": np.__version__,
        **versions,
        "load_average_at_start": load_averages(),
    }


def describe(info: Mapping[str, Any], note: str = "") -> str:
    """One line for the top of a script's output: what :func:`machine` returned (the
    peers as ``name version``, ``_`` shown as ``-``), then ``note`` if any, then the
    one-minute load average at the start."""
    parts = [
        f"QMK {info['qmk']}, Python {info['python']}, {info['machine']}, {info['cpu_count']} CPUs"
    ]
    peers = ", ".join(
        f"{name.replace('_', '-')} {value}"
        for name, value in info.items()
        if name not in _MACHINE_KEYS
    )
    parts += [text for text in (peers, note) if text]
    parts.append(f"load average {info['load_average_at_start'][0]:.2f}")
    return "; ".join(parts)


@dataclass(frozen=True, slots=True, kw_only=True)
class Timing:
    """The times of ``runs`` runs of one thing (seconds): the least and median wall time,
    the least CPU time of this process (every thread counted), and the last run's result."""

    min_s: float
    median_s: float
    cpu_min_s: float
    runs: int
    result: Any = None

    def figures(self) -> dict[str, float]:
        """``min_s`` and ``median_s``, as the scripts' JSON holds them."""
        return {"min_s": self.min_s, "median_s": self.median_s}


def timed_group(
    runs: Mapping[str, Callable[[], Any]],
    repeat: int,
    *,
    warmup: int = 1,
    once: frozenset[str] = frozenset(),
    reset: Callable[[], None] | None = None,
) -> dict[str, Timing]:
    """Run every contender ``warmup`` times untimed, then ``repeat`` interleaved rounds
    that time each once (the ones named in ``once`` in the first round only; ``reset``
    before each timed run, outside the timing; the previous result is let go before the
    next run). Returns name -> :class:`Timing`."""
    for _ in range(warmup):
        for run in runs.values():
            run()
    wall: dict[str, list[float]] = {name: [] for name in runs}
    cpu: dict[str, list[float]] = {name: [] for name in runs}
    last: dict[str, Any] = {}
    for round_ in range(max(repeat, 1)):
        for name, run in runs.items():
            if round_ and name in once:
                continue
            last[name] = None  # free the previous result (a big state) first
            if reset is not None:
                reset()
            used = time.process_time()
            start = time.perf_counter()
            last[name] = run()
            wall[name].append(time.perf_counter() - start)
            cpu[name].append(time.process_time() - used)
    return {
        name: Timing(
            min_s=min(times),
            median_s=statistics.median(times),
            cpu_min_s=min(cpu[name]),
            runs=len(times),
            result=last[name],
        )
        for name, times in wall.items()
    }


def timed(
    run: Callable[[], Any],
    repeat: int,
    *,
    warmup: int = 0,
    reset: Callable[[], None] | None = None,
) -> Timing:
    """Run ``run`` ``warmup`` times untimed, then ``repeat`` times timed (``reset`` before
    each timed run, outside the timing)."""
    return timed_group({"": run}, repeat, warmup=warmup, reset=reset)[""]


def percentile(values: Sequence[float], q: float) -> float:
    """The ``q`` quantile (0..1) of ``values`` by nearest rank: the value at rank
    ``round(q * (n - 1))`` of the sorted values (no interpolation)."""
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


def percentiles(samples_s: Sequence[float]) -> dict[str, float]:
    """The figures of round trips timed one by one (seconds): how many, and the p50, p99
    (:func:`percentile`) and mean in milliseconds."""
    return {
        "calls": len(samples_s),
        "p50_ms": percentile(samples_s, 0.5) * 1e3,
        "p99_ms": percentile(samples_s, 0.99) * 1e3,
        "mean_ms": statistics.fmean(samples_s) * 1e3,
    }


def call_latencies(call: Callable[[], Any], calls: int, *, warmup: int = 200) -> dict[str, float]:
    """Call ``call`` ``warmup`` times untimed, then ``calls`` times, timing each call on its
    own; their :func:`percentiles`."""
    for _ in range(warmup):
        call()
    times = []
    for _ in range(calls):
        started = time.perf_counter()
        call()
        times.append(time.perf_counter() - started)
    return percentiles(times)


def spread(values: Sequence[float]) -> dict[str, float]:
    """Min, median and max of a figure measured in several repeats."""
    return {"min": min(values), "median": statistics.median(values), "max": max(values)}


def write_json(record: Mapping[str, Any], out: str | os.PathLike[str]) -> Path:
    """Write ``record`` (indented, a newline at the end) to ``out``, making its folder;
    print and return where."""
    path = Path(out)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(record, indent=2) + "\n", encoding="utf-8")
    print(f"wrote {path}")
    return path


def _stat(pid: int) -> list[str] | None:
    """The fields of ``/proc/PID/stat`` after the command name (None: gone, or no /proc)."""
    try:
        text = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    return text[text.rindex(")") + 2 :].split()


def cpu_seconds(pid: int) -> float:
    """User + system CPU seconds of process ``pid`` so far (0.0 once it is gone)."""
    fields = _stat(pid)
    return 0.0 if fields is None else (int(fields[11]) + int(fields[12])) / _TICK


def descendants(pid: int) -> list[int]:
    """The processes below ``pid`` (its worker pool's forkserver and workers)."""
    parents: dict[int, list[int]] = {}
    for entry in Path("/proc").iterdir() if Path("/proc").is_dir() else ():
        if entry.name.isdigit() and (fields := _stat(int(entry.name))) is not None:
            parents.setdefault(int(fields[1]), []).append(int(entry.name))
    found, todo = [], [pid]
    while todo:
        children = parents.get(todo.pop(), [])
        found += children
        todo += children
    return found
