"""`qmk run`'s option checks: a value out of range or an option the run cannot honour is
one coded line with the exit status of its meaning (2: bad usage or input), never an
internal error (exit 3) and never ignored with exit 0."""

from __future__ import annotations

import json

import pytest

from qmk import defaults
from support.cli import qmk
from support.paths import EXAMPLES

BELL = str(EXAMPLES / "bell.qvm.asm")


@pytest.mark.parametrize(
    "shots", ["99999999999999999999", str(defaults.MAX_SHOTS + 1), "0", "-3", "many"]
)
def test_shots_out_of_range_is_a_bad_option_exit_2(shots: str) -> None:
    status, out, err = qmk("run", BELL, "--shots", shots)
    assert (status, out) == (2, "")
    assert err.startswith("QW011 bad-option: qmk run: argument --shots:") and err.count("\n") == 1


def test_the_most_shots_a_run_takes_is_the_kernels_cap() -> None:
    status, _, err = qmk("run", BELL, "--shots", str(defaults.MAX_SHOTS + 1))
    assert status == 2 and f"[1, {defaults.MAX_SHOTS}]" in err
    status, _, err = qmk("submit", BELL, "--shots", str(defaults.MAX_SHOTS + 1))
    assert status == 2 and err.startswith("QW011 bad-option: qmk submit: argument --shots:")


@pytest.mark.parametrize("seed", [str(2**63), str(2**64), "-1"])
def test_a_seed_outside_0_to_2_63_is_a_bad_option_exit_2(seed: str) -> None:
    status, _, err = qmk("run", BELL, "--seed", seed)
    assert status == 2 and err.startswith("QW011 bad-option: qmk run: argument --seed:")


@pytest.mark.parametrize("profile", ["garbage", "logical:surface_code(d=999999)"])
def test_a_profile_that_does_not_parse_is_qc102_exit_2(profile: str) -> None:
    status, out, err = qmk("run", BELL, "--profile", profile, "--seed", "1")
    assert (status, out) == (2, "")
    assert err.startswith("QC102 unknown-profile:") and err.count("\n") == 1


def test_a_profile_no_qubit_takes_is_a_coded_warning_qc131() -> None:
    # bell.qvm.asm's ALLOC_LQ names logical:surface_code(d=9)
    given = ("--profile", "logical:surface_code(d=5)", "--shots", "50", "--seed", "1")
    status, out, err = qmk("run", BELL, *given)
    assert status == 0 and "00" in out
    assert err == (
        f"{BELL}: warning: QC131 profile-unused: every qubit names its code profile "
        "(1 ALLOC_LQ), so profile logical:surface_code(d=5) applied to none\n"
    )
    status, out, err = qmk("run", BELL, *given, "--json")
    assert status == 0 and err == ""
    [notice] = json.loads(out)["warnings"]
    assert (notice["code"], notice["name"]) == ("QC131", "profile-unused")
    assert json.loads(out)["telemetry"]["profiles"] == ["logical:surface_code(d=9)"]


def test_a_profile_lowered_qubits_take_gives_no_warning() -> None:
    bell = str(EXAMPLES / "bell.qasm")  # lowered qubits name no profile
    given = ("--profile", "logical:surface_code(d=5)", "--shots", "50", "--seed", "1", "--json")
    status, out, err = qmk("run", bell, *given)
    assert status == 0 and err == ""
    data = json.loads(out)
    assert "warnings" not in data and data["telemetry"]["profiles"] == ["logical:surface_code(d=5)"]


def test_precision_on_the_exact_stabilizer_is_a_coded_warning_qe117() -> None:
    status, out, err = qmk("run", BELL, "--precision", "single", "--shots", "50", "--seed", "1")
    assert status == 0 and "engine stabilizer" in out
    assert err == (
        f"{BELL}: warning: QE117 precision-unused: engine stabilizer computes exactly "
        "(no amplitudes), so --precision single changed nothing\n"
    )
    status, out, err = qmk(
        "run", BELL, "--precision", "single", "--engine", "statevector", "--shots", "50", "--json"
    )
    assert status == 0 and err == "" and "warnings" not in json.loads(out)


@pytest.mark.parametrize(
    "option", [("--configuration", "cz_native"), ("--routing", "swap"), ("--emit-job", "x.json")]
)
def test_a_device_option_without_device_is_refused_not_ignored(option: tuple[str, str]) -> None:
    # each target validates its own options: the logical machine takes none of these
    status, out, err = qmk("run", BELL, "--shots", "10", "--seed", "1", *option)
    assert (status, out) == (2, "")
    assert err.startswith("QM102 option-unsupported: ") and err.count("\n") == 1
