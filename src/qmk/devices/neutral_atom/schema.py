"""The JSON Schema of a neutral-atom job (the v1 wire form), generated from the ISA table.

Public API: :func:`build_schema` (the schema, from :data:`~qmk.devices.neutral_atom.isa.OPS`
and :data:`~qmk.devices.neutral_atom.isa.GATES`), :func:`load_schema` (the shipped copy,
``schema.json`` next to this module), :data:`SCHEMA_PATH`, and the command
``python -m qmk.devices.neutral_atom.schema (--check | --write)``: after changing the ISA
table run ``--write``; a test fails when the shipped copy drifts (``--check`` exits 1).

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

from qmk.devices.neutral_atom.isa import GATES, OPS, VERSIONS, FieldSpec, FieldType

#: The shipped schema (package data).
SCHEMA_PATH = Path(__file__).with_name("schema.json")
DIALECT = "https://json-schema.org/draft/2020-12/schema"

_NUMBER = {"type": "number"}
_COUNT = {"type": "integer", "minimum": 0}


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


def _hardware() -> dict[str, Any]:
    numbers = {"type": "array", "items": _NUMBER}
    site = _object(
        {
            "id": {"type": "integer"},
            "x": _NUMBER,
            "y": _NUMBER,
            "z": _NUMBER,
            "zone_id": {"type": "integer"},
        }
    )
    gate = _object(
        {
            "name": {"type": "string"},
            "arity": {"type": "integer", "minimum": 1},
            "duration_ns": _NUMBER,
            "angle_min": _NUMBER,
            "angle_max": _NUMBER,
            "connectivity": {"enum": ["AllToAll", "NearestNeighborChain", "NearestNeighborGrid"]},
        }
    )
    pair = _object({"site_a": {"type": "integer"}, "site_b": {"type": "integer"}})
    return _object(
        {
            "positions": numbers,
            "coordinates": {"type": "array", "items": numbers},
            "blockade_radius": _NUMBER,
            "sites": {"type": "array", "items": site},
            "site_ids": {"type": "array", "items": {"type": "integer"}},
            "native_gates": {"type": "array", "items": gate},
            "interaction_graphs": {
                "type": "array",
                "items": _object(
                    {
                        "gate_name": {"type": "string"},
                        "allowed_pairs": {"type": "array", "items": pair},
                    }
                ),
            },
            "blockade_model": _object(
                {
                    "radius": _NUMBER,
                    "radius_x": _NUMBER,
                    "radius_y": _NUMBER,
                    "radius_z": _NUMBER,
                    "zone_overrides": {
                        "type": "array",
                        "items": _object({"zone_id": {"type": "integer"}, "radius": _NUMBER}),
                    },
                }
            ),
            "timing_limits": _object(
                {
                    "min_wait_ns": _NUMBER,
                    "max_wait_ns": _NUMBER,
                    "max_parallel_single_qubit": _COUNT,
                    "max_parallel_two_qubit": _COUNT,
                    "max_parallel_per_zone": _COUNT,
                    "measurement_cooldown_ns": _NUMBER,
                    "measurement_duration_ns": _NUMBER,
                    "reset_duration_ns": _NUMBER,
                }
            ),
            "pulse_limits": _object(
                {
                    "detuning_min": _NUMBER,
                    "detuning_max": _NUMBER,
                    "duration_min_ns": _NUMBER,
                    "duration_max_ns": _NUMBER,
                    "max_overlapping_pulses": _COUNT,
                }
            ),
            "transport_edges": {
                "type": "array",
                "items": _object(
                    {
                        "src_site_id": {"type": "integer"},
                        "dst_site_id": {"type": "integer"},
                        "distance": _NUMBER,
                        "duration_ns": _NUMBER,
                    }
                ),
            },
            "move_limits": _object(
                {
                    "max_total_displacement_per_atom": _NUMBER,
                    "max_moves_per_atom": _COUNT,
                    "max_moves_per_shot": _COUNT,
                    "max_moves_per_configuration_change": _COUNT,
                    "rearrangement_window_ns": _NUMBER,
                    "duration_per_unit_ns": _NUMBER,
                    "min_spacing": _NUMBER,
                }
            ),
        }
    )


def build_schema() -> dict[str, Any]:
    """The schema of a job, generated from the ISA table."""
    versions = [str(v) for v in VERSIONS]
    return {
        "$schema": DIALECT,
        "$id": "https://qmk.dev/schemas/neutral-atom-job.json",
        "title": "neutral-atom job (wire form v1)",
        "type": "object",
        "properties": {
            "job_id": {"type": "string"},
            "device_id": {"enum": ["state-vector", "stabilizer", "auto"]},
            "profile": {"type": ["string", "null"], "description": "a preset name"},
            "shots": {"type": "integer", "minimum": 1},
            "seed": {"type": "integer", "minimum": 0, "description": "QMK: the RNG seed"},
            "max_threads": {"type": "integer", "minimum": 0},
            "isa_version": {
                "oneOf": [
                    _object({"major": {"type": "integer"}, "minor": {"type": "integer"}}),
                    {"enum": versions},
                ]
            },
            "metadata": {"type": "object"},
            "program": {
                "type": "array",
                "items": {"oneOf": [{"$ref": f"#/$defs/{n}"} for n in OPS]},
            },
            "hardware": {"$ref": "#/$defs/hardware"},
            "noise": {"oneOf": [{"$ref": "#/$defs/noise"}, {"type": "null"}]},
        },
        "required": ["program"],
        "additionalProperties": False,
        "$defs": {**{name: _op(name) for name in OPS}, "hardware": _hardware(), "noise": _noise()},
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
