"""A reload on the engine (``Engine.apply_config``): targets added and removed, copy rules and entries changed,
every per-target part told in one place; and the worker links as status shows them (reconnects)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from config import AppConfig
from config.loader import parse_config
from coordinator.runtime.config_changes import config_changes
from protocol import CommandKind, CommandStatus, ErrorMessage, Goodbye, Shutdown
from protocol.messages import SHUTDOWN_COORDINATOR_STOPPING, SHUTDOWN_TERMINAL_REMOVED
from protocol.mt5 import OrderState
from tests.enginekit import SOURCE, TARGET, EngineRig, closed, copy_of, order


def config_with(rig: EngineRig, targets: dict[str, dict[str, Any]], *, coordinator: dict[str, Any] | None = None,
                source: dict[str, Any] | None = None) -> AppConfig:
    """The rig's config with these targets (by name, with their extra settings), as a reload reads it. A new
    target gets the next login, and the rig learns it, so its worker can say hello."""
    for name in targets:
        if name not in rig.logins:
            rig.logins[name] = max(rig.logins.values()) + 1
            rig.seq[name] = 0
    state_dir = rig.config.coordinator.state_dir
    data = {
        "coordinator": {"state_dir": str(state_dir), **(coordinator or {})},
        "source": {"name": SOURCE, "backend": "sim", "path": "s", "login": 1, "server": "S", "server_utc_offset": 0,
                   **(source or {})},
        "targets": [{"name": name, "backend": "sim", "path": name, "login": rig.logins[name], "server": "S",
                     "server_utc_offset": 0, **settings} for name, settings in targets.items()],
    }
    return parse_config(data, base_dir=state_dir.parent)


def sent_to(rig: EngineRig, name: str) -> list[Any]:
    return [message for to, message in rig.sent if to == name]


def place_one(rig: EngineRig) -> tuple[Any, Any]:
    """Source order 1 copied onto t1 (done, linked); returns (the source order, its copy)."""
    source = order(1)
    rig.start([source])
    rig.reconcile()
    [place] = rig.commands()
    rig.result(place, CommandStatus.DONE, ticket=9001)
    copy = copy_of(source, 9001)
    rig.snapshot(TARGET, [copy])
    rig.sent.clear()
    return source, copy


# ---------------------------------------------------------------------------------------------------
# targets added


def test_an_added_target_is_planned_once_its_worker_reports_and_the_others_keep_their_sessions(make_rig):
    rig = make_rig()
    place_one(rig)
    welcomed_at = rig.engine.views[TARGET].welcomed_at

    changes = rig.engine.apply_config(config_with(rig, {TARGET: {}, "t2": {}}))

    assert changes.added == ("t2",) and not changes.restarted and not changes.stopped
    assert sent_to(rig, TARGET) == [] and sent_to(rig, SOURCE) == []  # no reset, no new hello asked
    assert rig.engine.views[TARGET].welcomed_at == welcomed_at
    rig.hello("t2")
    rig.snapshot("t2")
    rig.specs("t2")
    rig.sent.clear()
    rig.reconcile()
    [place] = rig.commands("t2")
    assert (place.kind, place.source_ticket, place.volume) == (CommandKind.PLACE, 1, 0.1)
    assert rig.commands(TARGET) == []  # t1 is in sync


def test_a_remote_target_added_is_awaited_and_reported_after_hello_timeout(make_rig):
    rig = make_rig()
    rig.start([order(1)])
    rig.engine.apply_config(config_with(rig, {TARGET: {}, "far": {"remote": True}},
                                        coordinator={"hello_timeout": 5}))

    rig.advance(4.0)
    rig.engine.tick()
    assert rig.engine.views["far"].last_error == ""
    rig.advance(1.5)
    rig.engine.tick()
    assert rig.engine.views["far"].last_error == "its worker did not say hello within 5s"


# ---------------------------------------------------------------------------------------------------
# targets removed or disabled


def test_a_removed_target_is_told_to_stop_sent_nothing_more_and_its_copies_stay(make_rig):
    rig = make_rig(more_targets={"t2": {}})
    source, _ = place_one(rig)
    rig.snapshot("t2", [copy_of(source, 19001)])
    rig.reconcile()
    rig.sent.clear()

    changes = rig.engine.apply_config(config_with(rig, {"t2": {}}))

    assert changes.removed == (TARGET,)
    [stop] = sent_to(rig, TARGET)
    assert isinstance(stop, Shutdown) and stop.code == SHUTDOWN_TERMINAL_REMOVED
    assert TARGET not in rig.engine.targets
    rig.engine.on_message(TARGET, Goodbye(reason="removed"))  # heard: it was still welcome until it left
    rig.engine.tick()
    assert TARGET not in rig.engine.views and TARGET not in rig.engine.in_flight and TARGET not in rig.engine.reports
    assert rig.link(1) is not None and rig.link(1).copy_ticket == 9001  # the state keeps its record
    # The source order changes: the copy on t1 is nobody's business any more.
    rig.snapshot(SOURCE, [order(1, price_open=1.07)])
    rig.sent.clear()
    rig.reconcile()
    assert rig.commands(TARGET) == []
    # Its worker, still talking, is refused as a terminal the coordinator does not know.
    rig.heartbeat(TARGET)
    [refusal] = sent_to(rig, TARGET)
    assert isinstance(refusal, ErrorMessage) and refusal.code == "unknown-terminal"
    [row] = [row for row in rig.engine.status.rows() if row.name == TARGET]
    assert (row.removed, row.enabled, row.unmanaged_copies) == (True, False, 1)
    assert row.last_error == "removed from the config; 1 copies left as they are"


def test_a_removed_target_still_settles_what_it_was_sent(make_rig):
    rig = make_rig(more_targets={"t2": {}})
    rig.start([order(1)])
    rig.reconcile()
    [place] = rig.commands()

    rig.engine.apply_config(config_with(rig, {"t2": {}}))

    assert TARGET in rig.engine.views  # its answer is awaited
    rig.result(place, CommandStatus.DONE, ticket=9001)
    assert rig.intent_outcome(place) == "done"
    assert rig.link(1) is not None and rig.link(1).copy_ticket == 9001
    rig.engine.worker_exited(TARGET, 0)
    rig.engine.tick()
    assert TARGET not in rig.engine.views and TARGET not in rig.engine.in_flight


def test_what_a_removed_target_never_answered_is_recorded_as_abandoned_not_dropped(make_rig):
    rig = make_rig(more_targets={"t2": {}})
    rig.start([order(1)])
    rig.reconcile()
    [place] = rig.commands()

    rig.engine.apply_config(config_with(rig, {"t2": {}}))
    rig.advance(rig.config.coordinator.command_timeout + 6.0)
    rig.engine.tick()

    assert TARGET not in rig.engine.views
    assert rig.intent_outcome(place) == "abandoned: target removed from the config or disabled"
    assert [intent for intent in rig.state.unsettled_intents() if intent.target == TARGET] == []


def test_a_disabled_target_stops_and_status_shows_it_disabled(make_rig):
    rig = make_rig()
    place_one(rig)

    changes = rig.engine.apply_config(config_with(rig, {TARGET: {"enabled": False}}))

    assert changes.disabled == (TARGET,) and changes.removed == ()
    [stop] = sent_to(rig, TARGET)
    assert isinstance(stop, Shutdown) and stop.code == SHUTDOWN_TERMINAL_REMOVED
    [row] = [row for row in rig.engine.status.rows() if row.name == TARGET]
    assert (row.enabled, row.removed, row.unmanaged_copies) == (False, False, 1)


def test_a_target_removed_then_added_again_is_planned_again(make_rig):
    rig = make_rig(more_targets={"t2": {}})
    _, copy = place_one(rig)
    rig.engine.apply_config(config_with(rig, {"t2": {}}))
    rig.engine.apply_config(config_with(rig, {TARGET: {"lot_multiplier": 2.0}, "t2": {}}))

    assert rig.engine.removed_targets == {}
    rig.hello(TARGET, boot="b2")
    rig.seq[TARGET] = 0
    rig.snapshot(TARGET, [copy], boot="b2")
    rig.specs(TARGET)
    rig.sent.clear()
    rig.reconcile()
    [replace] = rig.commands()
    assert (replace.kind, replace.volume) == (CommandKind.REPLACE, 0.2)


# ---------------------------------------------------------------------------------------------------
# rules and entries changed


def test_a_new_multiplier_replaces_existing_copies_and_sizes_new_ones(make_rig):
    """README "How copies follow their source": a new lot_multiplier is a different target volume, and a pending
    order's volume cannot be modified: the copy is replaced."""
    rig = make_rig()
    source, _ = place_one(rig)

    changes = rig.engine.apply_config(config_with(rig, {TARGET: {"lot_multiplier": 2.0}}))

    assert changes.rules_changed == (TARGET,) and changes.restarted == ()
    assert sent_to(rig, TARGET) == []  # copy rules reach no worker: its session goes on
    rig.snapshot(SOURCE, [source, order(2)])
    rig.reconcile()
    by_ticket = {command.source_ticket: command for command in rig.commands()}
    assert (by_ticket[1].kind, by_ticket[1].ticket, by_ticket[1].volume) == (CommandKind.REPLACE, 9001, 0.2)
    assert (by_ticket[2].kind, by_ticket[2].volume) == (CommandKind.PLACE, 0.2)


def test_a_new_orphan_policy_applies_at_the_next_check(make_rig):
    rig = make_rig()
    place_one(rig)

    rig.engine.apply_config(config_with(rig, {TARGET: {"orphans": {"policy": "preserve"}}}))
    rig.snapshot(SOURCE, [], closed=[closed(1, OrderState.CANCELED)])
    rig.sent.clear()
    rig.reconcile()

    assert rig.commands() == []  # confirmed by the source's history, and kept: the new policy
    assert rig.engine.orphans.preserved(TARGET) == {9001}


def test_a_local_worker_whose_entry_changed_is_told_to_stop_for_its_restart(make_rig):
    rig = make_rig()
    place_one(rig)

    changes = rig.engine.apply_config(config_with(rig, {TARGET: {"poll_interval": 0.5}}))

    assert changes.restarted == (TARGET,)
    [stop] = sent_to(rig, TARGET)
    assert isinstance(stop, Shutdown) and stop.code == SHUTDOWN_COORDINATOR_STOPPING
    assert rig.engine.views[TARGET].config.poll_interval == 0.5


def test_a_remote_worker_whose_entry_changed_says_hello_again_on_its_link(make_rig):
    rig = make_rig(target={"remote": True})
    place_one(rig)

    rig.engine.apply_config(config_with(rig, {TARGET: {"remote": True, "poll_interval": 0.5}}))

    [ask] = sent_to(rig, TARGET)
    assert isinstance(ask, ErrorMessage) and ask.code == "hello-required"
    rig.hello(TARGET)
    assert rig.engine.views[TARGET].reconnects == 0  # asked for: not a reconnect


def test_a_configured_server_clock_applies_without_touching_the_worker(make_rig):
    rig = make_rig()
    place_one(rig)

    changes = rig.engine.apply_config(config_with(rig, {TARGET: {"server_utc_offset": 2}}))

    assert changes.rules_changed == (TARGET,) and changes.restarted == ()
    assert sent_to(rig, TARGET) == []
    assert rig.engine.views[TARGET].server_offset == 7200


def test_command_timeout_applies_to_the_next_commands(make_rig):
    rig = make_rig()
    rig.start([])
    rig.engine.apply_config(config_with(rig, {TARGET: {}}, coordinator={"command_timeout": 3}))
    rig.snapshot(SOURCE, [order(1)])
    rig.reconcile()
    assert len(rig.commands()) == 1

    rig.advance(3.5)
    rig.engine.tick()

    assert rig.engine.in_flight[TARGET][1].unknown_since > 0  # timed out after 3 s, not 30


@pytest.mark.parametrize(("change", "needs"), [
    (dict(coordinator={"bind": "tcp://127.0.0.1:6001"}), "coordinator.bind"),
    (dict(coordinator={"worker_timeout": 20}), "coordinator.worker_timeout"),
    (dict(source={"name": "src2"}), "source.name"),
])
def test_what_only_a_restart_applies_is_refused_whole(make_rig, change, needs):
    rig = make_rig()
    rig.start([order(1)])
    new = config_with(rig, {TARGET: {}, "t2": {}}, **change)

    assert any(problem.startswith(needs) for problem in config_changes(rig.config, new).needs_restart)
    with pytest.raises(ValueError, match=needs):
        rig.engine.apply_config(new)
    assert "t2" not in rig.engine.views and rig.engine.config is rig.config


# ---------------------------------------------------------------------------------------------------
# the link as status shows it


def test_reconnects_count_new_links_and_new_processes_not_repeated_hellos(make_rig):
    rig = make_rig(wall_ms=lambda: 1_700_000_000_000)
    view = rig.engine.views[TARGET]
    rig.hello(TARGET)
    rig.hello(TARGET)  # repeated before it heard its welcome (or queued while the coordinator was away)
    assert (view.reconnects, view.connected_since) == (0, 1_700_000_000.0)

    rig.heartbeat(TARGET)
    rig.hello(TARGET)  # the same process, on a new link
    assert view.reconnects == 1
    rig.hello(TARGET, boot="b2")  # a new process
    assert view.reconnects == 2

    rig.heartbeat(TARGET, boot="b2")
    rig.engine.on_message(TARGET, ErrorMessage(code="terminal-no_connection", message="lost", terminal=TARGET,
                                               boot_id="b2"))
    rig.hello(TARGET, boot="b2")  # it re-attached to its terminal: the same link
    assert view.reconnects == 2


def test_status_rows_carry_the_worker_and_its_link(make_rig):
    rig = make_rig(wall_ms=lambda: 1_700_000_000_000)
    rig.start([])
    rig.advance(2.0)
    rig.heartbeat(TARGET)
    rig.advance(3.0)

    [row] = [row for row in rig.engine.status.rows() if row.name == TARGET]

    assert (row.host, row.worker_version, row.worker_pid) == ("h", "x", 1)
    assert row.connected_since == 1_700_000_000.0
    assert row.last_seen == pytest.approx(1_700_000_000.0 - 3.0)
    assert row.reconnects == 0


def test_config_changes_say_what_they_change():
    base: dict[str, Any] = {"coordinator": {"state_dir": "/tmp/s"},
                            "source": {"name": "src", "backend": "sim", "path": "s", "login": 1, "server": "S"},
                            "targets": []}

    def config(*targets: dict[str, Any]) -> AppConfig:
        entries = [{"backend": "sim", "path": t["name"], "server": "S", **t} for t in targets]
        return parse_config({**base, "targets": entries}, base_dir=Path("/tmp"))

    old = config({"name": "a", "login": 2}, {"name": "b", "login": 3}, {"name": "c", "login": 4})
    new = config({"name": "a", "login": 2, "lot_multiplier": 2}, {"name": "b", "login": 5},
                 {"name": "c", "login": 4, "enabled": False}, {"name": "d", "login": 6})

    changes = config_changes(old, new)

    assert changes.describe() == [
        "added: d", "disabled: c", "entry changed (a local worker restarts, a remote one says hello again): b",
        "copy rules changed: a"]
    assert config_changes(old, old).describe() == ["nothing changed"]
