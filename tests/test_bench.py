"""The benchmarks in ``bench/`` are not run by the suite (CI never gates on a timing), but
each must still start: a name qmk no longer has stops a bench at its import."""

from __future__ import annotations

import sqlite3
import subprocess
import sys
import time

import pytest

from qmk.client import Client
from support.paths import ROOT

BENCH = ROOT / "bench"

#: Imports every bench script as ``python bench/NAME.py`` would (its folder first on the
#: path, for ``_common``), in one process: their shared imports are paid once.
IMPORT_ALL = """
import importlib, pathlib, sys
sys.path.insert(0, sys.argv[1])
names = sorted(p.stem for p in pathlib.Path(sys.argv[1]).glob("*.py") if p.stem != "_common")
for name in names:
    importlib.import_module(name)
print(len(names))
"""


def test_every_bench_script_imports_against_todays_qmk():
    done = subprocess.run(
        [sys.executable, "-c", IMPORT_ALL, str(BENCH)],
        capture_output=True,
        text=True,
        timeout=300,
        cwd=BENCH,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    assert int(done.stdout.split()[-1]) == len(list(BENCH.glob("*.py"))) - 1


@pytest.mark.parametrize("kind", ["blocking", "asyncio", "durable"])
def test_each_least_server_of_a_session_open_answers_the_client(kind, tmp_path):
    config = tmp_path / "bench.toml"
    config.write_text(
        "[machine]\nphysical_qubits = 1_000_000\n"
        '[tenants.bench]\nkey = "bench-tenant-key"\ncaps = ["CAP_ALLOC"]\n'
    )
    address = tmp_path / "floor.sock"
    argv = [sys.executable, str(BENCH / "open_floor.py"), kind, str(address), str(config)]
    server = subprocess.Popen([*argv, str(tmp_path)], stderr=subprocess.PIPE)
    try:
        deadline = time.monotonic() + 60
        while not address.exists():  # put in place once it listens (bind_unix)
            assert server.poll() is None, server.stderr.read() if server.stderr else ""
            assert time.monotonic() < deadline
            time.sleep(0.02)
        for _ in range(2):  # one connection after another, as the bench opens them
            with Client.connect(str(address), tenant="bench", key="bench-tenant-key") as client:
                session = client.core.session
            assert session is not None and session.granted == ["CAP_ALLOC"]
    finally:
        server.terminate()
        server.wait(30)
    if kind == "durable":  # the row and the audit line, written before each answer
        rows = sqlite3.connect(tmp_path / "floor.db").execute("SELECT count(*) FROM sessions")
        assert rows.fetchone() == (2,)
        assert len((tmp_path / "audit.log").read_text().splitlines()) == 2
