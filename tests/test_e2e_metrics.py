"""End to end: a real coordinator with ``[metrics] listen`` serves /metrics after a real copy (scraped and parsed as
Prometheus does), /api/status (the JSON of ``status --json``) and the status page. The page in a real headless
browser: tests/test_web.py."""

from __future__ import annotations

import json
import signal
import time
import urllib.error
import urllib.request

import pytest
from prometheus_client.parser import text_string_to_metric_families

from config import load_config
from coordinator.runtime.status_report import gather_status, status_json
from tests.conftest import wait_for
from tests.simhelpers import BUY_LIMIT, copier_config, copies, place_pending, sim_terminals, target_section

pytestmark = pytest.mark.e2e


def start(copier, port: int):
    """master -> alpha, /metrics and the page on 127.0.0.1:``port``; one copy made and confirmed."""
    master, alpha = sim_terminals(copier.directory, "alpha")
    copier.write_config(copier_config(target_section("alpha", 2001)) + f'\n[metrics]\nlisten = "127.0.0.1:{port}"\n')
    first = place_pending(master, BUY_LIMIT)
    process = copier.start_scheduler()
    wait_for(lambda: first in copies(alpha), message="the first order was not copied")
    base = f"http://127.0.0.1:{port}"
    # The copy's row (its stages complete) and the status board are written within a second.
    wait_for(lambda: get(base + "/api/latency")[1] != "[]", message="no timed copy in the history")
    wait_for(lambda: [t["copies"] for t in json.loads(get(base + "/api/status")[1])["terminals"]] == [None, 1],
             message="the status board does not show the copy")
    return master, alpha, process, base


def get(url: str, *, method: str = "GET", headers: dict[str, str] | None = None) -> tuple[int, str, dict[str, str]]:
    request = urllib.request.Request(url, method=method, headers=headers or {})
    try:
        with urllib.request.urlopen(request, timeout=5) as response:
            return response.status, response.read().decode(), dict(response.headers)
    except urllib.error.HTTPError as e:
        return e.code, e.read().decode(), dict(e.headers)


def samples(text: str) -> dict[tuple[str, frozenset], float]:
    return {(sample.name, frozenset(sample.labels.items())): sample.value
            for family in text_string_to_metric_families(text) for sample in family.samples}


def test_metrics_after_a_real_copy_and_the_status_json(copier, unused_tcp_port):
    _, _, process, base = start(copier, unused_tcp_port)
    code, text, headers = get(base + "/metrics")
    assert code == 200 and headers["Content-Type"].startswith("text/plain")
    scraped = samples(text)
    assert all(name.startswith("mt5_copier_") for name, _ in scraped)

    def value(name: str, **labels: str) -> float | None:
        return scraped.get((name, frozenset(labels.items())))

    assert value("mt5_copier_commands_sent_total", target="alpha", kind="place") == 1
    assert value("mt5_copier_commands_total", target="alpha", kind="place", result="done") == 1
    assert value("mt5_copier_copy_events_total", target="alpha", event="copy_placed") == 1
    assert value("mt5_copier_copies", target="alpha") == 1
    assert value("mt5_copier_orphans", target="alpha") == 0
    for terminal, role in (("master", "source"), ("alpha", "target")):
        assert value("mt5_copier_worker_up", terminal=terminal, role=role) == 1
        assert value("mt5_copier_terminal_connected", terminal=terminal, role=role) == 1
        assert value("mt5_copier_worker_restarts_total", terminal=terminal, role=role) == 0
    for stage in ("planned", "sent", "answered", "confirmed"):
        assert value("mt5_copier_copy_stage_seconds_count", target="alpha", stage=stage) == 1, stage
    assert value("mt5_copier_copy_latency_seconds_count", target="alpha") == 1
    assert 0 < value("mt5_copier_copy_latency_seconds_sum", target="alpha") < 5  # type: ignore[operator]

    # /api/status is what status --json prints (the same report, read in this process a moment later: the times
    # aside; tests/test_web.py compares the two exactly).
    code, served, _ = get(base + "/api/status")
    assert code == 200

    def timeless(report: dict) -> dict:
        for terminal in report["terminals"]:
            for key in ("last_seen", "last_sync_at", "updated_at"):
                terminal.pop(key)
        report["coordinator"].pop("status_updated_at")
        return report

    assert timeless(json.loads(served)) == timeless(status_json(gather_status(load_config(copier.config_path),
                                                                               time.time())))

    [copy] = json.loads(get(base + "/api/latency")[1])
    assert [step["stage"] for step in copy["stages"]["steps"]] == ["planned", "sent", "answered", "confirmed"]

    # Read-only, and (bound to loopback) only for this machine's names.
    assert get(base + "/api/status", method="POST")[0] == 405
    assert get(base + "/", headers={"Host": "evil.example:80"})[0] == 403
    code, page, headers = get(base + "/")
    assert code == 200 and "Content-Security-Policy" in headers and "<script>" in page
    copier.stop(process, signal.SIGINT)
