"""Benchmark: a worker's CPU per small job, in one process.

The job of ``bench_service.py`` (the Bell pair of ``examples/bell.qvm.asm``, 100 shots,
its own seed each time) as the kernel hands it to a worker: an
:class:`~qmk.kernel.pools.attempt.Attempt` whose run request is built as ``q_submit``'s
admission builds it (the machine's default qubit and profile, the policy of an empty
``policy`` object), run with :func:`qmk.kernel.pools.attempt.run_job` back to back in this
process. It prints the CPU time (``time.process_time``) per job of each round, after an
untimed warm-up (the verified program, plan and route are kept per process, as in a
kernel's worker). Rounds alternate with nothing else, so on a shared machine compare the
minima of several rounds, and interleave a run of the code before a change with one
after it.

``--noise-model`` runs the jobs with a noise model's physical error rates (so logical
errors strike some shots); ``--profile`` prints the top functions of one round under
cProfile (in CPU seconds).

    python bench/bench_worker.py [--jobs 2000] [--rounds 5] [--shots 100] [--profile]
"""

from __future__ import annotations

import argparse
import cProfile
import json
import pstats
import statistics
import time
from pathlib import Path

from _common import load_average
from qmk.execution.request import RunRequest, program_digest
from qmk.kernel.config import config_from_dict
from qmk.kernel.pools.attempt import Attempt, run_job
from qmk.kernel.records.jobs import parse_policy
from qmk.kernel.records.outcome import Done, decode
from qmk.qvm.files import read_graph

ROOT = Path(__file__).resolve().parents[1]


def attempts(jobs: int, shots: int, seed0: int, noise_model: str | None) -> list[Attempt]:
    """``jobs`` attempts of the Bell job, seeds ``seed0`` on, as the kernel makes them."""
    machine = config_from_dict({"machine": {"physical_qubits": 100_000_000}}).machine
    text = json.dumps(read_graph(str(ROOT / "examples" / "bell.qvm.asm")).to_json())
    policy = parse_policy({}, default_timeout_s=60.0)
    out = []
    for i in range(jobs):
        request = RunRequest(
            program_digest=program_digest(text),
            shots=shots,
            seed=seed0 + i,
            engine=policy.engine,
            precision=policy.precision,
            noise=policy.noise,
            qubit=machine.qubit,
            profile=machine.profile,
            noise_model=noise_model,
            policy=policy,
        )
        out.append(
            Attempt(request=request, program=text, caps=("CAP_ALLOC",), max_result_bytes=2**26)
        )
    return out


def one_round(batch: list[Attempt]) -> float:
    """CPU ms per job of running ``batch`` (each must succeed)."""
    started = time.process_time()
    for attempt in batch:
        outcome = decode(run_job(attempt))
        if not isinstance(outcome, Done):
            raise SystemExit(f"job failed: {outcome}")
    return (time.process_time() - started) / len(batch) * 1e3


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--jobs", type=int, default=2000)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--shots", type=int, default=100)
    parser.add_argument("--noise-model", default=None, help="e.g. 'depolarizing(p=1e-3)'")
    parser.add_argument("--profile", action="store_true")
    args = parser.parse_args()
    one_round(attempts(50, args.shots, 10**9, args.noise_model))  # warm-up, untimed
    figures = []
    for r in range(args.rounds):
        batch = attempts(args.jobs, args.shots, 1_000_000 * r, args.noise_model)
        figures.append(one_round(batch))
    print(
        f"run_job CPU ms/job over {args.jobs} jobs x {args.rounds} rounds: "
        f"min {min(figures):.3f}, median {statistics.median(figures):.3f}, "
        f"max {max(figures):.3f} (load {load_average():.2f})"
    )
    if args.profile:
        profile = cProfile.Profile(time.process_time)
        batch = attempts(args.jobs, args.shots, 10**8, args.noise_model)
        profile.runcall(one_round, batch)
        pstats.Stats(profile).sort_stats("tottime").print_stats(30)


if __name__ == "__main__":
    main()
