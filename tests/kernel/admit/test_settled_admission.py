"""A program submitted again with another seed (issue 50, item 3): admission takes what
its last job's checks made of the program, the policy, the configuration and the
calibrations, and gives exactly the job the full checks give; every check of the moment
(capabilities, audited; the modules up; the quotas; the queue room) still runs."""

from __future__ import annotations

import copy
import dataclasses
from pathlib import Path
from typing import Any

import msgspec
import pytest

from qmk import defaults
from qmk.errors import AdmissionError, CapabilityError, QMKError, QuotaError
from qmk.kernel.admit.admission import Admission
from qmk.kernel.manual_clock import ManualClock
from qmk.kernel.records.jobs import Job
from qmk.kernel.security.sessions import Session
from qmk.kernel.service import Kernel
from qmk.qec.noise import Drift
from qmk.qec.params import qubit_params
from qmk.qvm.graph import GraphText, compact_text
from support.kernel import BELL, admit, login, make_config, run_kernel

TEXT = compact_text(BELL)


def _graph(text: str = TEXT) -> GraphText:
    """The graph as a submit's request carries it: a text object of its own each time."""
    return GraphText((text + " ")[:-1], len(msgspec.json.decode(text)["program"]["nodes"]))


def _with_set_policy(**args: object) -> str:
    graph = copy.deepcopy(BELL)
    graph["program"]["nodes"].insert(0, {"id": "hints", "op": "SET_POLICY", "args": args})
    return compact_text(graph)


def _view(job: Job) -> dict[str, Any]:
    """Everything of an admitted job but its id and its creation time."""
    out = dataclasses.asdict(job)
    del out["job_id"], out["created_at"]
    out["footprint"] = job.footprint  # the same value (a struct), not its fields
    return out


async def _session(kernel: Kernel, caps: list[str] | None = None) -> Session:
    sid = await login(kernel, "alice", caps)
    return kernel.sessions.check(sid, now=kernel.clock.now())


async def _full(admission: Admission, session: Session, *args: Any, **kwargs: Any) -> Job:
    """The job the full checks admit (nothing kept from an earlier job)."""
    admission.settled.clear()
    return await admit(admission, session, *args, **kwargs)


def _refusal(error: QMKError) -> tuple[str, str, dict[str, Any]]:
    return error.code, error.message, dict(error.details)


@pytest.mark.parametrize(
    ("text", "policy"),
    [
        (TEXT, None),
        (TEXT, {}),
        (TEXT, {"priority": 3, "noise": False}),
        (TEXT, {"precision": "single", "engine": "statevector"}),
        (TEXT, {"noise_model": "depolarizing(p=0.001)"}),
        (TEXT, {"cache": False}),
        (_with_set_policy(priority=7, code_distance=5), None),
        (_with_set_policy(priority=7), {"priority": 2}),
    ],
)
def test_a_program_submitted_again_is_admitted_as_the_full_checks_admit_it(
    tmp_path: Path, text: str, policy: dict[str, Any] | None
) -> None:
    async def body(kernel: Kernel) -> None:
        admission = kernel.admission
        session = await _session(kernel)
        await admit(admission, session, _graph(text), 100, 1, copy.deepcopy(policy))
        hits = admission.settled.hits
        again = await admit(admission, session, _graph(text), 100, 2, copy.deepcopy(policy))
        drawn = await admit(admission, session, _graph(text), 100, None, copy.deepcopy(policy))
        assert admission.settled.hits == hits + 2  # both took the kept answer
        full = await _full(admission, session, _graph(text), 100, 2, copy.deepcopy(policy))
        assert _view(again) == _view(full)
        assert again.cache_lookup is full.cache_lookup
        assert drawn.cache_lookup is False and 0 <= drawn.seed < 2**63
        redrawn = msgspec.structs.replace(drawn.request, seed=2)
        assert _view(dataclasses.replace(drawn, request=redrawn, cache_lookup=True)) == _view(
            dataclasses.replace(full, cache_lookup=True)
        )

    run_kernel(tmp_path, body, workers=1)


def test_a_deadline_from_the_program_is_counted_from_each_submit(tmp_path: Path) -> None:
    clock = ManualClock(start=1000.0)
    text = _with_set_policy(deadline=50)

    async def body(kernel: Kernel) -> list[float | None]:
        session = await _session(kernel)
        deadlines = []
        for seed in (1, 2):
            job = await admit(kernel.admission, session, _graph(text), 100, seed, None)
            deadlines.append(job.policy.deadline)
            clock.advance(10)
        assert kernel.admission.settled.hits == 0
        return deadlines

    epoch_s = make_config().epoch_ms / 1000
    assert run_kernel(tmp_path, body, workers=1, clock=clock) == [
        1000.0 + 50 * epoch_s,
        1010.0 + 50 * epoch_s,
    ]


def test_another_policy_shots_or_program_is_checked_in_full(tmp_path: Path) -> None:
    async def body(kernel: Kernel) -> None:
        admission = kernel.admission
        session = await _session(kernel)
        await admit(admission, session, _graph(), 100, 1, {"priority": 3})
        cases: list[tuple[str, int, dict[str, Any] | None]] = [
            (TEXT, 100, {"priority": 4}),
            (TEXT, 100, {"priority": 3.0}),  # not the integer's JSON: refused as a float
            (TEXT, 200, {"priority": 3}),
            (_with_set_policy(priority=1), 200, {"priority": 4}),
        ]
        for text, shots, policy in cases:
            await admit(admission, session, _graph(), 100, 1, {"priority": 3})  # kept
            hits = admission.settled.hits
            try:
                job = await admit(admission, session, _graph(text), shots, 5, policy)
            except QMKError as exc:
                with pytest.raises(QMKError) as again:
                    await _full(admission, session, _graph(text), shots, 5, policy)
                assert _refusal(exc) == _refusal(again.value)
                continue
            finally:
                assert admission.settled.hits == hits
            full = await _full(admission, session, _graph(text), shots, 5, policy)
            assert _view(job) == _view(full)

    run_kernel(tmp_path, body, workers=1)


def test_a_calibration_ingested_or_another_configuration_is_checked_in_full(
    tmp_path: Path,
) -> None:
    policy = {"noise_model": "drift(factor=8)"}  # p = 8e-3 of the machine's qubits
    config = make_config()
    config = msgspec.structs.replace(
        config, machine=msgspec.structs.replace(config.machine, job_max_error_rate=0.01)
    )

    async def body(kernel: Kernel) -> None:
        admission = kernel.admission
        session = await _session(kernel)
        await admit(admission, session, _graph(), 100, 1, policy)
        await admit(admission, session, _graph(), 100, 2, policy)
        assert admission.settled.hits == 1
        # qubits twice as bad: the policy's drifted rate passes the machine's limit now
        kernel.device.calibrate(qubit=Drift(factor=2.0).apply(qubit_params(defaults.QUBIT)))
        with pytest.raises(AdmissionError) as refused:
            await admit(admission, session, _graph(), 100, 3, policy)
        assert refused.value.details["limit"] == "machine.job_max_error_rate"
        assert admission.settled.hits == 1
        await admit(admission, session, _graph(), 100, 1, None)
        await admit(admission, session, _graph(), 100, 2, None)
        assert admission.settled.hits == 2
        # another configuration object: its machine's noise model is the job's
        noisy = msgspec.structs.replace(
            kernel.config,
            machine=msgspec.structs.replace(
                kernel.config.machine, noise_model="depolarizing(p=0.002)"
            ),
        )
        admission.config = noisy
        job = await admit(admission, session, _graph(), 100, 4, None)
        assert job.request.noise_model == "depolarizing(p=0.002)"
        assert admission.settled.hits == 2

    run_kernel(tmp_path, body, workers=1, config=config)


def test_the_checks_of_the_moment_refuse_a_kept_program_as_the_full_checks_do(
    tmp_path: Path,
) -> None:
    async def body(kernel: Kernel) -> None:
        admission = kernel.admission
        session = await _session(kernel)
        await admit(admission, session, _graph(), 100, 1, None)
        hits = admission.settled.hits

        # a session of the same tenant without CAP_ALLOC: refused and audited
        lacking = await _session(kernel, ["CAP_LINK"])
        with pytest.raises(CapabilityError) as kept:
            await admit(admission, lacking, _graph(), 100, 2, None)
        with pytest.raises(CapabilityError) as full:
            await _full(admission, lacking, _graph(), 100, 2, None)
        assert _refusal(kept.value) == _refusal(full.value)
        await admit(admission, session, _graph(), 100, 1, None)  # kept again

        # the queue full: max_queued_jobs
        admission.quotas.machine_holds = lambda tenant: 50
        with pytest.raises(QuotaError) as kept:
            await admit(admission, session, _graph(), 100, 2, None)
        with pytest.raises(QuotaError) as full:
            await _full(admission, session, _graph(), 100, 2, None)
        assert _refusal(kept.value) == _refusal(full.value)
        assert kept.value.details["limit"] == "max_queued_jobs"
        admission.quotas.machine_holds = lambda tenant: 0
        await admit(admission, session, _graph(), 100, 1, None)  # kept again

        # the machine's only module down: the job fits nothing up
        kernel.device.down[0] = 0
        with pytest.raises(AdmissionError) as kept:
            await admit(admission, session, _graph(), 100, 2, None)
        with pytest.raises(AdmissionError) as full:
            await _full(admission, session, _graph(), 100, 2, None)
        assert _refusal(kept.value) == _refusal(full.value)
        del kernel.device.down[0]
        # each refused submit took the kept answer, and so did the one after the full
        # refusal at the queue room (its answer was kept before that check of the moment)
        assert admission.settled.hits == hits + 4

    run_kernel(tmp_path, body, workers=1)
