"""The retry policy alone: delays, final refusals, closed markets, and the backoff the planner is given."""

from __future__ import annotations

from coordinator.domain.report import Failure
from coordinator.domain.retry_policy import (
    FINAL_FAILURE_RETRY_SECONDS,
    MARKET_CLOSED_RECHECK_SECONDS,
    RETRY_DELAYS,
    RetryPolicy,
    fingerprint,
)
from protocol import CommandResult, CommandStatus
from protocol.mt5 import Retcode
from tests.enginekit import order


def refusal(retcode: int, status: CommandStatus = CommandStatus.REJECTED) -> CommandResult:
    return CommandResult(command_id="c", status=status, retcode=retcode)


def test_retryable_refusals_back_off_further_each_time_up_to_a_minute():
    policy = RetryPolicy({})
    delays = []
    for _ in range(8):
        failure, _ = policy.refused(1, "EURUSD", refusal(Retcode.REQUOTE), "requote", now=0.0)
        delays.append(failure.retry_at)
    assert delays == [*RETRY_DELAYS, RETRY_DELAYS[-1], RETRY_DELAYS[-1]]
    assert not failure.final


def test_a_final_refusal_waits_five_minutes_and_a_closed_market_waits_for_its_tick():
    policy = RetryPolicy({})
    final, _ = policy.refused(1, "EURUSD", refusal(Retcode.INVALID_VOLUME), "invalid volume", now=10.0)
    closed, _ = policy.refused(2, "GBPUSD", refusal(Retcode.MARKET_CLOSED), "market closed", now=10.0)
    assert (final.final, final.retry_at) == (True, 10.0 + FINAL_FAILURE_RETRY_SECONDS)
    assert closed.retry_at == 10.0 + MARKET_CLOSED_RECHECK_SECONDS
    policy.market_open("GBPUSD", now=11.0)
    assert policy.failures[2].retry_at == 11.0 and policy.failures[1].retry_at == 10.0 + FINAL_FAILURE_RETRY_SECONDS


def test_the_backoff_is_waived_by_an_edit_and_forgotten_with_the_order_and_its_copy():
    source = order(1)
    failures: dict[int, Failure] = {}
    policy = RetryPolicy(failures)
    policy.refused(1, "EURUSD", refusal(Retcode.REQUOTE), "requote", now=0.0, source_fingerprint=fingerprint(source))
    assert policy.backoff({1: source}, copies=(), now=0.5) == {1: "requote"}
    edited = order(1, price_open=1.07)
    assert policy.backoff({1: edited}, copies=(), now=0.5) == {}
    assert policy.backoff({}, copies={1}, now=0.5) == {1: "requote"}  # an orphan's removal keeps its backoff
    assert policy.backoff({}, copies=(), now=0.5) == {} and failures == {}


def test_the_next_retry_ignores_final_failures():
    policy = RetryPolicy({})
    policy.refused(1, "EURUSD", refusal(Retcode.INVALID_VOLUME), "invalid volume", now=0.0)
    assert policy.next_retry_at() is None
    policy.refused(2, "EURUSD", refusal(Retcode.REQUOTE), "requote", now=0.0)
    assert policy.next_retry_at() == RETRY_DELAYS[0]
    policy.succeeded(2)
    assert policy.next_retry_at() is None
