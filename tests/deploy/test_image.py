"""The container image: built from the Containerfile, run as `make image-run` runs it, and
used through its REST API. Skips, saying why, where podman cannot run.

It costs the build once (about 90 s here from a base made with debootstrap, about 140 s
more the first time; deploy/image/build.sh reuses an image built from the same sources),
then about 10 s: the container's start and one job.
"""

from __future__ import annotations

import re
import time
import uuid
from collections.abc import Iterator

import pytest

from support.paths import EXAMPLES
from support.podman import CONFINE, built_image, podman, ulimits, why_not

httpx = pytest.importorskip("httpx")
from qmk.http.client import RestClient  # noqa: E402

pytestmark = pytest.mark.skipif(why_not() is not None, reason=str(why_not()))

SHOTS, SEED = 400, 11


def _wait_healthy(url: str, name: str, deadline_s: float = 120.0) -> None:
    """Until the container's /healthz answers (or it exits, or the deadline passes)."""
    end = time.monotonic() + deadline_s
    while time.monotonic() < end:
        try:
            if httpx.get(f"{url}/healthz", timeout=2).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        if podman("inspect", "--format", "{{.State.Running}}", name).strip() != "true":
            break
        time.sleep(0.2)
    logs = podman("logs", name, check=False)
    raise AssertionError(f"the container did not serve /healthz:\n{logs}")


@pytest.fixture(scope="module")
def served() -> Iterator[tuple[str, str]]:
    """The image serving REST on a free port of 127.0.0.1, with examples/kernel.toml
    mounted read-only as its config volume, confined as make image-run and the Helm chart
    run it (read-only root filesystem, no capabilities); (base URL, container name)."""
    image = built_image()
    name = f"qmk-test-{uuid.uuid4().hex[:8]}"
    podman(
        "run", "-d", "--rm", "--name", name, *ulimits(), *CONFINE,
        "-p", "127.0.0.1::8080",
        "-v", f"{EXAMPLES / 'kernel.toml'}:/etc/qmk/kernel.toml:ro",
        image,
    )  # fmt: skip
    try:
        port = podman("port", name, "8080").strip().rsplit(":", 1)[1]
        url = f"http://127.0.0.1:{port}"
        _wait_healthy(url, name)
        yield url, name
    finally:
        podman("rm", "-f", "-v", "-t", "5", name, check=False)  # -v: its anonymous volume too


def test_the_image_runs_a_bell_job_over_rest_with_only_correlated_outcomes(served):
    url, _ = served
    with RestClient(url, tenant="alice", key="alice-example-key-change-me") as client:
        job = client.submit((EXAMPLES / "bell.qasm").read_text(), shots=SHOTS, seed=SEED)
        done = client.wait(job.job_id, timeout_ms=60_000)
        assert done.state == "COMPLETED", done
        counts = client.call("q_get_result", job_id=job.job_id).counts
    # a Bell pair measured twice: only 00 and 11, every shot counted
    assert set(counts) <= {"00", "11"}
    assert sum(counts.values()) == SHOTS
    # /metrics answers only a scraper holding CAP_OBSERVE: the example config's prometheus
    assert httpx.get(f"{url}/metrics", timeout=10).status_code == 401
    scraper = ("prometheus", "prometheus-example-key-change-me")
    metrics = httpx.get(f"{url}/metrics", auth=scraper, timeout=10).text
    finished = re.findall(
        r'qmk_jobs_finished_total\{state="COMPLETED",tenant="alice"\} ([0-9.]+)', metrics
    )
    assert finished == ["1.0"], metrics


def test_the_kernel_in_the_image_runs_as_an_unprivileged_user_from_a_venv_outside_root(served):
    _, name = served
    ident = podman("exec", name, "id", "-u").strip()
    assert ident != "0"
    assert podman("exec", name, "sh", "-c", "command -v qmk").strip() == "/opt/qmk/venv/bin/qmk"
    # the data volume belongs to that user alone; the code it runs is not its to change
    owner = podman("exec", name, "stat", "-c", "%u %a", "/var/lib/qmk").split()
    assert owner == [ident, "700"]
    assert podman("exec", name, "sh", "-c", "test -w /opt/qmk/venv || echo ro").strip() == "ro"


def test_a_bad_tenant_key_is_refused_by_the_image_with_a_coded_problem(served):
    url, _ = served
    reply = httpx.post(
        f"{url}/v1/sessions",
        json={"tenant": "alice", "key": "wrong", "requested": ["CAP_ALLOC"]},
        timeout=10,
    )
    assert reply.status_code in (401, 403)
    assert reply.json()["code"].startswith("Q")
