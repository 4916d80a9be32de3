"""``qmk qec threshold`` and ``qmk qec calibrate``: tables, JSON, plots, calibration files."""

from __future__ import annotations

import json

import pytest

from qmk.qec import logical_model
from qmk.qec.logical import Calibration
from support.cli import qmk


def test_threshold_prints_a_row_per_distance_and_rate_with_intervals() -> None:
    status, out, err = qmk(
        "qec", "threshold", "--d", "3,5", "--p", "0.002:0.008", "--points", "2",
        "--shots", "2000", "--seed", "3",
    )  # fmt: skip
    assert status == 0, err
    lines = out.splitlines()
    assert "surface_code memory-Z experiment" in lines[0]
    rows = [line.split() for line in lines[2:]]
    assert [(row[0], row[2]) for row in rows] == [
        ("3", "0.002"), ("3", "0.008"), ("5", "0.002"), ("5", "0.008"),
    ]  # fmt: skip
    assert all(row[3] == "2000" for row in rows)


def test_threshold_json_is_reproducible_with_a_seed_and_writes_a_png(tmp_path) -> None:
    plot = tmp_path / "scan.png"
    argv = ("qec", "threshold", "--code", "repetition_code", "--d", "3,5", "--p", "0.01,0.03",
            "--shots", "3000", "--seed", "8", "--json")  # fmt: skip
    status, out, err = qmk(*argv, "--plot", str(plot))
    assert status == 0, err
    data = json.loads(out)
    assert data["family"] == "repetition_code" and len(data["results"]) == 4
    first = data["results"][0]
    assert first["per_round_interval"][0] <= first["per_round"] <= first["per_round_interval"][1]
    assert plot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"

    def counts(results: list[dict]) -> list[tuple[int, float, int, int]]:
        return [(r["distance"], r["p"], r["shots"], r["errors"]) for r in results]

    assert counts(json.loads(qmk(*argv)[1])["results"]) == counts(data["results"])


def test_calibrate_writes_a_calibration_the_logical_layer_loads(tmp_path) -> None:
    path = tmp_path / "cal.json"
    status, out, err = qmk(
        "qec", "calibrate", "--code", "surface_code", "--d", "3,5", "--p", "0.003:0.007",
        "--points", "3", "--shots", "6000", "--seed", "12", "--output", str(path),
    )  # fmt: skip
    assert status == 0, err
    assert "a  = " in out and "p* = " in out and f"calibration: {path}" in out
    cal = Calibration.load(path)
    assert cal.family == "surface_code" and cal.instruction_set == "gate_based"
    assert cal.crossing_prefactor_sigma and cal.error_correction_threshold_sigma
    fit = json.loads(path.read_text())["fit"]
    assert len(fit["points"]) == 6
    model = logical_model("logical:surface_code(d=5)", calibration=cal)
    assert model.scheme.error_correction_threshold == cal.error_correction_threshold


@pytest.mark.parametrize(
    ("argv", "expected"),
    [
        (("threshold", "--code", "floquet_code"), "QC110 no-experiment"),
        (("threshold", "--code", "toric"), "QC102 unknown-profile"),
        (
            ("threshold", "--code", "surfce_code"),
            "QC102 unknown-profile: unknown code family 'surfce_code'; did you mean "
            "'surface_code'?",
        ),
        (("threshold", "--d", "4"), "QC103 bad-parameter: experiment distance must be odd"),
        (("threshold", "--d", "3,x"), "QC103 bad-parameter: --d takes whole numbers"),
        (("threshold", "--p", "0.01:0.001"), "QC103 bad-parameter: --p 0.01:0.001"),
        (("threshold", "--p", "abc"), "QC103 bad-parameter: --p: not a number"),
        (("threshold", "--shots", "0"), "QC103 bad-parameter: --shots must be at least 1"),
        (("threshold", "--noise", "pink"), "QC103 bad-parameter: --noise 'pink'"),
        (("threshold", "--qubit", "qubit_maj_ns_e4"), "QC105 scheme-not-supported"),
        (("threshold", "--qubit", "nope"), "QC101 unknown-qubit-params"),
        (("calibrate", "--code", "repetition_code"), "QC103 bad-parameter: repetition_code"),
        (("calibrate", "--d", "3", "--shots", "10"), "QC103 bad-parameter: a threshold fit"),
    ],
)
def test_bad_arguments_are_one_line_errors_with_exit_status_2(
    argv: tuple[str, ...], expected: str
) -> None:
    status, out, err = (
        qmk("qec", *argv, "--shots", "10") if "--shots" not in argv else qmk("qec", *argv)
    )
    assert status == 2
    assert err.startswith(expected), err
    assert err.count("\n") == 1
    assert out == ""


@pytest.mark.parametrize("code", ["surfaceCode", "surface", "Rotated-Surface-Code", "baconshor"])
def test_a_code_family_is_named_by_any_alias_a_profile_takes(code: str) -> None:
    from qmk.qvm.profiles import family_name

    status, out, err = qmk(
        "qec", "threshold", "--code", code, "--d", "3", "--p", "0.005", "--shots", "200",
        "--seed", "1", "--json",
    )  # fmt: skip
    assert status == 0, err
    assert json.loads(out)["family"] == family_name(code)


def test_a_misspelt_repetition_code_gets_a_did_you_mean() -> None:
    status, _, err = qmk("qec", "threshold", "--code", "repitition", "--shots", "10")
    assert status == 2 and "did you mean 'repetition_code'?" in err
