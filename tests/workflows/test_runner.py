"""Workflows run their steps in order, against exact theory, with retries and skips."""

from __future__ import annotations

import csv
import json
import math

import pytest
from scipy.stats import binomtest

import qmk
from qmk.abi.errors import CommandError
from qmk.frontends import read_program
from qmk.workflows.report import write_results
from qmk.workflows.runner import LocalBackend, run_workflow
from qmk.workflows.spec import load, loads
from support.paths import EXAMPLES

ROTATION = '''
[[steps]]
name = "rotation"
shots = 4000
seed = 11
source = """
OPENQASM 3.0;
include "stdgates.inc";
input float theta;
qubit q;
bit c;
ry(theta) q;
c = measure q;
"""
sweep = { theta = [0.3, 1.1, 2.0, 2.9] }
'''


def test_a_swept_rotation_gives_sin_squared_of_half_the_angle():
    result = run_workflow(loads(ROTATION), LocalBackend())
    assert result.ok and len(result.jobs) == 4
    for job in result.jobs:
        expected = math.sin(job.point["theta"] / 2) ** 2
        ones = job.counts.get("1", 0)
        assert binomtest(ones, 4000, expected).pvalue > 1e-4, (job.point, ones)


def test_a_step_gives_the_counts_qmk_run_gives_for_its_seed():
    result = run_workflow(load(EXAMPLES / "workflow.toml"), LocalBackend())
    bell = next(job for job in result.jobs if job.step == "bell")
    local = qmk.run(read_program(str(EXAMPLES / "bell.qasm")), shots=1000, seed=7)
    assert bell.counts == dict(local.counts)


DEVICE = '''
[[steps]]
name = "on-atoms"
shots = 300
seed = 5
device = "ideal_small_array"
noise = false
source = """
OPENQASM 2.0;
include "qelib1.inc";
qreg q[2]; creg c[2];
h q[0]; cx q[0], q[1];
measure q -> c;
"""
'''


def test_a_device_step_gives_the_counts_qmk_run_gives_on_the_device():
    (job,) = run_workflow(loads(DEVICE), LocalBackend()).jobs
    program = read_program(str(EXAMPLES / "bell.qasm"))
    local = qmk.run(
        program,
        target="neutral-atom",
        target_options={"preset": "ideal_small_array"},
        shots=300,
        seed=5,
        noise=False,
    )
    assert job.state == "COMPLETED", job.error
    assert job.counts == dict(local.counts) and set(job.counts) == {"00", "11"}
    assert job.engine == "device:ideal_small_array"


def test_a_device_step_refuses_the_logical_machines_settings_with_a_code():
    flow = loads(DEVICE.replace("noise = false", 'noise = false\nengine = "statevector"'))
    (job,) = run_workflow(flow, LocalBackend()).jobs  # never dropped as if applied
    assert job.state == "FAILED" and job.error and job.error.startswith("QM102"), job.error
    assert "engine" in job.error


def test_a_failing_step_is_retried_and_the_steps_after_it_are_skipped():
    text = (
        '[[steps]]\nname = "broken"\nsource = "OPENQASM 2.0;\\nqreg q[1];"\n'
        'engine = "no-such-engine"\nretries = 2\n'
        '[[steps]]\nname = "after"\nsource = "OPENQASM 2.0;\\nqreg q[1];"\nafter = ["broken"]\n'
    )
    result = run_workflow(loads(text), LocalBackend())
    broken, after = result.jobs
    assert broken.state == "FAILED" and broken.attempts == 3 and broken.error
    assert after.state == "SKIPPED" and "broken" in (after.error or "")
    assert not result.ok


def test_a_sweep_over_a_program_with_no_inputs_is_refused():
    text = '[[steps]]\nname = "a"\nprogram = "bell.qvm.asm"\nsweep = {theta = [1.0]}\n'
    flow = loads(text, base=EXAMPLES)
    with pytest.raises(CommandError) as caught:
        run_workflow(flow, LocalBackend())
    assert caught.value.code == "QW013" and "OpenQASM inputs" in caught.value.message


def test_progress_is_reported_for_every_job():
    seen = []
    run_workflow(loads(ROTATION), LocalBackend(), progress=lambda d, t, label: seen.append((d, t)))
    assert seen == [(1, 4), (2, 4), (3, 4), (4, 4)]


def test_results_are_written_as_json_csv_and_plots(tmp_path):
    pytest.importorskip("matplotlib")
    result = run_workflow(loads(ROTATION), LocalBackend())
    files = write_results(result, tmp_path)
    data = json.loads((tmp_path / "results.json").read_text())
    assert data["ok"] and len(data["jobs"]) == 4
    rows = list(csv.DictReader((tmp_path / "results.csv").open()))
    assert {row["theta"] for row in rows} == {"0.3", "1.1", "2.0", "2.9"}
    for row in rows:
        assert math.isclose(float(row["probability"]), int(row["count"]) / 4000)
    plot = tmp_path / "plots" / "rotation.png"
    assert plot in files and plot.read_bytes().startswith(b"\x89PNG")
