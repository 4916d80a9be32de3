"""A device job's streams (issue 30, item 3): per-shot measurements, the pulse log and
state snapshots, against the result they come from and exact theory."""

from __future__ import annotations

import math

import pytest

from qmk.devices.errors import DeviceError
from qmk.devices.neutral_atom import run_job
from qmk.devices.neutral_atom.job import parse_job
from qmk.devices.neutral_atom.streams import StreamSpec, artifacts, parse_spec
from support.neutral_atom import gate, job, measure


def by_name(items):
    return {a["name"]: a["records"] for a in items}


def rabi_job(omega: float, duration: float) -> dict:
    return {
        "isa_version": "1.2",
        "hardware": {"positions": [0.0, 60.0]},
        "shots": 50,
        "seed": 3,
        "program": [
            {"op": "AllocArray", "n_qubits": 2},
            {"op": "Wait", "duration": 200},
            {
                "op": "Evolve",
                "duration": duration,
                "omega": [[0, omega], [duration, omega]],
                "delta": [[0, 0.0], [duration, 0.0]],
                "phase": 0.3,
            },
            {"op": "Measure", "targets": [0, 1]},
        ],
    }


def test_per_shot_measurements_are_the_results_records_shot_by_shot():
    wire = job(3, gate("H", 0), gate("CX", 0, 1), measure(0, 1), gate("X", 2), measure(2))
    parsed = parse_job(dict(wire, profile="lossy_chain"), shots=40, seed=5)
    result = run_job(parsed)
    shots = by_name(artifacts(parsed, result, StreamSpec(measurements=True)))["measurements"]
    assert [s["shot"] for s in shots] == list(range(40))
    flat = [m for s in shots for m in s["measurements"]]
    assert flat == result.measurements()
    keys = {}
    for s in shots:
        bits = [b for m in s["measurements"] for b in m["bits"]]
        key = "".join("L" if b < 0 else str(b) for b in bits)
        keys[key] = keys.get(key, 0) + 1
    assert keys == result.counts()


def test_the_pulse_log_puts_the_drive_on_the_programs_clock():
    wire = rabi_job(4.0, 600)
    parsed = parse_job(wire)
    result = run_job(parsed)
    log = by_name(artifacts(parsed, result, StreamSpec(pulses=True)))["pulses"]
    evolve = next(r for r in log if r["op"] == "Evolve")
    assert evolve["start_ns"] == 200.0 and evolve["duration_ns"] == 600.0
    assert evolve["omega"] == [[200.0, 4.0], [800.0, 4.0]] and evolve["phase"] == 0.3
    assert [r["start_ns"] for r in log] == sorted(r["start_ns"] for r in log)
    digital = parse_job(dict(job(2, gate("H", 0), gate("CZ", 0, 1)), profile="benchmark_chain"))
    log = by_name(artifacts(digital, run_job(digital), StreamSpec(pulses=True)))["pulses"]
    ops = [(r["op"], r["atoms"]) for r in log if not r.get("inserted")]
    assert ops[:3] == [("AllocArray", []), ("ApplyGate", [0]), ("ApplyGate", [0, 1])]
    assert log[2]["start_ns"] >= log[1]["start_ns"] + log[1]["duration_ns"]


def test_analog_snapshots_follow_the_exact_rabi_oscillation():
    omega, duration = 5.0, 800
    parsed = parse_job(rabi_job(omega, duration))
    points = (0.0, 100.0, 500.0, 1000.0)  # ns from the start: the Wait first, then the drive
    snaps = by_name(artifacts(parsed, run_job(parsed), StreamSpec(snapshots=points)))["snapshots"]
    assert [s["at"] for s in snaps] == list(points)
    for snap in snaps:
        driven_us = max(0.0, snap["at"] - 200.0) * 1e-3
        # two atoms 60 um apart (V ~ 1e-4 rad/us): each one Rabi-oscillates on its own
        p1 = math.sin(omega * driven_us / 2) ** 2
        probs = snap["probabilities"]
        assert probs.get("10", 0.0) == pytest.approx(p1 * (1 - p1), abs=1e-4)
        assert probs.get("11", 0.0) == pytest.approx(p1 * p1, abs=1e-4)
        if driven_us > 0:
            # the phase convention: from |g>, cos|g> - i e^{-i phi} sin|r>
            re, im = snap["state"]["10"]
            c, s = math.cos(omega * driven_us / 2), math.sin(omega * driven_us / 2)
            want = c * (-1j * math.e ** (-0.3j) * s)
            assert complex(re, im) == pytest.approx(want, abs=2e-4)


def test_digital_snapshots_are_the_exact_states_after_each_point():
    theta = 0.8
    wire = job(
        2, gate("RY", 0, param=theta), gate("CX", 0, 1), gate("Z", 1), profile="benchmark_chain"
    )
    parsed = parse_job(wire, shots=20, seed=1)
    snaps = by_name(artifacts(parsed, run_job(parsed), StreamSpec(snapshots=(1, 2, 3))))[
        "snapshots"
    ]
    c, s = math.cos(theta / 2), math.sin(theta / 2)
    wants = [{"00": c, "10": s}, {"00": c, "11": s}, {"00": c, "11": -s}]  # Z flips |11>
    for snap, want in zip(snaps, wants, strict=True):
        got = {k: complex(*v) for k, v in snap["state"].items()}
        assert got == pytest.approx(want, abs=1e-12)
    assert snaps[2]["units"] == "instruction"


@pytest.mark.parametrize(
    ("wire", "spec", "says"),
    [
        (job(1, gate("H", 0), measure(0), gate("H", 0)), {"snapshots": [3]}, "before the first"),
        (job(1, gate("H", 0)), {"snapshots": [1.5]}, "indices"),
        (rabi_job(4.0, 600), {"snapshots": [900.0]}, "0 to 800"),
        (job(1, gate("H", 0)), ["measurements", "logs"], "no stream 'logs'"),
        (job(1, gate("H", 0)), {"pulses": "yes"}, "stream"),
    ],
)
def test_a_stream_the_device_cannot_serve_is_qd114_naming_why(wire, spec, says):
    parsed = parse_job(wire if "hardware" in wire else dict(wire, profile="ideal_small_array"))
    with pytest.raises(DeviceError) as caught:
        artifacts(parsed, run_job(parsed), parse_spec(spec))
    assert caught.value.code == "QD114" and says in caught.value.message


def test_snapshots_of_more_than_sixteen_atoms_are_refused():
    from qmk.devices.neutral_atom.profiles import Profile
    from qmk.devices.neutral_atom.streams import check

    wide = Profile.from_json({"name": "w", "lattice": {"kind": "chain", "n": 17, "spacing": 2.0}})
    parsed = parse_job(job(17, gate("H", 0)), preset=wide)
    with pytest.raises(DeviceError) as caught:
        check(parsed, StreamSpec(snapshots=(1,)))
    assert caught.value.code == "QD114" and "17 atoms" in caught.value.message


def test_device_run_writes_the_streams_of_a_local_run(tmp_path):
    import json

    from support.cli import qmk

    path = tmp_path / "job.json"
    wire = job(2, gate("H", 0), gate("CX", 0, 1), profile="ideal_small_array")
    path.write_text(json.dumps(wire))
    folder = tmp_path / "out"
    code, out, err = qmk(
        "device", "run", str(path), "--shots", "25", "--seed", "4", "--stream",
        "measurements,pulses", "--snapshot", "1", "--artifacts", str(folder), "--json",
    )  # fmt: skip
    assert code == 0, err
    result = json.loads(out)
    shots = json.loads((folder / "measurements.json").read_text())
    assert [m for s in shots for m in s["measurements"]] == result["measurements"]
    snap = json.loads((folder / "snapshots.json").read_text())[0]
    assert set(snap["probabilities"]) == {"00", "10"}
    assert [r["op"] for r in json.loads((folder / "pulses.json").read_text())][:2] == [
        "AllocArray",
        "ApplyGate",
    ]
    code, out, err = qmk("device", "run", str(path), "--stream", "pulses")
    assert code == 2 and err.startswith("QD114 stream-invalid: ") and "--artifacts" in err
