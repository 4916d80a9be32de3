"""The steps a composite op stands for (:mod:`qmk.qvm.expansions`): a row for each
composite op, on the op's own qubits, events and arguments."""

from __future__ import annotations

import pytest

from qmk.qvm.expansions import EXPANSIONS, Micro, arg_value, expansion_text, measures
from qmk.qvm.ops import OPS, Exec, OpSpec


def test_the_composite_measurements_injection_channels_and_teleport_expand_in_their_table():
    expanding = set(EXPANSIONS)
    assert expanding == {
        "MEASURE_ANGLE",
        "MEASURE_BELL",
        "INJECT_T_STATE",
        "OPEN_CHAN",
        "TELEPORT_CNOT",
    }


@pytest.mark.parametrize("spec", [OPS[name] for name in EXPANSIONS], ids=lambda spec: spec.name)
def test_an_expansion_names_only_the_ops_own_qubits_events_and_arguments(spec: OpSpec):
    measured = []
    for step in EXPANSIONS[spec.name]:
        assert all(0 <= q < spec.vqs.low for q in step.qubits), str(step)
        assert (step.gate is not None) == (step.kind is Micro.GATE), str(step)
        if step.kind is Micro.MEASURE:
            assert len(step.qubits) == 1 and 0 <= step.event < spec.produces.low
            measured.append(step.event)
        if step.arg is not None:
            head = step.arg.split(".")[0]
            assert spec.arg(head) is not None, f"{spec.name}: {step.arg} is not an argument"
        if step.kind is Micro.WERNER:
            assert step.arg is not None and arg_value(spec, {}, step.arg) == 1.0  # default: ideal
    # each event is written once; an undo comes after the measurements it turns back from
    assert sorted(measured) == list(range(spec.produces.low))
    kinds = [step.kind for step in EXPANSIONS[spec.name]]
    if Micro.UNDO in kinds:
        assert kinds.index(Micro.UNDO) > max(i for i, k in enumerate(kinds) if k is Micro.MEASURE)


def test_an_argument_path_reads_an_object_field_or_its_table_default():
    chan = OPS["OPEN_CHAN"]
    assert arg_value(chan, {"opts": {"fidelity": 0.75}}, "opts.fidelity") == 0.75
    assert arg_value(chan, {"opts": {}}, "opts.fidelity") == 1.0
    assert arg_value(OPS["MEASURE_ANGLE"], {"angle": 2}, "angle") == 2.0


def test_an_op_measures_when_it_or_a_step_of_its_expansion_does():
    for name, spec in OPS.items():
        steps = EXPANSIONS.get(name, ())
        expected = spec.kind is Exec.MEASURE or any(s.kind is Micro.MEASURE for s in steps)
        assert measures(spec) == expected, name
    assert measures(OPS["MEASURE_BELL"]) and not measures(OPS["TELEPORT_CNOT"])


def test_an_op_without_an_expansion_has_no_text_of_one():
    assert expansion_text("APPLY_H") == ""
    assert expansion_text("INJECT_T_STATE") == "reset q0; h q0; t q0"
