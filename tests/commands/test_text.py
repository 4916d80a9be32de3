"""The commands' text for people keeps a small rate's significant digits: never ``0``."""

from __future__ import annotations

from pathlib import Path

from qmk.commands.service import fields_text
from support.cli import qmk

RARE = """OPENQASM 3.0;
include "stdgates.inc";
qubit q;
bit c;
ry(0.01) q;
c = measure q;
"""


def test_a_rare_outcomes_share_of_the_shots_keeps_its_digits(tmp_path: Path) -> None:
    # P(1) = sin^2(0.005) = 2.5e-5: at seed 3 one shot in 100,000 reads 1 (it read 0.0000)
    program = tmp_path / "rare.qasm"
    program.write_text(RARE, encoding="utf-8")
    status, out, err = qmk("run", str(program), "--shots", "100000", "--seed", "3", "--no-noise")
    assert status == 0, err
    rows = {line.split()[0]: line.split()[1:] for line in out.splitlines() if line[:3] == "  0"}
    rows |= {line.split()[0]: line.split()[1:] for line in out.splitlines() if line[:3] == "  1"}
    assert rows == {"0": ["99999", "1.0000"], "1": ["1", "1e-05"]}, out


def test_a_small_rate_in_a_reply_reads_with_its_digits() -> None:
    text = fields_text({"logical_error_rate": 2.4e-09, "fidelity": 0.999, "at": 1700000000.5})
    assert text == "logical_error_rate: 2.4e-09\nfidelity: 0.999\nat: 1700000000.5\n"
