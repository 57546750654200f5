"""Hub.wake_on_signals: a signal ends the coordinator's wait for messages at once (a stop is not held up by the
loop's tick), and closing the hub gives the process's wake-up fd back."""

from __future__ import annotations

import os
import signal
import sys
import threading
import time

import pytest

from coordinator.runtime.hub import Hub

pytestmark = pytest.mark.skipif(sys.platform == "win32", reason="SIGUSR1 is POSIX (the hub's wake-up is not)")


def _signal_soon(seconds: float) -> threading.Timer:
    timer = threading.Timer(seconds, os.kill, (os.getpid(), signal.SIGUSR1))
    timer.start()
    return timer


def test_a_signal_ends_the_hubs_wait_at_once():
    received: list[int] = []
    previous = signal.signal(signal.SIGUSR1, lambda signum, _frame: received.append(signum))
    hub = Hub("tcp://127.0.0.1:*")
    try:
        hub.wake_on_signals()
        _signal_soon(0.2)
        started = time.monotonic()
        assert hub.poll(10_000) == []
        waited = time.monotonic() - started
        assert received == [signal.SIGUSR1]
        assert waited < 5.0, f"the wait ran {waited:.1f} s: the signal did not end it"
        # The byte the signal wrote is drained: the next wait runs its time.
        started = time.monotonic()
        assert hub.poll(300) == []
        assert time.monotonic() - started >= 0.25
    finally:
        hub.close()
        signal.signal(signal.SIGUSR1, previous)
    assert signal.set_wakeup_fd(-1) == -1  # closing the hub gave the wake-up fd back

