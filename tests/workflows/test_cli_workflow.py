"""``qmk workflow run``: in-process, and on a real kernel over REST and over JSON-RPC."""

from __future__ import annotations

import json
import shutil

import pytest

from support.cli import qmk
from support.kernel import TENANTS
from support.paths import EXAMPLES


@pytest.fixture
def flow(tmp_path):
    shutil.copy(EXAMPLES / "bell.qasm", tmp_path / "bell.qasm")
    shutil.copy(EXAMPLES / "workflow.toml", tmp_path / "workflow.toml")
    return tmp_path / "workflow.toml"


def test_a_local_run_prints_each_step_and_writes_its_results(flow, tmp_path):
    status, out, err = qmk("workflow", "run", str(flow), "--out", str(tmp_path / "r"), "--no-plots")
    assert status == 0, err
    assert "bell-and-rotations: 9 jobs in 3 steps (locally)" in out
    assert "  rotation: 5 COMPLETED" in out
    assert err == ""  # no progress bar where stderr is no terminal
    assert json.loads((tmp_path / "r" / "results.json").read_text())["ok"]


def test_results_go_to_the_working_directory_by_default_not_beside_the_file(
    flow, tmp_path, monkeypatch
):
    # ``qmk workflow run examples/workflow.toml`` wrote into the checkout's examples/
    here = tmp_path / "cwd"
    here.mkdir()
    monkeypatch.chdir(here)
    status, out, err = qmk("workflow", "run", str(flow), "--no-plots")
    assert status == 0, err
    assert json.loads((here / "workflow-results" / "results.json").read_text())["ok"]
    assert not (tmp_path / "workflow-results").exists()
    assert "results: workflow-results/results.json" in out


def test_a_bad_workflow_is_one_coded_line(tmp_path):
    path = tmp_path / "bad.toml"
    path.write_text("[[steps]]\nname = 'a'\n")
    status, _, err = qmk("workflow", "run", str(path))
    assert status == 2 and err.startswith("QW013 bad-workflow: step 'a' needs program")


@pytest.mark.parametrize(
    ("every", "said"),
    [
        ("0", "must be a number of seconds > 0, got 0"),
        ("inf", "> 0, got inf"),
        ("x", "not a number"),
    ],
)
def test_a_trigger_every_not_a_number_of_seconds_is_a_usage_error(flow, every, said):
    status, out, err = qmk("workflow", "trigger", "add", str(flow), "--every", every)
    assert status == 2 and out == ""
    assert err.startswith("QW011 bad-option: ") and err.count("\n") == 1
    assert "--every" in err and said in err


def test_the_same_workflow_on_a_kernel_gives_the_same_counts(flow, tmp_path, monkeypatch):
    pytest.importorskip("starlette")
    from support.http import HttpServer

    (tmp_path / "k").mkdir()
    server = HttpServer(tmp_path / "k").start()
    try:
        monkeypatch.setenv("QMK_KEY", TENANTS["alice"]["key"])
        local = tmp_path / "local"
        assert qmk("workflow", "run", str(flow), "--out", str(local), "--no-plots")[0] == 0
        results = {}
        for option, where in (("--server", server.url), ("--socket", str(server.socket))):
            out_dir = tmp_path / option.strip("-")
            status, out, err = qmk(
                "workflow", "run", str(flow), option, where, "--tenant", "alice",
                "--out", str(out_dir), "--no-plots",
            )  # fmt: skip
            assert status == 0, out + err
            assert f"({where})" in out
            results[option] = json.loads((out_dir / "results.json").read_text())["jobs"]
        expected = json.loads((local / "results.json").read_text())["jobs"]
        for jobs in results.values():
            assert [j["counts"] for j in jobs] == [j["counts"] for j in expected]
            assert all(j["job_id"] for j in jobs)
    finally:
        assert server.stop() == 0
