"""A job's stored program is sealed as its result is: a program swapped in ``kernel.db`` (in
the job's row or packed apart, its run request's digest swapped with it) is refused when the
kernel starts again (the job FAILED with ``QK310 program-tampered``, never run), and so are
a restore and a replay of it; ``qmk audit verify`` names the job; and a packed text is
never inflated past the size the kernel sealed (a decompression bomb written into the
database costs a start nothing)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from qmk.errors import StateError
from qmk.execution.request import program_digest
from qmk.kernel.datafiles import AUDIT_FILE
from qmk.kernel.security.seals import derive, program_seal
from qmk.kernel.security.sessions import load_secret
from qmk.kernel.service import Kernel
from qmk.kernel.storage.audit_verify import verify
from qmk.kernel.storage.job_reads import program_text, unpack_graph
from qmk.kernel.storage.store import pack_graph
from qmk.qvm.graph import compact_text
from support.cli import qmk
from support.kernel import BELL, KEYS, chain_graph, login, run_kernel
from support.tamper import FORGED, bomb_program, swap_program, unfinished_jobs, zlib_bomb

#: (the program submitted, the one swapped in): a small one in its row; a big one kept
#: apart, swapped for one of the same size (one X a Z).
PROGRAMS = {
    "in-its-row": (BELL, FORGED),
    "kept-apart": (chain_graph(2_000), chain_graph(2_000, flips=1)),
}


@pytest.mark.parametrize("where", sorted(PROGRAMS))
def test_a_program_swapped_in_the_database_fails_its_job_at_restart_and_never_runs(
    tmp_path: Path, where: str
) -> None:
    submitted, forged = PROGRAMS[where]
    data = tmp_path / "data"
    alices, bobs = unfinished_jobs(tmp_path, submitted)
    swap_program(data, alices, compact_text(forged))

    async def after(kernel: Kernel) -> None:
        alice, bob = await login(kernel, "alice"), await login(kernel, "bob")
        ended = await kernel.q_wait(session_id=alice, job_id=alices, timeout_ms=60_000)
        assert ended.state == "FAILED" and ended.result is None
        assert ended.error.code == "QK310" and alices in ended.error.message
        for again in (kernel.q_restore, kernel.q_replay):
            with pytest.raises(StateError) as refused:
                await again(session_id=alice, job_id=alices)
            assert refused.value.details["code"] == "QK310"
        other = await kernel.q_wait(session_id=bob, job_id=bobs, timeout_ms=60_000)
        assert other.state == "COMPLETED"  # another tenant's job is not held up by it

    run_kernel(tmp_path, after, workers=1)
    lines = [json.loads(line) for line in (data / AUDIT_FILE).read_text().splitlines()]
    failed = [r for r in lines if r.get("job_id") == alices and r.get("state") == "FAILED"]
    assert len(failed) == 1 and "does not match the seal" in failed[0]["reason"]
    assert not [r for r in lines if r.get("job_id") == alices and r.get("state") == "RUNNING"][1:]


@pytest.mark.parametrize("where", sorted(PROGRAMS))
def test_audit_verify_names_the_job_of_a_swapped_program(tmp_path: Path, where: str) -> None:
    submitted, forged = PROGRAMS[where]
    data = tmp_path / "data"
    alices, _ = unfinished_jobs(tmp_path, submitted)
    untouched = verify(data)
    assert untouched.ok and untouched.programs_checked == 2, untouched
    swap_program(data, alices, compact_text(forged))
    report = verify(data)
    assert not report.ok and f"job {alices}'s stored program" in str(report.reason)
    lines = (data / AUDIT_FILE).read_text().splitlines()
    queued = json.loads(lines[(report.first_bad_line or 0) - 1])
    assert (queued["job_id"], queued["state"]) == (alices, "QUEUED")  # its acceptance
    status, out, err = qmk("audit", "verify", str(data))
    assert status == 1 and alices in err and out == ""


def test_a_packed_text_is_never_inflated_past_its_sealed_size() -> None:
    key = derive(b"s" * 32, "result")
    text = compact_text(chain_graph(2_000))
    digest = program_digest(text)
    seal = program_seal(key, "j1", "alice", digest, len(text))
    row = ("j1", "alice", digest, "", pack_graph(text), seal)
    assert program_text(key, row) == text
    bomb = zlib_bomb(64)  # 64 MiB of spaces in 65 KB
    assert program_text(key, (*row[:4], bomb, seal)) is None  # stopped past len(text)
    assert program_text(key, (*row[:5], None)) is None  # no seal: not even unpacked
    with pytest.raises(ValueError, match="past 1024 bytes"):
        unpack_graph(bomb, 1024)


#: Opens a kernel on a data directory (argv 1), waits for a job (argv 2) of alice (key:
#: argv 3), and prints its end and the process's peak memory: its own address space's
#: high-water mark (VmHWM, which starts afresh at exec; ru_maxrss keeps the forking
#: parent's, so a test process already large made the figure its own).
_START = textwrap.dedent(
    """
    import asyncio, json, sys
    from qmk.kernel.service import Kernel
    from support.kernel import make_config

    async def main():
        kernel = await Kernel.open(make_config(), sys.argv[1], workers=1)
        try:
            s = await kernel.q_negotiate_caps(tenant="alice", key=sys.argv[3], requested=[])
            done = await kernel.q_wait(session_id=s.session_id, job_id=sys.argv[2],
                                       timeout_ms=60000)
        finally:
            await kernel.close()
        with open("/proc/self/status", encoding="ascii") as status:
            hwm = next(line for line in status if line.startswith("VmHWM:"))
        peak_mb = int(hwm.split()[1]) / 1024
        print(json.dumps({**done.to_json(), "peak_mb": peak_mb}))

    asyncio.run(main())
    """
)


def test_a_decompression_bomb_in_the_database_fails_its_job_and_costs_the_start_nothing(
    tmp_path: Path,
) -> None:
    data = tmp_path / "data"
    alices, _ = unfinished_jobs(tmp_path, BELL)
    packed = bomb_program(data, alices, 400)  # about 400 KB that inflate to 400 MiB
    assert packed < 1_000_000
    tests = Path(__file__).resolve().parents[2]
    done = subprocess.run(
        [sys.executable, "-c", _START, str(data), alices, KEYS["alice"]],
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
        env={**os.environ, "PYTHONPATH": os.pathsep.join([str(tests), *sys.path])},
    )
    assert done.returncode == 0, done.stderr
    ended = json.loads(done.stdout.strip().splitlines()[-1])
    assert ended["state"] == "FAILED" and ended["error"]["code"] == "QK310", ended
    assert ended["peak_mb"] < 400, ended  # a start that inflated the bomb peaks past it
    assert load_secret(data)  # (the directory is whole: its secret, its log)
    assert not verify(data).ok  # the bomb is still there: verify names its job
