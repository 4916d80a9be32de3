"""``qmk assist``: configured by flags or the environment, no network call without a model."""

from __future__ import annotations

import json
import re

import pytest

from support.cli import qmk
from support.paths import EXAMPLES
from support.tinyllm import BELL, BROKEN


@pytest.fixture
def no_model(monkeypatch):
    for name in ("QMK_ASSIST_URL", "QMK_ASSIST_MODEL", "QMK_ASSIST_API"):
        monkeypatch.delenv(name, raising=False)


def test_with_no_model_it_says_how_to_configure_one_and_gives_qmks_advice(no_model, tmp_path):
    program = tmp_path / "bell.qasm"
    program.write_text(BELL)
    status, out, err = qmk(
        "assist", "what will this cost? and what is QS1006?", "--file", str(program)
    )
    assert status == 0
    assert err.startswith("QI101 not-configured: no model is configured, so nothing was sent")
    assert "QS1006 quota-exceeded" in out or out.startswith("QS1006 ")
    assert "plan: logical:" in out and "estimate: " in out


def test_with_no_model_and_nothing_to_advise_it_says_what_advice_needs(no_model):
    status, out, err = qmk("assist", "hello")
    assert status == 0
    assert err.startswith("QI101 ")
    assert "--file FILE" in out


def test_advice_names_the_finding_of_a_file_qmk_refuses(no_model, tmp_path):
    program = tmp_path / "broken.qasm"
    program.write_text(BROKEN)
    status, out, _ = qmk("assist", "fix this", "--file", str(program))
    assert status == 0
    assert "QMK refuses it: QL107" in out


def test_the_whole_loop_from_the_command_line(llama, tmp_path):
    status, out, err = qmk(
        "assist",
        "make a Bell pair",
        "--url",
        llama.url,
        "--model",
        "drafts-bell",
        "--structured",
        "--json",
    )
    assert (status, err) == (0, "")
    answer = json.loads(out)
    assert answer["program"] == BELL and answer["status"] == "answered"


def test_a_refused_draft_is_a_coded_error_with_exit_1(llama):
    status, out, err = qmk(
        "assist",
        "make a Bell pair",
        "--url",
        llama.url,
        "--model",
        "drafts-broken",
        "--structured",
        "--max-retries",
        "0",
    )
    assert (status, out) == (1, "")
    assert err.startswith("QI104 unverified: ") and "QL107" in err


def test_steps_stream_as_json_lines(llama):
    status, out, _ = qmk(
        "assist", "run it", "--url", llama.url, "--model", "runs-bell", "--structured", "--stream"
    )
    assert status == 0
    kinds = [json.loads(line)["event"] for line in out.splitlines()]
    assert kinds == ["tool-call", "tool-result", "answer"]


def test_a_step_bound_out_of_range_is_QI105(llama):
    status, _, err = qmk("assist", "x", "--url", llama.url, "--model", "m", "--max-steps", "0")
    assert status == 1 and err.startswith("QI105 bad-option: max_steps")


def test_advice_estimates_the_variant_its_plan_chose(no_model):
    # QRE's single point for this program is its fastest variant (45,064 physical qubits,
    # 11 T factories); the plan chooses a frontier variant (6 factories) by volume, and
    # the estimate the advice prints is that variant's, so both lines say one figure
    program = str(EXAMPLES / "teleport.qasm")
    status, out, _ = qmk("assist", "what will this cost?", "--file", program)
    assert status == 0
    plan = re.search(r"plan: \S+ \(([\d,]+) physical qubits, (\d+) T factories\)", out)
    cost = re.search(r"estimate: ([\d,]+) physical qubits \((\d+) T factories\)", out)
    assert plan is not None and cost is not None, out
    assert plan.groups() == cost.groups() == ("25,464", "6")
    status, out, _ = qmk("estimate", program, "--json")
    single = json.loads(out)["physicalCounts"]
    assert (single["physicalQubits"], single["breakdown"]["numTfactories"]) == (45064, 11)
