"""The HTTP demo that `make demo` runs works end to end on a fresh kernel."""

from __future__ import annotations

import subprocess
import sys

from support.paths import EXAMPLES


def test_the_http_demo_runs_a_job_over_rest_and_names_the_console():
    done = subprocess.run(
        [sys.executable, str(EXAMPLES / "http_demo.py")],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    assert "POST /v1/jobs (OpenQASM 2 text) -> 201" in done.stdout
    assert '"00": 500, "11": 500' in done.stdout  # seed 7, as qmk run gives it
    assert "404 QS1005 not-found" in done.stdout
    assert 'qmk_jobs_finished_total{state="COMPLETED",tenant="alice"} 1.0' in done.stdout
    assert "console: http://127.0.0.1:" in done.stdout
    assert "kernel stopped: exit 0" in done.stdout
