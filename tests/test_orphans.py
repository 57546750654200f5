"""The orphan tracker: confirmation by consecutive checks, the two policies and keep_filled_copies."""

from __future__ import annotations

import pytest

from config import OrphanPolicy, OrphanSettings
from coordinator.domain.orphans import OrphanCandidate, OrphanDecision, OrphanTracker


def tracker(
    policy: OrphanPolicy = OrphanPolicy.KILL, *, max_checks: int = 3, interval: float = 5.0, keep_filled: bool = False
) -> OrphanTracker:
    settings = OrphanSettings(policy=policy, check_interval=interval, max_checks=max_checks)
    return OrphanTracker("broker-a", settings, keep_filled_copies=keep_filled)


def orphan(copy_ticket: int = 23000002, fate: str = "unknown", source_ticket: int = 10000017) -> OrphanCandidate:
    """A copy whose source order vanished; with no record in the source's history unless ``fate`` says one."""
    return OrphanCandidate(copy_ticket=copy_ticket, source_ticket=source_ticket, symbol="EURUSD.m", source_fate=fate)


def run_checks(orphans_tracker: OrphanTracker, *orphan_sets: list[OrphanCandidate]) -> list[OrphanDecision]:
    """One check per orphan set, check_interval apart, each on its own source snapshot."""
    interval = orphans_tracker.settings.check_interval
    return [
        orphans_tracker.check(1000.0 + i * interval, orphans, f"snap-{i + 1}") for i, orphans in enumerate(orphan_sets)
    ]


# ---------------------------------------------------------------------------------------------------
# Interval


def test_the_first_check_is_due_at_once_then_every_check_interval():
    orphans = tracker(interval=5.0)

    assert orphans.due(1000.0)
    orphans.check(1000.0, [], "snap-1")
    assert not orphans.due(1000.0)
    assert not orphans.due(1004.9)
    assert orphans.due(1005.0)
    assert orphans.due(1100.0)


def test_due_counts_from_the_last_check_not_from_the_first():
    orphans = tracker(interval=5.0)
    orphans.check(1000.0, [], "snap-1")
    orphans.check(1007.0, [], "snap-2")

    assert not orphans.due(1010.0)
    assert orphans.due(1012.0)


# ---------------------------------------------------------------------------------------------------
# Policy kill and the confirmation count


def test_kill_happens_exactly_at_the_max_checks_th_consecutive_check():
    copy = orphan()

    first, second, third = run_checks(tracker(max_checks=3), [copy], [copy], [copy])

    assert (first.kill, second.kill, third.kill) == ((), (), (copy,))
    assert first.preserved == second.preserved == third.preserved == ()


def test_counts_show_consecutive_checks_per_copy():
    orphans = tracker(max_checks=3)
    a, b = orphan(1), orphan(2)

    run_checks(orphans, [a], [a, b])

    assert orphans.counts() == {1: 2, 2: 1}


def test_a_killed_copy_is_returned_again_until_it_is_forgotten():
    orphans = tracker(max_checks=2)
    copy = orphan()

    decisions = run_checks(orphans, [copy], [copy], [copy])
    assert [d.kill for d in decisions] == [(), (copy,), (copy,)]
    assert "again" in decisions[2].evidence[0]

    orphans.forget(copy.copy_ticket)
    assert orphans.counts() == {}
    # Still listed as an orphan (the removal has not shown in a snapshot yet): counted from zero again.
    assert orphans.check(2000.0, [copy], "snap-4").kill == ()


def test_max_checks_1_kills_at_the_first_check():
    copy = orphan()

    (decision,) = run_checks(tracker(max_checks=1), [copy])

    assert decision.kill == (copy,)
    assert "source order not found in 1 of 1 consecutive checks" in decision.evidence[0]


def test_a_copy_missing_from_one_check_starts_again_from_zero():
    orphans = tracker(max_checks=3)
    copy = orphan()

    decisions = run_checks(orphans, [copy], [copy], [], [copy], [copy], [copy])

    assert [bool(d.kill) for d in decisions] == [False, False, False, False, False, True]
    assert decisions[2].evidence == (
        "target broker-a: copy #23000002 is no longer orphaned; its count of 2 of 3 checks starts again",
    )


def test_each_copy_is_confirmed_on_its_own():
    orphans = tracker(max_checks=2)
    early, late = orphan(1, source_ticket=11), orphan(2, source_ticket=12)

    decisions = run_checks(orphans, [early], [early, late], [early, late])

    assert [d.kill for d in decisions] == [(), (early,), (early, late)]


def test_evidence_speaks_of_orders_and_checks():
    copy = orphan()

    decisions = run_checks(tracker(max_checks=2), [copy], [copy])

    assert decisions[0].evidence == (
        "target broker-a: copy #23000002 EURUSD.m of source order #10000017: source order not found in 1 of 2 "
        "consecutive checks; confirming before acting",
    )
    assert decisions[1].evidence == (
        "target broker-a: copy #23000002 EURUSD.m of source order #10000017: source order not found in 2 of 2 "
        "consecutive checks; removing the copy (orphan policy kill)",
    )
    assert "snap-" not in " ".join(decisions[0].evidence + decisions[1].evidence)  # boot ids and seqs: DEBUG


# ---- a fate the source's history confirms acts at once (issue 7, point 4) -------------------------


@pytest.mark.parametrize("fate", ["cancelled", "filled", "expired", "rejected"])
def test_a_fate_confirmed_by_the_source_history_is_decided_at_the_first_check(fate):
    copy = orphan(fate=fate)

    (decision,) = run_checks(tracker(max_checks=3), [copy])

    assert decision.kill == (copy,)
    assert decision.evidence == (
        f"target broker-a: copy #23000002 EURUSD.m of source order #10000017: the source's history says it was "
        f"{fate}; removing the copy (orphan policy kill)",
    )


def test_a_confirmed_fate_is_decided_even_between_checks_without_counting_the_others():
    orphans = tracker(max_checks=3, interval=5.0)
    vanished, cancelled = orphan(1, source_ticket=11), orphan(2, fate="cancelled", source_ticket=12)
    orphans.check(1000.0, [vanished], "snap-1")

    decision = orphans.check(1001.0, [vanished, cancelled], "snap-2")  # not due: only the confirmed one acts

    assert decision.kill == (cancelled,)
    assert orphans.counts()[1] == 1


def test_a_confirmed_fate_under_preserve_is_reported_at_once():
    copy = orphan(fate="cancelled")

    (decision,) = run_checks(tracker(OrphanPolicy.PRESERVE, max_checks=3), [copy])

    assert (decision.kill, decision.preserved) == ((), (copy,))


def test_held_copies_are_neither_counted_nor_reset():
    orphans = tracker(max_checks=3)
    copy = orphan()
    orphans.check(1000.0, [copy], "snap-1")

    orphans.check(1005.0, [], "snap-2", held={copy.copy_ticket})

    assert orphans.counts() == {copy.copy_ticket: 1}


def test_a_check_without_orphans_and_nothing_tracked_says_nothing():
    (decision,) = run_checks(tracker(), [])

    assert decision == OrphanDecision(kill=(), preserved=(), evidence=())


# ---------------------------------------------------------------------------------------------------
# Policy preserve


def test_preserve_never_kills_and_reports_once_confirmed():
    orphans = tracker(OrphanPolicy.PRESERVE, max_checks=2)
    copy = orphan()

    decisions = run_checks(orphans, [copy], [copy], [copy], [copy])

    assert all(d.kill == () for d in decisions)
    assert [d.preserved for d in decisions] == [(), (copy,), (copy,), (copy,)]
    assert decisions[1].evidence[0].endswith("keeping the copy (orphan policy preserve)")
    # The keep decision is said once; later checks stay quiet about it.
    assert decisions[2].evidence == decisions[3].evidence == ()
    assert orphans.counts() == {copy.copy_ticket: 4}


def test_a_preserved_copy_that_comes_back_is_reported_again_after_a_new_confirmation():
    orphans = tracker(OrphanPolicy.PRESERVE, max_checks=1)
    copy = orphan()

    decisions = run_checks(orphans, [copy], [], [copy])

    assert [len(d.evidence) for d in decisions] == [1, 1, 1]
    assert "keeping the copy" in decisions[2].evidence[0]


# ---------------------------------------------------------------------------------------------------
# keep_filled_copies


@pytest.mark.parametrize("policy", list(OrphanPolicy))
def test_keep_filled_copies_preserves_copies_of_filled_sources_whatever_the_policy(policy):
    filled = orphan(1, fate="filled", source_ticket=11)

    decisions = run_checks(tracker(policy, max_checks=2, keep_filled=True), [filled], [filled])

    assert decisions[0].kill == decisions[1].kill == ()
    assert decisions[0].preserved == decisions[1].preserved == (filled,)
    assert decisions[0].evidence[0].endswith("keeping the copy (keep_filled_copies, and its source order was filled)")


def test_keep_filled_copies_still_kills_orphans_of_cancelled_sources():
    filled, cancelled = orphan(1, fate="filled", source_ticket=11), orphan(2, fate="cancelled", source_ticket=12)

    decisions = run_checks(tracker(max_checks=1, keep_filled=True), [filled, cancelled])

    assert (decisions[0].kill, decisions[0].preserved) == ((cancelled,), (filled,))


def test_without_keep_filled_copies_a_filled_source_is_an_ordinary_orphan():
    filled = orphan(fate="filled")

    (decision,) = run_checks(tracker(max_checks=1), [filled])

    assert decision.kill == (filled,)


def test_the_latest_source_fate_decides():
    # The source's history may learn of the fill only after the order left its pending list.
    orphans = tracker(max_checks=2, keep_filled=True)

    decisions = run_checks(orphans, [orphan(fate="unknown")], [orphan(fate="filled")])

    assert decisions[1].kill == ()
    assert decisions[1].preserved == (orphan(fate="filled"),)


# ---------------------------------------------------------------------------------------------------
# forget


def test_forget_drops_the_count_and_is_harmless_for_unknown_tickets():
    orphans = tracker()
    run_checks(orphans, [orphan(1), orphan(2)])

    orphans.forget(1)
    orphans.forget(999)

    assert orphans.counts() == {2: 1}


def test_a_forgotten_copy_does_not_produce_a_reset_line():
    orphans = tracker()
    copy = orphan()
    orphans.check(1000.0, [copy], "snap-1")
    orphans.forget(copy.copy_ticket)

    assert orphans.check(1005.0, [], "snap-2").evidence == ()
