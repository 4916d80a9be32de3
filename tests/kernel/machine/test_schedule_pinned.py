"""The scheduler's schedules, pinned: every record of every job under every policy, and
the fastest exclusive configuration, on seeded workloads, the same as the algorithm
gave before its speedups (issue 77's scale work).

A speedup of the event loop (a cache, an index, a share updated by delta) must leave
the schedule as it was, to the bit: the start and end cycle of every job, its waits,
its errors, its placement. ``data/schedules.json`` holds a digest of each workload's
runs, written by the reference algorithm (``python tests/kernel/machine/
test_schedule_pinned.py --write``, at the commit it names); a change that moves one
record fails here. ``--dump DIR`` writes the runs in full, to diff two commits'.
"""

from __future__ import annotations

import hashlib
import json
import random
import sys
from pathlib import Path
from typing import Any

import pytest

from qmk.defaults import MACHINE_POLICIES
from qmk.errors import QMKError
from qmk.kernel.machine import workload as wl
from qmk.kernel.machine.baseline import fastest_exclusive
from qmk.kernel.machine.simulate import simulate

PINNED = Path(__file__).resolve().parent / "data" / "schedules.json"

#: Programs the workloads draw from (logical counts: compiled in milliseconds).
_PROGRAMS: list[dict[str, Any]] = [
    {"adder": 4},
    {"adder": 8},
    {"adder": 16},
    {"qft": 4},
    {"qft": 8},
    {"random": 20, "gates": 300},
    {"random": 40, "gates": 800, "seed": 3},
    {"random": 80, "gates": 1500, "seed": 1},
]


def workload(seed: int) -> dict[str, Any]:
    """A small seeded workload: its machine (size, modules, storage, decoder, factories,
    epoch) and its tenants (shares, budgets, priorities, arrivals) drawn from ``seed``."""
    rng = random.Random(seed)
    machine: dict[str, Any] = {
        "physical_qubits": rng.choice([120_000, 250_000, 500_000]),
        "epoch_cycles": rng.choice([10, 10, 100]),
        "factory_share": rng.choice([0.1, 0.25]),
    }
    if rng.random() < 0.4:
        machine["storage_tiles"] = rng.choice([20, 200])
    if rng.random() < 0.3:
        machine["modules"] = 2
    if rng.random() < 0.2:
        machine["decoder_bits_per_cycle"] = rng.choice([2000.0, 20000.0])
    if rng.random() < 0.3:
        machine["factory"] = {"protocol": "litinski-15to1"}
    if rng.random() < 0.3:
        machine["error_budget"] = rng.choice([0.05, 0.2])
    tenants = []
    for k in range(rng.randint(2, 4)):
        programs = rng.sample(_PROGRAMS, rng.randint(1, 3))
        tenant: dict[str, Any] = {
            "name": "abcd"[k],
            "share": rng.choice([1, 1, 2, 3]),
            "generate": {
                "count": rng.randint(3, 10),
                "arrivals": rng.choice(["poisson", "poisson", "uniform", "at-once"]),
                "mean_gap_cycles": rng.choice([50, 400, 3000]),
                "programs": programs,
                "priority": rng.randint(0, 3),
            },
        }
        if rng.random() < 0.3:
            tenant["error_budget"] = rng.choice([0.02, 0.1, 0.5])
        tenants.append(tenant)
    return {"machine": machine, "seed": seed, "tenants": tenants}


SEEDS = range(20)


def runs(seed: int) -> dict[str, Any]:
    """Every policy's run of workload ``seed`` (its records in full, or its refusal), and
    the fastest exclusive configuration (every configuration tried)."""
    data = workload(seed)
    try:
        work = wl.load(data)
        done = simulate(work.machine, work.jobs, MACHINE_POLICIES, tenants=work.tenants)
    except QMKError as exc:
        return {"refused": f"{exc.code} {exc.message}"}
    out: dict[str, Any] = {name: run.to_json() for name, run in done.items()}
    base = fastest_exclusive(
        lambda tune: wl.load(data, tune=tune),
        work.machine,
        epoch_cycles=work.machine.epoch_cycles,
    )
    out["fastest_exclusive"] = base.to_json()
    return out


def digest(value: Any) -> str:
    text = json.dumps(value, sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(text.encode()).hexdigest()


@pytest.mark.parametrize("seed", SEEDS)
def test_every_policys_schedule_is_the_reference_algorithms(seed):
    pinned = json.loads(PINNED.read_text(encoding="utf-8"))["digests"]
    got = runs(seed)
    assert {name: digest(run) for name, run in got.items()} == pinned[str(seed)]


def test_the_workloads_run_every_policy_and_most_keep_their_jobs():
    # the pinned workloads exercise the schedulers, not only refusals
    pinned = json.loads(PINNED.read_text(encoding="utf-8"))["digests"]
    ran = [d for d in pinned.values() if "fidelity" in d]
    assert len(ran) >= 15


def _main(argv: list[str]) -> None:
    if argv[:1] == ["--write"]:
        commit = argv[1] if len(argv) > 1 else "unknown"
        digests = {str(s): {k: digest(v) for k, v in runs(s).items()} for s in SEEDS}
        PINNED.parent.mkdir(exist_ok=True)
        PINNED.write_text(
            json.dumps({"commit": commit, "digests": digests}, indent=1, sort_keys=True) + "\n",
            encoding="utf-8",
        )
    elif argv[:1] == ["--dump"]:
        out = Path(argv[1])
        out.mkdir(parents=True, exist_ok=True)
        for s in SEEDS:
            (out / f"{s}.json").write_text(json.dumps(runs(s), indent=1, sort_keys=True))
    else:
        raise SystemExit("usage: test_schedule_pinned.py --write [COMMIT] | --dump DIR")


if __name__ == "__main__":
    _main(sys.argv[1:])
