"""The wire job read through its schema (JobWire): coded errors naming the field, and the
shipped JSON Schema, generated from the structs that read a job, accepts what they accept."""

from __future__ import annotations

import json
from pathlib import Path

import jsonschema
import pytest

from qmk.devices.errors import DeviceError
from qmk.devices.neutral_atom import schema
from qmk.devices.neutral_atom.job import DEVICE_IDS, JobWire, parse_job
from qmk.devices.neutral_atom.profiles import load_profile, presets

DATA = Path(__file__).with_name("data")
ALLOC = {"op": "AllocArray", "n_qubits": 2}


@pytest.mark.parametrize("path", sorted(DATA.glob("prototype_*.json")), ids=lambda p: p.stem)
def test_every_prototype_job_reads_and_meets_the_shipped_schema(path: Path):
    wire = json.loads(path.read_text(encoding="utf-8"))
    jsonschema.validate(wire, schema.load_schema())
    assert parse_job(wire).program


@pytest.mark.parametrize("name", presets())
def test_every_presets_hardware_and_noise_meet_the_schema(name: str):
    profile = load_profile(name).to_json()
    job = {"program": [ALLOC], "profile": name, "hardware": profile["hardware"]}
    jsonschema.validate({**job, "noise": profile["noise"]}, schema.build_schema())
    assert parse_job(job).hardware == load_profile(name).hardware


@pytest.mark.parametrize(
    ("job", "field"),
    [
        ({"program": [], "shots": 0}, "shots"),
        ({"program": [], "seed": -1}, "seed"),
        ({"program": [], "shots": "10"}, "shots"),
        ({"program": [], "metadata": [1]}, "metadata"),
        ({"program": [], "max_threads": True}, "max_threads"),
        ({"program": [], "backend": "gpu"}, "backend"),
    ],
)
def test_a_bad_field_is_qd101_naming_it_and_the_schema_refuses_it_too(job: dict, field: str):
    with pytest.raises(DeviceError) as caught:
        parse_job(job)
    assert caught.value.code == "QD101" and caught.value.details["field"] == field
    assert field in caught.value.message and "\n" not in str(caught.value)
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate(job, schema.build_schema())


def test_the_keyword_overrides_are_checked_like_the_jobs_own_fields():
    with pytest.raises(DeviceError) as caught:
        parse_job({"program": [ALLOC]}, shots=0)
    assert caught.value.code == "QD101" and caught.value.details["field"] == "shots"
    with pytest.raises(DeviceError) as caught:
        parse_job({"program": [ALLOC]}, device_id="gpu")
    assert caught.value.code == "QD103"
    job = parse_job({"program": [ALLOC], "shots": 5, "seed": 1}, shots=7, seed=2)
    assert (job.shots, job.seed) == (7, 2)


def test_a_bad_hardware_field_is_qd105_and_a_bad_noise_qd108():
    with pytest.raises(DeviceError) as caught:
        parse_job({"program": [ALLOC], "hardware": {"positions": [0.0, "one"]}})
    assert caught.value.code == "QD105" and "hardware.positions[1]" in caught.value.message
    with pytest.raises(DeviceError) as caught:
        parse_job({"program": [ALLOC], "noise": {"p_loss": 2.0}})
    assert caught.value.code == "QD108"


def test_the_schema_lists_every_field_a_job_may_have():
    properties = schema.build_schema()["properties"]
    assert set(properties) == set(JobWire.__struct_fields__)
    assert properties["device_id"]["enum"] == [*DEVICE_IDS, None]
    assert {"state-vector", "stabilizer", "mps", "gpu-state-vector", "auto"} == set(DEVICE_IDS)
