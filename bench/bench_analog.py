"""Benchmark: analog mode (ISA 1.2 ``Evolve``) on a 12-atom adiabatic sweep, beside QuTiP.

The program (issue 30, item 6): a chain of 12 atoms 5.5 um apart (Rb 70S C6), 4 us:
Omega ramps 0 -> 15.8 rad/us in 0.25 us, holds, ramps down in the last 0.25 us; Delta
sweeps -16 -> +16 rad/us between them; 1000 shots. Contenders, in one process, in
interleaved rounds (``timed_group``: a change of load hits them alike):

- ``qmk_exact``: ``run_job`` end to end (parse, validate, build the Hamiltonian, find
  the chain's mirror symmetry, integrate in its symmetric sector -- 2080 of the 2^12
  states; the exact blockade reduction drops nothing at this spacing -- with the compiled
  right-hand side, expand, sample 1000 shots);
- ``qmk_fresh_process``: the same job as a file, ``python -m qmk device run FILE --device
  ideal_small_array --json`` in a new process (interpreter start and imports included);
- ``qmk_subspace``: the same job with ``blockade_subspace_radius`` 7 um (Bloqade's
  blockade-subspace approximation: no two neighbours both in |r>, 377 states); its
  distance from the exact distribution (total variation) is printed;
- ``qutip_sesolve``: QuTiP's ``sesolve`` on the same Hamiltonian (QobjEvo with
  piecewise-linear coefficients, atol 1e-10, rtol 1e-8) and the same number of shots
  drawn from its final state; its fidelity with QMK's exact state (as ``run_job``
  integrates it: in the sector) is printed;
- ``bloqade``: Bloqade's own emulator (bloqade-analog's ``bloqade.python().run(1000)``,
  full space, the same rtol 1e-10 / atol 1e-12) in Bloqade's environment
  (``.venv-bloqade``, which ``make bench`` builds: Bloqade pins numpy<=2.2.6), through
  :class:`qmk.devices.neutral_atom.bloqade_peer.BloqadePeer`, warmed up once; its time is
  the round trip of one request (the pipe adds well under a millisecond). The total
  variation between its exact final distribution and QMK's is printed. Where that
  environment is absent it is reported as skipped, with the reason.

Not a test: nothing here fails on a timing. The goal of issue 30 is 2 s for QMK.

    python bench/bench_analog.py [--repeat 3] [--plot docs/images/analog_sweep.png]

Results go to ``bench/results/analog.json`` with the load averages at start and end.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import math
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np
import qutip as qt

from _common import RESULTS, describe, load_averages, machine, timed_group, write_json
from qmk.devices.neutral_atom import analog, run_job
from qmk.devices.neutral_atom.bloqade_peer import BloqadePeer, peer_python
from qmk.devices.neutral_atom.job import parse_job

N_ATOMS, SPACING_UM, DURATION_NS, SHOTS = 12, 5.5, 4000.0, 1000
OMEGA = [[0, 0.0], [250, 15.8], [3750, 15.8], [4000, 0.0]]
DELTA = [[0, -16.0], [250, -16.0], [3750, 16.0], [4000, 16.0]]
GOAL_S = 2.0


def sweep_job(*, radius: float | None = None, shots: int = SHOTS) -> dict[str, Any]:
    job: dict[str, Any] = {
        "isa_version": "1.2",
        "hardware": {"positions": [SPACING_UM * i for i in range(N_ATOMS)]},
        "shots": shots,
        "seed": 7,
        "program": [
            {"op": "AllocArray", "n_qubits": N_ATOMS},
            {"op": "Evolve", "duration": DURATION_NS, "omega": OMEGA, "delta": DELTA},
            {"op": "Measure", "targets": list(range(N_ATOMS))},
        ],
    }
    if radius is not None:
        job["blockade_subspace_radius"] = radius
    return job


def qutip_hamiltonian() -> qt.QobjEvo:
    """The same H(t), written directly in QuTiP (atom 0 is the first tensor factor)."""
    n, c6 = N_ATOMS, 2 * math.pi * 862690.0
    nr = qt.basis(2, 1) * qt.basis(2, 1).dag()

    def op(k: int, single: qt.Qobj) -> qt.Qobj:
        return qt.tensor([single if i == k else qt.qeye(2) for i in range(n)])

    drive = sum(op(i, qt.sigmax()) for i in range(n))
    number = sum(op(i, nr) for i in range(n))
    inter = 0 * number
    for i in range(n):
        for j in range(i + 1, n):
            inter = inter + c6 / (SPACING_UM * (j - i)) ** 6 * op(i, nr) * op(j, nr)
    ts = np.array([p[0] for p in OMEGA]) * 1e-3
    om, de = np.array([p[1] for p in OMEGA]), np.array([p[1] for p in DELTA])
    return qt.QobjEvo(
        [
            inter,
            [0.5 * drive, lambda t: float(np.interp(t, ts, om))],
            [-number, lambda t: float(np.interp(t, ts, de))],
        ]
    )


def qutip_run(h: qt.QobjEvo) -> np.ndarray:
    psi0 = qt.tensor([qt.basis(2, 0)] * N_ATOMS)
    options = {"atol": 1e-10, "rtol": 1e-8, "nsteps": 10**7, "max_step": 0.01}
    state = qt.sesolve(h, psi0, [0.0, DURATION_NS * 1e-3], options=options).states[-1]
    amps = state.full().ravel()
    rng = np.random.default_rng(7)
    probs = np.abs(amps) ** 2
    rng.choice(probs.size, size=SHOTS, p=probs / probs.sum())
    return amps


def qmk_state(job: dict[str, Any]) -> tuple[np.ndarray, np.ndarray, int]:
    """QMK's final state over its model's basis, the basis, and the states integrated
    (the symmetric sector's where ``run_job`` finds one)."""
    model, drives, _, _ = analog.prepare(parse_job(job))
    sector = analog.find_sector(model, [d for d, _ in drives])
    psi = analog.state_vector(model, drives, sector=sector)
    return psi, model.states, sector.dimension if sector is not None else model.dimension


def fresh_process(path: Path) -> dict[str, Any]:
    """``qmk device run`` of the job file in a new interpreter: its JSON result."""
    argv = [sys.executable, "-m", "qmk", "device", "run", str(path)]
    argv += ["--device", "ideal_small_array", "--json", "--no-measurements"]
    done = subprocess.run(argv, capture_output=True, text=True, check=True)
    out: dict[str, Any] = json.loads(done.stdout)
    return out


def plot(path: str, counts: dict[str, int]) -> None:
    """The drive and the top outcomes of the sweep, one small PNG."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (left, right) = plt.subplots(1, 2, figsize=(8.0, 2.8), dpi=90)
    left.plot([p[0] / 1000 for p in OMEGA], [p[1] for p in OMEGA], label="Omega")
    left.plot([p[0] / 1000 for p in DELTA], [p[1] for p in DELTA], label="Delta")
    left.set_xlabel("t (us)")
    left.set_ylabel("rad/us")
    left.legend(frameon=False)
    left.set_title("12-atom sweep: the drive")
    top = sorted(counts.items(), key=lambda kv: -kv[1])[:6]
    right.barh([k for k, _ in top][::-1], [v / SHOTS for _, v in top][::-1])
    right.set_xlabel(f"fraction of {SHOTS} shots")
    right.set_title("outcomes (1 = Rydberg, atom 0 left)")
    right.tick_params(axis="y", labelsize=7)
    fig.tight_layout()
    fig.savefig(path)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--plot", default=None, help="write a PNG of the sweep here")
    parser.add_argument("--out", default=str(RESULTS / "analog.json"))
    options = parser.parse_args(argv)
    python, why_not = peer_python()
    with contextlib.ExitStack() as stack:
        peer = stack.enter_context(BloqadePeer(python)) if python is not None else None
        versions = peer.ask({"op": "versions"}) if peer is not None else {}
        return _main(options, peer, versions, why_not)


def _main(
    options: argparse.Namespace,
    peer: BloqadePeer | None,
    versions: dict[str, Any],
    why_not: str,
) -> int:
    peers = {"bloqade_analog": versions["bloqade-analog"]} if versions else {}
    info = machine(qutip=qt.__version__, **peers)
    print(describe(info))
    h = qutip_hamiltonian()
    exact_job, sub_job = sweep_job(), sweep_job(radius=7.0)
    folder = tempfile.TemporaryDirectory()
    job_file = Path(folder.name) / "sweep.json"
    job_file.write_text(json.dumps(exact_job))
    contenders = {
        "qmk_exact": lambda: run_job(exact_job),
        "qmk_fresh_process": lambda: fresh_process(job_file),
        "qmk_subspace": lambda: run_job(sub_job),
        "qutip_sesolve": lambda: qutip_run(h),
    }
    bloqade_request = {"op": "analog_run", "job": exact_job, "shots": SHOTS}
    if peer is not None:
        peer.ask(bloqade_request)  # its first run compiles and imports: not timed
        contenders["bloqade"] = lambda: peer.ask(bloqade_request)
    timings = timed_group(contenders, repeat=options.repeat, warmup=0)
    # Accuracy, once: QMK's exact state against QuTiP's, and the subspace's distribution.
    psi, states, sector_states = qmk_state(exact_job)
    want = qutip_run(h)
    order = [sum(((q >> (N_ATOMS - 1 - i)) & 1) << i for i in range(N_ATOMS)) for q in range(4096)]
    want_qmk = np.empty_like(want)
    want_qmk[order] = want
    fidelity = abs(np.vdot(want_qmk, psi)) ** 2
    sub_psi, sub_states, _ = qmk_state(sub_job)
    p_exact = np.abs(psi) ** 2
    p_sub = np.zeros(4096)
    p_sub[sub_states] = np.abs(sub_psi) ** 2
    tvd_sub = 0.5 * float(np.abs(p_exact[states] - p_sub[states]).sum())
    result = run_job(exact_job)
    counts = result.counts()
    z2 = "".join("1" if i % 2 == 0 else "0" for i in range(N_ATOMS))
    cases: dict[str, Any] = {}
    for name, t in timings.items():
        cases[name] = {"seconds": t.min_s, "median_seconds": t.median_s}
    cases["qmk_exact"].update(
        basis_states=int(states.size), sector_states=sector_states, goal_seconds=GOAL_S
    )
    cli = timings["qmk_fresh_process"].result
    folder.cleanup()
    cases["qmk_fresh_process"].update(
        goal_seconds=GOAL_S, elapsed_s_inside=cli["telemetry"]["elapsed_s"]
    )
    cases["qmk_subspace"].update(basis_states=int(sub_states.size), tvd_vs_exact=tvd_sub)
    cases["qutip_sesolve"].update(fidelity_vs_qmk=fidelity)
    notes: dict[str, str] = {}
    if peer is not None:
        theirs = peer.ask({"op": "analog", "job": exact_job})["probabilities"]
        ours = {
            "".join(str((int(q) >> i) & 1) for i in range(N_ATOMS)): float(abs(a) ** 2)
            for q, a in zip(states, psi, strict=True)
        }
        tvd_bloqade = 0.5 * sum(abs(ours.get(k, 0.0) - theirs.get(k, 0.0)) for k in ours)
        cases["bloqade"].update(
            status="ran", versions=versions, tvd_vs_qmk_exact=tvd_bloqade, basis_states=4096
        )
        notes["bloqade"] = (
            f"bloqade-analog {versions['bloqade-analog']}, TVD vs QMK {tvd_bloqade:.1e}"
        )
    else:
        cases["bloqade"] = {"status": f"skipped: {why_not}"}
    base = cases["qmk_exact"]["seconds"]
    print(f"{'contender':<16}{'best s':>10}{'median s':>10}{'/ qmk_exact':>13}  notes")
    notes = {
        "qmk_exact": f"{sector_states} of {states.size} states (mirror), goal {GOAL_S:g} s",
        "qmk_fresh_process": f"qmk device run, new process (run_job inside: "
        f"{cli['telemetry']['elapsed_s']:.2f} s)",
        "qmk_subspace": f"{sub_states.size} states, TVD vs exact {tvd_sub:.2e}",
        "qutip_sesolve": f"fidelity with QMK exact {fidelity:.10f}",
        **notes,
    }
    for name, note in notes.items():
        row = cases[name]
        print(
            f"{name:<16}{row['seconds']:>10.3f}{row['median_seconds']:>10.3f}"
            f"{row['seconds'] / base:>13.2f}  {note}"
        )
    if peer is None:
        print(f"bloqade: {cases['bloqade']['status']}")
    top = sorted(counts.items(), key=lambda kv: -kv[1])[:3]
    # 12 is even: both end atoms prefer |r>, so the ordered states carry one domain wall.
    print(f"top outcomes: {', '.join(f'{k} {v}' for k, v in top)}; Z2 {z2}: {counts.get(z2, 0)}")
    if options.plot:
        plot(options.plot, counts)
        print(f"plot: {options.plot}")
    record = {
        "machine": info,
        "load_average_at_end": load_averages(),
        "program": sweep_job(),
        "cases": cases,
        "z2_fraction": counts.get(z2, 0) / SHOTS,
        "when": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
    }
    write_json(record, options.out)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
