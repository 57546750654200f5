"""The alert sender (coordinator/runtime/alerts.py) against real webhook receivers on 127.0.0.1: alerts arrive
with their words, alerts about one thing are held back and summed up, failed deliveries are retried, a dead or
hanging receiver never slows the caller (nor the engine), and no URL is ever logged."""

from __future__ import annotations

import re
import statistics
import threading
import time
from pathlib import Path

import pytest
from loguru import logger

from config import AlertsConfig, ConfigError, parse_config
from config.alert_urls import AlertURL, alert_urls, apprise_problems
from coordinator.domain.alert_rules import Severity
from coordinator.runtime.alerts import Alerts, AlertTeller, alerts_from_config
from protocol import CommandStatus
from protocol.mt5 import Retcode
from tests.enginekit import EngineRig, order
from tests.webhook import hanging_url, receiver, refused_url

SECRET = "s3cr3t-token"


def sender(url: str, *, min_interval: float = 0.0, **options: object) -> Alerts:
    alerts = Alerts([AlertURL("alerts.urls[0]", url)], min_interval=min_interval, host="vps-1", **options)
    alerts.start()
    return alerts


@pytest.fixture
def log_lines():
    """Every log line written while the test runs (to prove no URL is in them)."""
    lines: list[str] = []
    sink = logger.add(lambda message: lines.append(str(message)), level="DEBUG", format="{message}")
    yield lines
    logger.remove(sink)


# ---- delivery -------------------------------------------------------------------------------------------------


def test_an_alert_arrives_with_its_title_body_and_type():
    with receiver() as taker:
        alerts = sender(taker.url)
        alerts.notify("worker:broker-a", "broker-a: worker down", "It is down.\n\nWhat to do: look.", Severity.FAILURE)
        got = taker.next()
        alerts.stop()

    assert got["title"] == "[mt5-copier] broker-a: worker down"
    assert got["message"].startswith("It is down.\n\nWhat to do: look.\n\nmt5-copier ")
    assert " on vps-1, " in got["message"] and got["message"].endswith(" UTC")
    assert got["type"] == "failure"


def test_alerts_about_one_thing_are_held_back_and_the_latest_is_sent_when_the_interval_ends_listing_the_others():
    with receiver() as taker:
        alerts = sender(taker.url, min_interval=0.4)
        alerts.notify("worker:broker-a", "broker-a: worker down", "down")
        alerts.notify("worker:broker-a", "broker-a: worker restarted", "restarted")
        alerts.notify("worker:broker-a", "broker-a: worker back", "back", Severity.SUCCESS)
        alerts.notify("worker:broker-b", "broker-b: worker down", "other thing: not held")
        first = [taker.next(), taker.next()]
        began = time.monotonic()
        latest = taker.next()
        waited = time.monotonic() - began
        time.sleep(0.5)
        nothing_more = taker.all_now()
        alerts.stop()

    assert sorted(post["title"] for post in first) == ["[mt5-copier] broker-a: worker down",
                                                       "[mt5-copier] broker-b: worker down"]
    assert latest["title"] == "[mt5-copier] broker-a: worker back" and latest["type"] == "success"
    assert 0.2 < waited < 1.5
    message = latest["message"]
    assert message.startswith("back\n\n(Held back by [alerts] min_interval = 0.4 s. Also since the last alert "
                              "about this (1):\n")
    assert " UTC broker-a: worker restarted)" in message
    assert nothing_more == []


def test_a_stop_sends_what_is_held_back_at_once():
    with receiver() as taker:
        alerts = sender(taker.url, min_interval=300)
        alerts.notify("coordinator", "coordinator started on vps-1", "started")
        taker.next()
        alerts.notify("coordinator", "coordinator stopped on vps-1", "stopped")
        began = time.monotonic()
        alerts.stop()
        stopping = time.monotonic() - began
        last = taker.next(timeout=1)

    assert last["title"] == "[mt5-copier] coordinator stopped on vps-1"
    assert "(Held back by [alerts] min_interval = 300 s.)" in last["message"]
    assert stopping < 2


def test_a_failed_delivery_is_tried_again_until_the_receiver_takes_it(log_lines):
    with receiver(fail_first=2) as taker:
        alerts = sender(taker.url, retry_delays=(0.05, 0.05, 0.05))
        alerts.notify("k", "t: something", "body")
        got = taker.next()
        alerts.stop()

    assert got["title"] == "[mt5-copier] t: something" and taker.refused == 2
    text = "\n".join(log_lines)
    assert 'alerts: alerts.urls[0] (json://) did not take "[mt5-copier] t: something"; trying again' in text
    assert 'alerts: alerts.urls[0] (json://) took "[mt5-copier] t: something" at try 3' in text
    assert SECRET not in text and "127.0.0.1" not in text


def test_a_delivery_that_keeps_failing_is_given_up_and_said_so_without_the_url(log_lines):
    alerts = Alerts([AlertURL("MT5_COPIER_ALERT_URLS[1]", refused_url().replace("json://", f"json://u:{SECRET}@"))],
                    min_interval=0, retry_delays=(0.01, 0.01))
    alerts.start()
    alerts.notify("k", "t: lost", "body")
    time.sleep(0.5)
    alerts.stop()

    text = "\n".join(log_lines)
    assert ('"[mt5-copier] t: lost" was not delivered to MT5_COPIER_ALERT_URLS[1] (json://) (given up after 3 tries)'
            in text)
    assert SECRET not in text


def test_each_url_has_its_own_sender_so_a_dead_one_delays_no_other():
    with hanging_url() as dead, receiver() as taker:
        alerts = Alerts([AlertURL("alerts.urls[0]", dead), AlertURL("alerts.urls[1]", taker.url)], min_interval=0)
        alerts.start()
        began = time.monotonic()
        alerts.notify("k1", "first", "body")
        alerts.notify("k2", "second", "body")
        titles = [taker.next()["title"], taker.next()["title"]]
        took = time.monotonic() - began
        alerts.stop(timeout=0.5)

    assert titles == ["[mt5-copier] first", "[mt5-copier] second"]
    assert took < 2  # the hanging URL's first try alone takes apprise's 4 s read timeout


# ---- never in the way -----------------------------------------------------------------------------------------


@pytest.mark.parametrize("dead", ["hanging", "refusing"])
def test_notify_returns_in_microseconds_whatever_the_receiver_does(dead):
    with hanging_url() as hanging:
        alerts = sender(hanging if dead == "hanging" else refused_url(), retry_delays=(0.05,) * 3)
        durations = []
        for index in range(2000):
            began = time.perf_counter()
            alerts.notify(f"key-{index % 50}", "title", "body")
            durations.append(time.perf_counter() - began)
        began = time.monotonic()
        alerts.stop(timeout=0.5)
        stopping = time.monotonic() - began

    # Microseconds each; the worst is the machine's scheduling (a busy CI box), never a wait on the notifier: one
    # delivery try alone takes apprise's 4 s timeout against a hanging receiver.
    assert statistics.median(durations) < 100e-6, statistics.median(durations)
    assert sum(durations) < 1.0 and max(durations) < 1.0
    assert stopping < 1.5  # a stop is bounded by its timeout, not by the notifier


def test_a_full_queue_drops_alerts_and_counts_them_instead_of_waiting():
    release = threading.Event()

    def stuck(url: AlertURL):
        return lambda title, body, severity: release.wait(10)

    alerts = Alerts([AlertURL("alerts.urls[0]", "json://x")], min_interval=0, queue_size=10, make_notifier=stuck)
    alerts.start()
    began = time.perf_counter()
    for index in range(1000):
        alerts.notify(f"k{index}", "t", "b")
    took = time.perf_counter() - began
    time.sleep(0.2)
    dropped = alerts.dropped
    release.set()
    alerts.stop(timeout=0.5)

    assert dropped > 700  # one being tried, 200 waiting for the URL, a few in the queue: the rest dropped
    assert took < 0.5


def test_the_engine_copies_at_full_speed_while_its_alerts_go_to_a_receiver_that_never_answers(tmp_path: Path):
    # Every cycle a copy is refused for good (an alert each time, about a new order): with a notifier that never
    # answers, each delivery try blocks its sender for apprise's 4 s timeout. The engine must not notice.
    def cycles(rig: EngineRig, count: int) -> float:
        rig.start()
        began = time.perf_counter()
        for ticket in range(1, count + 1):
            rig.snapshot("src", [order(ticket)])
            rig.reconcile()
            (command,) = rig.commands()
            rig.result(command, CommandStatus.REJECTED, retcode=Retcode.NO_MONEY, comment="no money")
        return time.perf_counter() - began

    quiet = EngineRig(tmp_path / "quiet")
    alerted = EngineRig(tmp_path / "alerted")
    with hanging_url() as dead:
        alerts = sender(dead, retry_delays=(0.05,))
        raised: list[float] = []
        teller = AlertTeller(alerts)

        def timed(event):
            began = time.perf_counter()
            teller(event)
            raised.append(time.perf_counter() - began)

        alerted.engine.events.subscribe(timed)
        try:
            baseline = cycles(quiet, 25)
            with_alerts = cycles(alerted, 25)
        finally:
            alerts.stop(timeout=0.5)
            quiet.close()
            alerted.close()

    assert len(raised) >= 25  # every refusal went through the alert rules to the sender
    # Handing an alert over is queueing it (well under a millisecond on a quiet machine); a delivery try blocks
    # for 4 s. The bounds tell the two apart with room for a loaded CI machine.
    assert statistics.median(raised) < 0.05 and max(raised) < 1.0
    assert with_alerts < baseline * 2 + 1.0, (baseline, with_alerts)  # waiting on the notifier: over 100 s


# ---- the configuration ------------------------------------------------------------------------------------------


def test_the_alerts_table_is_optional_and_off_by_default(tmp_path: Path):
    config = parse_config(_minimal(), base_dir=tmp_path)

    assert config.alerts == AlertsConfig(urls=(), urls_env=None, min_interval=300.0)
    assert alerts_from_config(config.alerts, "copier.toml").enabled is False


def test_a_url_that_cannot_be_one_is_refused_at_load_by_its_index_without_its_text(tmp_path: Path):
    with pytest.raises(ConfigError) as error:
        parse_config({**_minimal(), "alerts": {"urls": ["json://ok/hook", f"tgram {SECRET}", 3],
                                               "urls_env": f"X={SECRET}", "min_interval": -1}}, base_dir=tmp_path)

    text = str(error.value)
    assert "alerts.urls[1]: must be a notification URL as apprise writes them, SCHEME://..." in text
    assert "alerts.urls[2]: must be a string, got integer" in text
    assert "alerts.urls_env: must be the NAME of an environment variable holding more alert URLs" in text
    assert "alerts.min_interval: must be at least 0, got -1" in text
    assert SECRET not in text


def test_the_config_object_keeps_the_urls_out_of_its_repr(tmp_path: Path):
    config = parse_config({**_minimal(), "alerts": {"urls": [f"tgram://{SECRET}/1"]}}, base_dir=tmp_path)

    assert config.alerts.urls == (f"tgram://{SECRET}/1",)
    assert SECRET not in repr(config)


def test_urls_come_from_the_file_and_from_the_variable_urls_env_names():
    urls, problems = alert_urls(("json://a/hook",), "MT5_COPIER_ALERT_URLS", {
        "MT5_COPIER_ALERT_URLS": "tgram://123:abc/456, mailtos://u:p@example.com?to=a@x.com,b@y.com  json://h/x"})

    assert problems == []
    assert [(url.where, url.url) for url in urls] == [
        ("alerts.urls[0]", "json://a/hook"),
        ("MT5_COPIER_ALERT_URLS[0]", "tgram://123:abc/456"),
        ("MT5_COPIER_ALERT_URLS[1]", "mailtos://u:p@example.com?to=a@x.com,b@y.com"),
        ("MT5_COPIER_ALERT_URLS[2]", "json://h/x"),
    ]
    assert [url.name for url in urls][1] == "MT5_COPIER_ALERT_URLS[0] (tgram://)"
    assert "abc" not in repr(urls)


def test_a_variable_named_but_not_set_is_a_configuration_error_at_start_up():
    config = AlertsConfig(urls=(), urls_env="MT5_COPIER_ALERT_URLS", min_interval=300.0)
    with pytest.raises(ConfigError) as error:
        alerts_from_config(config, "copier.toml", environ={})

    assert "alerts.urls_env: names the environment variable MT5_COPIER_ALERT_URLS, which is not set" in str(error.value)


def test_apprise_checks_each_url_at_start_up_naming_it_by_where_it_is_never_by_its_text():
    config = AlertsConfig(urls=("json://127.0.0.1:9/hook", f"tgram://{SECRET}"), urls_env="MORE", min_interval=1.0)
    with pytest.raises(ConfigError) as error:
        alerts_from_config(config, "copier.toml", environ={"MORE": f"nosuchservice://{SECRET}@host"})

    assert [problem.path for problem in error.value.problems] == ["alerts.urls[1]", "MORE[0]"]
    assert "apprise does not accept this tgram:// URL" in str(error.value)
    assert SECRET not in str(error.value)
    assert apprise_problems([AlertURL("alerts.urls[0]", "json://127.0.0.1:9/hook")]) == []


def _minimal() -> dict:
    return {"source": {"name": "s", "backend": "sim", "path": "s", "login": 1, "server": "S"},
            "targets": [{"name": "t", "backend": "sim", "path": "t", "login": 2, "server": "S"}]}


def test_check_config_says_where_alerts_go_and_names_a_refused_url_by_its_index(capsys, tmp_path: Path):
    from tests.test_cli_commands import CONFIG, cli, create_terminals, write_config

    create_terminals(tmp_path)
    good = f'json://user:{SECRET}@127.0.0.1:9/hook'
    path = write_config(tmp_path, f'[alerts]\nurls = ["{good}"]\nmin_interval = 60\n' + CONFIG)
    code, out, _ = cli(capsys, "check-config", "--config", str(path))
    assert code == 0
    assert "  alerts: alerts.urls[0] (json://); at most one per 60 s about the same thing" in out.splitlines()

    path = write_config(tmp_path, f'[alerts]\nurls = ["{good}", "tgram://{SECRET}"]\n' + CONFIG)
    code, out, err = cli(capsys, "check-config", "--config", str(path))
    assert (code, out) == (2, "")
    assert err.splitlines()[1:] == ["alerts.urls[1]: apprise does not accept this tgram:// URL: check it against "
                                    "apprise's page for that service (the value is not shown: it may hold a secret)"]
    assert SECRET not in err


def test_a_flood_about_one_thing_becomes_one_alert_listing_the_last_ten():
    with receiver() as taker:
        alerts = sender(taker.url, min_interval=0.3)
        for index in range(500):
            alerts.notify("failed:t1:10019", f"t1: copy of #{index} failed", "no money")
        first, latest = taker.next(), taker.next()
        alerts.stop()

    assert first["title"] == "[mt5-copier] t1: copy of #0 failed"
    assert latest["title"] == "[mt5-copier] t1: copy of #499 failed"
    assert "Also since the last alert about this (498, the last 10 listed):\n" in latest["message"]
    assert latest["message"].count(" UTC [mt5-copier] t1: copy of #") == 0
    assert [int(n) for n in re.findall(r" UTC t1: copy of #(\d+) failed", latest["message"])] == list(range(489, 499))
