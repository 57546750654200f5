"""Logging of dropped malformed messages, bounded: one line per peer and reason per interval, with a count.

A broken or hostile peer can send tens of thousands of bad frames a second; one ERROR line each wrote 23 MB
of log in 30 s and buried everything else. The first drop of a kind is logged at once (it is news); repeats
within the interval are counted and summed up in one line when the interval ends.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass

from loguru import logger

from protocol.codec import ProtocolError

MALFORMED_LOG_INTERVAL_SECONDS = 10.0
# Distinct (peer, reason) pairs followed one by one per interval; a flood from more peers than this (each
# new connection is a new peer) is summed up in one line, so the log stays bounded whatever the peers do.
MAX_TRACKED_PEERS = 20


@dataclass
class _Drops:
    since: float
    count: int = 0  # dropped since ``since`` without a line of their own
    last: str = ""


class MalformedMessageLog:
    def __init__(self, interval: float = MALFORMED_LOG_INTERVAL_SECONDS,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.interval = interval
        self._clock = clock
        self._drops: dict[tuple[str, str], _Drops] = {}
        self._overflow: _Drops | None = None
        self._overflow_peers: set[str] = set()

    def dropped(self, peer: str, error: ProtocolError) -> None:
        """Record one dropped message from ``peer`` (a description such as "worker 'alpha'")."""
        now = self._clock()
        self.flush(now)
        key = (peer, error.reason)
        drops = self._drops.get(key)
        if drops is not None:
            drops.count += 1
            drops.last = str(error)
            return
        if len(self._drops) < MAX_TRACKED_PEERS:
            self._drops[key] = _Drops(since=now)
            logger.error("dropped a malformed message from {}: {} (repeats are counted for {:.0f}s)", peer, error,
                         self.interval)
            return
        if self._overflow is None:
            self._overflow = _Drops(since=now)
        self._overflow.count += 1
        self._overflow.last = f"{peer}: {error}"
        if len(self._overflow_peers) < 1000:  # a count to show, not a memory to fill
            self._overflow_peers.add(peer)

    def flush(self, now: float | None = None) -> None:
        """Write the summary lines whose interval has ended; call it now and then even when nothing arrives."""
        now = self._clock() if now is None else now
        for (peer, reason), drops in list(self._drops.items()):
            if now - drops.since < self.interval:
                continue
            if drops.count:
                logger.error("dropped {} more malformed messages from {} ({}) in the last {:.0f}s; the last: {}",
                             drops.count, peer, reason, now - drops.since, drops.last)
                self._drops[(peer, reason)] = _Drops(since=now)
            else:
                del self._drops[(peer, reason)]  # quiet for a whole interval: the next drop is news again
        overflow = self._overflow
        if overflow is not None and now - overflow.since >= self.interval:
            logger.error("dropped {} malformed messages from {} more peers in the last {:.0f}s; the last from {}",
                         overflow.count, len(self._overflow_peers), now - overflow.since, overflow.last)
            self._overflow = None
            self._overflow_peers.clear()
