"""The assistant's ``run`` tool takes the machine's run parameters through the one builder:
the default shots (within its cap), a seed drawn and reported when the model names none,
and a bad seed refused with its code, never replaced."""

from __future__ import annotations

from qmk import defaults
from qmk.assist.tools import Context, call

BELL = """OPENQASM 2.0;
include "qelib1.inc";
qreg q[2]; creg c[2];
h q[0]; cx q[0], q[1];
measure q -> c;
"""


def test_the_run_tool_runs_the_default_shots_within_its_cap_and_reports_the_drawn_seed() -> None:
    ctx = Context()
    first, second = (call("run", {"program": BELL}, ctx) for _ in range(2))
    assert first["ok"] and first["shots"] == min(defaults.SHOTS, ctx.max_shots)
    assert sum(first["counts"].values()) == first["shots"]
    assert first["seed"] != second["seed"]  # drawn, not a fixed seed of its own
    assert max(first["seed"], second["seed"]) >= 2**32  # from the 63-bit source
    small = call("run", {"program": BELL}, Context(max_shots=10))
    assert small["shots"] == 10


def test_the_run_tool_repeats_at_a_named_seed() -> None:
    ctx = Context()
    runs = [call("run", {"program": BELL, "shots": 200, "seed": 3}, ctx) for _ in range(2)]
    assert runs[0]["counts"] == runs[1]["counts"] and runs[0]["seed"] == 3
    assert set(runs[0]["counts"]) <= {"00", "11"}


def test_a_bad_seed_or_shots_is_refused_with_its_code_not_replaced() -> None:
    ctx = Context()
    for args, code in [
        ({"seed": "seven"}, "QE105"),
        ({"seed": -1}, "QE105"),
        ({"shots": 0}, "QE105"),
        ({"shots": ctx.max_shots + 1}, "QL107"),
    ]:
        reply = call("run", {"program": BELL, **args}, ctx)
        assert (reply["ok"], reply["code"]) == (False, code), reply
