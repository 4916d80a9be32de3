"""The kernel over HTTP: start ``qmk serve --http``, run one job over REST, show the console.

Run ``python examples/http_demo.py`` (``make demo`` runs it). It starts ``qmk serve``
with examples/kernel.toml on a Unix socket and on ``--http 127.0.0.1:PORT`` (a free
port), then, with nothing but HTTP (httpx):

1. alice opens a session (``POST /v1/sessions``) and submits the Bell program as
   OpenQASM text (``POST /v1/jobs``), follows it on its Server-Sent Events stream
   (``GET /v1/jobs/{id}/events``) and prints its outcomes;
2. it reads a few lines of ``GET /metrics`` as the config's scraper (``prometheus``, a
   tenant holding only ``CAP_OBSERVE``) and prints where the console, the API
   reference and the OpenAPI document are;
3. it stops the kernel with SIGTERM (``--keep``: it serves until Ctrl-C instead, so the
   console can be opened in a browser).
"""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx

HERE = Path(__file__).resolve().parent
CONFIG = HERE / "kernel.toml"
KEY = "alice-example-key-change-me"
#: The scraper of /metrics in examples/kernel.toml: a tenant holding CAP_OBSERVE.
SCRAPER = ("prometheus", "prometheus-example-key-change-me")


def main(argv: list[str]) -> int:
    keep = "--keep" in argv
    port = next((a.split("=", 1)[1] for a in argv if a.startswith("--port=")), "0")
    with tempfile.TemporaryDirectory(prefix="qmk-http-demo-") as tmp:
        out = Path(tmp) / "serve.out"
        cmd = [
            sys.executable, "-m", "qmk", "serve", "--config", str(CONFIG),
            "--socket", os.path.join(tmp, "qmk.sock"), "--data-dir", os.path.join(tmp, "data"),
            "--workers", "2", "--http", f"127.0.0.1:{port}",
        ]  # fmt: skip
        server = subprocess.Popen(cmd, stdout=out.open("wb"))
        try:
            url = _wait_for_url(server, out)
            if url is None:
                print("the kernel did not start", file=sys.stderr)
                return 1
            print(f"kernel listening on {url} (REST) and a Unix socket (JSON-RPC)")
            demo(url)
            print(f"console: {url}/  API reference: {url}/docs  OpenAPI: {url}/openapi.json")
            if keep:
                print("serving until Ctrl-C")
                server.wait()
        except KeyboardInterrupt:
            pass
        finally:
            if server.poll() is None:
                server.send_signal(signal.SIGTERM)
            status = server.wait(timeout=30)
        print(f"kernel stopped: exit {status}")
        return 0 if status in (0, -signal.SIGINT) else status


def _wait_for_url(server: subprocess.Popen[bytes], out: Path) -> str | None:
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline and server.poll() is None:
        found = re.search(r"(https?://\S+)", out.read_text(errors="replace"))
        if found:
            return found.group(1)
        time.sleep(0.05)
    return None


def demo(url: str) -> None:
    with httpx.Client(base_url=url, timeout=60) as http:
        reply = http.post(
            "/v1/sessions", json={"tenant": "alice", "key": KEY, "requested": ["CAP_ALLOC"]}
        )
        session = reply.json()
        auth = {"Authorization": f"Bearer {session['session_id']}"}
        print(f"POST /v1/sessions -> {reply.status_code}, granted {', '.join(session['granted'])}")
        program = (HERE / "bell.qasm").read_text()
        reply = http.post(
            "/v1/jobs", json={"program": program, "shots": 1000, "seed": 7}, headers=auth
        )
        job = reply.json()
        print(f"POST /v1/jobs (OpenQASM 2 text) -> {reply.status_code}, {job['job_id']}")
        states = []
        with http.stream("GET", f"/v1/jobs/{job['job_id']}/events", headers=auth) as events:
            name = ""
            for line in events.iter_lines():
                if line.startswith("event: "):
                    name = line[7:]
                elif line.startswith("data: ") and name == "state":
                    states.append(json.loads(line[6:])["state"])
                elif line.startswith("data: ") and name == "result":
                    job = json.loads(line[6:])
                    break
        print(f"GET /v1/jobs/{{id}}/events -> states {' -> '.join(states)}")
        print(f"outcomes: {json.dumps(job['result']['counts'], sort_keys=True)}")
        problem = http.get("/v1/jobs/job_nope", headers=auth).json()
        print(f"GET /v1/jobs/job_nope -> {problem['status']} {problem['code']} {problem['name']}")
        metrics = http.get("/metrics", auth=SCRAPER).text.splitlines()
        shown = [m for m in metrics if m.startswith(("qmk_jobs_finished_total", "qmk_workers "))]
        print("GET /metrics ->", "; ".join(shown))


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
