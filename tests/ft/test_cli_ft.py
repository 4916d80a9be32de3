"""``qmk plan FILE --layout`` and ``qmk run FILE --lattice-surgery``: what they print, and
the options they refuse with a code."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest

from support.cli import qmk

PROGRAMS = Path(__file__).parent / "programs"
TOFFOLI = str(PROGRAMS / "toffoli.qasm")
TELEMETRY = (
    "ppm_count",
    "magic_states_consumed",
    "logical_cycles",
    "runtime_ns",
    "factory_wait_cycles",
    "routing_stalls",
)


def test_plan_layout_draws_the_fast_block_with_the_estimators_tile_count():
    status, out, err = qmk("plan", TOFFOLI, "--layout")
    assert status == 0, err
    assert ".00" in out and ".22" in out and "F" in out
    assert "block: 12 tiles (6 data, 6 routing)" in out
    _, estimate, _ = qmk("estimate", TOFFOLI, "--json")
    physical = json.loads(estimate)["physicalCounts"]["physicalQubits"]
    assert f"physical qubits: {physical:,}" in out


@pytest.mark.parametrize("block", ["compact", "intermediate", "fast"])
def test_plan_layout_json_gives_the_blocks_tiles(block):
    status, out, _ = qmk("plan", TOFFOLI, "--layout", "--block", block, "--json")
    assert status == 0
    layout = json.loads(out)["layout"]
    n = 3
    expected = {
        "compact": math.ceil(1.5 * n) + 3,
        "intermediate": 2 * n + 4,
        "fast": 2 * n + math.ceil(math.sqrt(8 * n)) + 1,
    }[block]
    assert layout["tiles"] == expected
    assert layout["data_qubits"] == n


def test_plan_layout_writes_a_png(tmp_path):
    pytest.importorskip("matplotlib")
    png = tmp_path / "layout.png"
    status, _, err = qmk("plan", TOFFOLI, "--layout", "--png", str(png))
    assert status == 0, err
    assert png.read_bytes()[:4] == b"\x89PNG"


@pytest.mark.parametrize(
    ("argv", "code"),
    [
        (("plan", TOFFOLI, "--png", "x.png"), "QW011"),
        (("plan", TOFFOLI, "--block", "fast"), "QW011"),
        (("plan", TOFFOLI, "--layout", "--objective", "runtime"), "QW011"),
        # each target refuses what it cannot honour (qmk.execution.target): QM102
        (("run", TOFFOLI, "--block", "fast"), "QM102"),
        (("run", TOFFOLI, "--lattice-surgery", "--engine", "stabilizer"), "QE103"),
        (("run", TOFFOLI, "--lattice-surgery", "--state", "s.json"), "QM102"),
        (("run", TOFFOLI, "--lattice-surgery", "--noise-model", "depolarizing(p=1e-3)"), "QM102"),
        (("run", TOFFOLI, "--lattice-surgery", "--precision", "single"), "QM102"),
        (("run", TOFFOLI, "--lattice-surgery", "--modules", "2"), "QM102"),
        (("run", TOFFOLI, "--lattice-surgery", "--device", "x"), "QW011"),
        (("run", TOFFOLI, "--lattice-surgery", "--profile", "logical:bacon_shor(d=5)"), "QP104"),
    ],
)
def test_options_a_lattice_surgery_run_or_layout_cannot_honour_are_coded_errors(argv, code):
    status, out, err = qmk(*argv)
    assert status != 0 and out == ""
    assert err.startswith(code), err


def test_run_lattice_surgery_reports_the_issues_telemetry_names():
    status, out, err = qmk(
        "run",
        TOFFOLI,
        "--lattice-surgery",
        "--shots",
        "50",
        "--seed",
        "3",
        "--json",
        "--profile",
        "auto",
    )
    assert status == 0, err
    data = json.loads(out)
    telemetry = data["telemetry"]
    assert all(name in telemetry for name in TELEMETRY)
    assert telemetry["magic_states_consumed"] == 5  # = qmk estimate's numTstates
    assert telemetry["code_distance"] == 7  # the estimator's, with --profile auto
    assert telemetry["runtime_ns"] == telemetry["logical_cycles"] * telemetry["cycle_time_ns"]
    assert sum(data["counts"].values()) == 50
    assert data["target"] == "lattice-surgery" and telemetry["mode"] == "branches"
    assert telemetry["code_cycles"] == telemetry["logical_cycles"] * 7
    ops = data["schedule"]  # every op with its ticks, in execution order
    assert len([o for o in ops if o["op"].startswith(("R(", "M("))]) == telemetry["ppm_count"]
    assert max(o["end"] for o in ops) == telemetry["logical_cycles"]


def test_run_lattice_surgery_prints_counts_and_telemetry():
    status, out, err = qmk(
        "run", TOFFOLI, "--lattice-surgery", "--shots", "20", "--seed", "3", "--block", "compact"
    )
    assert status == 0, err
    assert "target lattice-surgery" in out
    assert "block compact" in out and "profile logical:surface_code(d=9)" in out
    assert "magic_states_consumed 5" in out and "routing_stalls" in out
