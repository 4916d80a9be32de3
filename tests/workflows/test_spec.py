"""Workflow files read into steps, sweeps and a dependency order; bad files are QW013."""

from __future__ import annotations

import pytest

from qmk.abi.errors import CommandError
from qmk.workflows.spec import load, loads
from support.paths import EXAMPLES

QASM = 'source = "OPENQASM 2.0;"'


def test_the_example_workflow_reads_in_dependency_order():
    flow = load(EXAMPLES / "workflow.toml")
    assert [step.name for step in flow.steps] == ["bell", "rotation", "distances"]
    assert flow.size == 1 + 5 + 3
    rotation = flow.steps[1]
    assert rotation.shots == 1000 and rotation.seed == 7  # from [defaults]
    assert [p["theta"] for p in rotation.points()][:2] == [0.0, 0.7854]


def test_a_sweep_is_every_combination_of_its_lists():
    flow = loads(f'[[steps]]\nname = "a"\n{QASM}\nsweep = {{shots = [1, 2], seed = [5, 6, 7]}}')
    points = list(flow.steps[0].points())
    assert len(points) == 6 and {"shots": 2, "seed": 7} in points


def test_steps_are_ordered_after_the_steps_they_name():
    text = (
        f'[[steps]]\nname = "late"\n{QASM}\nafter = ["early"]\n[[steps]]\nname = "early"\n{QASM}\n'
    )
    assert [s.name for s in loads(text).steps] == ["early", "late"]


def test_yaml_files_read_as_toml_ones(tmp_path):
    pytest.importorskip("yaml")
    path = tmp_path / "flow.yaml"
    path.write_text("name: y\nsteps:\n  - name: a\n    source: 'OPENQASM 2.0;'\n    shots: 3\n")
    flow = load(path)
    assert flow.name == "y" and flow.steps[0].shots == 3


@pytest.mark.parametrize(
    ("text", "says"),
    [
        ("name = 1\n", "at least one [[steps]]"),
        ("[[steps]]\nname = 'a'\n", "needs program (a file) or source"),
        (f"[[steps]]\nname = 'a'\n{QASM}\ncolour = 'red'\n", "steps[0].colour: unknown key"),
        (f"[[steps]]\nname = 'a'\n{QASM}\nafter = ['b']\n", "which is no step"),
        (
            f"[[steps]]\nname = 'a'\n{QASM}\nafter = ['b']\n[[steps]]\nname = 'b'\n{QASM}\n"
            "after = ['a']\n",
            "cycle",
        ),
        (f"[[steps]]\nname = 'a'\n{QASM}\nshots = 0\n", "steps[0].shots: Expected `int` >= 1"),
        (
            f"[[steps]]\nname = 'a'\n{QASM}\nsweep = {{theta = []}}\n",
            "steps[0].sweep.theta: Expected `array` of length >= 1",
        ),
        ("[[steps]\n", "not TOML"),
        ("[[steps]]\nname = 'a'\nprogram = 'missing.qasm'\n", "cannot read program"),
    ],
)
def test_a_bad_file_is_one_coded_error_naming_the_key(text: str, says: str):
    with pytest.raises(CommandError) as caught:
        loads(text)
    assert caught.value.code == "QW013" and says in caught.value.message


@pytest.mark.parametrize(
    ("text", "key"),
    [
        (f"[defaults]\nshots = 'many'\n[[steps]]\n{QASM}\n", "defaults.shots"),
        (f"[defaults]\nname = 'x'\n[[steps]]\n{QASM}\n", "defaults.name"),
        (f"colour = 1\n[[steps]]\n{QASM}\n", "colour"),
        (f"[[steps]]\n{QASM}\n[[steps]]\n{QASM}\nseed = -1\n", "steps[1].seed"),
        (f"[[steps]]\n{QASM}\nafter = [1]\n", "steps[0].after"),
    ],
)
def test_a_bad_key_anywhere_is_named_in_the_errors_details(text: str, key: str):
    with pytest.raises(CommandError) as caught:
        loads(text)
    assert caught.value.code == "QW013" and caught.value.details["key"] == key
    assert "\n" not in str(caught.value)


@pytest.mark.parametrize(
    "table",
    ["[schedule]\nevery_s = 60\n", "[[triggers]]\non = 'schedule'\ncron = '0 * * * *'\n"],
)
def test_a_schedule_in_the_file_is_refused_naming_the_trigger_that_does_it(table: str):
    # docs/workflows.md's trigger table reads like keys of the file; the file has none
    with pytest.raises(CommandError) as caught:
        loads(f"{table}[[steps]]\n{QASM}\n")
    error = caught.value
    assert error.code == "QW013" and error.details["key"] == table.strip("[]\n").split("]")[0]
    assert "qmk workflow trigger add FILE" in error.message and "\n" not in str(error)


def test_a_step_takes_the_defaults_it_does_not_set_and_qmks_default_shots():
    from qmk import defaults

    flow = loads(f"[defaults]\nseed = 3\nretries = 2\n[[steps]]\n{QASM}\nretries = 0\n")
    step = flow.steps[0]
    assert (step.seed, step.retries, step.shots) == (3, 0, defaults.SHOTS)
    assert step.name == "step1" and step.after == () and dict(step.sweep) == {}


def test_after_may_name_one_step_as_a_string():
    flow = loads(f'[[steps]]\nname = "a"\n{QASM}\n[[steps]]\n{QASM}\nafter = "a"\n')
    assert flow.steps[1].after == ("a",)


@pytest.mark.parametrize(
    ("table", "key"),
    [
        ("sweep = {shots = [10, 0]}", "steps[0].sweep.shots"),
        ("sweep = {seed = [1, -1]}", "steps[0].sweep.seed"),
        ("sweep = {seed = [9223372036854775808]}", "steps[0].sweep.seed"),
        ("seed = 9223372036854775808", "steps[0].seed"),
        ("shots = 10000001", "steps[0].shots"),
    ],
)
def test_shots_and_seeds_are_checked_in_the_one_range_a_run_takes(table: str, key: str):
    with pytest.raises(CommandError) as caught:
        loads(f"[[steps]]\n{QASM}\n{table}")
    assert caught.value.code == "QW013" and caught.value.details["key"] == key
