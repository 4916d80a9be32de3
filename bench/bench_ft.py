"""Estimates beside lattice-surgery schedules: runtime and physical qubits of a corpus.

For each program (the test corpus in ``tests/ft/programs`` and larger ones generated
here: Cuccaro ripple-carry adders of Toffolis, an approximate QFT whose rotations are
multiples of pi/4, a full QFT, random Clifford+T circuits), on ``qubit_gate_ns_e3`` with the
surface code at the estimator's own distance (``qmk run --lattice-surgery --profile
auto``):

- ``qmk estimate``'s runtime, physical qubits, T states and logical depth;
- the schedule ``qmk run --lattice-surgery`` executes, in the fast block (the estimator's
  layout) and the compact one: logical cycles, runtime, factory waits, routing stalls,
  physical qubits (block and factories);
- for the programs small enough for the statevector (``--shots``), the schedule run on
  the engine, noiseless, with the executed magic states and PPMs per shot.

Prints a Markdown table (``docs/ft-execution.md`` carries it) and writes
``bench/results/ft.json``. Not a test.

    python bench/bench_ft.py [--shots 20]
"""

from __future__ import annotations

import argparse
import tempfile
from pathlib import Path
from typing import Any

from _common import RESULTS, describe, machine, write_json
from qmk.estimate.counts import count_graph
from qmk.frontends import read_program
from qmk.ft.layout import layout_for
from qmk.ft.lower import lower
from qmk.ft.model import ft_model
from qmk.ft.schedule import schedule
from qmk.kernel.machine.programs import HEAD, adder, qft, random_clifford_t
from qmk.qvm.verify import verify

CORPUS = Path(__file__).resolve().parent.parent / "tests" / "ft" / "programs"
#: Qubits the statevector runs (data and one magic-state ancilla) in reasonable time.
EXECUTED_MAX_QUBITS = 8


def approximate_qft(n: int) -> str:
    """A QFT keeping only the pi/2 controlled phases (each a Clifford+T gate)."""
    lines = [HEAD, f"qreg q[{n}];", f"creg c[{n}];"]
    lines += [f"h q[{i}];\nt q[{i}];" for i in range(0, n, 2)]
    for i in range(n):
        lines.append(f"h q[{i}];")
        if i + 1 < n:
            lines.append(f"cu1(pi/2) q[{i + 1}],q[{i}];")
    lines += [f"swap q[{i}],q[{n - 1 - i}];" for i in range(n // 2)]
    lines.append("measure q -> c;")
    return "\n".join(lines) + "\n"


def corpus(folder: Path) -> list[tuple[str, Path]]:
    programs = [(p.stem, p) for p in sorted(CORPUS.glob("*.qasm"))]
    generated = {
        "adder_4bit": adder(4),
        "adder_16bit": adder(16),
        "aqft_16": approximate_qft(16),
        "qft_8": qft(8),
        "random_ct_10x400": random_clifford_t(10, 400, seed=2026),
    }
    for name, text in generated.items():
        path = folder / f"{name}.qasm"
        path.write_text(text, encoding="utf-8")
        programs.append((name, path))
    return programs


def row(name: str, path: Path, shots: int) -> dict[str, Any]:
    graph = read_program(str(path))
    program = verify(graph)
    model = ft_model(count_graph(graph), "qubit_gate_ns_e3")
    est = model.estimate
    breakdown = est["physicalCounts"]["breakdown"]
    lowered = lower(program)
    out: dict[str, Any] = {
        "program": name,
        "qubits": lowered.data_qubits,
        "distance": model.distance,
        "estimate": {
            "runtime_ns": est["physicalCounts"]["runtime"],
            "physical_qubits": est["physicalCounts"]["physicalQubits"],
            "t_states": breakdown["numTstates"],
            "logical_depth": breakdown["logicalDepth"],
            "t_factories": breakdown["numTfactories"],
        },
    }
    for block in ("fast", "compact"):
        layout = layout_for(model, block, lowered.qubits[: lowered.data_qubits])
        out[block] = schedule(lowered, layout, model).to_json()
    if len(lowered.qubits) + 1 <= EXECUTED_MAX_QUBITS and shots:
        result = _executed(program, shots)
        figures = result.telemetry.to_json()
        assert figures["magic_states_consumed"] == out["fast"]["magic_states_consumed"]
        assert figures["ppm_count"] == out["fast"]["ppm_count"]
        out["executed"] = {
            "shots": shots,
            "mode": result.telemetry.mode,
            "simulations": result.telemetry.simulations,
            "wall_time_s": result.telemetry.wall_time_s,
        }
    return out


def _executed(program: Any, shots: int) -> Any:
    """``program`` run on the lattice-surgery target (fast block, the estimator's
    distance, noiseless), as ``qmk run --lattice-surgery --profile auto`` runs it."""
    import msgspec

    from qmk.execution.runs import build_request
    from qmk.execution.surgery import SurgeryTarget

    request = build_request(program, shots=shots, seed=1, noise=False, qubit="qubit_gate_ns_e3")
    request = msgspec.structs.replace(request, target="lattice-surgery", profile="auto")
    return SurgeryTarget().compile(program, request).run(shots, 1)


def table(rows: list[dict[str, Any]]) -> str:
    head = (
        "| program | n | d | T states (est. / executed) | est. depth | est. runtime | "
        "fast: cycles | fast: runtime | x est. | factory waits | routing stalls | "
        "compact: runtime | est. qubits | fast qubits | compact qubits |\n"
        "|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|"
    )
    lines = [head]
    for r in rows:
        est, fast, compact = r["estimate"], r["fast"], r["compact"]
        ran = " (run)" if "executed" in r else ""
        lines.append(
            f"| {r['program']}{ran} | {r['qubits']} | {r['distance']} | {est['t_states']} / "
            f"{fast['magic_states_consumed']} | {est['logical_depth']} | "
            f"{est['runtime_ns'] / 1000:,.1f} us | {fast['logical_cycles']} | "
            f"{fast['runtime_ns'] / 1000:,.1f} us | {fast['runtime_ns'] / est['runtime_ns']:.2f} | "
            f"{fast['factory_wait_cycles']} | {fast['routing_stalls']} | "
            f"{compact['runtime_ns'] / 1000:,.1f} us | {est['physical_qubits']:,} | "
            f"{fast['physical_qubits']:,} | {compact['physical_qubits']:,} |"
        )
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--shots", type=int, default=20, help="shots of the executed runs")
    args = parser.parse_args()
    info = machine()
    print(describe(info))
    with tempfile.TemporaryDirectory() as folder:
        rows = [row(name, path, args.shots) for name, path in corpus(Path(folder))]
    print(table(rows))
    write_json({"machine": info, "rows": rows}, RESULTS / "ft.json")


if __name__ == "__main__":
    main()
