"""The Node.js client (clients/node) against a real ``qmk serve --grpc``.

``node tests/grpc/node/check.js`` connects with the client, which loads the checked-in
``kernel.proto`` at run time (@grpc/grpc-js, @grpc/proto-loader: ``make test`` installs
them with ``npm ci`` in ``clients/node``), submits a Bell pair, watches its events to
the result, waits, reads it through a typed rpc, submits with a seed past 2^53, submits
with ``waitMs`` (the finished job in one call), and meets a refusal; this test checks
what it saw against the executor's counts for the same seed and QMK's own tables. It
skips, saying why, where node or the client's packages are missing.
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from pathlib import Path

import pytest

from qmk import defaults
from qmk.execution.runs import run
from qmk.frontends.qasm import from_qasm
from support.grpc_kernel import grpc_target
from support.http import HttpServer
from support.kernel import TENANTS

ROOT = Path(__file__).resolve().parents[2]
CLIENT = ROOT / "clients" / "node"
CHECK = Path(__file__).with_name("node") / "check.js"
BELL = ROOT / "examples" / "bell.qasm"


def _node() -> str:
    node = shutil.which("node")
    if node is None:
        pytest.skip("node is not installed: the Node.js client's test needs node >= 18")
    if not (CLIENT / "node_modules" / "@grpc" / "grpc-js").is_dir():
        pytest.skip(
            "the Node.js client's packages are not installed: "
            "npm ci --prefix clients/node (make test does it)"
        )
    return node


def test_the_node_client_submits_watches_and_waits_on_a_real_grpc_kernel(
    server: HttpServer,
) -> None:
    node = _node()
    alice = TENANTS["alice"]
    done = subprocess.run(
        [node, str(CHECK), grpc_target(server), "alice", alice["key"], str(BELL)],
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    seen = json.loads(done.stdout)
    expected = run(from_qasm(BELL.read_text()).to_json(), shots=1000, seed=7).counts
    assert seen["tenant"] == "alice"
    assert seen["submitted"] == {"state": "QUEUED", "seed": 7, "shots": 1000}
    assert seen["done"]["state"] == "COMPLETED"
    assert seen["done"]["counts"] == dict(expected)
    assert seen["watched_counts"] == dict(expected)
    assert seen["typed"] == {"state": "COMPLETED", "counts": dict(expected), "seed": 7}
    events = [event["event"] for event in seen["events"]]
    assert events[0] == "state" and events[-1] == "result"
    assert seen["events"][-1]["state"] == "COMPLETED"
    assert seen["big_seed"] == str(2**62 + 1)  # exact, past JSON.parse's 2^53
    assert seen["waited"] == {"state": "COMPLETED", "counts": dict(expected)}  # one call
    assert seen["missing"] == {"is_qmk": True, "code": "QS1005", "name": "not-found", "grpc": 5}
    assert seen["done"]["job_id"] in seen["listed"]
    assert seen["bad_key"] == {"code": "QS1001", "grpc": 16}  # UNAUTHENTICATED
    assert seen["final_states"] == list(defaults.FINAL_JOB_STATES)  # the JS copy


def _docs_script() -> str:
    """The script of docs/grpc.md ("From Node.js")."""
    page = (ROOT / "docs" / "grpc.md").read_text(encoding="utf-8")
    scripts = re.findall(r"```js\n(.*?)```", page, re.DOTALL)
    assert len(scripts) == 1, "docs/grpc.md shows one Node.js script"
    return str(scripts[0])


def test_the_script_of_docs_grpc_runs_as_a_user_runs_it(server: HttpServer, tmp_path: Path):
    # installed as the page says: the client's folder linked into the user's node_modules
    # (what npm install /path/to/qmk/clients/node makes), the script a file of its own
    node = _node()
    (tmp_path / "node_modules" / "@qmk").mkdir(parents=True)
    (tmp_path / "node_modules" / "@qmk" / "client").symlink_to(CLIENT, target_is_directory=True)
    script = _docs_script()
    # this server's address and alice's key in place of the page's
    ours = {"127.0.0.1:50051": grpc_target(server), "alice-example-key-change-me": ""}
    ours["alice-example-key-change-me"] = TENANTS["alice"]["key"]
    for page_value, value in ours.items():
        assert json.dumps(page_value) in script
        script = script.replace(json.dumps(page_value), json.dumps(value))
    path = tmp_path / "main.js"
    path.write_text(script)
    done = subprocess.run(  # in the repository, where the script reads examples/bell.qasm
        [node, str(path)], cwd=ROOT, capture_output=True, text=True, timeout=300, check=False
    )
    assert done.returncode == 0, done.stderr
    printed = done.stdout.splitlines()
    expected = run(from_qasm(BELL.read_text()).to_json(), shots=1000, seed=7).counts
    assert printed[0].startswith("state ") and "result COMPLETED" in printed
    counts = {key: int(n) for key, n in re.findall(r"'(\d+)': (\d+)", printed[-3])}
    assert printed[-3].startswith("COMPLETED ") and counts == dict(expected)
    assert printed[-2] == "COMPLETED 7"
    assert printed[-1] == "QS1005 not-found 5"
