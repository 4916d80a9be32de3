"""Every layer's defaults are qmk.defaults' constants: the CLI, the executor, the kernel and
its config, the qSyscall method table, the client and the Qiskit backend agree."""

from __future__ import annotations

import argparse
import inspect
from collections.abc import Callable
from typing import Any

import pytest

from qmk import defaults


def _default(function: Callable[..., Any], name: str) -> Any:
    return inspect.signature(function).parameters[name].default


def _subcommand(name: str) -> argparse.ArgumentParser:
    from qmk.cli import _parser

    parser = _parser()
    action = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    return action.choices[name]


def _option(command: str, dest: str) -> argparse.Action:
    return next(a for a in _subcommand(command)._actions if a.dest == dest)


def test_shots_default_alike_everywhere():
    from qmk._front import run
    from qmk.abi.methods import METHODS
    from qmk.execution.request import RunRequest
    from qmk.kernel.service import Kernel

    assert _default(run, "shots") == defaults.SHOTS  # qmk.run: every in-process run
    assert _default(Kernel.q_submit, "shots") == defaults.SHOTS
    assert METHODS["q_submit"].param("shots").default == defaults.SHOTS
    # the CLI leaves an option it was not given unset (None), so a target can tell a
    # given option from its default; the one run-request builder fills in the default
    assert _default(RunRequest.build, "shots") == defaults.SHOTS
    for command in ("run", "submit"):
        option = _option(command, "shots")
        assert option.default in (None, defaults.SHOTS)
        assert f"({defaults.SHOTS}" in (option.help or "")


def test_the_qiskit_backend_runs_the_default_shots_profile_and_qubit():
    pytest.importorskip("qiskit")
    from qiskit import QuantumCircuit

    from qmk.qiskit import QMKBackend

    backend = QMKBackend()
    assert backend.options.shots == defaults.SHOTS
    circuit = QuantumCircuit(1, 1)
    circuit.measure(0, 0)
    counts = backend.run(circuit, seed_simulator=1).result().get_counts()
    assert counts == {"0": defaults.SHOTS}


def test_noise_defaults_alike_for_qmk_run_the_run_request_kernel_jobs_and_qiskit():
    pytest.importorskip("qiskit")
    from qmk._front import run
    from qmk.execution.request import Policy, RunRequest
    from qmk.execution.target import TARGETS
    from qmk.qiskit import QMKBackend

    # qmk.run's None is its target's default: on, but for a QVM program on stim
    assert _default(run, "noise") is None
    assert [n for n, t in TARGETS.items() if t.qvm_noise is not defaults.NOISE] == ["stim"]
    assert Policy().noise is defaults.NOISE
    assert RunRequest(program_digest="ab" * 32, shots=1, seed=1).noise is defaults.NOISE
    assert QMKBackend().options.noise is defaults.NOISE
    # `qmk run` offers the flag that turns the default off
    assert _option("run", "no_noise").default is (not defaults.NOISE)


def test_profile_and_qubit_default_alike_everywhere():
    from qmk._front import run
    from qmk.execution.request import RunRequest
    from qmk.kernel.config import MachineConfig
    from qmk.qec.logical import logical_model

    assert (_default(run, "profile"), _default(run, "qubit")) == (defaults.PROFILE, defaults.QUBIT)
    assert _default(logical_model, "profile") == defaults.PROFILE
    assert _default(logical_model, "qubit") == defaults.QUBIT
    machine = MachineConfig(physical_qubits=1)
    assert (machine.profile, machine.qubit) == (defaults.PROFILE, defaults.QUBIT)
    assert (_default(RunRequest.build, "profile"), _default(RunRequest.build, "qubit")) == (
        defaults.PROFILE,
        defaults.QUBIT,
    )
    for dest, value in (("profile", defaults.PROFILE), ("qubit", defaults.QUBIT)):
        option = _option("run", dest)
        assert option.default in (None, value)
        if option.default is None:  # the builder's default (above), which the help names
            assert value in (option.help or "")


def test_engine_names_are_one_list():
    from qmk.engines import ENGINE_NAMES, engine_class
    from qmk.kernel.records.jobs import ENGINES

    assert ENGINE_NAMES == ENGINES == defaults.ENGINES
    assert tuple(_option("run", "engine").choices or ()) == defaults.ENGINES
    assert tuple(_option("submit", "engine").choices or ()) == defaults.ENGINES
    assert [engine_class(name).name for name in defaults.ENGINES] == list(defaults.ENGINES)
    assert _option("run", "engine").default is defaults.ENGINE is None


def test_wait_timeout_and_jobs_limit_default_alike_everywhere():
    from qmk.abi.methods import METHODS
    from qmk.kernel.service import Kernel

    assert _default(Kernel.q_wait, "timeout_ms") == defaults.WAIT_TIMEOUT_MS
    assert METHODS["q_wait"].param("timeout_ms").default == defaults.WAIT_TIMEOUT_MS
    assert _option("wait", "timeout_ms").default == defaults.WAIT_TIMEOUT_MS
    assert _option("submit", "timeout_ms").default == defaults.WAIT_TIMEOUT_MS
    assert _default(Kernel.q_list_jobs, "limit") == defaults.JOBS_LIMIT
    assert METHODS["q_list_jobs"].param("limit").default == defaults.JOBS_LIMIT
    assert _option("jobs", "limit").default == defaults.JOBS_LIMIT


def test_client_timeouts_and_server_line_limit_are_the_named_constants():
    from qmk.abi.server import ServerConfig
    from qmk.client import DEFAULT_TIMEOUT

    assert (DEFAULT_TIMEOUT.connect, DEFAULT_TIMEOUT.call) == (
        defaults.CONNECT_TIMEOUT_S,
        defaults.CALL_TIMEOUT_S,
    )
    assert _option("status", "timeout").default == defaults.CALL_TIMEOUT_S
    assert _option("serve", "max_line").default is None  # else the [server] table's value
    config = ServerConfig(socket_path=None, tcp=("127.0.0.1", 0))
    assert (
        config.max_line,
        config.max_line_unauthenticated,
        config.max_depth,
        config.max_connections,
        config.max_connections_per_peer,
        config.fd_reserve,
        config.max_inflight,
        config.max_inflight_bytes,
        config.max_unsent_bytes,
        config.drain_timeout_s,
    ) == (
        defaults.MAX_LINE_BYTES,
        defaults.MAX_LINE_UNAUTHENTICATED_BYTES,
        defaults.MAX_JSON_DEPTH,
        defaults.MAX_CONNECTIONS,
        defaults.MAX_CONNECTIONS_PER_PEER,
        defaults.FD_RESERVE,
        defaults.MAX_INFLIGHT,
        defaults.MAX_INFLIGHT_BYTES,
        defaults.MAX_UNSENT_BYTES,
        defaults.DRAIN_TIMEOUT_S,
    )


def test_kernel_settings_default_to_the_named_constants():
    from qmk.kernel.config import config_from_dict
    from qmk.kernel.records.jobs import parse_policy

    config = config_from_dict({"machine": {"physical_qubits": 1}})
    assert (
        config.session_ttl_s,
        config.job_timeout_s,
        config.worker_memory_mb,
        config.epoch_ms,
        config.preempt_gap,
        config.rollback_gap,
        config.synchronous,
    ) == (
        defaults.SESSION_TTL_S,
        defaults.JOB_TIMEOUT_S,
        defaults.WORKER_MEMORY_MB,
        defaults.EPOCH_MS,
        defaults.PREEMPT_GAP,
        defaults.ROLLBACK_GAP,
        defaults.SYNCHRONOUS,
    )
    assert parse_policy({}, default_timeout_s=1.0).priority == defaults.PRIORITY


def test_the_kernel_page_shows_the_defaults_it_says_it_shows():
    import re
    import sys
    from pathlib import Path

    if sys.version_info >= (3, 11):
        import tomllib
    else:  # pragma: no cover - exercised on 3.10 only
        import tomli as tomllib

    from qmk.kernel.config import KernelTable
    from qmk.qvm.limits import DEFAULT_MAX_UNROLLED_NODES

    page = Path(__file__).resolve().parents[1] / "docs" / "kernel.md"
    block = re.search(r"## Configuration\n\n```toml\n(.*?)```", page.read_text(), re.DOTALL)
    assert block is not None
    config = tomllib.loads(block.group(1))
    assert "these are the defaults" in block.group(1)
    assert config["kernel"] == {
        "session_ttl_s": defaults.SESSION_TTL_S,
        "job_timeout_s": defaults.JOB_TIMEOUT_S,
        "worker_memory_mb": defaults.WORKER_MEMORY_MB,
        "worker_cpu_s": defaults.WORKER_CPU_S,
        "worker_user": defaults.WORKER_USER,
        "worker_lost_retries": defaults.WORKER_LOST_RETRIES,
        "epoch_ms": defaults.EPOCH_MS,
        "preempt_gap": defaults.PREEMPT_GAP,
        "rollback_gap": defaults.ROLLBACK_GAP,
        "checkpoints_per_job": defaults.CHECKPOINTS_PER_JOB,
        "checkpoint_keep_s": defaults.CHECKPOINT_KEEP_S,
        "channel_proposal_ttl_s": defaults.CHANNEL_PROPOSAL_TTL_S,
        "min_free_disk_mb": defaults.MIN_FREE_DISK_MB,
        "max_graph_nodes": defaults.MAX_GRAPH_NODES,
        "max_unrolled_nodes": DEFAULT_MAX_UNROLLED_NODES,
        "max_result_mb": defaults.MAX_RESULT_MB,
        "result_keep_s": defaults.RESULT_KEEP_S,
        "synchronous": defaults.SYNCHRONOUS,
        "artifact_keep_s": KernelTable().artifact_keep_s,
    }
    assert (config["machine"]["profile"], config["machine"]["qubit"]) == (
        defaults.PROFILE,
        defaults.QUBIT,
    )


def test_a_jobs_states_are_one_table_the_kernel_and_the_workflows_read():
    from qmk.kernel.observe import KernelObserver
    from qmk.kernel.records import jobs
    from qmk.workflows.runner import FINAL, SKIPPED

    assert jobs.STATES == defaults.JOB_STATES
    assert frozenset(defaults.FINAL_JOB_STATES) == jobs.FINAL_STATES
    assert frozenset(defaults.JOB_STATES) - jobs.FINAL_STATES == jobs.ACTIVE_STATES
    assert KernelObserver.final_states == defaults.FINAL_JOB_STATES
    assert (*defaults.FINAL_JOB_STATES, SKIPPED) == FINAL
    assert SKIPPED not in defaults.JOB_STATES  # a workflow's own: its job never reached a kernel
