"""A flat Clifford OpenQASM file run by ``qmk run`` gives the results it gave before the
stages of its run were made cheaper (issue 76): the same counts, the same telemetry
(logical errors injected included) at each seed, for the cases of :data:`CASES`. The
program is a seeded flat file of one- and two-qubit Cliffords (:func:`flat_text`), read
in bulk, its logical errors drawn as error sites (flip masks), with a dense noise model
and without noise.

``data/flat_clifford.json`` was written by this module's ``__main__`` on the code before
that change (commit 64edb34d); it is never rewritten to make a test pass.
"""

from __future__ import annotations

import hashlib
import json
import random
import sys
from pathlib import Path
from typing import Any

import pytest

from qmk.cli import main
from qmk.execution import batch

GOLDEN = Path(__file__).with_name("data") / "flat_clifford.json"
ONE_QUBIT = ["h", "s", "sdg", "x", "y", "z"]

#: (name, gates, qubits, shots, seed, extra ``qmk run`` options)
CASES: list[tuple[str, int, int, int, int, tuple[str, ...]]] = [
    ("default-noise", 3000, 20, 1000, 1, ()),
    ("default-noise-seed-2", 3000, 20, 1000, 2, ()),
    (
        "dense-noise",
        2000,
        12,
        500,
        3,
        ("--noise-model", "depolarizing(p=0.004)", "--profile", "logical:surface_code(d=3)"),
    ),
    ("no-noise", 3000, 20, 1000, 4, ("--no-noise",)),
]


def flat_text(gates: int, qubits: int, seed: int) -> str:
    """A seeded flat OpenQASM 2 file: half ``cx``, the rest ``h s sdg x y z``, then every
    qubit measured."""
    rng = random.Random(seed)
    lines = ["OPENQASM 2.0;", 'include "qelib1.inc";', f"qreg q[{qubits}];", f"creg c[{qubits}];"]
    for _ in range(gates):
        if rng.random() < 0.5:
            a, b = rng.sample(range(qubits), 2)
            lines.append(f"cx q[{a}],q[{b}];")
        else:
            lines.append(f"{rng.choice(ONE_QUBIT)} q[{rng.randrange(qubits)}];")
    lines.append("measure q -> c;")
    return "\n".join(lines) + "\n"


def _outcome(folder: Path, case: tuple[str, int, int, int, int, tuple[str, ...]], out) -> Any:
    """The run's JSON but its wall times, and the SHA-256 of its counts."""
    name, gates, qubits, shots, seed, extra = case
    path = folder / f"{name}.qasm"
    path.write_text(flat_text(gates, qubits, seed))
    argv = ["run", "--shots", str(shots), "--seed", str(seed), "--json", *extra, str(path)]
    assert main(argv) == 0
    data = json.loads(out())
    counts = data.pop("counts")
    telemetry = data["telemetry"]
    for key in ("wall_time_s", "engine_reason"):
        telemetry.pop(key, None)
    digest = hashlib.sha256(json.dumps(counts, sort_keys=True).encode()).hexdigest()
    return {"counts_sha256": digest, "outcomes": len(counts), **data}


@pytest.mark.parametrize("case", CASES, ids=[case[0] for case in CASES])
def test_a_flat_clifford_run_gives_the_counts_and_telemetry_it_gave_before(
    case, tmp_path, capsys, monkeypatch
):
    # The errors drawn a site at a time, as when the golden runs were written: many
    # sites at low rates are drawn over their cells at once since (flat10), the same
    # distribution from another stream (tests/execution/test_flip_masks.py); the rest of
    # the run is held to the same bits here.
    monkeypatch.setattr(batch, "_THINNED", 0.0)
    got = _outcome(tmp_path, case, lambda: capsys.readouterr().out)
    assert got == json.loads(GOLDEN.read_text())[case[0]]


def test_the_golden_runs_include_logical_errors_that_struck():
    golden = json.loads(GOLDEN.read_text())
    assert golden["default-noise"]["telemetry"]["injected_logical_errors"] > 0
    assert golden["dense-noise"]["telemetry"]["injected_logical_errors"] > 0


if __name__ == "__main__":  # written once, on the code before the change (see above)
    if "--write" not in sys.argv:
        raise SystemExit("pass --write to overwrite data/flat_clifford.json")
    import io
    import tempfile
    from contextlib import redirect_stdout

    written = {}
    with tempfile.TemporaryDirectory() as folder:
        for case in CASES:
            buffer = io.StringIO()
            with redirect_stdout(buffer):
                written[case[0]] = _outcome(Path(folder), case, lambda b=buffer: b.getvalue())
    GOLDEN.write_text(json.dumps(written, indent=1, sort_keys=True) + "\n")
