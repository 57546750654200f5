"""What the coordinator asked a worker: asked once at a time, given up when unanswered, "no record" bounded."""

from __future__ import annotations

from coordinator.runtime.fact_requests import (
    ANSWER_WAIT_SECONDS,
    NO_RECORD_LOOKS,
    NO_RECORD_RETRY_SECONDS,
    SYMBOL_REQUEST_RETRY_SECONDS,
    FactRequests,
)


def test_a_symbol_is_asked_once_until_answered_or_its_retry_time():
    requests = FactRequests()
    assert requests.symbols_to_ask(["EURUSD", "GOLD"], known={"GOLD"}, now=0.0) == ["EURUSD"]
    requests.asked_symbols(["EURUSD"], now=0.0)
    assert requests.symbols_to_ask(["EURUSD"], known=set(), now=1.0) == []
    assert requests.symbols_to_ask(["EURUSD"], known=set(), now=SYMBOL_REQUEST_RETRY_SECONDS + 0.1) == ["EURUSD"]
    requests.symbol_answered("EURUSD")
    assert not requests.outstanding()


def test_no_record_is_asked_again_a_bounded_number_of_times_a_little_apart():
    requests, now, looks = FactRequests(), 0.0, 0
    while requests.history_to_ask([9001], now) and looks < 10:
        requests.asked_history([9001], now)
        looks += 1
        requests.history_has_no_record(9001, now)
        assert requests.history_to_ask([9001], now) == [] or looks == NO_RECORD_LOOKS  # not at once
        now += NO_RECORD_RETRY_SECONDS
    assert looks == NO_RECORD_LOOKS
    assert requests.without_record() == {9001}


def test_unanswered_questions_are_given_up_and_a_new_worker_starts_clean():
    requests = FactRequests()
    requests.asked_history([1], now=0.0)
    requests.asked_symbols(["EURUSD"], now=0.0)
    assert requests.awaiting_history(1, now=1.0)
    requests.give_up_old(now=ANSWER_WAIT_SECONDS + 1)
    assert not requests.outstanding() and not requests.awaiting_history(1, now=ANSWER_WAIT_SECONDS + 1)
    requests.asked_symbols(["EURUSD"], now=50.0)
    requests.history_has_no_record(2, now=50.0)
    requests.new_worker()
    assert not requests.outstanding()
    assert requests.history_to_ask([2], now=50.1) == []  # what the terminal's history said still stands
