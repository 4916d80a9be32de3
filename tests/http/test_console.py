"""The web console in a real headless Chromium (Debian's), driven by Playwright.

The browser is the system's ``chromium`` (``make test`` installs Debian's package when it
is missing and it runs as root); no browser is ever downloaded. Without it the test is
skipped with the reason. A failing run leaves a screenshot under ``tmp_path``.
"""

from __future__ import annotations

import re
import shutil
import tempfile
from pathlib import Path

import httpx
import pytest

from qmk import defaults
from support.http import HttpServer
from support.kernel import TENANTS
from support.paths import SRC

CONSOLE = SRC / "http" / "console"
CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
#: The flags this machine's closed network needs (no background connections at all).
FLAGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]


@pytest.fixture
def page(server: HttpServer, tmp_path: Path):
    if CHROMIUM is None:
        pytest.skip("no chromium on this machine (make test installs Debian's chromium as root)")
    sync_api = pytest.importorskip("playwright.sync_api")
    with sync_api.sync_playwright() as driver, tempfile.TemporaryDirectory() as profile:
        context = driver.chromium.launch_persistent_context(
            profile, executable_path=CHROMIUM, args=FLAGS, headless=True
        )
        try:
            tab = context.new_page()
            tab.set_default_timeout(60_000)
            yield tab
        finally:
            context.close()


def test_a_tenant_signs_in_submits_bell_and_sees_two_outcomes(
    page, server: HttpServer, tmp_path: Path, request: pytest.FixtureRequest
):
    try:
        page.goto(server.url + "/")
        page.fill("#tenant", "alice")
        page.fill("#key", TENANTS["alice"]["key"])
        page.click("#sign-in-button")
        page.wait_for_selector("#workspace:not([hidden])")
        assert "alice" in page.inner_text("#who")
        page.click("#bell")  # the Bell program in OpenQASM 2
        page.fill("#shots", "400")
        page.fill("#seed", "7")
        page.click("#submit-button")
        page.wait_for_selector("#job-state[data-state='COMPLETED']")
        bars = page.locator("#histogram rect.bar")
        bars.first.wait_for()
        outcomes = sorted(bars.nth(i).get_attribute("data-outcome") for i in range(bars.count()))
        assert outcomes == ["00", "11"]
        counts = [int(bars.nth(i).get_attribute("data-count")) for i in range(bars.count())]
        assert sum(counts) == 400
        job_id = page.inner_text("#job-id")
        row = page.locator(f"#jobs tr[data-job='{job_id}'] [data-state]")
        assert row.get_attribute("data-state") == "COMPLETED"  # the live list followed it
        page.wait_for_selector("#timeline .epoch")
        assert page.locator("#audit li").count() >= 3
        assert "engine" in page.inner_text("#telemetry")
        assert "physical_qubits_total" in page.inner_text("#resources")
    except BaseException:
        shot = tmp_path / f"{request.node.name}.png"
        page.screenshot(path=str(shot), full_page=True)
        print(f"screenshot of the failure: {shot}")
        raise


def test_a_wrong_key_is_shown_as_the_coded_error(page, server: HttpServer):
    page.goto(server.url + "/")
    page.fill("#tenant", "alice")
    page.fill("#key", "not-the-key")
    page.click("#sign-in-button")
    page.wait_for_selector("#sign-in-error:has-text('QS1001')")
    assert page.locator("#workspace").is_hidden()


def test_the_console_reads_the_default_shots_and_the_final_states_from_the_server(
    client: httpx.Client,
):
    reply = client.get("/console/facts.json")
    assert reply.status_code == 200
    assert reply.headers["content-type"].startswith("application/json")
    facts = reply.json()
    assert facts["shots"] == defaults.SHOTS
    assert facts["states"] == list(defaults.JOB_STATES)
    assert facts["final_states"] == list(defaults.FINAL_JOB_STATES)


def test_the_console_writes_neither_default_shots_nor_job_states_of_its_own():
    script = (CONSOLE / "console.js").read_text(encoding="utf-8")
    page = (CONSOLE / "index.html").read_text(encoding="utf-8")
    assert "/console/facts.json" in script
    for state in defaults.JOB_STATES:
        assert f'"{state}"' not in script, state
    assert '<input id="shots" type="number" min="1">' in page  # no value: the server's
    assert not re.search(r"shots[^\n]*\b[1-9][0-9]{2,}\b", script)  # no count of shots
