"""Workload files: the issue's form, generators in machine time, one compile per program,
and coded refusals naming the key or the job."""

from __future__ import annotations

import itertools
import shutil
import textwrap

import pytest

from qmk.kernel.errors import MachineError
from qmk.kernel.machine import workload
from support.paths import ROOT

PROGRAMS = ROOT / "tests" / "ft" / "programs"


def write(tmp_path, text: str):
    for name in ("toffoli.qasm", "qft2.qasm", "adder2.qasm"):
        shutil.copy(PROGRAMS / name, tmp_path / name)
    path = tmp_path / "work.yaml"
    path.write_text(textwrap.dedent(text), encoding="utf-8")
    return path


ISSUE_FORM = """\
    machine: kernel.toml
    seed: 1
    tenants:
      - name: alice
        jobs:
          - {program: toffoli.qasm, arrival_cycle: 0, priority: 5, shots: 100, copies: 3}
      - name: bob
        generate: {count: 200, arrivals: poisson, mean_gap_cycles: 5000,
                   programs: [qft2.qasm, adder2.qasm]}
"""


def test_the_issues_workload_form_reads_with_its_paths_relative_to_the_file(tmp_path):
    (tmp_path / "kernel.toml").write_text("[machine]\nphysical_qubits = 500_000\n")
    work = workload.read(write(tmp_path, ISSUE_FORM))
    assert work.machine.physical_qubits == 500_000
    alice = [j for j in work.jobs if j.tenant == "alice"]
    assert [j.id for j in alice] == ["alice/0.0", "alice/0.1", "alice/0.2"]
    assert {(j.priority, j.shots, j.arrival_cycle, j.program) for j in alice} == {
        (5, 100, 0, "toffoli.qasm")
    }
    bob = [j for j in work.jobs if j.tenant == "bob"]
    assert len(bob) == 200 and {j.program for j in bob} == {"qft2.qasm", "adder2.qasm"}
    assert work.compiled == 3  # three distinct programs, each compiled once
    assert len({id(j.footprint) for j in work.jobs}) == 3
    arrivals = [j.arrival_cycle for j in work.jobs]
    assert arrivals == sorted(arrivals)


def test_poisson_arrivals_are_the_same_for_the_same_seed_and_have_the_stated_mean(tmp_path):
    (tmp_path / "kernel.toml").write_text("[machine]\nphysical_qubits = 500_000\n")
    path = write(tmp_path, ISSUE_FORM)
    first = [j.arrival_cycle for j in workload.read(path).jobs if j.tenant == "bob"]
    again = [j.arrival_cycle for j in workload.read(path).jobs if j.tenant == "bob"]
    assert first == again
    gaps = [b - a for a, b in itertools.pairwise(first)]
    assert 4000 < sum(gaps) / len(gaps) < 6000  # 199 exponential gaps of mean 5000
    other = write(tmp_path, ISSUE_FORM.replace("seed: 1", "seed: 2"))
    assert [j.arrival_cycle for j in workload.read(other).jobs if j.tenant == "bob"] != first


def test_generated_programs_and_an_inline_machine(tmp_path):
    path = write(
        tmp_path,
        """\
        machine: {physical_qubits: 300000, epoch_cycles: 50, block: intermediate}
        tenants:
          - name: t
            share: 2
            generate:
              - {count: 3, arrivals: uniform, mean_gap_cycles: 10, start_cycle: 5,
                 programs: [{adder: 4}]}
              - {count: 2, arrivals: at-once, programs: [{random: 12, gates: 60, seed: 4},
                 {counts: {numQubits: 7, tCount: 20}}], weights: [1, 3]}
        """,
    )
    work = workload.read(path)
    assert work.machine.epoch_cycles == 50 and work.machine.block == "intermediate"
    assert work.tenants == {"t": 2.0}
    adders = [j for j in work.jobs if j.program == "adder4"]
    assert [j.arrival_cycle for j in adders] == [5, 15, 25]
    assert all(j.footprint.block == "intermediate" for j in work.jobs)


@pytest.mark.parametrize(
    ("text", "key"),
    [
        ("machine: {physical_qubits: 1000}\ntenants: []\n", "tenants"),
        ("machine: {physical_qubits: 1000}\ntenants: [{name: a, jobz: []}]\n", "jobz"),
        ("machine: {physical_qubit: 1000}\ntenants: [{name: a}]\n", "machine"),
        (
            "machine: {physical_qubits: 100000}\n"
            "tenants: [{name: a, jobs: [{program: {adder: 2, qft: 3}}]}]\n",
            "jobs[0]",
        ),
        (
            "machine: {physical_qubits: 100000}\n"
            "tenants: [{name: a, jobs: [{program: missing.qasm}]}]\n",
            "missing.qasm",
        ),
        (
            "machine: {physical_qubits: 100000}\n"
            "tenants: [{name: a, jobs: [{program: {adder: 2}, id: x}, "
            "{program: {adder: 3}, id: x}]}]\n",
            "'x'",
        ),
    ],
)
def test_a_bad_workload_is_a_coded_error_naming_the_key(tmp_path, text: str, key: str):
    path = tmp_path / "bad.yaml"
    path.write_text(text)
    with pytest.raises(MachineError) as caught:
        workload.read(path)
    assert caught.value.code == "QK502"
    assert key in caught.value.message


@pytest.mark.parametrize("name", ["uniform", "mixed", "t-heavy"])
def test_the_studys_example_workloads_read(name: str):
    work = workload.read(ROOT / "examples" / "machine" / f"{name}.yaml")
    assert work.jobs and work.machine.physical_qubits == 1_000_000


def test_the_like_for_like_example_keeps_every_budget_under_fidelity():
    # the file's own machine at epochs of one cycle (speedups against the fastest
    # exclusive configuration: tests/kernel/machine/test_baseline.py)
    from qmk.kernel.machine.simulate import PolicyRun, simulate

    work = workload.read(ROOT / "examples" / "machine" / "like-for-like.yaml")
    machine = work.machine.with_(epoch_cycles=1)
    runs = simulate(machine, work.jobs, ["fidelity"], tenants=work.tenants)
    fidelity = runs["fidelity"]
    assert isinstance(fidelity, PolicyRun)
    assert all(record.within_budget for record in fidelity.records)


def test_simulate_fences_a_long_fence_less_program_as_a_kernel_does():
    # 20,000 T gates at about 0.246 states a cycle run some 81,000 cycles: with
    # [machine] fence_cycles 1000, no stretch between two fences runs past 1000 cycles at
    # the job's pace alone (a state every 1 / rate cycles), as the kernel's machine
    # fences a job (the one rule, footprints.fenced_for)
    program = {"counts": {"numQubits": 4, "tCount": 20000}}

    def footprint(**machine):
        data = {
            "machine": {"physical_qubits": 100000, **machine},
            "seed": 1,
            "tenants": [{"name": "a", "jobs": [{"program": program}]}],
        }
        loaded = workload.load(data)
        return loaded.machine, loaded.jobs[0].footprint

    machine, fp = footprint(fence_cycles=1000)
    rate = max(m.factory.rate for m in machine.modules)
    stretch, stretches = 0.0, []
    for step in fp.steps:
        if step.kind == "fence":
            stretches.append(stretch)
            stretch = 0.0
        else:
            stretch += step.repeat * max(step.cycles, step.t_states / rate)
    stretches.append(stretch)
    assert max(stretches) <= 1000 + 1e-9
    assert sum(stretches) >= 20000 / rate - 1e-6  # nothing dropped
    assert fp.fences >= 20000 / rate / 1000
    assert fp.t_states == 20000
    _, loose = footprint()  # the default, 10,000 cycles: the program's own 15 parts
    assert loose.fences < fp.fences


def test_simulate_makes_a_jobs_bell_pairs_inside_its_module_as_a_kernel_does():
    # a teleported CNOT takes one Bell pair (the logical target's footprint, a kernel
    # job's). A machine of one module has no link: the kernel makes the pair inside the
    # module, and simulate takes the job through the same rule (footprints.placed_for)
    # where the raw footprint is refused for want of a link
    from qmk.execution.logical import LogicalTarget
    from qmk.execution.request import RunRequest, program_digest
    from qmk.kernel.machine.footprints import fenced_for, placed_for
    from qmk.kernel.machine.jobs import JobSpec
    from qmk.kernel.machine.simulate import simulate
    from qmk.kernel.machine.spec import LinkSpec, MachineSpec
    from qmk.qvm.asm import assemble

    graph = assemble(
        ".caps CAP_ALLOC CAP_TELEPORT\na: ALLOC_LQ vq:a, vq:b\nh: APPLY_H vq:a\n"
        "t: TELEPORT_CNOT vq:a, vq:b\nma: MEASURE_Z vq:a, out:ma\nmb: MEASURE_Z vq:b, out:mb"
    )
    target = LogicalTarget()
    request = RunRequest.build(program_digest=program_digest(""), shots=1, seed=0, noise=False)
    raw = target.compile(target.read(graph.to_json()), request).footprint
    assert raw.bell_pairs == 1
    machine = MachineSpec.simple(tiles=20)
    assert machine.link.bell_pairs_per_cycle == 0
    placed = placed_for(raw, machine, 10_000)
    assert placed.bell_pairs == 0 and placed.steps != raw.steps
    assert [s.cycles for s in placed.steps] == [
        s.cycles for s in fenced_for(raw, machine, 10_000).steps
    ]

    def run(fp):
        job = JobSpec(id="a", tenant="a", footprint=fp, arrival_cycle=0)
        return simulate(machine, [job], ["fidelity"])["fidelity"]

    with pytest.raises(MachineError, match="no link"):
        run(raw)
    record = run(placed).records[0]
    assert (record.start_cycle, record.end_cycle) == (0, placed.duration_cycles)
    assert sum(record.wait_cycles.values()) == 0
    linked = machine.with_(link=LinkSpec(bell_pairs_per_cycle=1.0))
    assert placed_for(raw, linked, 10_000) == fenced_for(raw, linked, 10_000)
    assert placed_for(raw, linked, 10_000).bell_pairs == 1
