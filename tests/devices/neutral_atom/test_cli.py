"""qmk device list|show|isa|run: output, JSON, one-line coded errors and exit statuses."""

from __future__ import annotations

import json
from pathlib import Path

from support.cli import qmk

DATA = Path(__file__).with_name("data")
BELL = str(DATA / "prototype_bell_client.json")


def test_list_names_every_preset():
    status, out, err = qmk("device", "list")
    assert status == 0 and not err
    assert "benchmark_chain" in out and "readout_stress" in out
    status, out, _ = qmk("device", "list", "--json")
    assert {row["name"] for row in json.loads(out)} >= {"ideal_small_array", "lossy_chain"}


def test_show_prints_a_preset_and_its_json_is_a_profile_template():
    status, out, _ = qmk("device", "show", "ideal_square_grid")
    assert status == 0 and "blockade radius 1.5" in out and "NearestNeighborGrid" in out
    status, out, _ = qmk("device", "show", "benchmark_chain", "--json")
    data = json.loads(out)
    assert data["name"] == "benchmark_chain" and len(data["hardware"]["sites"]) == 20


def test_show_of_an_unknown_preset_is_one_coded_line():
    status, out, err = qmk("device", "show", "nope")
    assert status == 2 and not out
    assert err.startswith("QD104 preset-unknown:") and err.count("\n") == 1


def test_isa_lists_versions_ops_and_gates():
    status, out, _ = qmk("device", "isa")
    assert (
        status == 0
        and "1.0, 1.1, 1.2" in out
        and "MoveAtom" in out
        and "U3(theta, phi, lambda)" in out
    )
    status, out, _ = qmk("device", "isa", "--json")
    data = json.loads(out)
    assert data["versions"] == ["1.0", "1.1", "1.2"] and "$defs" in data["schema"]


def test_run_prints_counts_and_its_json_has_the_promised_fields():
    status, out, _ = qmk("device", "run", BELL, "--shots", "100", "--seed", "3")
    assert status == 0 and "on state-vector" in out and "seed 3" in out
    status, out, _ = qmk("device", "run", BELL, "--shots", "100", "--seed", "3", "--json")
    data = json.loads(out)
    assert {"status", "counts", "measurements", "timeline", "telemetry"} <= set(data)
    assert data["status"] == "completed" and set(data["counts"]) <= {"00", "11"}
    assert sum(data["counts"].values()) == 100 and len(data["measurements"]) == 100


def test_run_with_the_same_seed_prints_the_same_result():
    first = qmk("device", "run", BELL, "--shots", "50", "--seed", "8", "--json")[1]
    again = qmk("device", "run", BELL, "--shots", "50", "--seed", "8", "--json")[1]
    assert json.loads(first)["measurements"] == json.loads(again)["measurements"]


def test_run_on_another_preset_and_backend(tmp_path):
    path = tmp_path / "ghz.json"
    program = [
        {"op": "AllocArray", "n_qubits": 3},
        {"op": "ApplyGate", "name": "H", "targets": [0]},
        {"op": "ApplyGate", "name": "CX", "targets": [0, 1]},
        {"op": "ApplyGate", "name": "CX", "targets": [1, 2]},
        {"op": "Measure", "targets": [0, 1, 2]},
    ]
    path.write_text(json.dumps({"program": program}))
    status, out, _ = qmk(
        "device",
        "run",
        str(path),
        "--device",
        "benchmark_chain",
        "--backend",
        "stabilizer",
        "--shots",
        "200",
        "--seed",
        "1",
        "--json",
        "--no-measurements",
    )
    data = json.loads(out)
    assert status == 0 and data["profile"] == "benchmark_chain" and "measurements" not in data
    assert data["telemetry"]["backend"] == "stabilizer"


def test_run_errors_are_one_coded_line_with_an_exit_status(tmp_path):
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps({"isa_version": {"major": 3, "minor": 0}, "program": []}))
    status, out, err = qmk("device", "run", str(bad))
    assert status == 2 and not out and err.startswith("QD102 ") and err.count("\n") == 1
    far = tmp_path / "far.json"
    far.write_text(
        json.dumps(
            {
                "profile": "benchmark_chain",
                "program": [
                    {"op": "AllocArray", "n_qubits": 3},
                    {"op": "ApplyGate", "name": "CZ", "targets": [0, 2]},
                ],
            }
        )
    )
    status, _, err = qmk("device", "run", str(far))
    assert status == 2 and err.startswith("QD203 not-connected: instruction #1")
    status, _, err = qmk("device", "run", str(tmp_path / "missing.json"))
    assert status == 2 and err.startswith("QD101 ")


def test_info_and_calibrate_are_still_there():
    # They reach their own checks (a client needs a tenant; a file must be readable).
    status, _, err = qmk("device", "info", "--socket", "/nonexistent/qmk.sock")
    assert status == 2 and err.startswith("QW011 bad-option: no tenant")
    status, _, err = qmk("device", "calibrate", "/nonexistent.json")
    assert status == 2 and "not a readable JSON file" in err


def test_shots_and_seeds_beyond_every_runs_range_are_refused_not_run(tmp_path):
    # a local device run took any shots (10**9 ran until killed; 10**20 in the job file
    # was an internal error): the range of every run, qmk.defaults.MAX_SHOTS and SEED_BOUND
    from qmk import defaults

    too_many = str(defaults.MAX_SHOTS + 1)
    status, out, err = qmk("device", "run", BELL, "--shots", too_many)
    assert (status, out) == (2, "")
    assert err.startswith("QW011 bad-option: qmk device run: argument --shots: ")
    job = json.loads(Path(BELL).read_text(encoding="utf-8"))
    for key, value in (("shots", 10**20), ("shots", defaults.MAX_SHOTS + 1), ("seed", 2**64 - 1)):
        path = tmp_path / f"{key}.json"
        path.write_text(json.dumps({**job, key: value}), encoding="utf-8")
        status, out, err = qmk("device", "run", str(path))
        assert (status, out) == (2, ""), err
        assert err.startswith(f"QD101 job-malformed: {key}: ") and err.count("\n") == 1
