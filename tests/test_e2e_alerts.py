"""End to end: a real coordinator with ``[alerts]`` pointing at a webhook receiver on 127.0.0.1 tells it that it
started, that a worker killed with kill -9 was restarted and came back, and that it stopped; the URL's secret
is in none of its output."""

from __future__ import annotations

import os
import signal

import pytest

from tests.conftest import wait_for
from tests.simhelpers import copier_config, log_text, sim_terminals, target_section
from tests.test_e2e_restart import needs_proc, workers
from tests.webhook import receiver

pytestmark = pytest.mark.e2e


@needs_proc
def test_a_coordinator_tells_its_start_a_killed_worker_and_its_stop(copier):
    sim_terminals(copier.directory, "alpha")
    with receiver() as taker:
        # One minute between alerts about one thing: the worker's return, a second after its restart, is held back
        # until the stop sends it.
        copier.write_config(copier_config(target_section("alpha", 2001)) + "\n[alerts]\n"
                            f'urls = ["{taker.url}"]\nmin_interval = 60\n')
        scheduler = copier.start_scheduler()
        try:
            started = taker.next(timeout=15)
            alpha = wait_for(lambda: workers(scheduler.pid).get("alpha"), timeout=15, message="no alpha worker")
            os.kill(alpha, signal.SIGKILL)
            restarted = taker.next(timeout=10)
            wait_for(lambda: workers(scheduler.pid).get("alpha") not in (None, alpha), timeout=10,
                     message="alpha was not restarted")
            wait_for(lambda: "alpha (target) connected" in log_text(copier.directory).split("exited with code -9")[-1],
                     timeout=10, message="the restarted alpha did not connect")
        finally:
            code, output = copier.stop(scheduler, signal.SIGTERM)
        at_stop = sorted((taker.next(timeout=5), taker.next(timeout=5)), key=lambda post: post["title"])

    assert code == 0, output
    assert started["title"].startswith("[mt5-copier] coordinator started on ")
    assert "copying from master to alpha." in started["message"]
    assert restarted["title"] == "[mt5-copier] alpha: worker restarted"
    assert restarted["message"].startswith("The local worker of target alpha exited with code -9 (killed by SIGKILL); "
                                           "the coordinator starts it again in 1 s (restart 1 since the coordinator "
                                           "started).")
    back, stopped = at_stop
    assert back["title"] == "[mt5-copier] alpha: worker back"
    assert "(Held back by [alerts] min_interval = 60 s.)" in back["message"]
    assert stopped["title"].startswith("[mt5-copier] coordinator stopped on ")
    assert "(signal SIGTERM)" in stopped["message"]
    assert "alerts go to alerts.urls[0] (json://)" in output
    assert "s3cr3t" not in output and "s3cr3t" not in log_text(copier.directory)
