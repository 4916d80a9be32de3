"""``qmk plan`` and ``qmk run`` with ``--modules``/``--placement``: where the gates are
teleported, and a run of the teleported program (GHZ: only all-zeros and all-ones)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from support.cli import qmk
from support.paths import EXAMPLES

GHZ = str(EXAMPLES / "ghz.qvm.asm")  # 5 qubits, a CNOT chain


def test_plan_shows_the_placement_and_each_teleported_gate() -> None:
    status, out, err = qmk("plan", GHZ, "--modules", "2", "--link-latency-ns", "500")
    assert status == 0, err
    assert "modules: 2 (automatic placement, 1 cross-module interactions)" in out
    assert "teleported gates: 1, EPR pairs consumed: 1 per shot, latency added: 500 ns" in out
    assert "cnot_q3 APPLY_CNOT q2 q3: on module 1, pairs 0->1" in out


def test_plan_json_has_a_teleportation_section_beside_the_variants() -> None:
    status, out, _ = qmk("plan", GHZ, "--placement", "q0=0,q1=1,q2=0,q3=1,q4=0", "--json")
    assert status == 0
    data = json.loads(out)
    assert "variants" in data
    teleported = data["teleportation"]
    assert teleported["placement"]["automatic"] is False
    assert teleported["teleported_gates"] == teleported["epr_pairs"] == 4
    assert [g["node"] for g in teleported["gates"]] == [f"cnot_q{i}" for i in range(1, 5)]


def test_run_teleported_ghz_gives_ghz_counts_and_says_what_it_teleported() -> None:
    status, out, err = qmk(
        "run", GHZ, "--modules", "3", "--no-noise", "--seed", "11", "--shots", "2000", "--json"
    )
    assert status == 0, err
    data = json.loads(out)
    assert set(data["counts"]) == {"00000", "11111"}
    assert min(data["counts"].values()) > 800  # each 1000 expected; 5 sigma is 112
    teleported = data["teleportation"]
    assert teleported["placement"]["modules"] == 3
    assert data["telemetry"]["channel_uses"] == {"teleported-gate": teleported["epr_pairs"]}
    assert teleported["epr_pairs"] >= 2


def test_run_text_output_lists_the_modules() -> None:
    status, out, _ = qmk("run", GHZ, "--modules", "2", "--no-noise", "--seed", "1")
    assert status == 0
    assert "module 0:" in out and "teleported gates: 1" in out


def test_a_bad_placement_is_one_coded_line() -> None:
    status, out, err = qmk("run", GHZ, "--placement", "q0=0,q1=1")
    assert (status, out) == (1, "")
    assert err.startswith("QV601 bad-placement:") and err.count("\n") == 1


@pytest.mark.parametrize("command", ["run", "plan"])
@pytest.mark.parametrize(
    "option", [("--link-fidelity", "0.9"), ("--module-qubits", "1000"), ("--link-latency-ns", "5")]
)
def test_link_options_without_modules_are_bad_usage_exit_2_not_dropped(
    command: str, option: tuple[str, str]
) -> None:
    status, out, err = qmk(command, GHZ, *option)
    assert (status, out) == (2, "")
    assert err == f"QW011 bad-option: {option[0]} needs --modules or --placement\n"


def test_module_options_with_a_device_are_refused() -> None:
    status, _, err = qmk("run", GHZ, "--device", "generic-ring-16", "--modules", "2")
    assert status == 2 and err.startswith("QM102")
    assert "--modules is not an option of the neutral-atom target" in err


def test_placement_program_reads_the_modules_the_program_declares(tmp_path: Path) -> None:
    vqs = ["a", "b"]
    nodes: list[dict[str, Any]] = [
        {"id": f"alloc_{q}", "op": "ALLOC_LQ", "vqs": [q], "metadata": {"module": i}}
        for i, q in enumerate(vqs)
    ]
    nodes += [
        {"id": "h", "op": "APPLY_H", "vqs": ["a"]},
        {"id": "cx", "op": "APPLY_CNOT", "vqs": ["a", "b"]},
        {"id": "ma", "op": "MEASURE_Z", "vqs": ["a"], "produces": ["ea"]},
        {"id": "mb", "op": "MEASURE_Z", "vqs": ["b"], "produces": ["eb"]},
        {"id": "free", "op": "FREE_LQ", "vqs": vqs},
    ]
    path = tmp_path / "bell.qvm.json"
    path.write_text(
        json.dumps(
            {
                "version": "0.2",
                "program": {"nodes": nodes},
                "resources": {"vqs": vqs, "events": ["ea", "eb"]},
                "caps": ["CAP_ALLOC"],
            }
        )
    )
    status, out, err = qmk("run", str(path), "--placement", "program", "--no-noise", "--json")
    assert status == 0, err
    data = json.loads(out)
    assert set(data["counts"]) == {"00", "11"}
    assert data["teleportation"]["gates"][0]["pairs"] == [[0, 1]]
    status, _, err = qmk("run", GHZ, "--placement", "program")
    assert status == 1 and "no ALLOC_LQ declares an integer metadata.module" in err
