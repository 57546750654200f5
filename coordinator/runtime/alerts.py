"""Sends alerts to a person (apprise: Telegram, e-mail, Discord, Slack, webhooks, ...) without ever slowing copying.

``Alerts.notify`` is called on the coordinator's one thread: it puts the alert in a bounded queue and returns (a
few microseconds; a full queue drops the alert and counts it, it never waits). Everything else happens on threads
of its own: one applies the rate limit, and each URL has a sender that delivers in order and retries a failed
delivery with growing pauses, so a notifier that is slow, refuses, or accepts and never answers holds up only its
own later alerts, never copying and never the other URLs.

The rate limit is per key (the thing an alert is about, ``coordinator/domain/alert_rules.py``): after an alert is
sent, the next ones of its key within ``min_interval`` are held back, and when the interval ends the latest of
them is sent, listing the others. So a flapping worker sends one alert per interval and its last word (back, or
down again) always arrives. At shutdown what is held back is sent at once, and the senders get a few seconds to
deliver what they have.

URLs are never logged: each is named by where it was configured and its scheme (``AlertURL.name``).
"""

from __future__ import annotations

import contextlib
import os
import queue
import socket
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timezone

from loguru import logger

from config import AlertsConfig, ConfigError
from config.alert_urls import AlertURL, alert_urls, apprise_problems, quiet_apprise
from coordinator import __version__
from coordinator.domain.alert_rules import AlertContext, Severity, alert_for
from coordinator.domain.events import Event

QUEUE_SIZE = 1000  # alerts waiting for the rate limiter; more are dropped (and counted)
URL_QUEUE_SIZE = 200  # alerts waiting for one URL (behind a notifier that is down); more are dropped
RETRY_DELAYS = (2.0, 10.0, 30.0, 120.0)  # pauses between the tries of one delivery; then it is given up
STOP_SECONDS = 5.0  # at shutdown: how long the senders may take to deliver what is left
HELD_LISTED = 10  # held-back alerts listed by title in the one sent when the interval ends

Notifier = Callable[[str, str, Severity], bool]  # (title, body, severity) -> delivered


@dataclass(frozen=True, slots=True)
class _Queued:
    key: str
    title: str
    body: str
    severity: Severity
    at: float  # unix time it was raised


@dataclass(slots=True)
class _KeyState:
    """The rate limit of one key: when it was last sent, and what was held back since."""

    last_sent: float  # the limiter's clock
    held: list[_Queued] = field(default_factory=list)  # the latest ones (a flood keeps only what is listed)
    held_count: int = 0

    def hold(self, alert: _Queued) -> None:
        self.held.append(alert)
        self.held_count += 1
        del self.held[:-(HELD_LISTED + 1)]


_WAKE = object()  # put in the queue by ``stop``: the limiter looks at its stop flag at once


@dataclass
class _Stop:
    """Shared by the threads: whether the sender is stopping, and until when deliveries may still be tried."""

    clock: Callable[[], float]
    requested: threading.Event = field(default_factory=threading.Event)
    deadline: float = float("inf")  # on ``clock``

    def expired(self) -> bool:
        return self.requested.is_set() and self.clock() >= self.deadline


class Alerts:
    """The alert sender. ``start`` it, ``notify`` from anywhere (it never blocks), ``stop`` it at shutdown."""

    def __init__(self, urls: Sequence[AlertURL], *, min_interval: float, host: str | None = None,
                 clock: Callable[[], float] = time.monotonic, queue_size: int = QUEUE_SIZE,
                 retry_delays: Sequence[float] = RETRY_DELAYS,
                 make_notifier: Callable[[AlertURL], Notifier] | None = None) -> None:
        """``make_notifier``: the function that delivers to one URL (apprise's, unless a test gives another).
        ValueError, naming the URL by where it is, for one apprise does not accept (checked at start-up before)."""
        self.host = host or socket.gethostname()
        self._min_interval = min_interval
        self._clock = clock
        self._inbox: queue.Queue[_Queued | object] = queue.Queue(maxsize=queue_size)
        self._stop = _Stop(clock)
        self._dropped = 0
        self._dropped_lock = threading.Lock()  # notify may be called from more than one thread
        make = make_notifier or _apprise_notifier
        self._senders = [_Sender(url, make(url), self._stop, tuple(retry_delays)) for url in urls]
        self._limiter = threading.Thread(target=self._limit, name="alerts", daemon=True)
        self._started = False

    @property
    def enabled(self) -> bool:
        return bool(self._senders)

    @property
    def names(self) -> list[str]:
        """Each URL as the log names it: where it is configured and its scheme."""
        return [sender.url.name for sender in self._senders]

    @property
    def dropped(self) -> int:
        """Alerts dropped so far: a queue was full (a notifier down for long), or they came after ``stop``."""
        return self._dropped

    def start(self) -> None:
        if self._started or not self._senders:
            return
        self._started = True
        self._limiter.start()
        for sender in self._senders:
            sender.thread.start()
        logger.info("alerts go to {} (at most one per {:g} s about the same thing)", ", ".join(self.names),
                    self._min_interval)

    def notify(self, key: str, title: str, body: str, severity: Severity = Severity.WARNING) -> None:
        """Queue an alert about ``key`` (the thing it is about: "worker:broker-a"). Never blocks, never raises."""
        if not self._senders:
            return
        if self._stop.requested.is_set():
            self._drop()
            return
        try:
            self._inbox.put_nowait(_Queued(key, title, body, severity, time.time()))
        except queue.Full:
            self._drop()

    def stop(self, timeout: float = STOP_SECONDS) -> None:
        """Send what is held back at once, give the senders ``timeout`` seconds to deliver what they have, then
        leave (their threads end by themselves: a notifier that never answers does not hold the process)."""
        if not self._started or self._stop.requested.is_set():
            return
        began = time.monotonic()
        self._stop.deadline = self._clock() + timeout
        self._stop.requested.set()
        with contextlib.suppress(queue.Full):  # full: the limiter is busy with it, and sees the flag between two
            self._inbox.put_nowait(_WAKE)
        for thread in (self._limiter, *(sender.thread for sender in self._senders)):
            thread.join(max(0.0, timeout - (time.monotonic() - began)))
        left = sum(sender.pending for sender in self._senders)
        if left or self._dropped:
            logger.warning("alerts: {} not delivered before the coordinator stopped, {} dropped during its run (a "
                           "notifier down or slow: see the warnings above)", left, self._dropped)

    def _drop(self) -> None:
        with self._dropped_lock:
            self._dropped += 1
            first = self._dropped == 1
        if first:
            logger.warning("alerts: a queue is full (a notifier is down or slow); alerts are dropped until it drains "
                           "(the count is given at shutdown)")

    # ---- the rate limiter's thread -----------------------------------------------------------------------------

    def _limit(self) -> None:
        states: dict[str, _KeyState] = {}
        while True:
            due = [state.last_sent + self._min_interval for state in states.values() if state.held]
            wait = max(0.0, min(due) - self._clock()) if due else None
            try:
                item = self._inbox.get(timeout=wait)
            except queue.Empty:
                item = None
            if isinstance(item, _Queued):
                self._admit(item, states)
            if self._stop.requested.is_set():
                self._drain(states)
                return
            self._send_held(states, force=False)

    def _admit(self, alert: _Queued, states: dict[str, _KeyState]) -> None:
        now = self._clock()
        state = states.get(alert.key)
        if state is None or (not state.held and now - state.last_sent >= self._min_interval):
            states[alert.key] = _KeyState(last_sent=now)
            self._hand_out(alert, "")
        else:
            state.hold(alert)

    def _send_held(self, states: dict[str, _KeyState], *, force: bool) -> None:
        """Send the latest held-back alert of every key whose interval ended (every key, with ``force``), listing
        the ones it stands for; forget keys quiet for a whole interval."""
        now = self._clock()
        for key, state in list(states.items()):
            if not state.held:
                if now - state.last_sent >= self._min_interval:
                    del states[key]
                continue
            if not force and now - state.last_sent < self._min_interval:
                continue
            self._hand_out(state.held[-1], _held_note(state.held[:-1], state.held_count - 1, self._min_interval))
            states[key] = _KeyState(last_sent=now)

    def _drain(self, states: dict[str, _KeyState]) -> None:
        """Stopping: what is still queued goes through the limiter, then everything held back is sent at once."""
        while True:
            try:
                item = self._inbox.get_nowait()
            except queue.Empty:
                break
            if isinstance(item, _Queued):
                self._admit(item, states)
        self._send_held(states, force=True)
        for sender in self._senders:
            sender.finish()

    def _hand_out(self, alert: _Queued, note: str) -> None:
        raised = datetime.fromtimestamp(alert.at, timezone.utc)
        footer = f"mt5-copier {__version__} on {self.host}, {raised:%Y-%m-%d %H:%M:%S} UTC"
        for sender in self._senders:
            if not sender.offer(f"[mt5-copier] {alert.title}", f"{alert.body}{note}\n\n{footer}", alert.severity):
                self._drop()


class _Sender:
    """Delivers to one URL, in order, on its own thread: a failed delivery is tried again after each pause of
    ``retry_delays``, then given up (logged, naming the URL by where it is configured)."""

    def __init__(self, url: AlertURL, notifier: Notifier, stop: _Stop, retry_delays: tuple[float, ...]) -> None:
        self.url = url
        self._notifier = notifier
        self._stop = stop
        self._delays = retry_delays
        self._queue: queue.Queue[tuple[str, str, Severity] | None] = queue.Queue(maxsize=URL_QUEUE_SIZE)
        self._offered = 0  # counted by the limiter's thread
        self._done = 0  # delivered or given up, counted by this sender's thread
        self.thread = threading.Thread(target=self._run, name=f"alerts {url.where}", daemon=True)

    @property
    def pending(self) -> int:
        """Alerts handed to this sender and neither delivered nor given up yet."""
        return self._offered - self._done

    def offer(self, title: str, body: str, severity: Severity) -> bool:
        try:
            self._queue.put_nowait((title, body, severity))
        except queue.Full:
            return False
        self._offered += 1
        return True

    def finish(self) -> None:
        with contextlib.suppress(queue.Full):  # full: it stops at the deadline all the same
            self._queue.put_nowait(None)

    def _run(self) -> None:
        while not self._stop.expired():
            try:
                # Once stopping, it wakes now and then to see the deadline pass.
                item = self._queue.get(timeout=0.2 if self._stop.requested.is_set() else None)
            except queue.Empty:
                continue
            if item is None:
                return
            self._deliver(*item)
            self._done += 1

    def _deliver(self, title: str, body: str, severity: Severity) -> None:
        tries = len(self._delays) + 1
        for attempt in range(tries):
            if self._send(title, body, severity):
                if attempt:
                    logger.info("alerts: {} took \"{}\" at try {}", self.url.name, title, attempt + 1)
                return
            if attempt + 1 == tries or self._stop.expired():
                break
            delay = self._delays[attempt]
            if attempt == 0:
                logger.warning("alerts: {} did not take \"{}\"; trying again in {:.0f}s (up to {} more tries)",
                               self.url.name, title, delay, tries - 1)
            self._stop.requested.wait(delay)  # a stop cuts the pause short: one more try before the deadline
        logger.error("alerts: \"{}\" was not delivered to {} (given up after {} tries). Try the URL with apprise's "
                     "own command: apprise -vv -t test -b test 'URL'", title, self.url.name, attempt + 1)

    def _send(self, title: str, body: str, severity: Severity) -> bool:
        try:
            return self._notifier(title, body, severity)
        except Exception:  # a notifier's bug must not end the sender; its text may quote the URL: not logged
            return False


def _apprise_notifier(url: AlertURL) -> Notifier:
    """Delivery through apprise's service for ``url`` (its own timeouts bound each try: 4 s to connect, 4 s to
    read, by default)."""
    from apprise import Apprise, NotifyFormat, NotifyType

    quiet_apprise()
    service = Apprise.instantiate(url.url)
    if service is None:
        raise ValueError(f"{url.name}: apprise does not accept this URL")

    def send(title: str, body: str, severity: Severity) -> bool:
        # Plain text in, so a service that shows Markdown or HTML escapes it rather than reading our brackets.
        return bool(service.notify(body=body, title=title, notify_type=NotifyType(severity.value),
                                   body_format=NotifyFormat.TEXT))

    return send


def _held_note(listed: list[_Queued], earlier: int, min_interval: float) -> str:
    """Said in a held-back alert when it is sent: why it is late, and the ``earlier`` alerts about the same thing it
    stands for (the last of them ``listed``)."""
    note = f"\n\n(Held back by [alerts] min_interval = {min_interval:g} s."
    if not earlier:
        return note + ")"
    lines = [f"{datetime.fromtimestamp(alert.at, timezone.utc):%H:%M:%S} UTC {alert.title}" for alert in listed]
    also = f" Also since the last alert about this ({earlier}"
    also += f", the last {len(listed)} listed):" if len(listed) < earlier else "):"
    return note + also + "\n" + "\n".join(lines) + ")"


class AlertTeller:
    """The events' subscriber that raises alerts (``EventStream.subscribe``): each event the rules alert on is
    handed to the sender, which returns at once."""

    def __init__(self, alerts: Alerts, context: AlertContext | None = None) -> None:
        self._alerts = alerts
        self._context = context or AlertContext()

    def __call__(self, event: Event) -> None:
        alert = alert_for(event, self._context)
        if alert is not None:
            self._alerts.notify(alert.key, alert.title, alert.body, alert.severity)


def alerts_from_config(config: AlertsConfig, source: str, environ: Mapping[str, str] = os.environ) -> Alerts:
    """The sender for ``[alerts]`` of the config file ``source``: the file's URLs and those of ``urls_env``, each
    checked by apprise. ConfigError naming each URL that is not usable by where it is (never by its text), or an
    unset ``urls_env``."""
    urls, problems = alert_urls(config.urls, config.urls_env, environ)
    if urls:
        problems = apprise_problems(urls) + problems
    if problems:
        raise ConfigError(problems, source)
    return Alerts(urls, min_interval=config.min_interval)
