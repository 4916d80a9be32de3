"""The JSON Schema of a neutral-atom job (the v1 wire form), generated from its schemas.

Public API:

- :func:`build_schema`: the schema. The job's fields and its ``hardware`` come from the
  msgspec structs that read them, :class:`~qmk.devices.neutral_atom.job.JobWire` and
  :class:`~qmk.devices.neutral_atom.profiles.HardwareWire`. The instructions come from
  the ISA table, :data:`~qmk.devices.neutral_atom.isa.OPS` and
  :data:`~qmk.devices.neutral_atom.isa.GATES`.
- :func:`load_schema`: the shipped copy, ``schema.json`` next to this module;
  :data:`SCHEMA_PATH`.
- the command ``python -m qmk.devices.neutral_atom.schema (--check | --write)``. After
  changing the ISA table or those structs run ``--write``; a test fails when the
  shipped copy drifts (``--check`` exits 1). ``qmk schema --kind device-job`` prints it.

The schema says what one document can: each instruction's fields and types, the gate
names, the versions, the shape of ``hardware`` and ``noise``. What depends on a device
(catalog, connectivity, blockade, timing) is the validators' (:mod:`.validate`).

>>> schema = build_schema()
>>> schema["$defs"]["ApplyGate"]["properties"]["name"]["enum"][:4]
['X', 'Y', 'Z', 'H']
>>> load_schema() == schema
True
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import msgspec

from qmk.devices.neutral_atom.isa import GATES, OPS, VERSIONS, FieldSpec, FieldType
from qmk.devices.neutral_atom.job import JobWire
from qmk.devices.neutral_atom.profiles import HardwareWire
from qmk.values import clean_descriptions

#: The shipped schema (package data).
SCHEMA_PATH = Path(__file__).with_name("schema.json")
DIALECT = "https://json-schema.org/draft/2020-12/schema"

_NUMBER = {"type": "number"}
#: A piecewise-linear waveform: [[t_ns, value], ...] (at least two points).
_WAVEFORM: dict[str, Any] = {
    "type": "array",
    "items": {"type": "array", "items": _NUMBER, "minItems": 2, "maxItems": 2},
    "minItems": 2,
}


def _field(spec: FieldSpec) -> dict[str, Any]:
    out: dict[str, Any] = {"description": f"{spec.description} (since ISA {spec.since})"}
    if spec.type is FieldType.INTEGER:
        out["type"] = "integer"
    elif spec.type is FieldType.NUMBER:
        out["type"] = "number"
    elif spec.type is FieldType.STRING:
        out["type"] = "string"
    elif spec.type is FieldType.INTEGERS:
        out.update(type="array", items={"type": "integer", "minimum": 0})
    elif spec.type is FieldType.NUMBERS:
        out.update(type="array", items=_NUMBER)
    elif spec.type is FieldType.WAVEFORM:
        out.update(_WAVEFORM)
    elif spec.type is FieldType.LOCAL_DETUNING:
        out.update(
            type="object",
            properties={
                "atoms": {"type": "array", "items": {"type": "integer", "minimum": 0}},
                "scale": {"type": "array", "items": _NUMBER},
                "delta": _WAVEFORM,
            },
            required=["atoms", "scale", "delta"],
            additionalProperties=False,
        )
    else:
        out["oneOf"] = [_NUMBER, {"type": "array", "items": _NUMBER, "minItems": 1, "maxItems": 3}]
    if spec.minimum is not None:
        out["minimum"] = spec.minimum
    return out


def _op(name: str) -> dict[str, Any]:
    spec = OPS[name]
    properties: dict[str, Any] = {"op": {"const": name}}
    for f in spec.fields:
        properties[f.name] = _field(f)
    if name == "ApplyGate":
        properties["name"]["enum"] = list(GATES)
    return {
        "type": "object",
        "description": f"{spec.description} (since ISA {spec.since})",
        "properties": properties,
        "required": ["op", *(f.name for f in spec.fields if f.required)],
        "additionalProperties": False,
    }


def _object(properties: dict[str, Any]) -> dict[str, Any]:
    return {"type": "object", "properties": properties, "additionalProperties": False}


def _pauli() -> dict[str, Any]:
    return _object({k: {"type": "number", "minimum": 0, "maximum": 1} for k in ("px", "py", "pz")})


def _noise() -> dict[str, Any]:
    probability = {"type": "number", "minimum": 0, "maximum": 1}
    rate = {"type": "number", "minimum": 0, "description": "per second"}
    pair = _object({"per_gate": probability, "idle_rate": rate})
    return _object(
        {
            "p_quantum_flip": probability,
            "p_loss": probability,
            "p_prep": probability,
            "readout": _object({"p_flip0_to_1": probability, "p_flip1_to_0": probability}),
            "gate": _object(
                {k: _pauli() for k in ("single_qubit", "two_qubit_control", "two_qubit_target")}
            ),
            "correlated_gate": _object(
                {
                    "matrix": {
                        "type": "array",
                        "minItems": 4,
                        "maxItems": 4,
                        "items": {
                            "type": "array",
                            "minItems": 4,
                            "maxItems": 4,
                            "items": probability,
                        },
                    }
                }
            ),
            "idle_rate": rate,
            "phase": _object(
                {
                    k: {"type": "number", "minimum": 0}
                    for k in ("single_qubit", "two_qubit_control", "two_qubit_target", "idle")
                }
            ),
            "amplitude_damping": pair,
            "loss_runtime": pair,
        }
    )


def build_schema() -> dict[str, Any]:
    """The schema of a job, generated from the job's structs and the ISA table."""
    _, components = clean_descriptions(
        msgspec.json.schema_components([JobWire, HardwareWire], ref_template="#/$defs/{name}")
    )
    job = components.pop("JobWire")
    versions = [str(v) for v in VERSIONS]
    isa_version = {
        "oneOf": [
            _object({"major": {"type": "integer"}, "minor": {"type": "integer"}}),
            {"enum": versions},
        ]
    }
    return {
        "$schema": DIALECT,
        "$id": "https://qmk.dev/schemas/neutral-atom-job.json",
        "title": "neutral-atom job (wire form v1)",
        **{key: value for key, value in job.items() if key != "title"},
        "$defs": {
            **{name: _op(name) for name in OPS},
            "instruction": {"oneOf": [{"$ref": f"#/$defs/{name}"} for name in OPS]},
            "isa_version": isa_version,
            **components,
            "noise": _noise(),
        },
    }


def render() -> str:
    """The schema as the shipped file's text."""
    return json.dumps(build_schema(), indent=2, sort_keys=False) + "\n"


def load_schema() -> dict[str, Any]:
    """The shipped schema."""
    data: dict[str, Any] = json.loads(SCHEMA_PATH.read_text(encoding="utf-8"))
    return data


def main(argv: Sequence[str] | None = None) -> int:
    """``--check`` (exit 1 when the shipped file drifted) or ``--write``."""
    parser = argparse.ArgumentParser(prog="python -m qmk.devices.neutral_atom.schema")
    mode = parser.add_mutually_exclusive_group(required=True)
    mode.add_argument("--check", action="store_true")
    mode.add_argument("--write", action="store_true")
    options = parser.parse_args(argv)
    fresh = render()
    current = SCHEMA_PATH.read_text(encoding="utf-8") if SCHEMA_PATH.exists() else ""
    if options.write:
        if fresh != current:
            SCHEMA_PATH.write_text(fresh, encoding="utf-8")
        return 0
    if fresh != current:
        print(
            f"{SCHEMA_PATH} is out of date with the ISA table; run: "
            "python -m qmk.devices.neutral_atom.schema --write",
            file=sys.stderr,
        )
        return 1
    return 0


if __name__ == "__main__":
    raise SystemExit(main())


__all__ = ["SCHEMA_PATH", "build_schema", "load_schema", "main", "render"]
