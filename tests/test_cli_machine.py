"""``qmk machine show`` and ``qmk machine simulate``, in-process."""

from __future__ import annotations

import json
import shutil
import textwrap

import pytest

from qmk import defaults
from support.cli import qmk
from support.paths import EXAMPLES, ROOT

PROGRAMS = ROOT / "tests" / "ft" / "programs"

#: The keys `--json` gives per policy (issue [machine-time], Deliver 6).
POLICY_KEYS = {
    "makespan_cycles",
    "utilization",
    "mean_slowdown",
    "p95_slowdown",
    "jain_fairness",
    "throughput_jobs_per_s",
    "speedup_vs_exclusive",
    "tenant_shares",
    "jobs",
}
MACHINE_KEYS = {
    "arrival_cycle",
    "start_cycle",
    "end_cycle",
    "tiles",
    "module",
    "wait_cycles",
    "idle_logical_error",
}
CAUSES = {"queue", "factory", "routing", "link", "decoder", "preempted"}


@pytest.fixture
def work(tmp_path):
    for name in ("toffoli.qasm", "qft2.qasm"):
        shutil.copy(PROGRAMS / name, tmp_path / name)
    (tmp_path / "kernel.toml").write_text("[machine]\nphysical_qubits = 300_000\n")
    path = tmp_path / "work.yaml"
    path.write_text(
        textwrap.dedent(
            """\
            machine: kernel.toml
            seed: 3
            tenants:
              - name: alice
                jobs:
                  - {program: toffoli.qasm, arrival_cycle: 0, priority: 5, shots: 100, copies: 3}
              - name: bob
                generate: {count: 20, arrivals: poisson, mean_gap_cycles: 30,
                           programs: [qft2.qasm, {adder: 3}]}
            """
        )
    )
    return path


def test_show_prints_the_default_machine_and_the_example_configs():
    status, out, err = qmk("machine", "show")
    assert status == 0, err
    assert "1,000,000 physical qubits in 1 module" in out and "factory:" in out
    status, out, _ = qmk("machine", "show", "--config", str(EXAMPLES / "kernel.toml"), "--json")
    data = json.loads(out)
    assert data["physical_qubits"] == 2_000_000 and data["modules"][0]["tiles"]["jobs"] > 0
    assert set(data["modules"][0]["tiles"]) == {"jobs", "routing", "factory", "storage"}


def test_show_draws_a_small_machine_as_text_and_any_machine_as_png(tmp_path):
    config = tmp_path / "k.toml"
    config.write_text(
        "[machine]\nphysical_qubits = 20_000\nstorage_tiles = 4\n[machine.factory]\ncopies = 1\n"
    )
    png = tmp_path / "m.png"
    status, out, _ = qmk("machine", "show", "--config", str(config), "--png", str(png))
    assert status == 0
    assert "o job tile" in out and "S" in out and "F" in out
    assert png.read_bytes()[:4] == b"\x89PNG" and out.endswith(f"drawn in {png}\n")
    # a machine too wide for text says where --png drew it, not to use --png
    status, out, _ = qmk("machine", "show", "--png", str(png))
    assert status == 0 and out.endswith(f"\ndrawn in {png}\n") and "too wide" not in out


def test_show_says_how_factory_share_gave_a_small_module_its_factory(tmp_path):
    # factory_share 0.25 rounds to no copy (9,680 qubits) below 38,720 qubits a module;
    # a module gets one where it takes at most half of it, and show says so
    lines = {}
    for qubits in (5_000, 20_000):
        config = tmp_path / f"k{qubits}.toml"
        config.write_text(f"[machine]\nphysical_qubits = {qubits}\n")
        status, out, err = qmk("machine", "show", "--config", str(config))
        assert status == 0, err
        lines[qubits] = out
    assert ", 1 factory copy x 60 tiles," in lines[20_000]
    assert (
        "factories: factory_share 0.25 of a module's 20,000 physical qubits rounds to no "
        "copy of 9,680; a module gets one where it takes at most half the module: 1 copy\n"
    ) in lines[20_000]
    assert ", 0 factory copies x 60 tiles," in lines[5_000]
    assert "from 19,360 qubits on: none, and T programs are refused\n" in lines[5_000]


def test_simulate_json_gives_each_policys_metrics_and_jobs_machine_records(work, tmp_path):
    plot = tmp_path / "plot.png"
    status, out, err = qmk(
        "machine",
        "simulate",
        str(work),
        "--policy",
        "exclusive",
        "--policy",
        "fair-share",
        "--json",
        "--plot",
        str(plot),
    )
    assert status == 0, err
    data = json.loads(out)
    assert set(data) == {"exclusive", "fair-share"}
    for result in data.values():
        assert set(result) >= POLICY_KEYS
        assert set(result["utilization"]) == {"tiles", "factories", "links"}
        assert set(result["tenant_shares"]) == {"alice", "bob"}
        assert len(result["jobs"]) == 23
        for job in result["jobs"]:
            assert job["tenant"] in ("alice", "bob")
            assert set(job["machine"]) >= MACHINE_KEYS
            assert set(job["machine"]["wait_cycles"]) == CAUSES
            assert job["machine"]["end_cycle"] >= job["machine"]["start_cycle"]
    assert data["exclusive"]["speedup_vs_exclusive"] == 1.0
    assert plot.read_bytes()[:4] == b"\x89PNG"
    status, text, _ = qmk("machine", "simulate", str(work), "--policy", "backfill")
    assert status == 0 and "backfill" in text and "speedup" in text
    assert "drawn in" not in text
    # the table says where --plot drew it (the JSON above stays one document)
    again = tmp_path / "again.png"
    status, text, _ = qmk("machine", "simulate", str(work), "--plot", str(again))
    assert status == 0 and text.endswith(f"\ndrawn in {again}\n") and again.exists()


def test_a_job_no_placement_can_hold_fails_the_run_with_a_code_naming_it(tmp_path):
    path = tmp_path / "big.yaml"
    path.write_text(
        "machine: {physical_qubits: 20000}\n"
        "tenants: [{name: a, jobs: [{program: {random: 400, gates: 10}, id: wide-one}]}]\n"
    )
    status, out, err = qmk("machine", "simulate", str(path), "--policy", "fair-share")
    assert status == 1 and out == ""
    assert err.startswith("QK501 unplaceable:") and "wide-one" in err
    assert "under fair-share:" in err  # the policy asked, not the exclusive baseline
    # and says the machine that would: its 858 tiles (400 qubits' fast block) and a
    # factory for its T gates need a module of 182,576 physical qubits
    assert "raise [machine] physical_qubits from 20,000 to 182,576," in err


def test_the_simulate_heading_counts_one_of_a_thing_in_the_singular(tmp_path):
    # it printed "1 jobs of 1 tenants (1 distinct programs) ... in 1 module; epoch 1 cycles"
    shutil.copy(PROGRAMS / "qft2.qasm", tmp_path / "qft2.qasm")
    path = tmp_path / "one.yaml"
    path.write_text(
        "machine: {physical_qubits: 300000, epoch_cycles: 1}\n"
        "tenants: [{name: a, jobs: [{program: qft2.qasm}]}]\n"
    )
    status, out, err = qmk("machine", "simulate", str(path), "--policy", "fair-share")
    assert status == 0, err
    heading = out.splitlines()[0]
    assert ": 1 job of 1 tenant (1 distinct program) on 300,000 physical qubits," in heading
    assert heading.endswith(" in 1 module; epoch 1 cycle")


def test_a_bad_workload_key_is_one_line_and_non_zero(tmp_path):
    path = tmp_path / "bad.yaml"
    path.write_text("machine: {physical_qubits: 20000}\ntenants: [{name: a, colour: red}]\n")
    status, _, err = qmk("machine", "simulate", str(path))
    assert status == 2 and err.startswith("QK502 bad-workload:") and "colour" in err
    assert err.count("\n") == 1


def test_a_missing_workload_file_exits_2_as_every_unreadable_input(tmp_path):
    status, out, err = qmk("machine", "simulate", str(tmp_path / "none.yaml"))
    assert (status, out) == (2, "") and err.startswith("QK502 bad-workload:")
    assert "cannot read" in err and err.count("\n") == 1


@pytest.mark.parametrize("cycles", ["0", "-5", "ten"])
def test_an_epoch_of_no_whole_positive_cycles_is_a_bad_option(work, cycles: str):
    # 0 was an internal error (float division by zero), -5 ran for ever
    status, out, err = qmk("machine", "simulate", str(work), f"--epoch-cycles={cycles}")
    assert status == 2 and out == "" and err.startswith("QW011 bad-option:")
    assert "--epoch-cycles" in err and err.count("\n") == 1


def test_the_workload_form_docs_machine_shows_is_the_example_that_ships():
    # a new user can run the page's workload as it stands (its transcript runs in
    # tests/test_docs_examples.py): the page's block is the file, byte for byte
    page = (ROOT / "docs" / "machine.md").read_text(encoding="utf-8")
    block = page.split("```yaml\n", 1)[1].split("```", 1)[0]
    form = EXAMPLES / "machine" / "form"
    assert (form / "workload.yaml").read_text(encoding="utf-8") == block
    status, out, err = qmk("machine", "simulate", str(form / "workload.yaml"), "--json")
    assert status == 0, err
    jobs = json.loads(out)[defaults.MACHINE_POLICY]["jobs"]
    assert {j["program"] for j in jobs} == {"adder.qasm", "qft8.qasm", "adder4.qasm"}
    assert len(jobs) == 1003 and sum(j["tenant"] == "alice" for j in jobs) == 3


def test_float_residue_of_an_idle_error_prints_as_0_and_json_keeps_the_number():
    # the table prints each idle error as error_text does (float residue under 1e-15 as
    # 0: its doctest), and --json keeps the number; backfill gives like-for-like's jobs
    # idle cycles, fidelity none
    from qmk.commands.machine import status_text
    from qmk.kernel.machine.metrics import error_text

    path = str(EXAMPLES / "machine" / "like-for-like.yaml")
    for policy in ("backfill", "fidelity"):
        code, out, err = qmk("machine", "simulate", path, "--policy", policy, "--json")
        assert code == 0, err
        data = json.loads(out)[policy]
        idle = [data["mean_idle_logical_error"], data["max_idle_logical_error"]]
        code, out, err = qmk("machine", "simulate", path, "--policy", policy)
        assert code == 0, err
        (row,) = [line for line in out.splitlines() if line.startswith(f"{policy} ")]
        assert row.split()[-3:-1] == [error_text(e) for e in idle]  # then err/budget
    assert idle == [0.0, 0.0] and data["over_budget"] == 0
    reply = {
        "policy": "fidelity", "clock_cycle": 5, "now_cycle": 5, "epoch_cycles": 1,
        "jobs": {"queued": 0, "running": 0, "stopped": 0, "done": 2},
        "utilization": {}, "tenant_shares": {}, "jain_fairness": 1.0,
        "throughput_jobs_per_s": 1.0, "mean_slowdown": 1.0, "p95_slowdown": 1.0,
        "mean_idle_logical_error": 4e-18, "max_idle_logical_error": 2e-15,
        "over_budget": 0, "speedup_vs_exclusive": None, "floorplan": [],
    }  # fmt: skip
    assert "idle logical error: mean 0, max 2.0e-15;" in status_text(reply)


def test_simulate_names_the_fastest_exclusive_configuration_its_speedups_are_over():
    # the like-for-like file's own configuration (compact, d = 9) gives its 200-qubit
    # programs 382x their budget: its speedups are in parentheses; the baseline is compact
    # at d = 15 with Litinski's factories, and the JSON carries it beside each speedup
    path = str(EXAMPLES / "machine" / "like-for-like.yaml")
    code, out, err = qmk("machine", "simulate", path, "--policy", "tetris", "--epoch-cycles", "1")
    assert code == 0, err
    assert "fastest exclusive configuration" in out and "compact/d=15/litinski-15to1" in out
    (row,) = [line for line in out.splitlines() if line.startswith("tetris ")]
    assert row.split()[9].startswith("(") and "not like for like" in out
    code, out, err = qmk("machine", "simulate", path, "--policy", "tetris", "--json")
    data = json.loads(out)["tetris"]
    assert data["fastest_exclusive"]["configuration"] == "compact/d=15/litinski-15to1"
    assert data["speedup_vs_fastest_exclusive"] > 0
    code, out, err = qmk("machine", "simulate", path, "--policy", "tetris", "--baseline", "same")
    assert code == 0 and "fastest exclusive" not in out
