"""The latency of one copy, by stage: the instants a copy passed on its way from the source to the target.

- detected: the source worker's poll that first saw the order (or, for a replacement, its change), translated
  from the worker's clock to the coordinator's;
- planned: the coordinator planned the copy (its plan handed to dispatch);
- sent: its command was recorded durably and handed to the link;
- answered: the target worker's result arrived (``broker_ms`` of it was the worker's own request to the broker);
- confirmed: the coordinator held both the answer and a snapshot of the target showing the copy. A worker
  sends the snapshot it takes after a batch before the batch's results, so where the terminal lists a new order
  at once this is the answer's instant; where it lists it later, the wait shows here.

Instants are UTC milliseconds on the coordinator's clock (with a fraction): a value, pure, stored as JSON with
the copy's history event and read back by ``history``, the status page and the metrics.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, fields, replace
from typing import Any

import msgspec

STAGES = ("detected", "planned", "sent", "answered", "confirmed")


@dataclass(frozen=True, slots=True)
class CopyStages:
    detected: float
    planned: float
    sent: float
    answered: float
    confirmed: float | None = None  # None: no snapshot of the target has shown the copy yet
    broker_ms: float | None = None  # the worker's order_send (and its checks), as it measured it

    def confirm(self, at: float) -> CopyStages:
        """Confirmed at ``at``, never before the answer (see the module's note)."""
        return replace(self, confirmed=max(at, self.answered))

    @property
    def complete(self) -> bool:
        return self.confirmed is not None

    @property
    def last(self) -> float:
        return self.confirmed if self.confirmed is not None else self.answered

    @property
    def total_ms(self) -> float:
        """From detected to the last stage reached (confirmed, else answered)."""
        return self.last - self.detected

    def steps(self) -> list[tuple[str, float]]:
        """Each stage reached after detected, with the milliseconds it took from the one before."""
        instants = [self.detected, self.planned, self.sent, self.answered]
        if self.confirmed is not None:
            instants.append(self.confirmed)
        return [(STAGES[index], instants[index] - instants[index - 1]) for index in range(1, len(instants))]

    def describe(self) -> str:
        """"detected→confirmed 42 ms (planned +1, sent +0.3, answered +35 (broker 30), confirmed +6)"."""
        parts = []
        for stage, took in self.steps():
            text = f"{stage} +{_ms(took)}"
            if stage == "answered" and self.broker_ms is not None:
                text += f" (broker {_ms(self.broker_ms)})"
            parts.append(text)
        last = "confirmed" if self.confirmed is not None else "answered (not confirmed yet)"
        return f"detected→{last} {_ms(self.total_ms)} ms ({', '.join(parts)})"

    def to_json(self) -> str:
        # Once per copy, on the coordinator's one thread: the fields read one by one (``dataclasses.asdict``
        # deep-copies each value) and written by msgspec (the same text for values rounded to 3 decimals, read
        # back by ``json.loads``): a fifth of the time ``json.dumps(asdict(...))`` took (60 us and more).
        return msgspec.json.encode({key: _rounded(value) for key in _FIELD_NAMES
                                    if (value := getattr(self, key)) is not None}).decode()

    @classmethod
    def from_json(cls, text: str) -> CopyStages | None:
        """The stages stored with a history event; None for "" (an event without stages) or a row that does not
        read as stages (written by another version: shown without them, never an error)."""
        if not text:
            return None
        try:
            values: Any = json.loads(text)
            return cls(**{key: float(value) for key, value in values.items() if key in cls.__dataclass_fields__})
        except (ValueError, TypeError, AttributeError):
            return None


_FIELD_NAMES = tuple(field.name for field in fields(CopyStages))  # in their order, as stored


def _ms(value: float) -> str:
    """Milliseconds to a tenth below 100 ("0.3", "4", "37.5"), whole above ("1250"); a clock's hiccup reads 0."""
    value = max(0.0, value)
    if value < 100:
        return f"{value:.1f}".rstrip("0").rstrip(".") or "0"
    return f"{value:.0f}"


def _rounded(value: float) -> float:
    return round(value, 3)  # microseconds: finer than any clock here measures
