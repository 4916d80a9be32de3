"""What the HTTP API shows and to whom: ``/metrics`` to a scraper holding ``CAP_OBSERVE``
(tenants named, or hashed), the console's CSP and frame headers, and a Host allow-list."""

from __future__ import annotations

import io
import re
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from qmk.cli import main
from qmk.kernel.config import config_from_dict
from qmk.kernel.errors import ConfigError
from support.http import SCRAPER, HttpServer, bearer, session
from support.paths import EXAMPLES

BELL_QASM = (EXAMPLES / "bell.qasm").read_text()


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[HttpServer]:
    """A server answering one more Host name (its scraper: support.http's ``ops``)."""
    http = {"allowed_hosts": ["qmk.example.org"]}
    started = HttpServer(tmp_path_factory.mktemp("qmk-http"), http=http).start()
    yield started
    assert started.stop() == 0, started.output()


def _one_job(client: httpx.Client) -> None:
    sid = session(client)
    job = client.post("/v1/jobs", json={"program": BELL_QASM, "shots": 20}, headers=bearer(sid))
    assert job.status_code == 201, job.text
    done = client.get(
        f"/v1/jobs/{job.json()['job_id']}/wait",
        params={"timeout_ms": 60000},
        headers=bearer(sid),
    )
    assert done.json()["state"] == "COMPLETED"


def test_metrics_need_a_scraper_holding_cap_observe_and_then_name_tenants(
    client: httpx.Client,
) -> None:
    _one_job(client)
    alice = session(client)  # a tenant without CAP_OBSERVE: its session is refused too
    for headers, status, code in (
        ({}, 401, "QS1001"),  # no credentials
        ({"authorization": "Bearer wrong-session"}, 401, "QS1002"),
        (bearer(alice), 403, "QS1004"),  # capability-denied
    ):
        refused = client.get("/metrics", headers=headers)
        assert (refused.status_code, refused.json()["code"]) == (status, code), refused.text
        assert "qmk_jobs" not in refused.text
    guessed = client.get("/metrics", auth=(SCRAPER[0], "not-its-key"))
    assert guessed.status_code == 401 and "qmk_jobs" not in guessed.text
    reply = client.get("/metrics", auth=SCRAPER)
    assert reply.status_code == 200
    assert 'tenant="alice"' in reply.text


def test_metrics_tenants_hashed_labels_each_tenant_by_a_keyed_hash(
    tmp_path_factory: pytest.TempPathFactory,
) -> None:
    hashed = HttpServer(
        tmp_path_factory.mktemp("qmk-http-hashed"), http={"metrics_tenants": "hashed"}
    ).start()
    try:
        with httpx.Client(base_url=hashed.url, timeout=60) as client:
            _one_job(client)
            text = client.get("/metrics", auth=SCRAPER).text
    finally:
        assert hashed.stop() == 0, hashed.output()
    finished = re.findall(r'qmk_jobs_finished_total\{state="COMPLETED",tenant="([^"]+)"\}', text)
    assert len(finished) == 1 and re.fullmatch(r"t-[0-9a-f]{12}", finished[0])
    assert "alice" not in text


def test_the_retired_metrics_token_is_refused_by_name_pointing_at_cap_observe(
    tmp_path: Path,
) -> None:
    with pytest.raises(ConfigError) as refused:
        config_from_dict({"http": {"metrics_token": "operator-token-0123456789"}})
    assert refused.value.code == ConfigError("x").code
    assert refused.value.details["key"] == "http.metrics_token"
    assert "retired" in refused.value.message and "CAP_OBSERVE" in refused.value.message
    config = tmp_path / "kernel.toml"  # qmk serve says so in one coded line, and stops
    config.write_text('[http]\nmetrics_token = "operator-token-0123456789"\n')
    err = io.StringIO()
    argv = ["serve", "--socket", str(tmp_path / "k.sock"), "--data-dir", str(tmp_path / "d")]
    code = main([*argv, "--config", str(config), "--http", "127.0.0.1:0"], stderr=err)
    lines = err.getvalue().strip().splitlines()
    assert code == 2 and len(lines) == 1, lines
    assert refused.value.code in lines[0] and "http.metrics_token is retired" in lines[0]


def test_the_console_and_every_answer_carry_csp_and_frame_headers(client: httpx.Client) -> None:
    for path in ("/", "/console/console.js", "/healthz", "/v1/nothing-here"):
        reply = client.get(path)
        csp = reply.headers["content-security-policy"]
        assert "script-src 'self'" in csp and "frame-ancestors 'none'" in csp, path
        assert "unsafe-eval" not in csp and "script-src 'self' 'unsafe-inline'" not in csp
        assert reply.headers["x-frame-options"] == "DENY"
        assert reply.headers["x-content-type-options"] == "nosniff"


@pytest.mark.parametrize(
    ("host", "status"),
    [
        ("evil.example.com", 421),
        ("evil.example.com:80", 421),
        ("127.0.0.1.nip.io", 421),
        ("localhost", 200),
        ("LOCALHOST:1234", 200),
        ("[::1]:80", 200),
        ("qmk.example.org", 200),
    ],
)
def test_only_allowed_host_names_are_answered(client: httpx.Client, host: str, status: int) -> None:
    reply = client.get("/openapi.json", headers={"host": host})
    assert reply.status_code == status, reply.text
    if status == 421:
        assert reply.json()["code"] == "QR32600" and "http.allowed_hosts" in reply.json()["detail"]
    assert client.get("/healthz", headers={"host": host}).status_code == 200  # probes
    scrape = client.get("/metrics", headers={"host": host}, auth=SCRAPER)
    assert scrape.status_code == 200  # Prometheus scrapes the pod's address


@pytest.mark.parametrize(
    ("bind", "allowed", "host", "answered"),
    [
        ("0.0.0.0", (), b"0.0.0.0:8000", True),  # the URL qmk serve prints for it
        ("0.0.0.0", (), b"10.0.0.5:8000", False),  # an address of the machine: list it
        ("0.0.0.0", ("10.0.0.5",), b"10.0.0.5:8000", True),
        ("10.0.0.5", (), b"10.0.0.5", True),
        ("::", (), b"[::1]:8000", True),
        ("127.0.0.1", ("Qmk.Example.org",), b"qmk.example.ORG:443", True),
        ("127.0.0.1", (), b"localhost.evil.com", False),
        ("127.0.0.1", (), None, True),  # no Host (HTTP/1.0): no name to check
    ],
)
def test_the_host_allow_list_is_loopback_the_bind_host_and_the_configured_names(
    bind: str, allowed: tuple[str, ...], host: bytes | None, answered: bool
) -> None:
    from qmk.http.app import Exposure

    assert Exposure.of(allowed, bind).allows(host) is answered
