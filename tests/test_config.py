"""Tests for the config package: loading, defaults, every class of error and the typed model."""

from __future__ import annotations

import dataclasses
import pickle
import re
from enum import Enum
from pathlib import Path

import pytest

from config import (
    EXAMPLE_CONFIG_PATH,
    AlertsConfig,
    AppConfig,
    Backend,
    ConfigError,
    ConfigProblem,
    CoordinatorConfig,
    CopySettings,
    ExpirationFallback,
    MetricsConfig,
    OrderKind,
    OrphanPolicy,
    OrphanSettings,
    OutOfBounds,
    PositionSettings,
    PriceMode,
    Role,
    SourceClose,
    SourceFill,
    TargetConfig,
    TerminalConfig,
    VolumeMode,
    load_config,
    parse_config,
)
from config.keys import ALERTS, COORDINATOR, METRICS, ORPHANS, SOURCE, TARGET
from config.schema import Integer, String
from config.settings import (
    NO_DEFAULT,
    build,
    config_table,
    declared_settings,
    documented_default,
    key_name,
    path_setting,
    setting,
    table_of,
)
from coordinator.domain.orphans import OrphanTracker

try:
    import tomllib
except ModuleNotFoundError:  # Python 3.10
    import tomli as tomllib

# ---------------------------------------------------------------------------------------------------
# Helpers: configs are written as TOML text. Tables are dicts of key -> TOML value text, so a test
# states only what it changes; an override of None removes the key.

SOURCE_KEYS = {
    "name": '"master"',
    "backend": '"sim"',
    "path": '"terminals/master"',
    "login": "1001",
    "server": '"Sim-Server"',
}


def target_keys(index: int) -> dict[str, str]:
    """The required keys of a valid target that differs from every other default target."""
    return {
        "name": f'"broker-{index}"',
        "backend": '"sim"',
        "path": f'"terminals/broker-{index}"',
        "login": str(2001 + index),
        "server": '"Sim-Server"',
    }


def _table(header: str, keys: dict[str, str | None]) -> str:
    lines = [header] if header else []
    lines += [f"{key} = {value}" for key, value in keys.items() if value is not None]
    return "\n".join(lines)


def config_text(
    *,
    top: dict[str, str | None] | None = None,
    coordinator: dict[str, str | None] | None = None,
    source: dict[str, str | None] | None = None,
    targets: list[dict[str, str | None]] | None = None,
    with_source: bool = True,
) -> str:
    """A config file: the minimal valid one, changed by the given overrides."""
    parts = []
    if top:
        parts.append(_table("", top))  # top-level keys must come before the first table
    if coordinator is not None:
        parts.append(_table("[coordinator]", coordinator))
    if with_source:
        parts.append(_table("[source]", {**SOURCE_KEYS, **(source or {})}))
    for index, overrides in enumerate([{}] if targets is None else targets):
        parts.append(_table("[[targets]]", {**target_keys(index), **overrides}))
    return "\n\n".join(parts) + "\n"


def write(tmp_path: Path, text: str, name: str = "copier.toml") -> Path:
    path = tmp_path / name
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text, encoding="utf-8")
    return path


def load(tmp_path: Path, **overrides) -> AppConfig:
    return load_config(write(tmp_path, config_text(**overrides)))


def problems_in(tmp_path: Path, text: str) -> list[str]:
    """The ``path: message`` lines of the ConfigError that loading ``text`` must raise."""
    with pytest.raises(ConfigError) as caught:
        load_config(write(tmp_path, text))
    return [str(problem) for problem in caught.value.problems]


def problems(tmp_path: Path, **overrides) -> list[str]:
    return problems_in(tmp_path, config_text(**overrides))


ALL_ORDER_KINDS = "'buy_limit', 'sell_limit', 'buy_stop', 'sell_stop', 'buy_stop_limit', 'sell_stop_limit'"


# ---------------------------------------------------------------------------------------------------
# The example file


def test_example_config_validates():
    config = load_config(EXAMPLE_CONFIG_PATH)

    assert config.path == EXAMPLE_CONFIG_PATH.absolute()
    assert config.source.name == "master"
    assert [target.name for target in config.targets] == ["broker-a", "broker-b", "broker-c"]
    assert config.targets[0].copy.map_symbol("XAUUSD") == "GOLD"
    assert (config.targets[2].copy.volume_mode, config.targets[2].copy.fixed_lot) == (VolumeMode.FIXED, 0.1)


# Keys naming files that must exist where the config is loaded, and the schedule (the example copies live): the
# example shows them commented out.
KEYS_SHOWN_COMMENTED_OUT = ("secret_key_file", "public_key_file", "urls_env", "schedule")


def test_example_config_mentions_every_accepted_key():
    text = EXAMPLE_CONFIG_PATH.read_text(encoding="utf-8")
    shown = "|".join(KEYS_SHOWN_COMMENTED_OUT)
    data = tomllib.loads(re.sub(rf"^# ({shown}) = ", r"\1 = ", text, flags=re.MULTILINE))
    target_keys_used = set().union(*(target.keys() for target in data["targets"]))

    assert set(COORDINATOR.field_names()) <= data["coordinator"].keys()
    assert set(SOURCE.field_names()) <= data["source"].keys()
    assert set(TARGET.field_names()) <= target_keys_used
    orphan_keys_used = set().union(*(target.get("orphans", {}).keys() for target in data["targets"]))
    assert set(ORPHANS.field_names()) <= orphan_keys_used
    assert set(ALERTS.field_names()) <= data["alerts"].keys()
    assert set(METRICS.field_names()) <= data["metrics"].keys()


# The README's configuration reference: a key declared without documentation fails here

README_PATH = Path(__file__).resolve().parents[1] / "README.md"
# The tables of keys, as the README heads them; sub-tables ([targets.orphans]) are found from their declarations.
CONFIG_TABLES = {"[coordinator]": CoordinatorConfig, "[source]": TerminalConfig, "[[targets]]": CopySettings,
                 "[alerts]": AlertsConfig, "[metrics]": MetricsConfig}


def readme_configuration_tables() -> dict[str, dict[str, str]]:
    """The tables under "## Configuration": heading (``[coordinator]``) -> key -> default as written there."""
    text = README_PATH.read_text(encoding="utf-8")
    section = text.split("\n## Configuration\n", 1)[1].split("\n## ", 1)[0]
    tables: dict[str, dict[str, str]] = {}
    rows: dict[str, str] = {}
    for line in section.splitlines():
        heading = re.match(r"### `([^`]+)`", line)
        row = re.match(r"\| ([^|]+) \| ([^|]+) \|", line)
        if heading:
            rows = tables.setdefault(heading[1], {})
        elif row and "`" in row[1]:
            # "`login`, `server`" documents two keys; "`[targets.symbol_map]`" the key symbol_map.
            for key in re.findall(r"`([^`]+)`", row[1]):
                rows[key.strip("[]").rsplit(".", 1)[-1]] = row[2].replace("`", "")
    return tables


def declared_tables() -> dict[str, dict[str, str]]:
    """The same shape from the declarations: heading -> key -> its default as the documentation states it."""
    tables: dict[str, dict[str, str]] = {}

    def add(heading: str, table_class: type) -> None:
        rows = tables.setdefault(heading, {})
        for attribute, declared in declared_settings(table_class):
            if isinstance(declared.spec, type):  # a sub-table has its own heading
                add(f"[{heading.strip('[]')}.{key_name(attribute, declared)}]", declared.spec)
            else:
                rows[key_name(attribute, declared)] = documented_default(declared)

    for heading, table_class in CONFIG_TABLES.items():
        add(heading, table_class)
    return tables


def test_the_readme_documents_every_declared_key_with_its_declared_default():
    declared, documented = declared_tables(), readme_configuration_tables()

    disagreements = [
        f"{heading} {key}: declared default {default}, README: {documented.get(heading, {}).get(key, 'no row')}"
        for heading, keys in declared.items()
        for key, default in keys.items()
        if documented.get(heading, {}).get(key) != default
    ]
    not_declared = [
        f"{heading} {key}" for heading, keys in declared.items() for key in documented.get(heading, {}).keys() - keys
    ]
    assert (disagreements, not_declared) == ([], [])


def test_the_readme_reference_is_read_as_tables_of_keys_and_defaults():
    # Guards the reader above: a parser that found nothing would make the previous test pass vacuously.
    tables = readme_configuration_tables()

    assert tables["[coordinator]"]["interval"] == "5.0"
    assert tables["[source]"]["login"] == tables["[source]"]["server"] == "required"
    assert tables["[[targets]]"]["symbol_prefix"] == '""'
    assert tables["[targets.orphans]"]["policy"] == '"kill"'


def toml_value(value: object) -> object:
    """A declared default as a config file would write it."""
    if isinstance(value, Enum):
        return value.value
    if isinstance(value, frozenset):
        return sorted(toml_value(item) for item in value)
    if isinstance(value, tuple):  # the symbol map's sorted pairs
        return dict(value)
    return value


@pytest.mark.parametrize("table_class", [CoordinatorConfig, TerminalConfig, CopySettings, OrphanSettings])
def test_every_declared_default_passes_its_own_checks(table_class):
    for attribute, declared in declared_settings(table_class):
        if declared.default in (NO_DEFAULT, None) or isinstance(declared.spec, type):
            continue
        found: list[ConfigProblem] = []
        value = declared.spec.validate(toml_value(declared.default), attribute, found)

        assert (found, value) == ([], declared.default), attribute


def test_a_key_is_declared_once_and_its_schema_and_loading_follow(tmp_path):
    @config_table
    class Example:
        retries: int = setting(Integer(ge=0, le=5), default=2, doc="attempts after the first")
        cache_dir: Path = path_setting(file_default="cache", doc="relative to the config file's folder")
        colour: str = setting(String(non_empty=True), key="color", doc="the key is spelt as in the file")
        role: Role  # not a key: given when built

    table = table_of(Example)
    found: list[ConfigProblem] = []
    table.validate({"retries": 9, "colour": "red"}, "example", found)
    valid = table.validate({"color": "red"}, "example", [])

    assert table.field_names() == ("retries", "cache_dir", "color")
    assert [str(problem) for problem in found] == [
        "example.colour: unknown key (did you mean 'color'?); accepted keys: cache_dir, color, retries",
        "example.retries: must be at most 5, got 9",
        "example.color: required key is missing",
    ]
    built = build(Example, valid, tmp_path, role=Role.SOURCE)
    assert built == Example(cache_dir=tmp_path / "cache", colour="red", role=Role.SOURCE)  # retries: the default
    assert built.retries == 2


def test_a_terminal_built_by_hand_from_its_required_keys_equals_the_loaded_one(tmp_path):
    source = load(tmp_path).source

    assert source == TerminalConfig(name="master", role=Role.SOURCE, backend=Backend.SIM,
                                    path=tmp_path / "terminals" / "master", login=1001, server="Sim-Server")


# ---------------------------------------------------------------------------------------------------
# Defaults and paths


def test_minimal_config_gets_every_default(tmp_path):
    config = load(tmp_path)

    assert config == AppConfig(
        path=tmp_path / "copier.toml",
        coordinator=CoordinatorConfig(
            bind="tcp://127.0.0.1:5757",
            interval=5.0,
            state_dir=tmp_path / "state",
            hello_timeout=30.0,
            heartbeat_interval=1.0,
            worker_timeout=10.0,
            command_timeout=30.0,
            log_level="INFO",
        ),
        source=TerminalConfig(
            name="master",
            role=Role.SOURCE,
            backend=Backend.SIM,
            path=tmp_path / "terminals" / "master",
            login=1001,
            server="Sim-Server",
            password_env=None,
            remote=False,
            poll_interval=None,
            portable=False,
            connect_timeout=60.0,
            server_utc_offset=None,
        ),
        targets=(
            TargetConfig(
                terminal=TerminalConfig(
                    name="broker-0",
                    role=Role.TARGET,
                    backend=Backend.SIM,
                    path=tmp_path / "terminals" / "broker-0",
                    login=2001,
                    server="Sim-Server",
                    password_env=None,
                    remote=False,
                    poll_interval=None,
                    portable=False,
                    connect_timeout=60.0,
                    server_utc_offset=None,
                ),
                copy=CopySettings(
                    lot_multiplier=1.0,
                    min_lot=None,
                    max_lot=None,
                    order_types=frozenset(OrderKind),
                    symbol_suffix="",
                    symbol_prefix="",
                    symbol_map=(),
                    max_pending_orders=None,
                    enabled=True,
                    volume_mode=VolumeMode.MULTIPLIER,
                    fixed_lot=None,
                    volume_out_of_bounds=OutOfBounds.CLAMP,
                    price_mode=PriceMode.ABSOLUTE,
                    expiration_fallback=ExpirationFallback.GTC,
                    replace_deleted_copies=False,
                    keep_filled_copies=None,
                    orphans=OrphanSettings(policy=OrphanPolicy.KILL, check_interval=5.0, max_checks=3),
                    positions=PositionSettings(sync_sltp=True, on_source_close=SourceClose.CLOSE, partial_closes=True,
                                               on_source_fill=None, max_entry_slippage_points=20,
                                               close_deviation_points=20),
                ),
            ),
        ),
    )


def test_relative_paths_resolve_against_the_config_files_folder_not_the_working_directory(
    tmp_path, monkeypatch
):
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    monkeypatch.chdir(elsewhere)
    text = config_text(
        coordinator={"state_dir": '"../shared/state"'},
        source={"path": '"./terminals/../terminals/master"'},
        targets=[{"path": f"'{tmp_path / 'absolute' / 'broker'}'"}],
    )

    config = load_config(write(tmp_path / "configs", text))

    assert config.coordinator.state_dir == tmp_path / "shared" / "state"
    assert config.source.path == tmp_path / "configs" / "terminals" / "master"
    assert config.targets[0].terminal.path == tmp_path / "absolute" / "broker"


def test_a_relative_config_path_is_made_absolute(tmp_path, monkeypatch):
    write(tmp_path, config_text())
    monkeypatch.chdir(tmp_path)

    config = load_config("copier.toml")

    assert config.path == tmp_path / "copier.toml"
    assert config.source.path == tmp_path / "terminals" / "master"


def test_parse_config_resolves_against_base_dir_and_has_no_path(tmp_path):
    data = tomllib.loads(config_text())

    config = parse_config(data, base_dir=tmp_path)

    assert config.path is None
    assert config.coordinator.state_dir == tmp_path / "state"


def test_ints_are_accepted_where_floats_are_expected(tmp_path):
    config = load(tmp_path, coordinator={"interval": "2"}, targets=[{"lot_multiplier": "2"}])

    assert config.coordinator.interval == 2.0
    assert isinstance(config.coordinator.interval, float)
    assert isinstance(config.targets[0].copy.lot_multiplier, float)


def test_log_level_is_case_insensitive_and_stored_upper_case(tmp_path):
    assert load(tmp_path, coordinator={"log_level": '"debug"'}).coordinator.log_level == "DEBUG"


def test_every_optional_key_is_read(tmp_path):
    config = load(
        tmp_path,
        source={
            "password_env": '"MASTER_PW"',
            "remote": "true",
            "poll_interval": "0.5",
            "portable": "true",
            "connect_timeout": "15",
        },
        targets=[
            {
                "lot_multiplier": "0.5",
                "min_lot": "0.1",
                "max_lot": "0.1",
                "order_types": '["sell_stop", "buy_limit"]',
                "symbol_suffix": '".m"',
                "symbol_prefix": '"x"',
                "max_pending_orders": "0",
                "enabled": "false",
                "symbol_map": '{ "US30.cash" = "DJ30" }',
            }
        ],
    )

    source, copy = config.source, config.targets[0].copy
    assert (source.password_env, source.remote, source.poll_interval) == ("MASTER_PW", True, 0.5)
    assert (source.portable, source.connect_timeout) == (True, 15.0)
    assert (copy.lot_multiplier, copy.min_lot, copy.max_lot) == (0.5, 0.1, 0.1)
    assert copy.order_types == frozenset({OrderKind.SELL_STOP, OrderKind.BUY_LIMIT})
    assert (copy.symbol_suffix, copy.symbol_prefix) == (".m", "x")
    assert (copy.max_pending_orders, copy.enabled) == (0, False)
    assert copy.symbol_map == (("US30.cash", "DJ30"),)


# ---------------------------------------------------------------------------------------------------
# Unknown keys


def test_unknown_top_level_key_lists_the_accepted_keys(tmp_path):
    assert problems(tmp_path, top={"colour": '"red"'}) == [
        "colour: unknown key; accepted keys: alerts, coordinator, metrics, source, targets"
    ]


def test_unknown_coordinator_key_suggests_the_closest_accepted_key(tmp_path):
    assert problems(tmp_path, coordinator={"bnd": '"tcp://127.0.0.1:1"'}) == [
        "coordinator.bnd: unknown key (did you mean 'bind'?); accepted keys: bind, command_timeout, "
        "heartbeat_interval, hello_timeout, interval, log_level, schedule, schedule_clock, schedule_offset, "
        "secret_key_file, state_dir, worker_timeout"
    ]


def test_unknown_target_key_is_reported_with_its_index(tmp_path):
    found = problems(tmp_path, targets=[{}, {"lot_multipler": "2"}])

    assert len(found) == 1
    assert found[0].startswith("targets[1] (broker-1).lot_multipler: unknown key (did you mean 'lot_multiplier'?); ")
    assert "accepted keys: backend, connect_timeout, " in found[0]
    assert ", enabled, expiration_fallback, filter, fixed_lot, " in found[0]
    assert ", lot_multiplier, max_lot, " in found[0]


def test_copy_settings_are_unknown_keys_in_source(tmp_path):
    found = problems(tmp_path, source={"lot_multiplier": "2"})

    assert found == [
        "source.lot_multiplier: unknown key; accepted keys: backend, connect_timeout, login, name, "
        "password_env, path, poll_interval, portable, public_key_file, remote, server, server_utc_offset"
    ]


def test_a_password_key_explains_password_env_and_does_not_echo_the_value(tmp_path):
    found = problems(tmp_path, source={"password": '"hunter2"'})

    assert len(found) == 1
    assert found[0].startswith("source.password: unknown key (passwords never go in the config file")
    assert "password_env" in found[0]
    assert "hunter2" not in found[0]


def test_symbol_map_accepts_any_symbol_as_key(tmp_path):
    config = load(tmp_path, targets=[{"symbol_map": '{ XAUUSD = "GOLD", "US30.cash" = "DJ30", a = "b" }'}])

    assert config.targets[0].copy.symbol_map == (("US30.cash", "DJ30"), ("XAUUSD", "GOLD"), ("a", "b"))


def test_symbol_map_values_must_be_non_empty_strings(tmp_path):
    found = problems(tmp_path, targets=[{"symbol_map": '{ XAUUSD = 5, "US30.cash" = "" }'}])

    assert found == [
        "targets[0] (broker-0).symbol_map.XAUUSD: must be a string, got integer 5",
        'targets[0] (broker-0).symbol_map."US30.cash": must not be empty',
    ]


def test_symbol_map_must_be_a_table(tmp_path):
    assert problems(tmp_path, targets=[{"symbol_map": '["XAUUSD"]'}]) == [
        "targets[0] (broker-0).symbol_map: must be a table of key = value pairs, got array ['XAUUSD']"
    ]


# ---------------------------------------------------------------------------------------------------
# Wrong types


@pytest.mark.parametrize(
    ("overrides", "expected"),
    [
        ({"source": {"login": '"abc"'}}, "source.login: must be an integer, got string 'abc'"),
        ({"source": {"login": "true"}}, "source.login: must be an integer, got boolean true"),
        ({"source": {"login": "1001.0"}}, "source.login: must be an integer, got float 1001.0"),
        ({"source": {"name": "5"}}, "source.name: must be a string, got integer 5"),
        ({"source": {"remote": '"yes"'}}, "source.remote: must be true or false, got string 'yes'"),
        ({"coordinator": {"interval": "true"}}, "coordinator.interval: must be a number, got boolean true"),
        ({"coordinator": {"interval": '"5"'}}, "coordinator.interval: must be a number, got string '5'"),
        (
            {"targets": [{"max_pending_orders": "2.5"}]},
            "targets[0] (broker-0).max_pending_orders: must be an integer, got float 2.5",
        ),
        (
            {"targets": [{"order_types": '"buy_limit"'}]},
            "targets[0] (broker-0).order_types: must be an array, got string 'buy_limit'",
        ),
        (
            {"coordinator": {"state_dir": "1979-05-27T07:32:00"}},
            "coordinator.state_dir: must be a string, got date-time 1979-05-27T07:32:00",
        ),
        (
            {"top": {"source": '"master"'}, "with_source": False},
            "source: must be a table, got string 'master'",
        ),
    ],
)
def test_wrong_types_say_what_was_expected_and_what_was_received(tmp_path, overrides, expected):
    assert problems(tmp_path, **overrides) == [expected]


def test_source_written_as_an_array_of_tables_is_explained(tmp_path):
    text = config_text(with_source=False) + "\n" + _table("[[source]]", SOURCE_KEYS)

    assert problems_in(tmp_path, text) == ["source: must be a single [source] table, not an array of tables"]


# ---------------------------------------------------------------------------------------------------
# Missing keys and tables


def test_missing_required_keys_are_each_reported(tmp_path):
    found = problems(tmp_path, source={"login": None}, targets=[{"server": None, "backend": None}])

    assert found == [
        "source.login: required key is missing",
        "targets[0] (broker-0).backend: required key is missing",
        "targets[0] (broker-0).server: required key is missing",
    ]


def test_missing_source_table(tmp_path):
    assert problems(tmp_path, with_source=False) == ["source: required table [source] is missing"]


def test_no_targets(tmp_path):
    assert problems(tmp_path, targets=[]) == ["targets: at least one [[targets]] table is required"]


def test_empty_targets_array(tmp_path):
    text = config_text(targets=[]).replace("[source]", "targets = []\n\n[source]")

    assert problems_in(tmp_path, text) == ["targets: at least one [[targets]] table is required"]


def test_targets_written_as_a_single_table(tmp_path):
    text = config_text(targets=[]) + "\n" + _table("[targets]", target_keys(0))

    assert problems_in(tmp_path, text) == [
        "targets: must be an array of tables ([[targets]]), got a single table"
    ]


# ---------------------------------------------------------------------------------------------------
# Enumerations


def test_bad_backend(tmp_path):
    assert problems(tmp_path, source={"backend": '"mt4"'}) == [
        "source.backend: must be one of 'mt5', 'sim', got 'mt4'"
    ]


def test_bad_order_type_entry_is_named_by_its_index(tmp_path):
    assert problems(tmp_path, targets=[{"order_types": '["buy_limit", "buy"]'}]) == [
        f"targets[0] (broker-0).order_types[1]: must be one of {ALL_ORDER_KINDS}, got 'buy'"
    ]


def test_order_types_must_not_be_empty(tmp_path):
    assert problems(tmp_path, targets=[{"order_types": "[]"}]) == [
        "targets[0] (broker-0).order_types: must not be empty"
    ]


def test_order_types_must_not_repeat(tmp_path):
    assert problems(tmp_path, targets=[{"order_types": '["buy_limit", "sell_stop", "buy_limit"]'}]) == [
        "targets[0] (broker-0).order_types[2]: duplicate entry 'buy_limit' (also at targets[0].order_types[0])"
    ]


def test_bad_log_level(tmp_path):
    assert problems(tmp_path, coordinator={"log_level": '"verbose"'}) == [
        "coordinator.log_level: must be one of 'TRACE', 'DEBUG', 'INFO', 'SUCCESS', 'WARNING', 'ERROR', "
        "'CRITICAL', got 'verbose'"
    ]


# ---------------------------------------------------------------------------------------------------
# Ranges and formats


@pytest.mark.parametrize(
    ("overrides", "expected"),
    [
        (
            {"targets": [{"lot_multiplier": "-2"}]},
            "targets[0] (broker-0).lot_multiplier: must be greater than 0, got -2",
        ),
        ({"coordinator": {"interval": "0"}}, "coordinator.interval: must be greater than 0, got 0"),
        ({"coordinator": {"interval": "3600.5"}}, "coordinator.interval: must be at most 3600, got 3600.5"),
        (
            {"coordinator": {"heartbeat_interval": "61"}},
            "coordinator.heartbeat_interval: must be at most 60, got 61",
        ),
        (
            {"coordinator": {"hello_timeout": "-1.5"}},
            "coordinator.hello_timeout: must be greater than 0, got -1.5",
        ),
        ({"source": {"poll_interval": "0.001"}}, "source.poll_interval: must be at least 0.01, got 0.001"),
        ({"source": {"poll_interval": "11"}}, "source.poll_interval: must be at most 10, got 11"),
        ({"source": {"login": "0"}}, "source.login: must be greater than 0, got 0"),
        ({"source": {"connect_timeout": "0"}}, "source.connect_timeout: must be greater than 0, got 0"),
        ({"targets": [{"min_lot": "0"}]}, "targets[0] (broker-0).min_lot: must be greater than 0, got 0"),
        (
            {"targets": [{"max_pending_orders": "-1"}]},
            "targets[0] (broker-0).max_pending_orders: must be at least 0, got -1",
        ),
        ({"coordinator": {"interval": "nan"}}, "coordinator.interval: must be a finite number, got nan"),
        (
            {"targets": [{"lot_multiplier": "inf"}]},
            "targets[0] (broker-0).lot_multiplier: must be a finite number, got inf",
        ),
        ({"targets": [{"max_lot": "-inf"}]}, "targets[0] (broker-0).max_lot: must be a finite number, got -inf"),
        ({"source": {"server": '"  "'}}, "source.server: must not be empty"),
        ({"source": {"path": '""'}}, "source.path: must not be empty"),
    ],
)
def test_out_of_range_values(tmp_path, overrides, expected):
    assert problems(tmp_path, **overrides) == [expected]


@pytest.mark.parametrize("name", ["my broker", "", "x" * 65, "broker/a", "brøker"])
def test_terminal_names_are_limited_to_safe_characters(tmp_path, name):
    assert problems(tmp_path, source={"name": f'"{name}"'}) == [
        f"source.name: must be 1 to 64 characters from A-Z a-z 0-9 _ . -, got string {name!r}"
    ]


@pytest.mark.parametrize("name", ["..", "NUL", "com1", "con.master"])
def test_terminal_names_must_be_usable_as_file_names(tmp_path, name):
    found = problems(tmp_path, source={"name": f'"{name}"'})

    assert len(found) == 1
    assert found[0].startswith("source.name: must not ")
    assert f"got {name!r}" in found[0]


def test_accepted_terminal_names(tmp_path):
    config = load(tmp_path, source={"name": '"Master_1.live-EU"'}, targets=[{"name": f'"{"x" * 64}"'}])

    assert config.source.name == "Master_1.live-EU"


def test_a_bad_password_env_is_not_echoed_because_it_may_be_the_password(tmp_path):
    found = problems(tmp_path, source={"password_env": '"s3cr3t!pw"'})

    assert len(found) == 1
    assert found[0].startswith("source.password_env: must be the NAME of an environment variable")
    assert "s3cr3t!pw" not in found[0]


# ---------------------------------------------------------------------------------------------------
# Cross-field checks


def test_max_lot_below_min_lot(tmp_path):
    assert problems(tmp_path, targets=[{"min_lot": "0.5", "max_lot": "0.1"}]) == [
        "targets[0] (broker-0).max_lot: must be at least targets[0].min_lot (0.5), got 0.1"
    ]


def test_worker_timeout_must_exceed_heartbeat_interval(tmp_path):
    assert problems(tmp_path, coordinator={"heartbeat_interval": "2", "worker_timeout": "2"}) == [
        "coordinator.worker_timeout: must be greater than coordinator.heartbeat_interval (2.0), got 2.0"
    ]


def test_duplicate_terminal_names(tmp_path):
    found = problems(tmp_path, targets=[{"name": '"broker-a"'}, {}, {"name": '"broker-a"'}])

    assert found == ["targets[2] (broker-a).name: duplicate terminal name 'broker-a' (also used by targets[0])"]


def test_terminal_names_differing_only_in_case_are_duplicates(tmp_path):
    assert problems(tmp_path, targets=[{"name": '"MASTER"'}]) == [
        "targets[0] (MASTER).name: duplicate terminal name 'MASTER' (also used by source as 'master'; "
        "names must differ by more than letter case)"
    ]


def test_duplicate_paths_are_compared_after_resolution(tmp_path):
    found = problems(tmp_path, targets=[{"path": '"terminals/x/../../terminals/master"'}])

    master = tmp_path / "terminals" / "master"
    assert found == [f"targets[0] (broker-0).path: duplicate terminal path '{master}' (also used by source)"]


def test_duplicate_accounts(tmp_path):
    found = problems(tmp_path, targets=[{}, {"login": "1001"}])

    assert found == [
        "targets[1] (broker-1).login: duplicate account: login 1001 on server 'Sim-Server' (also used by source)"
    ]


def test_the_same_login_on_another_server_is_another_account(tmp_path):
    config = load(tmp_path, targets=[{"login": "1001", "server": '"Other-Server"'}])

    assert config.targets[0].terminal.login == config.source.login


def test_cross_field_checks_are_reported_with_the_shape_problems_in_one_round(tmp_path):
    found = problems(tmp_path, targets=[{"name": '"master"', "login": '"x"', "min_lot": "0.5", "max_lot": "0.1"}])

    assert found == [
        "targets[0] (master).login: must be an integer, got string 'x'",
        "targets[0] (master).max_lot: must be at least targets[0].min_lot (0.5), got 0.1",
        "targets[0] (master).name: duplicate terminal name 'master' (also used by source)",
    ]


def test_a_cross_field_check_stays_silent_when_one_of_its_keys_is_invalid(tmp_path):
    # The bad min_lot is reported once, by its own shape check, not again as a range problem.
    found = problems(tmp_path, targets=[{"min_lot": "-1", "max_lot": "0.1"}],
                     coordinator={"heartbeat_interval": '"x"', "worker_timeout": "0.5"})

    assert found == [
        "coordinator.heartbeat_interval: must be a number, got string 'x'",
        "targets[0] (broker-0).min_lot: must be greater than 0, got -1",
    ]


def test_a_target_without_a_valid_name_is_named_by_its_index_only(tmp_path):
    found = problems(tmp_path, targets=[{"name": '"bad name"', "lot_multiplier": "0"}])

    assert found == [
        "targets[0].name: must be 1 to 64 characters from A-Z a-z 0-9 _ . -, got string 'bad name'",
        "targets[0].lot_multiplier: must be greater than 0, got 0",
    ]


# ---------------------------------------------------------------------------------------------------
# Terminal paths: an mt5 path must be able to name terminal64.exe; a sim folder must exist when asked


def mt5_path_problems(tmp_path: Path, path: str) -> list[str]:
    return problems(tmp_path, targets=[{"backend": '"mt5"', "path": f"'{path}'"}])


@pytest.mark.parametrize(
    "path",
    [
        r"C:\MT5\Master\terminal64.exe",
        "C:/Program Files/MetaTrader 5/terminal64.exe",
        r"\\vm-host\mt5\broker-a\TERMINAL64.EXE",
        r"MT5\terminal64.exe",
        r"\\?\C:\MT5\terminal64.exe",
    ],
)
def test_windows_paths_to_terminal64_exe_are_accepted(tmp_path, path):
    config = load(tmp_path, targets=[{"backend": '"mt5"', "path": f"'{path}'"}])

    assert config.targets[0].terminal.backend is Backend.MT5


def test_an_mt5_path_to_a_folder_is_refused(tmp_path):
    assert mt5_path_problems(tmp_path, r"C:\MT5\Master") == [
        "targets[0] (broker-0).path: must be the path of the terminal's terminal64.exe with backend = \"mt5\" "
        "(a folder is not enough), e.g. 'C:\\MT5\\Master\\terminal64.exe', got 'C:\\MT5\\Master'"
    ]


@pytest.mark.parametrize(
    ("path", "expected"),
    [
        (r"C:\MT5\terminal.exe", "must be the path of the terminal's terminal64.exe"),
        (r"C:\MT5\Mas?ter\terminal64.exe", "cannot be a Windows path: it contains '?'"),
        (r"C:\MT5|x\terminal64.exe", "cannot be a Windows path: it contains '|'"),
        (r"C:\MT5\a:b\terminal64.exe", "cannot be a Windows path: a colon may only follow the drive letter"),
    ],
)
def test_mt5_paths_that_cannot_name_terminal64_exe_on_windows(tmp_path, path, expected):
    found = mt5_path_problems(tmp_path, path)

    assert len(found) == 1
    assert found[0].startswith(f"targets[0] (broker-0).path: {expected}")


def test_a_windows_absolute_path_is_kept_as_written_on_any_system(tmp_path):
    config = load(tmp_path, source={"backend": '"mt5"', "path": r"'C:\MT5\Master\terminal64.exe'"})

    assert str(config.source.path) == r"C:\MT5\Master\terminal64.exe"


def test_sim_folders_are_not_looked_at_by_default(tmp_path):
    assert load(tmp_path).source.path == tmp_path / "terminals" / "master"  # no folder: still loads


def test_missing_sim_folders_are_problems_when_asked_for_with_the_other_problems(tmp_path):
    import mt5sim

    mt5sim.create_terminal(tmp_path / "terminals" / "master", login=1001, server="Sim-Server")
    (tmp_path / "terminals" / "broker-1").mkdir(parents=True)
    text = config_text(targets=[{}, {}, {"remote": "true"}, {"enabled": "false"}, {"lot_multiplier": "0"}])

    with pytest.raises(ConfigError) as caught:
        load_config(write(tmp_path, text), check_terminal_folders=True)

    folder = tmp_path / "terminals"
    assert [str(problem) for problem in caught.value.problems] == [
        "targets[4] (broker-4).lot_multiplier: must be greater than 0, got 0",
        f"targets[0] (broker-0).path: the sim terminal folder {folder / 'broker-0'} does not exist (create it "
        "with mt5sim.create_terminal, or correct the path)",
        f"targets[1] (broker-1).path: {folder / 'broker-1'} is not a sim terminal: it holds no terminal "
        "database (create it with mt5sim.create_terminal)",
        f"targets[4] (broker-4).path: the sim terminal folder {folder / 'broker-4'} does not exist (create it "
        "with mt5sim.create_terminal, or correct the path)",
    ]


def test_a_cap_of_0_pending_orders_is_accepted_and_explained(tmp_path):
    from config.checks import config_notes

    config = load(tmp_path, targets=[{"max_pending_orders": "0"}, {"max_pending_orders": "0", "enabled": "false"}])

    assert config.targets[0].copy.max_pending_orders == 0
    assert config_notes(config) == [
        "broker-0: max_pending_orders = 0: no new copies are placed there; the copies already there are still "
        "followed (modified, and removed when their source order goes). To leave the target alone entirely use "
        "enabled = false."
    ]


# ---------------------------------------------------------------------------------------------------
# coordinator.bind


def reachable_message(endpoint: str) -> str:
    return (
        f"{endpoint!r} can be reached from other machines, so links must be authenticated: set "
        "coordinator.secret_key_file (a key pair made by mt5-copier keys new) and give every remote terminal its "
        'public_key_file (README, "Workers on other machines"), or bind a loopback (tcp://127.0.0.1:PORT, '
        "tcp://localhost:PORT, tcp://[::1]:PORT) or ipc:// endpoint"
    )


def bind_problems(tmp_path: Path, endpoint: str) -> list[str]:
    return problems(tmp_path, coordinator={"bind": f"'{endpoint}'"})


def test_bind_to_all_interfaces_without_a_key_pair_is_refused_and_explained(tmp_path):
    assert bind_problems(tmp_path, "tcp://0.0.0.0:5757") == [
        f"coordinator.bind: {reachable_message('tcp://0.0.0.0:5757')}"
    ]


@pytest.mark.parametrize(
    "endpoint",
    [
        "tcp://example.com:5757",
        "tcp://192.168.1.10:5757",
        "tcp://*:5757",
        "tcp://[::]:5757",
        "tcp://eth0:5757",
    ],
)
def test_bind_to_non_loopback_addresses_without_a_key_pair_is_refused(tmp_path, endpoint):
    assert bind_problems(tmp_path, endpoint) == [f"coordinator.bind: {reachable_message(endpoint)}"]


def test_bind_to_inproc_is_refused_because_workers_are_other_processes(tmp_path):
    found = bind_problems(tmp_path, "inproc://copier")

    assert len(found) == 1
    assert found[0].startswith("coordinator.bind: inproc:// endpoints only reach sockets inside")
    assert "workers are separate processes" in found[0]


@pytest.mark.parametrize(
    ("endpoint", "expected"),
    [
        ("127.0.0.1:5757", "malformed endpoint '127.0.0.1:5757': expected tcp://HOST:PORT or ipc://PATH"),
        ("tcp://127.0.0.1", "malformed endpoint 'tcp://127.0.0.1': missing :PORT"),
        ("tcp://:5757", "malformed endpoint 'tcp://:5757': missing host"),
        (
            "tcp://127.0.0.1:http",
            "malformed endpoint 'tcp://127.0.0.1:http': the port must be a number from 1 to 65535 or '*'",
        ),
        ("tcp://[::1:5757", "malformed endpoint 'tcp://[::1:5757': expected tcp://[IPV6]:PORT"),
        (
            "tcp://::1:5757",
            "malformed endpoint 'tcp://::1:5757': IPv6 addresses need brackets, e.g. tcp://[::1]:5757",
        ),
        ("ipc://", "malformed endpoint 'ipc://': ipc:// needs a path"),
        (
            "udp://127.0.0.1:5757",
            "unsupported transport 'udp' in 'udp://127.0.0.1:5757': expected tcp://HOST:PORT or ipc://PATH",
        ),
        (
            "tcp://127.0.0.1:0",
            "port must be from 1 to 65535 or '*' (any free port), got 0 in 'tcp://127.0.0.1:0'",
        ),
        (
            "tcp://127.0.0.1:70000",
            "port must be from 1 to 65535 or '*' (any free port), got 70000 in 'tcp://127.0.0.1:70000'",
        ),
    ],
)
def test_malformed_bind_endpoints_get_their_own_message(tmp_path, endpoint, expected):
    assert bind_problems(tmp_path, endpoint) == [f"coordinator.bind: {expected}"]


@pytest.mark.parametrize(
    "endpoint",
    [
        "tcp://127.0.0.1:5757",
        "tcp://127.1.2.3:1",
        "tcp://localhost:*",
        "tcp://LOCALHOST:65535",
        "tcp://[::1]:5757",
        "ipc:///tmp/mt5-copier.sock",
        "ipc://copier",
    ],
)
def test_accepted_bind_endpoints(tmp_path, endpoint):
    assert load(tmp_path, coordinator={"bind": f"'{endpoint}'"}).coordinator.bind == endpoint


# ---------------------------------------------------------------------------------------------------
# Reporting


def test_every_problem_in_a_file_is_reported_at_once(tmp_path):
    path = write(
        tmp_path,
        config_text(
            top={"colour": '"red"'},
            coordinator={"interval": "0", "log_level": '"loud"'},
            source={"login": '"abc"'},
            targets=[{}, {"lot_multiplier": "-2", "backend": None}],
        ),
    )

    with pytest.raises(ConfigError) as caught:
        load_config(path)

    assert str(caught.value).splitlines() == [
        f"Invalid configuration in {path} (6 problems):",
        "colour: unknown key; accepted keys: alerts, coordinator, metrics, source, targets",
        "coordinator.interval: must be greater than 0, got 0",
        "coordinator.log_level: must be one of 'TRACE', 'DEBUG', 'INFO', 'SUCCESS', 'WARNING', 'ERROR', "
        "'CRITICAL', got 'loud'",
        "source.login: must be an integer, got string 'abc'",
        "targets[1] (broker-1).backend: required key is missing",
        "targets[1] (broker-1).lot_multiplier: must be greater than 0, got -2",
    ]
    assert caught.value.source == str(path)


def test_a_single_problem_header_says_problem(tmp_path):
    with pytest.raises(ConfigError) as caught:
        parse_config({}, base_dir=tmp_path, source="inline")

    assert str(caught.value).splitlines()[0] == "Invalid configuration in inline (2 problems):"
    assert str(ConfigError([ConfigProblem("a", "b")], "x.toml")) == (
        "Invalid configuration in x.toml (1 problem):\na: b"
    )


def test_missing_file(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)

    with pytest.raises(ConfigError) as caught:
        load_config("nowhere.toml")

    assert caught.value.problems == [ConfigProblem("config", f"file not found: {tmp_path / 'nowhere.toml'}")]
    assert str(tmp_path / "nowhere.toml") in str(caught.value).splitlines()[0]


def test_a_directory_is_not_a_config_file(tmp_path):
    with pytest.raises(ConfigError) as caught:
        load_config(tmp_path)

    assert caught.value.problems[0].message.startswith(f"cannot read {tmp_path}: ")


def test_toml_syntax_error_carries_the_file_name_and_line(tmp_path):
    path = write(tmp_path, '[source]\nname = "master"\nlogin = \n')

    found = problems_in(tmp_path, path.read_text())

    assert len(found) == 1
    assert found[0].startswith(f"config: invalid TOML in {path}: ")
    assert "line 3" in found[0]


def test_a_byte_order_mark_is_tolerated(tmp_path):
    path = tmp_path / "copier.toml"
    path.write_bytes(config_text().encode("utf-8-sig"))

    assert load_config(path).source.name == "master"


def test_a_file_that_is_not_utf8_is_reported(tmp_path):
    path = tmp_path / "copier.toml"
    path.write_bytes(config_text().replace("Sim-Server", "S\xefm").encode("latin-1"))

    with pytest.raises(ConfigError) as caught:
        load_config(path)

    assert caught.value.problems[0].message.startswith(f"{path} is not UTF-8 text: ")


def test_config_error_survives_pickling(tmp_path):
    error = ConfigError([ConfigProblem("source.login", "required key is missing")], "copier.toml")

    copy = pickle.loads(pickle.dumps(error))

    assert (copy.problems, copy.source, str(copy)) == (error.problems, error.source, str(error))


# ---------------------------------------------------------------------------------------------------
# The typed model


def test_map_symbol_prefers_the_map_then_applies_prefix_and_suffix(tmp_path):
    copy = (
        load(
            tmp_path,
            targets=[{"symbol_prefix": '"x"', "symbol_suffix": '".m"', "symbol_map": '{ XAUUSD = "GOLD" }'}],
        )
        .targets[0]
        .copy
    )

    assert copy.map_symbol("XAUUSD") == "GOLD"
    assert copy.map_symbol("EURUSD") == "xEURUSD.m"


def test_map_symbol_without_settings_is_the_identity(tmp_path):
    assert load(tmp_path).targets[0].copy.map_symbol("EURUSD") == "EURUSD"


def test_order_kind_mt5_types_match_metatrader5_constants():
    from mt5sim import constants

    for kind in OrderKind:
        assert kind.mt5_type == getattr(constants, f"ORDER_TYPE_{kind.name}")
        assert OrderKind.from_mt5_type(kind.mt5_type) is kind


@pytest.mark.parametrize("order_type", [0, 1, 8, 99])
def test_non_pending_mt5_types_have_no_order_kind(order_type):
    assert OrderKind.from_mt5_type(order_type) is None


def test_enums_print_as_their_config_spelling():
    assert (str(OrderKind.BUY_STOP_LIMIT), f"{Backend.MT5}", f"{Role.TARGET}") == (
        "buy_stop_limit",
        "mt5",
        "target",
    )


def test_password_is_read_from_the_named_environment_variable_and_never_shown(tmp_path, monkeypatch):
    monkeypatch.setenv("MASTER_PW", "hunter2-secret")
    config = load(tmp_path, source={"password_env": '"MASTER_PW"'})

    assert config.source.password() == "hunter2-secret"
    assert "hunter2-secret" not in repr(config.source)
    assert "hunter2-secret" not in str(config)


def test_password_is_none_when_not_configured_or_not_set(tmp_path, monkeypatch):
    monkeypatch.delenv("MASTER_PW", raising=False)
    config = load(tmp_path, source={"password_env": '"MASTER_PW"'})

    assert config.source.password() is None
    assert config.targets[0].terminal.password() is None


def test_terminal_and_target_lookup(tmp_path):
    config = load(tmp_path, targets=[{}, {}])

    assert [terminal.name for terminal in config.terminals()] == ["master", "broker-0", "broker-1"]
    assert [terminal.role for terminal in config.terminals()] == [Role.SOURCE, Role.TARGET, Role.TARGET]
    assert config.terminal("master") is config.source
    assert config.target("broker-1") is config.targets[1]
    assert config.target("broker-1").name == "broker-1"


def test_unknown_terminal_lookups_raise_key_error_naming_the_known_ones(tmp_path):
    config = load(tmp_path)

    with pytest.raises(KeyError, match="unknown terminal 'nope'; configured terminals: master, broker-0"):
        config.terminal("nope")
    with pytest.raises(KeyError, match="unknown target 'nope'; configured targets: broker-0"):
        config.target("nope")
    with pytest.raises(KeyError, match="'master' is the source terminal, not a target"):
        config.target("master")


def test_config_objects_are_frozen_and_hashable(tmp_path):
    config = load(tmp_path, targets=[{"symbol_map": '{ XAUUSD = "GOLD" }'}])

    with pytest.raises(dataclasses.FrozenInstanceError):
        config.source.login = 1  # type: ignore[misc]
    assert hash(config) == hash(load(tmp_path, targets=[{"symbol_map": '{ XAUUSD = "GOLD" }'}]))


# ---------------------------------------------------------------------------------------------------
# Volume, price, expiration, replacement and orphan settings; the server's UTC offset


def test_the_dataclass_defaults_are_the_config_defaults(tmp_path):
    # Code may build CopySettings and OrphanSettings by hand: their defaults must not drift from the file's.
    copy = load(tmp_path).targets[0].copy
    by_hand = CopySettings(
        lot_multiplier=1.0,
        min_lot=None,
        max_lot=None,
        order_types=frozenset(OrderKind),
        symbol_suffix="",
        symbol_prefix="",
        symbol_map=(),
        max_pending_orders=None,
        enabled=True,
    )

    assert copy == by_hand
    assert copy.orphans == OrphanSettings()


def test_every_new_copy_key_is_read(tmp_path):
    config = load(
        tmp_path,
        source={"server_utc_offset": "-3.5"},
        targets=[
            {
                "server_utc_offset": "5.75",
                "volume_mode": '"fixed"',
                "fixed_lot": "0.2",
                "volume_out_of_bounds": '"skip"',
                "price_mode": '"market_distance"',
                "expiration_fallback": '"skip"',
                "replace_deleted_copies": "true",
                "keep_filled_copies": "true",
                "orphans": '{ policy = "preserve", check_interval = 2, max_checks = 1 }',
            }
        ],
    )

    copy = config.targets[0].copy
    assert config.source.server_utc_offset == -3.5
    assert config.targets[0].terminal.server_utc_offset == 5.75
    assert (copy.volume_mode, copy.fixed_lot, copy.volume_out_of_bounds) == (VolumeMode.FIXED, 0.2, OutOfBounds.SKIP)
    assert (copy.price_mode, copy.expiration_fallback) == (PriceMode.MARKET_DISTANCE, ExpirationFallback.SKIP)
    assert (copy.replace_deleted_copies, copy.keep_filled_copies) == (True, True)
    assert copy.orphans == OrphanSettings(policy=OrphanPolicy.PRESERVE, check_interval=2.0, max_checks=1)


def test_orphans_as_a_sub_table_and_partly_given(tmp_path):
    text = config_text() + "\n[targets.orphans]\nmax_checks = 5\n"

    orphans = load_config(write(tmp_path, text)).targets[0].copy.orphans

    assert orphans == OrphanSettings(policy=OrphanPolicy.KILL, check_interval=5.0, max_checks=5)


@pytest.mark.parametrize("mode", ["multiplier", "balance_ratio", "equity_ratio"])
def test_ratio_and_multiplier_volume_modes_are_accepted(tmp_path, mode):
    copy = load(tmp_path, targets=[{"volume_mode": f'"{mode}"', "lot_multiplier": "2"}]).targets[0].copy

    assert (copy.volume_mode, copy.lot_multiplier, copy.fixed_lot) == (VolumeMode(mode), 2.0, None)


@pytest.mark.parametrize(
    ("key", "allowed"),
    [
        ("volume_mode", "'multiplier', 'fixed', 'balance_ratio', 'equity_ratio'"),
        ("volume_out_of_bounds", "'clamp', 'skip'"),
        ("price_mode", "'absolute', 'market_distance'"),
        ("expiration_fallback", "'gtc', 'skip'"),
    ],
)
def test_bad_copy_enum_values(tmp_path, key, allowed):
    assert problems(tmp_path, targets=[{key: '"Fixed"'}]) == [
        f"targets[0] (broker-0).{key}: must be one of {allowed}, got 'Fixed'"
    ]


def test_bad_orphan_policy(tmp_path):
    assert problems(tmp_path, targets=[{"orphans": '{ policy = "delete" }'}]) == [
        "targets[0] (broker-0).orphans.policy: must be one of 'kill', 'preserve', got 'delete'"
    ]


@pytest.mark.parametrize("key", ["replace_deleted_copies", "keep_filled_copies"])
def test_copy_switches_must_be_booleans(tmp_path, key):
    assert problems(tmp_path, targets=[{key: '"yes"'}]) == [
        f"targets[0] (broker-0).{key}: must be true or false, got string 'yes'"
    ]


def test_fixed_volume_mode_requires_fixed_lot(tmp_path):
    assert problems(tmp_path, targets=[{"volume_mode": '"fixed"'}]) == [
        'targets[0] (broker-0).fixed_lot: required when volume_mode = "fixed"'
    ]


@pytest.mark.parametrize("mode", [None, '"multiplier"', '"balance_ratio"', '"equity_ratio"'])
def test_fixed_lot_is_refused_with_other_volume_modes(tmp_path, mode):
    assert problems(tmp_path, targets=[{}, {"volume_mode": mode, "fixed_lot": "0.1"}]) == [
        'targets[1] (broker-1).fixed_lot: only used with volume_mode = "fixed"'
    ]


def test_fixed_lot_must_be_positive(tmp_path):
    assert problems(tmp_path, targets=[{"volume_mode": '"fixed"', "fixed_lot": "0"}]) == [
        "targets[0] (broker-0).fixed_lot: must be greater than 0, got 0"
    ]


@pytest.mark.parametrize("offset", ["-12", "14", "0", "2", "-3.5", "5.75", "-9.25"])
def test_accepted_server_utc_offsets(tmp_path, offset):
    assert load(tmp_path, source={"server_utc_offset": offset}).source.server_utc_offset == float(offset)


@pytest.mark.parametrize(
    ("offset", "expected"),
    [
        ("-12.25", "must be at least -12, got -12.25"),
        ("14.25", "must be at most 14, got 14.25"),
        ("5.1", "must be a multiple of 0.25, got 5.1"),
        ("2.2", "must be a multiple of 0.25, got 2.2"),
        ('"+2"', "must be a number, got string '+2'"),
    ],
)
def test_bad_server_utc_offsets(tmp_path, offset, expected):
    assert problems(tmp_path, targets=[{"server_utc_offset": offset}]) == [
        f"targets[0] (broker-0).server_utc_offset: {expected}"
    ]


def test_unknown_orphans_key_lists_the_accepted_ones(tmp_path):
    assert problems(tmp_path, targets=[{"orphans": '{ max_check = 2 }'}]) == [
        "targets[0] (broker-0).orphans.max_check: unknown key (did you mean 'max_checks'?); "
        "accepted keys: check_interval, max_checks, policy"
    ]


@pytest.mark.parametrize(
    ("orphans", "expected"),
    [
        ("{ max_checks = 0 }", "targets[0] (broker-0).orphans.max_checks: must be at least 1, got 0"),
        ("{ max_checks = 2.5 }", "targets[0] (broker-0).orphans.max_checks: must be an integer, got float 2.5"),
        ("{ check_interval = -1.5 }", "targets[0] (broker-0).orphans.check_interval: must be at least 0, got -1.5"),
        ('"kill"', "targets[0] (broker-0).orphans: must be a table, got string 'kill'"),
    ],
)
def test_bad_orphan_settings(tmp_path, orphans, expected):
    assert problems(tmp_path, targets=[{"orphans": orphans}]) == [expected]


def test_an_orphan_check_interval_of_0_means_a_check_at_every_reconciliation(tmp_path):
    orphans = load(tmp_path, targets=[{"orphans": "{ check_interval = 0 }"}]).targets[0].copy.orphans

    assert orphans.check_interval == 0.0
    tracker = OrphanTracker("broker-0", orphans, keep_filled_copies=False)
    tracker.check(1000.0, [], "snapshot 1")
    assert tracker.due(1000.0)  # due again at once: the next reconciliation checks again


def test_orphans_is_not_a_source_key(tmp_path):
    found = problems(tmp_path, source={"orphans": '{ policy = "kill" }'})

    assert len(found) == 1
    assert found[0].startswith("source.orphans: unknown key; accepted keys: ")


def test_new_enums_print_as_their_config_spelling():
    assert [str(member) for member in (VolumeMode.BALANCE_RATIO, OutOfBounds.SKIP, PriceMode.MARKET_DISTANCE)] == [
        "balance_ratio",
        "skip",
        "market_distance",
    ]
    assert f"{ExpirationFallback.GTC} {OrphanPolicy.PRESERVE}" == "gtc preserve"


# ---- [targets.positions] and the older keep_filled_copies --------------------------------------------------


def _target_with(**copy_keys: object) -> dict:
    return {"source": {"name": "s", "backend": "sim", "path": "s", "login": 1, "server": "S"},
            "targets": [{"name": "t", "backend": "sim", "path": "t", "login": 2, "server": "S", **copy_keys}]}


@pytest.mark.parametrize(("keys", "expected"), [
    ({}, SourceFill.REMOVE),
    ({"keep_filled_copies": True}, SourceFill.KEEP),
    ({"keep_filled_copies": False}, SourceFill.REMOVE),
    ({"positions": {"on_source_fill": "market"}}, SourceFill.MARKET),
    ({"positions": {"on_source_fill": "keep"}}, SourceFill.KEEP),
])
def test_on_source_fill_is_read_from_either_key(tmp_path, keys, expected):
    config = parse_config(_target_with(**keys), base_dir=tmp_path)
    assert config.targets[0].copy.source_fill is expected


def test_saying_both_keep_filled_copies_and_on_source_fill_is_a_configuration_error(tmp_path):
    with pytest.raises(ConfigError) as raised:
        parse_config(_target_with(keep_filled_copies=True, positions={"on_source_fill": "market"}), base_dir=tmp_path)
    assert [(problem.path, problem.message) for problem in raised.value.problems] == [
        ("targets[0] (t).positions.on_source_fill",
         "say either this or keep_filled_copies (the older key for the same choice) in this target, not both")]


def test_a_misspelt_position_key_is_named_with_a_suggestion(tmp_path):
    with pytest.raises(ConfigError) as raised:
        parse_config(_target_with(positions={"close_deviation_point": 5}), base_dir=tmp_path)
    [problem] = raised.value.problems
    assert problem.path == "targets[0] (t).positions.close_deviation_point"
    assert "did you mean 'close_deviation_points'" in problem.message
