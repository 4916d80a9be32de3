"""PennyLane's own device test suite (shipped inside pennylane: ``pl-device-test``) run
against the ``qmk.statevector`` device, analytic and with shots: no failures, and every
skip one that PennyLane's suite itself makes for a device of this kind.

The suite runs in a subprocess (its ``conftest.py`` adds the ``--device`` options and
fixtures, which would clash with ours), with ``-p no:flaky``: PennyLane reruns its
stochastic tests up to ten times with the ``flaky`` plugin, and a seeded device repeats
the same samples, so a rerun could only hide a failure. The shot count is chosen so that
the suite's tolerance (0.05 on expectation values, variances and probabilities) is
several standard errors: at 10^4 shots the variance of a one-wire ``Hermitian`` has a
standard error of 0.043 and failed at some seeds; at 10^5 it is 0.014 (3.6 sigma).
"""

from __future__ import annotations

import os
import subprocess
import sys
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest

pytest.importorskip("pennylane")
pytest.importorskip("flaky")  # PennyLane's test files import it (the test extra has it)

import qmk

#: Past the subprocess's own limit (900 s), so that limit is the one that speaks.
pytestmark = pytest.mark.timeout(960)

SHOTS = 100_000
SEED = 20261123

#: The skips PennyLane's suite makes for a device like this one (a simulator of the new
#: device API with exact state measurements and adjoint derivatives, no backprop), by
#: the start of their reason. Anything else skipped is a failure of this test.
PENNYLANE_OWN_SKIPS = (
    "could not import 'jax'",  # its JAX and Torch files skip without those frameworks
    "could not import 'torch'",
    "device does not support diff_method",  # backprop, adjoint: PennyLane's own simulators
    "test only works with backprop",
    "test only works with parameter-shift",
    "test should only be run in analytic mode",
    "test only works with analytic-mode",
    "Device is in analytic mode, cannot test sampling.",
    "Device is in non-analytical mode.",
    "Shots must be specified in the device to compute a sampled measurement.",
    "SparseHamiltonian only supported in analytic mode",
    "If shots=None no warning is raised.",
    "If shots!=None no error is raised.",
    "Some plugins don't update state information when shots is not None.",
    "test is old interface specific.",
    "test specific for old device interface.",
    "test is specific to old device interface",
    "test specific to old device interface.",
    "QutritBasisState template only works on qutrit devices",
    # QubitDensityMatrix prepares a mixed state: a pure-state device's preprocessing
    # refuses it (DeviceError), and the suite skips it then
    "operation not supported on the device",
)


def _run_suite(tmp_path: Path, *options: str) -> dict[str, list[str]]:
    """Run PennyLane's device suite on ``qmk.statevector`` with ``options``: each
    outcome's test names (``skipped`` holds the reasons)."""
    from pennylane.devices.tests import get_device_tests

    report = tmp_path / "suite.xml"
    env = dict(os.environ)
    src = str(Path(qmk.__file__).resolve().parents[1])  # this qmk, not another install
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [src, env.get("PYTHONPATH")]))
    command = [
        sys.executable,
        "-m",
        "pytest",
        get_device_tests(),
        "--device=qmk.statevector",
        *options,
        "-p",
        "no:cacheprovider",
        "-p",
        "no:flaky",
        "-q",
        f"--junitxml={report}",
    ]
    done = subprocess.run(
        command, cwd=tmp_path, env=env, capture_output=True, text=True, timeout=900
    )
    assert report.exists(), done.stdout[-4000:] + done.stderr[-4000:]
    outcomes: dict[str, list[str]] = {"passed": [], "failed": [], "skipped": []}
    for case in ET.parse(report).getroot().iter("testcase"):
        name = f"{case.get('classname')}::{case.get('name')}"
        skipped = case.find("skipped")
        if case.find("failure") is not None or case.find("error") is not None:
            outcomes["failed"].append(name)
        elif skipped is not None and skipped.get("type") == "pytest.xfail":
            outcomes.setdefault("xfailed", []).append(name)
        elif skipped is not None:
            # a whole file skipped at collection says why in the element's text
            reason = f"{skipped.get('message', '')} {skipped.text or ''}"
            outcomes["skipped"].append(f"{name}: {reason}")
        else:
            outcomes["passed"].append(name)
    assert done.returncode == (1 if outcomes["failed"] else 0), done.stdout[-4000:]
    return outcomes


def _foreign_skips(skipped: list[str]) -> list[str]:
    return [
        line
        for line in skipped
        if not any(reason in line.split(": ", 1)[1] for reason in PENNYLANE_OWN_SKIPS)
    ]


def test_pennylanes_device_suite_passes_analytic(tmp_path):
    outcomes = _run_suite(tmp_path)
    assert outcomes["failed"] == []
    assert _foreign_skips(outcomes["skipped"]) == []
    assert len(outcomes["passed"]) >= 380  # the whole suite ran (PennyLane 0.45: 381)


def test_pennylanes_device_suite_passes_with_shots(tmp_path):
    # noise=False as the command line passes it: the text "False", read strictly
    outcomes = _run_suite(
        tmp_path, f"--shots={SHOTS}", "--device-kwargs", "noise=False", f"seed={SEED}"
    )
    assert outcomes["failed"] == []
    assert _foreign_skips(outcomes["skipped"]) == []
    assert len(outcomes["passed"]) >= 365  # PennyLane 0.45: 366
