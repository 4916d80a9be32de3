"""deploy/compose.yaml run by podman-compose: a kernel on a Dask scheduler and two
workers, with Prometheus scraping it and loading the alert rules. A job goes in over
REST, runs on the Dask workers, and Prometheus sees it. Skips, saying why, where podman
or podman-compose cannot run. About 40 s (the images built once, tests/deploy/test_image.py)."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from support.paths import EXAMPLES, ROOT
from support.podman import built_image, podman, podman_flags, prometheus_image, why_not

httpx = pytest.importorskip("httpx")
from qmk.http.client import RestClient  # noqa: E402

COMPOSE = ROOT / "deploy" / "compose.yaml"
PODMAN_COMPOSE = shutil.which("podman-compose") or shutil.which(
    "podman-compose", path=str(Path(sys.executable).parent)
)
pytestmark = [
    pytest.mark.skipif(why_not() is not None, reason=str(why_not())),
    pytest.mark.skipif(
        PODMAN_COMPOSE is None, reason="podman-compose is not installed (the deploy extra)"
    ),
]


def _until(check: Callable[[], Any], what: str, deadline_s: float = 120.0) -> Any:
    """``check()`` once it is truthy; fails after ``deadline_s`` saying ``what``."""
    end = time.monotonic() + deadline_s
    while time.monotonic() < end:
        try:
            value = check()
        except httpx.HTTPError:
            value = None
        if value:
            return value
        time.sleep(0.25)
    raise AssertionError(f"no {what} within {deadline_s} s")


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, str]]:
    """The compose project up; the URLs of the kernel's HTTP gateway and Prometheus."""
    env = {
        **os.environ,
        "QMK_IMAGE": built_image(),
        "PROMETHEUS_IMAGE": prometheus_image(),
        "QMK_PUBLISH": "127.0.0.1:",  # a free port, read back below
        "PROMETHEUS_PUBLISH": "127.0.0.1:",
        "QMK_CONFIG": str(EXAMPLES / "kernel.toml"),
    }
    if podman_flags():  # runc for podman-compose's podman calls too
        conf = tmp_path_factory.mktemp("containers") / "containers.conf"
        conf.write_text('[engine]\nruntime = "runc"\n')
        env["CONTAINERS_CONF"] = str(conf)
    project = f"qmktest{uuid.uuid4().hex[:8]}"
    compose = [str(PODMAN_COMPOSE), "-p", project, "-f", str(COMPOSE)]

    def run(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [*compose, *args], env=env, capture_output=True, text=True, timeout=300, check=False
        )

    up = run("up", "-d")
    try:
        assert up.returncode == 0, up.stdout + up.stderr

        def url(service: str, port: int) -> str:
            published = podman("port", f"{project}_{service}_1", str(port)).strip()
            return "http://" + published.splitlines()[0]

        yield {"kernel": url("http-gateway", 8080), "prometheus": url("prometheus", 9090)}
    finally:
        print(run("logs").stdout[-20000:])  # shown when a test failed
        down = run("down", "-v", "-t", "5")
        assert down.returncode == 0, down.stdout + down.stderr


def test_a_rest_job_runs_on_the_dask_workers_and_prometheus_scrapes_it(stack):
    kernel, prometheus = stack["kernel"], stack["prometheus"]
    _until(lambda: httpx.get(f"{kernel}/healthz", timeout=2).status_code == 200, "kernel")
    # both workers joined the kernel's Dask pool
    # /metrics of the gateway: the kernel's load, read as a tenant holding CAP_OBSERVE
    scraper = ("prometheus", "prometheus-example-key-change-me")
    _until(
        lambda: (
            "qmk_dask_workers 2.0" in httpx.get(f"{kernel}/metrics", auth=scraper, timeout=5).text
        ),
        "two Dask workers in the kernel's pool",
    )
    with RestClient(kernel, tenant="alice", key="alice-example-key-change-me") as client:
        job = client.submit((EXAMPLES / "bell.qasm").read_text(), shots=300, seed=5)
        done = client.wait(job.job_id, timeout_ms=60_000)
        assert done.state == "COMPLETED", done
        counts = client.call("q_get_result", job_id=job.job_id).counts
    assert set(counts) <= {"00", "11"} and sum(counts.values()) == 300

    def scraped() -> list[Any]:
        query = {"query": 'qmk_jobs_finished_total{job="qmk",state="COMPLETED"}'}
        reply = httpx.get(f"{prometheus}/api/v1/query", params=query, timeout=5).json()
        return [r for r in reply["data"]["result"] if r["value"][1] == "1"]

    _until(scraped, "scrape of the finished job in Prometheus")
    rules = httpx.get(f"{prometheus}/api/v1/rules", timeout=5).json()["data"]["groups"]
    names = {rule["name"] for group in rules for rule in group["rules"]}
    assert {"QMKKernelDown", "QMKQueueStalled", "QMKWorkerLost"} <= names
    alerts = httpx.get(f"{prometheus}/api/v1/alerts", timeout=5).json()["data"]["alerts"]
    assert [a for a in alerts if a["state"] == "firing"] == []
