"""What a capped, confined kernel worker runs for the engine tests (importable by name:
the worker unpickles these functions).

Each returns plain data, so the test in the pool's process checks it; an exception in
the worker (a failed conformance check, an engine's refusal) comes back as itself.
"""

from __future__ import annotations

import math
import random
from typing import Any


def noisy_program(qubits: int = 10, gates: int = 3800, seed: int = 27) -> str:
    """Issue 27's shape: ``qubits`` qubits, ``gates`` seeded random gates (H, T, CX, RZ),
    every qubit measured at the end (OpenQASM 2): about 3,822 nodes."""
    rng = random.Random(seed)
    lines = ["OPENQASM 2.0;", 'include "qelib1.inc";', f"qreg q[{qubits}];", f"creg c[{qubits}];"]
    for _ in range(gates):
        a, b = rng.sample(range(qubits), 2)
        pick = rng.random()
        if pick < 0.3:
            lines.append(f"h q[{a}];")
        elif pick < 0.5:
            lines.append(f"t q[{a}];")
        elif pick < 0.8:
            lines.append(f"cx q[{a}],q[{b}];")
        else:
            lines.append(f"rz({rng.uniform(0, 2 * math.pi):.6f}) q[{a}];")
    lines.append("measure q -> c;")
    return "\n".join(lines) + "\n"


def limits() -> dict[str, Any]:
    """The worker's limits as the router reads them."""
    from qmk.engines.limits import WorkerLimits

    return WorkerLimits.read().to_json()


def conform(engine: str) -> str:
    """Run the engine conformance suite on ``engine`` here (a small one: the worker's
    time is the test's); returns the engine's name when it passes."""
    from qmk.engines import make_engine
    from qmk.testing import assert_engine_conformance

    assert_engine_conformance(
        lambda seed: make_engine(engine, seed=seed), seed=27, qubits=4, circuits=4, shots=800
    )
    return engine


def run_program(text: str, engine: str | None, shots: int = 50) -> dict[str, Any]:
    """Route ``text`` here (noise on) and, unless the router refused, run it: the engine
    that ran, the router's choice (every candidate) and the counts' total, or the
    router's refusal (``refused``: its code and message). An error from the run itself
    (an engine refusing what the router gave it) is raised."""
    import qmk
    from qmk import defaults
    from qmk._front import read
    from qmk.engines import EngineError
    from qmk.execution.executor import build_plan, load_program, route_plan

    plan = build_plan(
        load_program(read(text)),
        noise=True,
        qubit=defaults.QUBIT,
        default_profile=defaults.PROFILE,
    )
    try:
        route_plan(plan, engine, shots=shots)
    except EngineError as exc:
        return {"refused": str(exc)}
    result = qmk.run(text, shots=shots, seed=3, engine=engine)
    assert result.choice is not None
    return {
        "engine": result.engine,
        "choice": result.choice.to_json(),
        "shots": sum(result.counts.values()),
    }
