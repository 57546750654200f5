"""The risk guards' judgements (coordinator/domain/risk.py): the lots the copier holds on a target, min equity,
drawdown from the peak, and [targets.risk] in the config."""

from __future__ import annotations

import pytest

from config import ConfigError, RiskSettings
from config.loader import parse_config
from coordinator.domain.actions import Action, ActionKind, CopyTicket, SourceTicket
from coordinator.domain.link_lifecycle import Link, LinkStatus
from coordinator.domain.risk import drawdown_problem, held_volume, known_equity, min_equity_problem
from tests.enginekit import copy_of, order, position_of


def placing(source: int, volume: float, kind: ActionKind = ActionKind.PLACE) -> Action:
    return Action(kind=kind, source_ticket=SourceTicket(source), symbol="EURUSD", ticket=CopyTicket(0), volume=volume)


def test_held_volume_counts_the_copiers_pending_copies_and_positions_only():
    a, b = order(1, volume=0.3), order(2, volume=0.2)
    manual = order(50, volume=5.0)  # not a copy: not the copier's
    total = held_volume([copy_of(a, 901), manual], [position_of(b, 902)], {}, [])
    assert total == 0.5


def test_held_volume_counts_what_is_on_its_way_and_what_the_snapshot_does_not_show_yet():
    a, b = order(1, volume=0.3), order(2, volume=0.2)
    links = {2: Link(source_ticket=2, copy_ticket=902, volume=0.2)}  # placed, not in the snapshot yet
    assert held_volume([copy_of(a, 901)], [], links, [placing(3, 0.4)]) == pytest.approx(0.9)
    # A replacement in flight counts the larger of its new volume and the copy it replaces, never both.
    assert held_volume([copy_of(a, 901)], [], {}, [placing(1, 0.5, ActionKind.REPLACE)]) == 0.5
    assert held_volume([copy_of(a, 901)], [], {}, [placing(1, 0.1, ActionKind.REPLACE)]) == 0.3
    # A link no longer pending (filled, its position shown; or removed) adds nothing of its own.
    done = {1: Link(source_ticket=1, copy_ticket=901, status=LinkStatus.REMOVED, volume=0.3)}
    assert held_volume([], [position_of(b, 902)], done, []) == 0.2


def test_unknown_equity_judges_nothing():
    assert known_equity(0.0, 0.0) is None
    assert known_equity(1000.0, 0.0) == 0.0
    settings = RiskSettings(min_equity=2000.0, max_drawdown_percent=20.0)
    assert min_equity_problem(settings, None) is None and drawdown_problem(settings, 10_000.0, None) is None


def test_min_equity():
    settings = RiskSettings(min_equity=2000.0)
    assert min_equity_problem(settings, 1890.0) == "min_equity 2000: equity 1890.00"
    assert min_equity_problem(settings, 2000.0) is None
    assert min_equity_problem(RiskSettings(), 1.0) is None


def test_drawdown_from_the_peak():
    settings = RiskSettings(max_drawdown_percent=20.0)
    assert drawdown_problem(settings, 10_000.0, 8_001.0) is None
    assert drawdown_problem(settings, 10_000.0, 8_000.0) == \
        "max_drawdown_percent 20: equity 8000.00 is 20.0% below its peak 10000.00"
    assert drawdown_problem(settings, None, 1.0) is None
    assert drawdown_problem(RiskSettings(), 10_000.0, 1.0) is None


def config_with(risk: dict) -> dict:
    return {"coordinator": {"state_dir": "state"},
            "source": {"name": "s", "backend": "sim", "path": "s", "login": 1, "server": "S"},
            "targets": [{"name": "t", "backend": "sim", "path": "t", "login": 2, "server": "S", "risk": risk}]}


def test_targets_risk_is_read_and_checked(tmp_path):
    config = parse_config(config_with({"max_total_volume": 5, "min_equity": 2000.0, "max_drawdown_percent": 20}),
                          base_dir=tmp_path)
    assert config.targets[0].copy.risk == RiskSettings(max_total_volume=5.0, min_equity=2000.0,
                                                       max_drawdown_percent=20.0)
    assert parse_config(config_with({}), base_dir=tmp_path).targets[0].copy.risk == RiskSettings()
    with pytest.raises(ConfigError) as raised:
        parse_config(config_with({"max_drawdown_percent": 100, "max_total_volume": 0, "min_equiti": 1}),
                     base_dir=tmp_path)
    text = str(raised.value)
    assert "max_drawdown_percent: must be less than 100" in text
    assert "max_total_volume: must be greater than 0" in text
    assert "min_equiti: unknown key (did you mean 'min_equity'?)" in text
