"""The web console in a real headless Chromium (Debian's), driven by Playwright.

The browser is the system's ``chromium`` (``make test`` installs Debian's package when it
is missing and it runs as root); no browser is ever downloaded. Without it the test is
skipped with the reason. A failing run leaves a screenshot under ``tmp_path``.
"""

from __future__ import annotations

import contextlib
import re
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from qmk import defaults
from support.http import HttpServer, session
from support.kernel import TENANTS
from support.paths import EXAMPLES, SRC

CONSOLE = SRC / "http" / "console"
BELL_QASM = (EXAMPLES / "bell.qasm").read_text(encoding="utf-8")
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


@contextlib.contextmanager
def _browser() -> Iterator[Any]:
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


@pytest.fixture
def page(server: HttpServer, tmp_path: Path):
    with _browser() as tab:
        yield tab


#: A machine whose clock runs one logical cycle a second, deciding every cycle: a job of
#: a hundred T gates holds its tiles for about a hundred seconds of the test's time.
SLOW_MACHINE = {"cycles_per_s": 1.0, "epoch_cycles": 1, "policy": "fair-share"}
LONG = 'OPENQASM 2.0;\ninclude "qelib1.inc";\nqreg q[1];\ncreg c[1];\n' + "t q[0];\n" * 100
LONG += "measure q -> c;\n"


@pytest.fixture(scope="module")
def slow_machine(tmp_path_factory: pytest.TempPathFactory) -> Iterator[HttpServer]:
    started = HttpServer(tmp_path_factory.mktemp("qmk-machine"), machine=SLOW_MACHINE).start()
    yield started
    assert started.stop() == 0, started.output()


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


def test_the_console_draws_the_shared_machine_with_each_tenants_patches_in_place(
    slow_machine: HttpServer, tmp_path: Path, request: pytest.FixtureRequest
):
    # dave's long job holds its tiles beside alice's; alice sees dave's patches under his
    # label, never by name or job id, and her own by id
    with httpx.Client(base_url=slow_machine.url, timeout=60) as http:
        dave = session(http, "dave")
        reply = http.post(
            "/v1/jobs",
            json={"program": LONG, "shots": 10, "seed": 1},
            headers={"Authorization": f"Bearer {dave}"},
        )
        assert reply.status_code == 201, reply.text
        daves = reply.json()["job_id"]
    with _browser() as page:
        try:
            page.goto(slow_machine.url + "/")
            page.fill("#tenant", "alice")
            page.fill("#key", TENANTS["alice"]["key"])
            page.click("#sign-in-button")
            page.wait_for_selector("#machine-summary[data-policy='fair-share']")
            page.fill("#program", LONG)
            page.fill("#shots", "10")
            page.click("#submit-button")
            page.wait_for_selector("#job-id:not(:empty)")
            mine = page.inner_text("#job-id")
            # placed at the machine's next decision, held for about a hundred cycles
            patches = page.locator(f"#floorplan g.job[data-job='{mine}']")
            patches.wait_for()
            assert patches.get_attribute("data-tenant") == "alice"
            tiles = int(patches.get_attribute("data-tiles"))
            assert tiles > 0 and patches.locator("rect").count() == tiles
            theirs = page.locator("#floorplan g.job:not([data-tenant='alice'])")
            theirs.wait_for()
            assert theirs.get_attribute("data-job") is None  # another tenant's: no id
            label = theirs.get_attribute("data-tenant")
            assert re.fullmatch(r"t-[0-9a-f]{12}", label or ""), label
            assert daves not in page.content() and "dave" not in page.content()
            legend = sorted(
                page.locator("#tenants [data-tenant]").nth(i).get_attribute("data-tenant")
                for i in range(page.locator("#tenants [data-tenant]").count())
            )
            assert legend == ["alice", label]
            series = page.locator("#utilization polyline[data-resource='tiles']")
            series.wait_for()
            assert int(series.get_attribute("data-points")) >= 1
            assert "Jain's fairness" in page.inner_text("#machine")
        except BaseException:
            shot = tmp_path / f"{request.node.name}.png"
            page.screenshot(path=str(shot), full_page=True)
            print(f"screenshot of the failure: {shot}")
            raise


def test_the_console_lists_triggers_with_their_next_and_last_runs_and_a_triggers_runs(
    page, server: HttpServer, client: httpx.Client, tmp_path: Path, request: pytest.FixtureRequest
):
    """Two triggers made over REST: an hourly one shows its next run; one that runs after
    each of alice's jobs shows its last run live (the console follows the trigger
    events) once the Bell job submitted from the console ends, and its runs on a click."""
    login = client.post(
        "/v1/sessions",
        json={"tenant": "alice", "key": TENANTS["alice"]["key"], "requested": ["CAP_ALLOC"]},
    )
    auth = {"Authorization": f"Bearer {login.json()['session_id']}"}
    flow = {
        "name": "bell",
        "steps": [{"name": "bell", "source": BELL_QASM, "shots": 100, "seed": 3}],
    }
    made = []
    for options in ({"on": "schedule", "every_s": 3600}, {"on": "job"}):
        reply = client.post(
            "/v1/triggers", json={"name": options["on"], "workflow": flow, **options}, headers=auth
        )
        assert reply.status_code == 201, reply.text
        made.append(reply.json())
    hourly, after = made
    try:
        page.goto(server.url + "/")
        page.fill("#tenant", "alice")
        page.fill("#key", TENANTS["alice"]["key"])
        page.click("#sign-in-button")
        row = f"#triggers tr[data-trigger='{after['trigger_id']}']"
        page.wait_for_selector(f"{row} [data-run-state='']")  # never ran
        scheduled = page.locator(f"#triggers tr[data-trigger='{hourly['trigger_id']}'] [data-next]")
        assert float(scheduled.get_attribute("data-next")) == hourly["next_run_at"]
        assert "every 3600 s" in page.inner_text("#triggers")
        assert page.locator("#no-triggers").is_hidden()
        page.click("#bell")
        page.fill("#seed", "7")
        page.click("#submit-button")
        page.wait_for_selector("#job-state[data-state='COMPLETED']")
        page.wait_for_selector(f"{row} [data-run-state='COMPLETED']")  # live, no reload
        assert "1 COMPLETED" in page.inner_text(row)
        page.click(row)
        page.wait_for_selector("#trigger-runs [data-run-state='COMPLETED']")
        listed = client.get(
            "/v1/triggers", params={"trigger_id": after["trigger_id"], "runs": 5}, headers=auth
        ).json()["triggers"]
        (ran,) = listed[0]["runs"]
        assert page.inner_text("#trigger-id") == after["trigger_id"]
        assert ran["reason"] == "job" and ran["run_id"] in page.inner_text("#trigger-runs")
        (job_id,) = ran["jobs"]
        assert page.locator(f"#trigger-runs a[data-job='{job_id}']").count() == 1
    except BaseException:
        shot = tmp_path / f"{request.node.name}.png"
        page.screenshot(path=str(shot), full_page=True)
        print(f"screenshot of the failure: {shot}")
        raise
    finally:
        for trigger in made:
            client.delete(f"/v1/triggers/{trigger['trigger_id']}", headers=auth)
