"""The coordinator's HTTP server on a prepared state folder (no coordinator process): what each path serves, that
it only reads, the [metrics] listen key, and the status page in a real headless browser (Debian's chromium
driven by selenium; skipped, saying why, where they are not installed). A real coordinator serving a real copy:
tests/test_e2e_metrics.py."""

from __future__ import annotations

import dataclasses
import json
import os
import shutil
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest
from prometheus_client.parser import text_string_to_metric_families

from config import ConfigError, parse_config
from coordinator.domain.latency import CopyStages
from coordinator.persistence.status import StatusBoard, TerminalStatus
from coordinator.runtime.metrics import CopierMetrics
from coordinator.runtime.status_report import gather_status, status_json
from coordinator.runtime.web import WebServer
from tests.conftest import wait_for

STAGES = CopyStages(detected=1000.0, planned=1002.0, sent=1007.0, answered=1069.3, confirmed=1069.3, broker_ms=53.9)


def config_data(state_dir: Path, listen: str) -> dict:
    return {
        "coordinator": {"state_dir": str(state_dir)},
        "source": {"name": "master", "backend": "sim", "path": "m", "login": 1001, "server": "S"},
        "targets": [{"name": "alpha", "backend": "sim", "path": "a", "login": 2001, "server": "S"}],
        "metrics": {"listen": listen},
    }


def row(name: str, role: str, **fields: object) -> TerminalStatus:
    now = time.time()
    values: dict = dict(name=name, role=role, online=True, terminal_reachable=True, connected=True,
                        account=f"{1001 if role == 'source' else 2001}@S", account_ok=True, pending_orders=1,
                        copies=1 if role == "target" else 0, orphans=0, skipped=(), last_sync_at=now - 1,
                        last_error="", updated_at=now)
    values.update(fields)
    return TerminalStatus(**values)


@pytest.fixture
def served(tmp_path: Path, store, running, unused_tcp_port) -> Iterator[tuple[str, object, StatusBoard]]:
    """The server on ``store``'s folder, a running coordinator's lock held, one copy placed and timed."""
    config = parse_config(config_data(tmp_path / "state", f"127.0.0.1:{unused_tcp_port}"), base_dir=tmp_path)
    board = StatusBoard(store.connection)
    board.write([row("master", "source"), row("alpha", "target", skipped=((7, "symbol not found on target"),))])
    store.record_event("alpha", 5, "placed", "done", copy_ticket=9005, retcode=10009, message="EURUSD buy limit",
                       stages=STAGES.to_json())
    metrics = CopierMetrics()
    server = WebServer(lambda: config, metrics.registry)
    server.start()
    try:
        yield f"http://127.0.0.1:{unused_tcp_port}", config, board
    finally:
        server.stop()


def get(url: str, *, method: str = "GET", host: str | None = None) -> tuple[int, bytes, dict[str, str]]:
    request = urllib.request.Request(url, method=method, headers={"Host": host} if host else {})
    try:
        with urllib.request.urlopen(request, timeout=5) as response:
            return response.status, response.read(), dict(response.headers)
    except urllib.error.HTTPError as e:
        return e.code, e.read(), dict(e.headers)


def test_api_status_is_the_json_of_status(served):
    base, config, _ = served
    code, body, headers = get(base + "/api/status")
    assert code == 200 and headers["Content-Type"] == "application/json"
    assert json.loads(body) == status_json(gather_status(config, time.time()))


def test_the_events_and_the_latency_are_served_with_their_stages(served):
    base, _, _ = served
    [event] = json.loads(get(base + "/api/events")[1])
    assert (event["target"], event["action"], event["source_ticket"], event["copy_ticket"]) == ("alpha", "placed",
                                                                                                5, 9005)
    assert event["retcode_text"] == "request executed"
    assert event["stages"]["text"] == STAGES.describe()
    assert [step["stage"] for step in event["stages"]["steps"]] == ["planned", "sent", "answered", "confirmed"]
    assert json.loads(get(base + "/api/latency?limit=5")[1]) == [event]


def test_metrics_read_the_status_board_and_leave_unknowns_out(served):
    base, _, board = served
    board.write([row("master", "source"), row("alpha", "target", online=False, terminal_reachable=None,
                                              connected=None, account_ok=None, copies=None, restarts=2)])
    code, body, _ = get(base + "/metrics")
    assert code == 200
    samples = {(s.name, tuple(sorted(s.labels.items()))): s.value
               for family in text_string_to_metric_families(body.decode()) for s in family.samples}
    assert samples[("mt5_copier_worker_up", (("role", "target"), ("terminal", "alpha")))] == 0
    assert samples[("mt5_copier_worker_up", (("role", "source"), ("terminal", "master")))] == 1
    assert samples[("mt5_copier_worker_restarts_total", (("role", "target"), ("terminal", "alpha")))] == 2
    assert ("mt5_copier_terminal_connected", (("role", "target"), ("terminal", "alpha"))) not in samples
    assert ("mt5_copier_copies", (("target", "alpha"),)) not in samples  # unknown: no sample, never 0
    assert samples[("mt5_copier_control_mode", (("mode", "active"), ("target", "alpha")))] == 1
    assert samples[("mt5_copier_control_mode", (("mode", "paused"), ("target", "alpha")))] == 0
    assert 0 <= samples[("mt5_copier_status_age_seconds", ())] < 5


def test_the_page_is_self_contained_and_allows_only_its_own_script(served):
    base, _, _ = served
    code, body, headers = get(base + "/")
    page = body.decode()
    assert code == 200 and headers["Content-Type"].startswith("text/html")
    assert "http://" not in page.replace('"http://www.w3.org/2000/svg"', "") and "https://" not in page
    policy = headers["Content-Security-Policy"]
    assert "default-src 'none'" in policy and "script-src 'sha256-" in policy and "connect-src 'self'" in policy
    assert headers["Cache-Control"] == "no-store"


def test_it_only_reads_and_answers_only_to_this_machines_names(served):
    base, _, _ = served
    for method in ("POST", "PUT", "DELETE"):
        code, _, headers = get(base + "/api/status", method=method)
        assert (code, headers.get("Allow")) == (405, "GET, HEAD"), method
    code, body, _ = get(base + "/api/status", method="HEAD")
    assert (code, body) == (200, b"")
    assert get(base + "/", host="copier.attacker.example")[0] == 403  # DNS rebinding: refused
    for host in ("localhost:9464", "127.0.0.1", "[::1]:8080"):
        assert get(base + "/api/status", host=host)[0] == 200, host
    assert get(base + "/nothing-here")[0] == 404


def test_no_state_yet_shows_no_rows_rather_than_failing(tmp_path: Path, unused_tcp_port):
    config = parse_config(config_data(tmp_path / "nowhere", f"127.0.0.1:{unused_tcp_port}"), base_dir=tmp_path)
    server = WebServer(lambda: config, CopierMetrics().registry)
    server.start()
    try:
        base = f"http://127.0.0.1:{unused_tcp_port}"
        assert json.loads(get(base + "/api/events")[1]) == []
        assert json.loads(get(base + "/api/status")[1])["coordinator"]["running"] is False
        assert get(base + "/metrics")[0] == 200
    finally:
        server.stop()


@pytest.mark.parametrize(("listen", "problem"), [
    ("9464", 'expected "HOST:PORT"'),
    (":9464", "the host is missing"),
    ("127.0.0.1:0", "the port must be a number from 1 to 65535"),
    ("127.0.0.1:http", "the port must be a number from 1 to 65535"),
    ("::1:9464", "an IPv6 address in brackets"),
])
def test_a_listen_address_that_cannot_be_bound_is_a_config_error(tmp_path: Path, listen: str, problem: str):
    with pytest.raises(ConfigError) as caught:
        parse_config(config_data(tmp_path, listen), base_dir=tmp_path)
    [line] = [line for line in str(caught.value).splitlines() if line.startswith("metrics.listen: ")]
    assert problem in line


def test_metrics_are_off_unless_listen_is_set(tmp_path: Path):
    data = config_data(tmp_path, "x")
    del data["metrics"]
    assert parse_config(data, base_dir=tmp_path).metrics.listen is None
    for listen in ("127.0.0.1:9464", "[::1]:9464", "0.0.0.0:9464", "copier-vm:9464"):
        config = parse_config(config_data(tmp_path, listen), base_dir=tmp_path)
        assert dataclasses.asdict(config.metrics) == {"listen": listen}


# ---- the page in a real headless browser -------------------------------------------------------------------


def chrome(profile: Path):
    """Headless Debian chromium through its chromedriver, with a fresh profile; skipped when not installed."""
    chromium, driver = shutil.which("chromium"), shutil.which("chromedriver")
    if chromium is None or driver is None:
        pytest.skip("chromium and chromedriver are not installed (Debian: apt-get install chromium chromium-driver; "
                    ".ci/run installs them where apt-get works)")
    webdriver = pytest.importorskip("selenium.webdriver", reason="selenium is not installed (pip install -e .[test])")
    os.environ.setdefault("SE_OFFLINE", "true")  # Selenium Manager must not look for drivers on the network
    options = webdriver.ChromeOptions()
    options.binary_location = chromium
    for argument in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                     "--disable-background-networking", "--disable-component-update", "--disable-sync",
                     "--no-first-run", "--window-size=1280,1400", f"--user-data-dir={profile}"):
        options.add_argument(argument)
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    return webdriver.Chrome(options=options, service=webdriver.ChromeService(executable_path=driver))


def test_the_page_in_a_headless_browser_shows_the_terminals_and_the_chart_and_refreshes_itself(served, store,
                                                                                               tmp_path):
    base, _, board = served
    browser = chrome(tmp_path / "chromium-profile")
    try:
        browser.get(base + "/")

        # Read in one script each: the page redraws every 2 s, so an element found a moment ago may be gone.
        def text(selector: str) -> str:
            return browser.execute_script("const e = document.querySelector(arguments[0]); "
                                          "return e ? e.textContent : '';", selector)

        def classes(selector: str) -> list[str]:
            return browser.execute_script("return [...document.querySelectorAll(arguments[0])]"
                                          ".map((e) => e.getAttribute('class'));", selector)

        def cell(terminal: str, column: str) -> str:
            return text(f'#terminals tr[data-terminal="{terminal}"] td.{column}')

        wait_for(lambda: cell("alpha", "copies") == "1", timeout=15, message="the page shows no copy on alpha")
        assert cell("master", "pending") == "1" and cell("master", "copies") == ""
        assert text("#health") == "healthy"
        assert "symbol not found on target" in text("#waiting")
        assert set(classes("#latency-chart rect.stage")) == {
            f"stage stage-{stage}" for stage in ("planned", "sent", "answered", "confirmed")}
        assert text("#latency-summary") == ("median of the last 1: detected→confirmed 69.3 ms (planned 2, sent 5, "
                                            "answered 62.3, confirmed 0)")
        assert "placed" in text("#events") and "69.3 ms" in text("#events")

        # A second copy: without a reload (the marker survives), the page shows it.
        browser.execute_script("window.stillTheSamePage = true;")
        refreshes = int(browser.execute_script("return document.body.dataset.refreshes;"))
        board.write([row("master", "source", pending_orders=2), row("alpha", "target", copies=2, pending_orders=2)])
        store.record_event("alpha", 6, "placed", "done", copy_ticket=9006, stages=STAGES.to_json())
        wait_for(lambda: cell("alpha", "copies") == "2", timeout=10, message="the page did not refresh by itself")
        assert browser.execute_script("return window.stillTheSamePage;") is True
        assert int(browser.execute_script("return document.body.dataset.refreshes;")) > refreshes
        wait_for(lambda: len(classes("#latency-chart rect.stage")) == 8, timeout=10, message="no second copy drawn")

        severe = [entry for entry in browser.get_log("browser") if entry["level"] == "SEVERE"]
        assert severe == []  # nothing blocked by the page's Content-Security-Policy, no script error
        browser.save_screenshot(str(tmp_path / "status-page.png"))
    finally:
        browser.quit()


def test_on_an_address_other_machines_reach_any_host_name_is_answered(tmp_path: Path, unused_tcp_port):
    # The page can then be opened by the machine's name or address: the warning in the log is the safeguard.
    config = parse_config(config_data(tmp_path, f"0.0.0.0:{unused_tcp_port}"), base_dir=tmp_path)
    server = WebServer(lambda: config, CopierMetrics().registry)  # not started: nothing is bound here
    assert server.answers_to("copier-vm:9464") and server.answers_to("198.18.0.1:9464")
