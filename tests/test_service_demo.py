"""The service demo that `make demo` runs works on a fresh kernel, end to end."""

from __future__ import annotations

import subprocess
import sys

from support.paths import EXAMPLES

DEMO = EXAMPLES / "service_demo.py"


def test_service_demo_runs_two_tenants_and_stops_cleanly():
    done = subprocess.run(
        [sys.executable, str(DEMO)], capture_output=True, text=True, timeout=120, check=False
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.count("(equal to qmk run)") == 2
    assert "bob refused at submit: QS1004 capability-denied" in done.stdout
    assert "QS1005 not-found" in done.stdout
    assert "exit 0, socket removed: True" in done.stdout
    assert "audit log ok" in done.stdout
