"""The neutral-atom target: a device job runs as the emulator runs it, a QVM program as
run_program compiles and runs it (the same counts at the same seed), its footprint is the
device's schedule, and what it cannot honour is refused with a code."""

from __future__ import annotations

from pathlib import Path

import msgspec
import pytest

from qmk.devices.errors import DeviceError
from qmk.devices.neutral_atom.compile import run_program
from qmk.devices.neutral_atom.emulator import run_job
from qmk.devices.neutral_atom.target import DEVICE_CAP, DeviceJob, NeutralAtomTarget
from qmk.execution.request import RunRequest
from qmk.execution.target import TargetError
from support.neutral_atom import gate, job

ROOT = Path(__file__).parents[3]
GHZ = job(3, gate("H", 0), gate("CX", 0, 1), gate("CX", 1, 2), profile="benchmark_chain", shots=400)


def request(**fields) -> RunRequest:
    return RunRequest(program_digest="ab" * 32, shots=400, seed=7, target="neutral-atom", **fields)


def test_a_device_job_gives_the_emulators_counts_at_every_seed() -> None:
    target = NeutralAtomTarget()
    program = target.read(GHZ)
    assert isinstance(program, DeviceJob) and DEVICE_CAP in program.required_caps
    executable = target.compile(program, request())
    for seed in (7, 8):
        result = executable.run(400, seed)
        assert result.counts == run_job(GHZ, shots=400, seed=seed).counts()
        assert result.target == "neutral-atom" and result.seed == seed
        assert result.to_json()["device"]["profile"] == "benchmark_chain"


def test_a_qvm_program_gives_run_programs_counts_and_needs_the_device_capability() -> None:
    target = NeutralAtomTarget()
    path = str(ROOT / "examples" / "ghz.qvm.json")
    program = target.read(path)
    assert DEVICE_CAP in program.required_caps
    options = {"preset": "ideal_small_array"}
    result = target.compile(program, request(target_options=options)).run(300, 5)
    want = run_program(program.program, "ideal_small_array", shots=300, seed=5)
    assert result.counts == dict(want.counts)
    assert result.events == tuple(want.report.events)
    assert result.to_json()["compile"]["profile"] == "ideal_small_array"


def test_noise_off_runs_the_device_without_its_noise_model() -> None:
    target = NeutralAtomTarget()
    result = target.compile(target.read(GHZ), request(noise=False)).run(400, 3)
    assert set(result.counts) == {"000", "111"}


def test_the_footprint_is_the_devices_schedule() -> None:
    target = NeutralAtomTarget()
    executable = target.compile(target.read(GHZ), request())
    fp = executable.footprint
    assert fp.target == "neutral-atom" and fp.tiles == 0 and fp.duration_cycles == 0
    assert fp.physical_qubits == fp.logical_qubits == 3
    assert fp.duration_ns == executable.timeline.total_ns > 0
    assert fp.measurements == 3  # one Measure of three atoms


@pytest.mark.parametrize(
    ("fields", "option"),
    [
        ({"engine": "statevector"}, "engine"),
        ({"profile": "logical:surface_code(d=5)"}, "profile"),
        ({"noise_model": "depolarizing(p=0.001)"}, "noise_model"),
        ({"target_options": {"block": "fast"}}, "block"),
        ({"target_options": {"routing": "swap"}}, "routing"),
    ],
)
def test_settings_of_other_targets_are_refused_naming_them(fields, option) -> None:
    target = NeutralAtomTarget()
    with pytest.raises(TargetError) as caught:
        target.compile(target.read(GHZ), request(**fields))
    assert caught.value.code == "QM102" and option in caught.value.message


def test_a_kernels_job_names_shipped_presets_only(tmp_path) -> None:
    profile = tmp_path / "mine.toml"
    profile.write_text("")
    target = NeutralAtomTarget()
    wired = msgspec.structs.replace(request(), target_options={"preset": str(profile)})
    with pytest.raises(DeviceError) as caught:
        target.compile(target.read(GHZ), wired)
    assert caught.value.code == "QD104"


def test_a_job_the_device_refuses_is_refused_when_it_compiles() -> None:
    target = NeutralAtomTarget()
    bad = job(2, gate("CX", 0, 5), profile="benchmark_chain")
    with pytest.raises(DeviceError):
        target.compile(target.read(bad), request())
