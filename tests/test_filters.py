"""[targets.filter]: which source orders a target copies. The keys as the config reads and refuses them, the pure
verdict (coordinator/domain/filters.py), the planner's one hook, and whole runs on the engine over fake brokers
(tests/enginekit.py): nothing left out is placed, a run that left orders out is complete, a copy whose source
order a changed filter leaves out is removed (as for order_types) while a copy position goes on following, and
what each key left out is counted in the --once summary and in status."""

from __future__ import annotations

import dataclasses
import time
from pathlib import Path
from typing import Any

import pytest

from config import AppConfig, ConfigError, FilterSettings, parse_config
from coordinator.cli.operator import render_status
from coordinator.domain.filters import FilterKey, describe_counts, filter_counts, left_out_by_filter
from coordinator.domain.planner import SkipReason, plan_target
from coordinator.runtime.config_changes import config_changes
from coordinator.runtime.dry_run import DryRun
from coordinator.runtime.status_report import gather_status, status_json
from coordinator.runtime.summary import render_dry_run
from protocol import CommandKind
from tests.enginekit import SOURCE, TARGET, Desk, EngineRig, order, summary_counts
from tests.simhelpers import BUY_LIMIT, BUY_STOP, SELL_LIMIT
from tests.test_planner import copy_of, inputs, settings_, source_order

# ---- the keys ------------------------------------------------------------------------------------


def config_with(filter_table: dict[str, Any] | None, tmp_path: Path) -> AppConfig:
    target: dict[str, Any] = {"name": "t", "backend": "sim", "path": "t", "login": 2, "server": "S"}
    if filter_table is not None:
        target["filter"] = filter_table
    return parse_config({"coordinator": {"state_dir": "state"},
                         "source": {"name": "s", "backend": "sim", "path": "s", "login": 1, "server": "S"},
                         "targets": [target]}, base_dir=tmp_path)


def test_every_filter_key_is_read_and_absent_ones_let_everything_through(tmp_path):
    table = {"symbols": ["EURUSD", "XAU*"], "exclude_symbols": ["*_test*"], "magics": [0, 1234],
             "exclude_magics": [777], "comment_regex": "^grid"}

    assert config_with(table, tmp_path).targets[0].copy.filter == FilterSettings(
        symbols=("EURUSD", "XAU*"), exclude_symbols=("*_test*",), magics=(0, 1234), exclude_magics=(777,),
        comment_regex="^grid")
    assert config_with(None, tmp_path).targets[0].copy.filter == FilterSettings(
        symbols=None, exclude_symbols=(), magics=None, exclude_magics=(), comment_regex=None)
    assert left_out_by_filter(order(1, symbol="ANYTHING", magic=99, comment="x"), FilterSettings()) is None


@pytest.mark.parametrize(("key", "value", "problem"), [
    ("symbols", "EURUSD", "filter.symbols: must be an array, got string 'EURUSD'"),
    ("symbols", [], "filter.symbols: an empty list would copy no order at all: leave the key out to copy every "
                    "symbol"),
    ("symbols", ["EURUSD", ""], "filter.symbols[1]: must not be empty"),
    ("symbols", ["EURUSD", "EURUSD"], "filter.symbols[1]: duplicate entry 'EURUSD'"),
    ("exclude_symbols", [5], "filter.exclude_symbols[0]: must be a string, got integer 5"),
    ("magics", [-1], "filter.magics[0]: must be at least 0, got -1"),
    ("magics", ["1234"], "filter.magics[0]: must be an integer, got string '1234'"),
    ("magics", [], "filter.magics: an empty list would copy no order at all: leave the key out to copy every "
                   "magic number"),
    ("exclude_magics", [True], "filter.exclude_magics[0]: must be an integer, got boolean true"),
    ("comment_regex", "(grid", "filter.comment_regex: is not a valid regular expression (missing ), unterminated "
                               "subpattern at position 0): '(grid'"),
    ("comment_regex", "", "filter.comment_regex: must not be empty"),
    ("symbol", ["EURUSD"], "filter.symbol: unknown key (did you mean 'symbols'?)"),
])
def test_each_filter_key_is_refused_with_why(tmp_path, key, value, problem):
    with pytest.raises(ConfigError) as raised:
        config_with({key: value}, tmp_path)
    assert [str(found) for found in raised.value.problems if problem in str(found)], str(raised.value)
    assert len(raised.value.problems) == 1, str(raised.value)


def test_a_changed_filter_is_a_copy_rule_a_reload_applies_at_the_next_plan(tmp_path):
    changes = config_changes(config_with(None, tmp_path), config_with({"magics": [0]}, tmp_path))
    assert (changes.rules_changed, changes.restarted, changes.needs_restart) == (("t",), (), ())


# ---- the verdict ---------------------------------------------------------------------------------


def verdict(settings: FilterSettings, **fields: Any) -> FilterKey | None:
    found = left_out_by_filter(order(1, **fields), settings)
    return found.key if found is not None else None


def test_symbol_patterns_are_shell_style_and_ignore_letter_case():
    settings = FilterSettings(symbols=("EURUSD", "xau*", "US?00"))
    assert verdict(settings, symbol="EURUSD") is None
    assert verdict(settings, symbol="XAUUSD") is None and verdict(settings, symbol="xauusd.m") is None
    assert verdict(settings, symbol="US500") is None
    assert verdict(settings, symbol="US5000") is FilterKey.SYMBOLS
    assert verdict(settings, symbol="EURUSD.m") is FilterKey.SYMBOLS  # a whole-name pattern, not a prefix
    assert verdict(settings, symbol="GBPUSD") is FilterKey.SYMBOLS


def test_an_exclusion_wins_over_an_inclusion():
    settings = FilterSettings(symbols=("EUR*",), exclude_symbols=("*_TEST*",), magics=(0, 1234), exclude_magics=(1234,))
    assert verdict(settings, symbol="EURUSD") is None
    assert verdict(settings, symbol="EURUSD_test") is FilterKey.EXCLUDE_SYMBOLS
    assert verdict(settings, symbol="EURUSD", magic=1234) is FilterKey.EXCLUDE_MAGICS
    reason = left_out_by_filter(order(1, symbol="EURUSD_test"), settings)
    assert reason is not None and reason.reason == \
        "source symbol EURUSD_test matches [targets.filter] exclude_symbols '*_TEST*'"


def test_magic_0_is_an_order_placed_by_hand():
    by_hand_only = FilterSettings(magics=(0,))
    assert verdict(by_hand_only, magic=0) is None
    assert verdict(by_hand_only, magic=1234) is FilterKey.MAGICS
    no_hand = FilterSettings(exclude_magics=(0,))
    assert verdict(no_hand, magic=0) is FilterKey.EXCLUDE_MAGICS and verdict(no_hand, magic=5) is None


def test_comment_regex_is_searched_anywhere_in_the_comment_unless_anchored():
    anywhere, anchored = FilterSettings(comment_regex="grid"), FilterSettings(comment_regex="^grid")
    assert verdict(anywhere, comment="my grid 3") is None
    assert verdict(anchored, comment="grid 3") is None
    assert verdict(anchored, comment="my grid 3") is FilterKey.COMMENT_REGEX
    assert verdict(anchored, comment="") is FilterKey.COMMENT_REGEX
    assert verdict(anchored, comment="GRID 3") is FilterKey.COMMENT_REGEX  # case-sensitive ...
    assert verdict(FilterSettings(comment_regex="(?i)^grid"), comment="GRID 3") is None  # ... unless it says


def test_an_order_is_counted_under_the_first_key_that_excludes_it():
    settings = FilterSettings(symbols=("EURUSD",), magics=(7,), comment_regex="^grid")
    verdicts = [left_out_by_filter(order(1, symbol="GBPUSD", magic=8, comment="x"), settings),  # all three
                left_out_by_filter(order(2, symbol="EURUSD", magic=8, comment="x"), settings),  # magics, comment
                left_out_by_filter(order(3, symbol="EURUSD", magic=7, comment="x"), settings),
                left_out_by_filter(order(4, symbol="GBPUSD", magic=7, comment="grid"), settings)]
    counts = filter_counts(v for v in verdicts if v is not None)
    assert counts == {"symbols": 2, "magics": 1, "comment_regex": 1}
    assert list(counts) == ["symbols", "magics", "comment_regex"]  # the table's order
    assert describe_counts(counts) == "symbols 2, magics 1, comment_regex 1" and describe_counts({}) == "none"


# ---- the planner ---------------------------------------------------------------------------------


def test_symbol_patterns_match_the_source_symbol_before_the_symbol_map():
    gold = source_order(501, symbol="XAUUSD", price_open=2650.0, sl=2640.0, tp=2700.0)
    by_source_name = settings_(filter=FilterSettings(symbols=("XAU*",)))
    by_target_name = settings_(filter=FilterSettings(symbols=("GOLD",)))

    [place] = plan_target([gold], inputs(settings=by_source_name)).actions
    assert (place.kind, place.symbol) == (CommandKind.PLACE, "GOLD")
    plan = plan_target([gold], inputs(settings=by_target_name))
    assert plan.actions == [] and plan.skips == [] and plan.left_out_by_filter[501].key is FilterKey.SYMBOLS


def test_a_left_out_order_is_handled_as_a_type_the_target_does_not_copy():
    kept, dropped = source_order(601, magic=1), source_order(602, magic=2)
    settings = settings_(filter=FilterSettings(exclude_magics=(2,)))
    copies = [copy_of(kept, 9001), copy_of(dropped, 9002)]

    plan = plan_target([kept, dropped], inputs(copies, settings=settings))
    [remove] = plan.actions
    assert (remove.kind, remove.ticket, remove.source_ticket) == (CommandKind.REMOVE, 9002, 602)
    assert remove.reason == "magic number 2 is in [targets.filter] exclude_magics"
    assert plan.in_sync == [601] and plan.filtered == [] and list(plan.left_out_by_filter) == [602]
    # While its removal is in flight, or backs off after a failure, it is counted all the same, as a type is.
    in_flight = plan_target([kept, dropped], inputs(copies, settings=settings, in_flight=frozenset({602})))
    assert in_flight.actions == [] and list(in_flight.left_out_by_filter) == [602]
    backoff = plan_target([kept, dropped], inputs(copies, settings=settings, backoff={602: "failed: busy"}))
    assert [skip.reason for skip in backoff.skips] == [SkipReason.BACKOFF]
    assert list(backoff.left_out_by_filter) == [602]
    # A type the target does not copy is judged first: counted as a type, not by the filter.
    by_type = plan_target([dropped], inputs(settings=dataclasses.replace(settings, order_types=frozenset())))
    assert (by_type.filtered, by_type.left_out_by_filter) == ([602], {})


# ---- whole runs ----------------------------------------------------------------------------------

FILTER = {"symbols": ["EUR*", "XAU*"], "exclude_symbols": ["*_test*"], "exclude_magics": [777]}


def test_orders_left_out_are_never_placed_and_the_once_run_is_complete(tmp_path):
    desk = Desk(tmp_path / "state")
    master, alpha = desk[SOURCE], desk[TARGET]
    master.symbol("EURUSD_test", like="EURUSD")
    copied = master.place(BUY_LIMIT)
    gold = master.place(SELL_LIMIT, symbol="XAUUSD")
    other_symbol = master.place(BUY_LIMIT, symbol="GBPUSD")
    test_symbol = master.place(BUY_STOP, symbol="EURUSD_test")
    other_ea = master.place(BUY_STOP, magic=777)

    run = desk.once(t1={"filter": FILTER})

    assert run.code == 0, run.summary
    assert set(alpha.copies()) == {copied, gold}
    left_out = {other_symbol, test_symbol, other_ea}
    assert not any(command.source_ticket in left_out for command in alpha.requests), alpha.requests
    assert summary_counts(run.summary)["left out by filter"] == 3
    assert "  left out by filter: symbols 1, exclude_symbols 1, exclude_magics 1" in run.summary
    assert "result: complete (exit code 0)" in run.summary


def test_a_copy_whose_order_a_changed_filter_leaves_out_is_removed_and_status_counts_it(tmp_path):
    desk = Desk(tmp_path / "state")
    master, alpha = desk[SOURCE], desk[TARGET]
    eurusd, gbpusd = master.place(BUY_LIMIT), master.place(BUY_LIMIT, symbol="GBPUSD")
    session = desk.session()
    try:
        session.run(1.0, until=lambda: set(alpha.copies()) == {eurusd, gbpusd})
        config = session.rig.config
        narrowed = dataclasses.replace(config, targets=tuple(
            dataclasses.replace(target, copy=dataclasses.replace(target.copy, filter=FilterSettings(symbols=("EUR*",))))
            for target in config.targets))

        changes = session.rig.engine.apply_config(narrowed)  # a reload
        assert changes.rules_changed == (TARGET,)
        session.run(1.0, until=lambda: gbpusd not in alpha.copies())

        assert set(alpha.copies()) == {eurusd}
        removals = [command for command in session.commands if command.kind is CommandKind.REMOVE]
        assert [command.source_ticket for command in removals] == [gbpusd]
        assert (TARGET, "removed", "done", "source symbol GBPUSD matches none of [targets.filter] symbols (EUR*)") \
            in session.events()
        summary = session.summary()
        assert "left out by filter: symbols 1" in summary and "result: complete" in summary, summary

        session.rig.engine.publish_status()
        [row] = [row for row in session.rig.engine.status.rows() if row.name == TARGET]
        assert row.left_out == (("symbols", 1),)
        report = gather_status(session.rig.config, time.time())
        assert "  left out by filter: symbols 1\n" in render_status(report)
        [target] = [t for t in status_json(report)["terminals"] if t["name"] == TARGET]
        [source] = [t for t in status_json(report)["terminals"] if t["name"] == SOURCE]
        assert (target["left_out_by_filter"], source["left_out_by_filter"]) == ({"symbols": 1}, None)
    finally:
        session.close()


def test_a_copy_position_goes_on_following_its_source_order_once_the_filter_leaves_it_out(tmp_path):
    # As for order_types: the filter decides which orders are copied, not what becomes of a trade already open.
    desk = Desk(tmp_path / "state")
    master, alpha = desk[SOURCE], desk[TARGET]
    ticket = master.place(BUY_LIMIT, magic=5)
    assert desk.once().code == 0
    alpha.fill(alpha.copies()[ticket].ticket)  # the copy filled first: its source order is still pending
    [copy_position] = alpha.positions.values()

    master.modify(ticket, sl=round(master.orders[ticket].sl - 0.0010, 5))
    run = desk.once(t1={"filter": {"exclude_magics": [5]}})

    assert run.code == 0, run.summary
    assert alpha.positions[copy_position.ticket].sl == pytest.approx(master.orders[ticket].sl)
    assert summary_counts(run.summary)["left out by filter"] == 1
    assert not any(command.kind is CommandKind.PLACE for command in run.commands)


def test_a_dry_run_counts_what_the_filter_leaves_out(tmp_path):
    rig = EngineRig(tmp_path / "rig", {"filter": {"magics": [0]}})
    walls = DryRun(tmp_path / "state")
    try:
        rig.engine = walls.engine(rig.config, rig._send, clock=lambda: rig.clock)
        rig.start([order(100), order(101, magic=5)])
        rig.reconcile()

        text = render_dry_run(rig.engine, walls.dispatcher.planned)
        assert "in sync 0, not copied by type 0, left out by filter 1\n  left out by filter: magics 1\n" in text
        assert "place    source #100:" in text and "source #101" not in text
    finally:
        walls.close()
        rig.close()
