"""The copier's Prometheus metrics: every name prefixed ``mt5_copier_``, on a registry of the copier's own (nothing
else a library registers globally leaks into the page).

Two kinds, fed two ways:

- What happens, counted as it happens on the engine's thread: commands sent and answered (by kind and result,
  told by coordinator/runtime/latency.py at the two points a command passes), the copies' events, and each
  copy's latency by stage as histograms (from the ``stages`` of its events). prometheus_client's counters and
  histograms are thread-safe, so the web server's thread reads them while the engine writes.
- What is, read at scrape time from the status board (``StatusCollector``): workers up, terminals connected,
  copies, orphans, restarts, each target's control mode. The board is what ``status`` shows, written every
  second; reading it on the web server's thread costs the engine nothing.

Labels: ``target`` for what concerns a target's copies; ``terminal`` and ``role`` for facts of a terminal, the
source's included. A value nobody knows (a worker offline: its terminal's broker link) has no sample, never 0.
"""

from __future__ import annotations

import re
import time
from collections.abc import Callable, Iterable, Sequence
from typing import Any

from prometheus_client import CollectorRegistry, Counter, Histogram
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from coordinator.domain.events import CopyConfirmed, CopyPlaced, CopyReplaced, Event
from coordinator.domain.latency import CopyStages
from coordinator.persistence.status import TerminalStatus

PREFIX = "mt5_copier_"
# From half a millisecond (the coordinator's own stages) to a minute (a copy that waited for a market to open).
STAGE_BUCKETS = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0)
CONTROL_MODES = ("active", "paused", "close_only")


class CopierMetrics:
    """The counters and histograms the engine feeds, and the registry ``/metrics`` exposes."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        self._commands_sent = Counter(
            f"{PREFIX}commands_sent", "Commands sent to a target's worker, by kind (place, modify, replace, remove, "
            "sltp, close, market)", ["target", "kind"], registry=self.registry)
        # (metric, labels) -> its labelled child: looked up once, on the path of every command and copy
        # (``labels`` validates and locks on each call: 5-10 us); labels are never removed.
        self._children: dict[tuple[object, tuple[str, ...]], Any] = {}
        self._commands = Counter(
            f"{PREFIX}commands", "Commands a target's worker answered, by kind and result (done, rejected, refused, "
            "expired, stale, unknown); sent minus answered were never answered", ["target", "kind", "result"],
            registry=self.registry)
        self._events = Counter(
            f"{PREFIX}copy_events", "What happened to copies, by event (copy_placed, copy_replaced, copy_removed, "
            "command_failed, orphan_decided, position_closed, ...), as the history records them", ["target", "event"],
            registry=self.registry)
        self._stage = Histogram(
            f"{PREFIX}copy_stage_seconds", "Each stage of a copy (placed or replaced), from the stage before: planned "
            "(from detected on the source), sent, answered, confirmed", ["target", "stage"], buckets=STAGE_BUCKETS,
            registry=self.registry)
        self._latency = Histogram(
            f"{PREFIX}copy_latency_seconds", "A copy from its source order's detection to its confirmation in the "
            "target's snapshot", ["target"], buckets=STAGE_BUCKETS, registry=self.registry)
        self._broker = Histogram(
            f"{PREFIX}broker_request_seconds", "The target worker's trade request for a copy (its checks and "
            "order_send), part of the answered stage", ["target"], buckets=STAGE_BUCKETS, registry=self.registry)

    # ---- told by the latency tracker (coordinator/runtime/latency.py) ---------------------------

    def command_sent(self, target: str, kind: str) -> None:
        self._child(self._commands_sent, target, kind).inc()

    def command_answered(self, target: str, kind: str, result: str) -> None:
        self._child(self._commands, target, kind, result).inc()

    def _child(self, metric: Counter | Histogram, *labels: str) -> Any:
        key = (metric, labels)
        child = self._children.get(key)
        if child is None:
            child = self._children[key] = metric.labels(*labels)
        return child

    # ---- an event subscriber ---------------------------------------------------------------------

    def __call__(self, event: Event) -> None:
        target = getattr(event, "target", None)
        if target is None:
            return  # the copier's own events (a worker down, a start): the status gauges tell of those
        if not isinstance(event, CopyConfirmed):
            self._child(self._events, target, _event_name(type(event))).inc()
        if isinstance(event, CopyPlaced | CopyReplaced) and event.stages is not None:
            self._observe_way(target, event.stages)
            if event.stages.complete:
                self._observe_confirmation(target, event.stages)
        elif isinstance(event, CopyConfirmed):
            self._observe_confirmation(target, event.stages)

    # Each stage is observed once, when it is known: the way to the answer with the copy's event, the confirmation
    # with it too or later with ``CopyConfirmed``.

    def _observe_way(self, target: str, stages: CopyStages) -> None:
        for stage, took_ms in stages.steps():
            if stage != "confirmed":
                self._child(self._stage, target, stage).observe(max(0.0, took_ms) / 1000)
        if stages.broker_ms is not None:
            self._child(self._broker, target).observe(stages.broker_ms / 1000)

    def _observe_confirmation(self, target: str, stages: CopyStages) -> None:
        for stage, took_ms in stages.steps():
            if stage == "confirmed":
                self._child(self._stage, target, stage).observe(max(0.0, took_ms) / 1000)
        self._child(self._latency, target).observe(max(0.0, stages.total_ms) / 1000)


_NAME_BREAK = re.compile(r"(?<!^)(?=[A-Z])")


_EVENT_NAMES: dict[type, str] = {}  # made once per event type: asked for every event


def _event_name(kind: type) -> str:
    """CopyPlaced -> copy_placed."""
    name = _EVENT_NAMES.get(kind)
    if name is None:
        name = _EVENT_NAMES[kind] = _NAME_BREAK.sub("_", kind.__name__).lower()
    return name


class StatusCollector(Collector):
    """The status board's rows as gauges, read when ``/metrics`` is scraped (``rows``: on the scraping thread)."""

    def __init__(self, rows: Callable[[], Sequence[TerminalStatus]], now: Callable[[], float] = time.time) -> None:
        self._rows = rows
        self._now = now

    def collect(self) -> Iterable[Metric]:
        rows = [row for row in self._rows() if row.enabled and not row.removed]
        terminal = ["terminal", "role"]
        up = GaugeMetricFamily(f"{PREFIX}worker_up", "1 while the terminal's worker is connected and talking",
                               labels=terminal)
        reachable = GaugeMetricFamily(f"{PREFIX}terminal_reachable", "1 while the worker can use its terminal",
                                      labels=terminal)
        connected = GaugeMetricFamily(f"{PREFIX}terminal_connected", "1 while the terminal is connected to its "
                                      "broker", labels=terminal)
        account = GaugeMetricFamily(f"{PREFIX}account_ok", "1 while the terminal is on its configured account",
                                    labels=terminal)
        restarts = CounterMetricFamily(f"{PREFIX}worker_restarts", "Worker restarts since the coordinator started",
                                       labels=terminal)
        reconnects = CounterMetricFamily(f"{PREFIX}worker_reconnects", "Worker reconnects since the coordinator "
                                         "started", labels=terminal)
        pending = GaugeMetricFamily(f"{PREFIX}pending_orders", "Pending orders on the terminal", labels=terminal)
        positions = GaugeMetricFamily(f"{PREFIX}positions", "Open positions: all of the source's, a target's copies'",
                                      labels=terminal)
        copies = GaugeMetricFamily(f"{PREFIX}copies", "The copier's pending copies on the target", labels=["target"])
        orphans = GaugeMetricFamily(f"{PREFIX}orphans", "Copies whose source order is gone", labels=["target"])
        failed = GaugeMetricFamily(f"{PREFIX}failed_copies", "Copies whose last attempt failed", labels=["target"])
        waiting = GaugeMetricFamily(f"{PREFIX}waiting_orders", "Source orders not copied to the target (waiting or "
                                    "skipped, each with its reason in status)", labels=["target"])
        mode = GaugeMetricFamily(f"{PREFIX}control_mode", "1 for the target's current mode (active, paused, "
                                 "close_only)", labels=["target", "mode"])
        for row in rows:
            names = [row.name, row.role]
            up.add_metric(names, float(row.online))
            _maybe(reachable, names, row.terminal_reachable)
            _maybe(connected, names, row.connected)
            _maybe(account, names, row.account_ok)
            restarts.add_metric(names, float(row.restarts))
            reconnects.add_metric(names, float(row.reconnects))
            _maybe(pending, names, row.pending_orders)
            _maybe(positions, names, row.positions)
            if row.role != "target":
                continue
            _maybe(copies, [row.name], row.copies)
            _maybe(orphans, [row.name], row.orphans)
            failed.add_metric([row.name], float(row.failed))
            waiting.add_metric([row.name], float(len(row.skipped)))
            for name in CONTROL_MODES:
                mode.add_metric([row.name, name], float(row.control_mode == name))
        age = GaugeMetricFamily(f"{PREFIX}status_age_seconds", "Seconds since the coordinator last wrote its status "
                                "board (every second while its loop runs)")
        if rows:
            age.add_metric([], max(0.0, self._now() - max(row.updated_at for row in rows)))
        return [up, reachable, connected, account, restarts, reconnects, pending, positions, copies, orphans, failed,
                waiting, mode, age]


def _maybe(family: GaugeMetricFamily, labels: list[str], value: bool | int | None) -> None:
    """A sample only for a known value: unknown is no sample, never 0."""
    if value is not None:
        family.add_metric(labels, float(value))
