"""``mt5-copier import-config``: MT5-Order-Copier's config.py, read without running it, becomes a TOML config that
passes check-config, with every setting it cannot carry over noted and no password written or printed.

The fixtures in tests/data/seed/ are modelled on the seed system's two layouts: ``sample_config.py`` (its sample
file: login/password/server/path, and every dict it has), ``spec_config.py`` (its own config.py: MT5_ACCOUNT/...,
one terminal shared by every account, expressions, functions, and a ``raise SystemExit`` that would end the test
run if the file were ever executed), ``minimal_config.py`` and ``broken_config.py`` (a syntax error).
"""

from __future__ import annotations

import re
import textwrap
from pathlib import Path

import pytest

try:
    import tomllib
except ModuleNotFoundError:  # Python 3.10
    import tomli as tomllib

from config import OrderKind, OrphanPolicy, SourceClose, load_config
from config.seed_import import SeedConfigError, import_seed_config
from config.toml_text import toml_key, toml_string, toml_table, toml_value
from coordinator.cli.app import main
from coordinator.cli.import_config import render_toml

SEED_DIR = Path(__file__).parent / "data" / "seed"
SAMPLE, SPEC, MINIMAL, BROKEN = (SEED_DIR / f"{name}_config.py" for name in ("sample", "spec", "minimal", "broken"))
# Every secret the fixtures hold: none may reach the TOML, stdout or stderr.
SECRETS = ("Src-pa55word!", "TargetA-secret#1", 'Aggr"essive', "Spec-Target-Pw-2", "Spec-Target-Pw-3",
           "minimal-source-pw", "minimal-target-pw", "broken-source-pw", "smtp-app-password-42", "XXXXSECRET")

SOURCE = """
SOURCE_TERMINAL = {
    'login': 1001, 'password': 'pw-source', 'server': 'Demo-Server', 'path': r'C:\\MT5\\Master\\terminal64.exe',
}
"""


def target(name: str = "follower", login: int = 2002, **extra: object) -> str:
    """One TARGET_TERMINALS entry as config.py text, with extra keys as Python literals."""
    keys = {"login": login, "password": "pw-target", "server": "Demo-Server",
            "path": f"C:\\MT5\\{name}\\terminal64.exe", **extra}
    return f"{name!r}: {{" + ", ".join(f"{key!r}: {value!r}" for key, value in keys.items()) + "},"


def seed_text(*targets: str, extra: str = "") -> str:
    return SOURCE + "TARGET_TERMINALS = {\n" + "\n".join(targets) + "\n}\n" + textwrap.dedent(extra)


def cli(capsys: pytest.CaptureFixture[str], *args: object) -> tuple[int, str, str]:
    code = main([str(arg) for arg in args])
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def imported(capsys: pytest.CaptureFixture[str], tmp_path: Path, seed: Path) -> tuple[dict, str, str]:
    """Import ``seed`` into tmp_path/copier.toml; check-config must pass it. The TOML as a dict, its text, stdout."""
    out = tmp_path / "copier.toml"
    code, stdout, stderr = cli(capsys, "import-config", seed, "--out", out)
    assert (code, stderr) == (0, "")
    text = out.read_text(encoding="utf-8")
    for secret in SECRETS:
        assert secret not in text and secret not in stdout
    code, checked, problems = cli(capsys, "check-config", "--config", out)
    assert (code, problems) == (0, ""), problems
    assert checked.startswith(f"{out}: valid")
    return tomllib.loads(text), text, stdout


def notes_of(stdout: str) -> str:
    """The notes the command printed, unwrapped (one space between words), for matching whole sentences."""
    return re.sub(r"\s+", " ", stdout.split("Not carried over, or different here", 1)[1])


def test_the_sample_layout_becomes_a_config_that_passes_check_config(capsys, tmp_path):
    document, text, _stdout = imported(capsys, tmp_path, SAMPLE)

    assert document["coordinator"] == {"bind": "tcp://127.0.0.1:5757", "state_dir": "state", "log_level": "DEBUG",
                                       "schedule": "M5", "schedule_offset": 60, "schedule_clock": "server"}
    assert document["source"] == {
        "name": "source", "backend": "mt5", "path": "C:\\Program Files\\MetaTrader 5\\terminal64.exe",
        "login": 51234567, "server": "AlphaMarkets-Demo", "password_env": "MT5_PASSWORD_SOURCE",
        "connect_timeout": 10.0,
    }
    broker_a, aggressive = document["targets"]
    assert broker_a == {
        "name": "Broker_A_live", "backend": "mt5",
        # It shared the source's terminal: a folder of its own (noted below).
        "path": "C:\\Program Files\\MetaTrader 5 - Broker_A_live\\terminal64.exe",
        "login": 61234567, "server": "BetaBroker-Live", "password_env": "MT5_PASSWORD_BROKER_A_LIVE",
        "connect_timeout": 15.0, "lot_multiplier": 0.5, "min_lot": 0.01, "max_lot": 10.0,
        "scale_by_contract_size": False,
        "order_types": ["buy_limit", "sell_limit", "buy_stop", "sell_stop"],
        "max_pending_orders": 20,
        "symbol_map": {"EURUSD": "EURUSD", "XAUUSD": "GOLD", "NAT.GAS": "NGAS.cash"},
        "orphans": {"policy": "preserve", "max_checks": 5},
        "positions": {"on_source_close": "keep"},
        # SYMBOL_FILTERS go to every target; ORDER_TYPE_MAPPINGS only to targets copying stop limits.
        "filter": {"symbols": ["EUR*", "XAU*", "US30"], "exclude_symbols": ["*_test*", "*_demo*"]},
    }
    assert aggressive["path"] == "D:\\MT5\\Aggressive\\terminal64.exe"
    assert aggressive["order_types"] == [kind.value for kind in OrderKind]
    assert "max_pending_orders" not in aggressive  # enabled: False
    assert aggressive["orphans"] == {"policy": "kill", "max_checks": 1, "check_interval": 2}
    assert aggressive["positions"] == {"on_source_close": "close"}
    assert aggressive["filter"] == broker_a["filter"]
    # BUY_LIMIT -> BUY_STOP is refused by the copier's own check, so it is not written (a note says why).
    assert aggressive["order_type_map"] == {"buy_stop_limit": "buy_stop", "sell_stop_limit": "sell_stop"}
    assert "'C:\\Program Files\\MetaTrader 5\\terminal64.exe'" in text  # Windows paths as literal strings
    assert '"NAT.GAS" = "NGAS.cash"' in text  # a dotted symbol is a quoted key, not a sub-table

    config = load_config(tmp_path / "copier.toml")
    copy = config.target("aggressive").copy
    assert dict(copy.order_type_map) == {OrderKind.BUY_STOP_LIMIT: OrderKind.BUY_STOP,
                                         OrderKind.SELL_STOP_LIMIT: OrderKind.SELL_STOP}
    assert copy.orphans.policy is OrphanPolicy.KILL and copy.positions.on_source_close is SourceClose.CLOSE
    assert config.target("Broker_A_live").copy.filter.exclude_symbols == ("*_test*", "*_demo*")


def test_the_sample_layouts_notes_say_what_was_not_carried_over_and_why(capsys, tmp_path):
    _document, text, stdout = imported(capsys, tmp_path, SAMPLE)
    notes = notes_of(stdout)

    for expected in (
        "LOGGING_CONFIG (line 104) is not carried over (its level is carried over as [coordinator] log_level)",
        "SYSTEM_CONFIG (line 112) is not carried over",
        "PERFORMANCE_CONFIG (line 136) is not carried over",
        "NOTIFICATION_CONFIG (line 143) is not carried over (notifications are enabled there): alerts go to [alerts] "
        "urls",
        "DEVELOPMENT_CONFIG (line 162) is not carried over (dry_run is True there: the file written here is not a dry "
        "run): for a dry run, mt5-copier run --config FILE --once --dry-run",
        "VALIDATION_RULES (line 170) is not carried over",
        "ORDER_TYPE_MAPPINGS['BUY_LIMIT'] (line 127): not carried over: order_type_map.buy_limit: a buy limit waits "
        "below the market",
        "counted schedule boundaries on this computer's clock",
        "Broker_A_live: TARGET_TERMINALS['Broker A (live)'] is named 'Broker_A_live'",
        "Broker_A_live: shares its terminal (C:\\Program Files\\MetaTrader 5\\terminal64.exe) with source",
        "Broker_A_live: max_pending_orders = 20: mt5-copier places copies up to the cap, oldest source order first",
        'aggressive: kill_orphaned_positions = True: [targets.positions] on_source_close = "close"',
        "copies MT5-Order-Copier placed on the targets (magic = a source ticket, no comment) are not mt5-copier's",
    ):
        assert expected in notes
    assert notes.count("ORDER_TYPE_MAPPINGS['BUY_LIMIT']") == 1  # a global dict's refusal is said once
    # The same notes head the file, as comments, and the file says where it came from.
    assert text.startswith(f"# mt5-copier configuration imported from MT5-Order-Copier's {SAMPLE}\n")
    assert "# - NOTIFICATION_CONFIG (line 143) is not carried over" in text
    assert all(line.startswith("#") or not line.strip() or "=" in line or line.startswith("[")
               for line in text.splitlines())


def test_the_spec_layout_is_read_without_running_the_file(capsys, tmp_path):
    # spec_config.py ends with raise SystemExit: were it run, the test run would end here.
    document, _text, stdout = imported(capsys, tmp_path, SPEC)
    notes = notes_of(stdout)

    source, (terminal_2, terminal_3) = document["source"], document["targets"]
    assert (source["login"], source["server"]) == (123456789, "Tickmill-Demo")
    assert source["password_env"] == "SEED_SOURCE_PASSWORD"  # os.getenv("SEED_SOURCE_PASSWORD") in config.py
    assert source["path"] == "C:\\Program Files\\MetaTrader 5\\terminal64.exe"
    # Every account used that one terminal: each target gets a folder of its own.
    assert terminal_2["path"] == "C:\\Program Files\\MetaTrader 5 - terminal_2\\terminal64.exe"
    assert terminal_3["path"] == "C:\\Program Files\\MetaTrader 5 - terminal_3\\terminal64.exe"
    assert terminal_2["symbol_map"] == {"BTCUSD": "BTCUSD.x", "USTEC": "NAS100.x"}
    assert terminal_2["orphans"] == {"policy": "kill", "max_checks": 1, "check_interval": 1}
    assert terminal_2["max_pending_orders"] == 30
    assert terminal_3["name"] == "terminal_3"
    assert "lot_multiplier" not in terminal_3  # 0.25 * 2 is an expression
    assert terminal_3["orphans"] == {"policy": "kill"}  # max_orphan_checks 0: the copier needs at least 1
    assert "schedule" not in document["coordinator"] and document["coordinator"]["log_level"] == "INFO"

    assert "SEED_SOURCE_PASSWORD" in stdout and "already reads it from this variable (line 9)" in stdout
    assert re.search(r"MT5_PASSWORD_TERMINAL_2 +terminal_2: account 987654321 on Tickmill-Demo", stdout)
    for expected in (
        "terminal_3: TARGET_TERMINALS['terminal 3']['lot_multiplier'] (line 51) is not a literal value (Python "
        "would have to run it): not carried over",
        "terminal_3: TARGET_TERMINALS['terminal 3']['orphan_management']['max_orphan_checks'] (line 57): not "
        "carried over: orphans.max_checks: must be at least 1, got 0",
        "ENABLE_CONTINUOUS_MODE (line 69), CONTINUOUS_DELAY_SECONDS and CONTINUOUS_MAX_RUNTIME_HOURS: not carried "
        "over: mt5-copier is live",
        "SCHEDULED_EXECUTION (line 73): a run every 300 s is not carried over",
        "SCHEDULE_TIMEFRAME 'M5' (line 66) is not carried over: ENABLE_SCHEDULING is not True",
    ):
        assert expected in notes


def test_the_minimal_config(capsys, tmp_path):
    document, _text, stdout = imported(capsys, tmp_path, MINIMAL)

    assert document["coordinator"] == {"bind": "tcp://127.0.0.1:5757", "state_dir": "state"}
    (follower,) = document["targets"]
    assert follower == {
        "name": "follower", "backend": "mt5", "path": "C:\\MT5\\Follower\\terminal64.exe", "login": 2002,
        "server": "Demo-Server", "password_env": "MT5_PASSWORD_FOLLOWER", "scale_by_contract_size": False,
        "orphans": {"policy": "preserve"}, "positions": {"on_source_close": "keep"},
    }
    notes = notes_of(stdout)
    assert "follower: TARGET_TERMINALS['follower'] has no allowed_order_types" in notes
    assert 'no kill_orphaned_orders: MT5-Order-Copier keeps orphans by default: orphans.policy = "preserve"' in notes


def test_a_file_that_is_not_a_seed_configuration_exits_2_and_writes_nothing(capsys, tmp_path):
    out = tmp_path / "copier.toml"

    code, stdout, stderr = cli(capsys, "import-config", BROKEN, "--out", out)
    assert (code, stdout) == (2, "")
    assert "cannot be read as an MT5-Order-Copier configuration" in stderr
    assert "is not valid Python" in stderr and "at line" in stderr
    assert "broken-source-pw" not in stderr

    code, _, stderr = cli(capsys, "import-config", tmp_path / "missing.py", "--out", out)
    assert code == 2 and f"file not found: {tmp_path / 'missing.py'}" in stderr

    no_targets = tmp_path / "config.py"
    no_targets.write_text(SOURCE + "TARGET_TERMINALS = {\n    # 'a': {...},\n}\n")
    code, _, stderr = cli(capsys, "import-config", no_targets, "--out", out)
    assert code == 2 and "TARGET_TERMINALS (line 5) is empty: no terminal to copy to" in stderr
    assert not out.exists()


def test_out_is_never_replaced_without_force_nor_the_input(capsys, tmp_path):
    out = tmp_path / "copier.toml"
    out.write_text("# edited by hand\n")

    code, stdout, stderr = cli(capsys, "import-config", MINIMAL, "--out", out)
    assert (code, stdout) == (2, "")
    assert "already exists: it is not replaced" in stderr and "--force" in stderr
    assert out.read_text() == "# edited by hand\n"

    code, _, _ = cli(capsys, "import-config", MINIMAL, "--out", out, "--force")
    assert code == 0 and out.read_text().startswith("# mt5-copier configuration imported")

    seed = tmp_path / "config.py"
    seed.write_bytes(MINIMAL.read_bytes())
    code, _, stderr = cli(capsys, "import-config", seed, "--out", seed, "--force")
    assert code == 2 and "is the file being imported" in stderr
    assert seed.read_bytes() == MINIMAL.read_bytes()


@pytest.mark.parametrize(
    ("password", "variable"),
    [
        ("os.getenv('BROKER_PW')", "BROKER_PW"),
        ("os.environ['BROKER_PW']", "BROKER_PW"),
        ("os.environ.get('BROKER_PW', '')", "BROKER_PW"),
        ("'lit' + 'eral'", "MT5_PASSWORD_FOLLOWER"),  # an expression: a variable of our own, never its text
    ],
)
def test_a_password_read_from_the_environment_keeps_its_variable(password, variable):
    text = "import os\n" + seed_text(target().replace("'pw-target'", password))

    result = import_seed_config(text)

    assert result.document["targets"][0]["password_env"] == variable
    assert all("'eral'" not in note.text and "'lit'" not in note.text for note in result.notes)


def test_the_source_may_be_given_as_module_level_names():
    text = textwrap.dedent("""
        MT5_ACCOUNT = 1001
        MT5_PASSWORD = 'pw-source'
        MT5_SERVER = 'Demo-Server'
        MT5_TERMINAL_PATH = 'C:/MT5/Master/terminal64.exe'
        TARGET_TERMINALS = {'follower': {'MT5_ACCOUNT': 2002, 'MT5_SERVER': 'Demo-Server',
                                         'MT5_TERMINAL_PATH': 'C:/MT5/master/terminal64.exe'}}
    """)

    result = import_seed_config(text)

    source, (follower,) = result.document["source"], result.document["targets"]
    assert (source["login"], source["password_env"]) == (1001, "MT5_PASSWORD_SOURCE")
    assert result.passwords[0].line == 3
    assert "password_env" not in follower  # none in config.py: the terminal's saved password
    # The same terminal as Windows sees it (letter case and slashes aside): a folder of its own.
    assert follower["path"] == "C:\\MT5\\master - follower\\terminal64.exe"
    assert any(note.text.startswith("shares its terminal (C:/MT5/master/terminal64.exe) with source")
               for note in result.notes)
    assert result.layout == "MT5_ACCOUNT/MT5_PASSWORD/MT5_SERVER/MT5_TERMINAL_PATH"


def test_a_key_it_needs_that_python_would_have_to_run_is_an_error_naming_the_line():
    text = seed_text(target().replace("2002", "int('2002')"))

    with pytest.raises(SeedConfigError) as raised:
        import_seed_config(text)

    assert raised.value.problems == ["TARGET_TERMINALS['follower']['login'] (line 6) is not a literal value (Python "
                                     "would have to run it): write the value itself"]


@pytest.mark.parametrize(
    ("text", "problem"),
    [
        ("x = 1\n", "config.py has no SOURCE_TERMINAL: no terminal to copy from"),
        (SOURCE + "TARGET_TERMINALS = load()\n", "TARGET_TERMINALS (line 5) is not a literal (Python would have to run "
                                                 "it): it cannot be read without running the file"),
        (seed_text("'a': {'login': 5, 'server': 's'},"), "TARGET_TERMINALS['a'] (line 6) has no path or "
                                                         "MT5_TERMINAL_PATH"),
        (seed_text(target(MT5_ACCOUNT=3003)), "TARGET_TERMINALS['follower'] (line 6) has both login and MT5_ACCOUNT, "
                                              "with different values: keep one"),
        # A value the copier refuses and cannot do without: no file.
        (seed_text(target(path="C:\\MT5\\Follower")), "TARGET_TERMINALS['follower']['path'] (line 6): targets[0] "
                                                      "(follower).path: must be the path of the terminal's "
                                                      "terminal64.exe"),
        ("SOURCE_TERMINAL = {\0}", "config.py is not valid Python"),
    ],
)
def test_what_cannot_be_read_as_a_seed_configuration(text, problem):
    with pytest.raises(SeedConfigError) as raised:
        import_seed_config(text)

    assert any(line.startswith(problem) for line in raised.value.problems), raised.value.problems


def test_values_the_copier_refuses_are_left_out_with_its_reason(tmp_path):
    text = seed_text(
        target(lot_multiplier=0, min_lot_size=0.5, max_lot_size=0.1, allowed_order_types=["BUY_LIMIT", "MARKET"],
               max_pending_orders={"enabled": True, "max_orders": -1}),
        extra="""
        ENABLE_SCHEDULING = True
        SCHEDULE_TIMEFRAME = 'M10'
        SCHEDULE_OFFSET_SECONDS = 30
        SYMBOL_FILTERS = {'include_patterns': [], 'exclude_patterns': ['*_x'], 'case_sensitive': True}
        TARGET_TERMINALS['follower']['lot_multiplier'] = 3
        """)

    result = import_seed_config(text, base_dir=tmp_path)

    follower = result.document["targets"][0]
    assert "lot_multiplier" not in follower and "max_pending_orders" not in follower
    assert (follower["min_lot"], "max_lot" in follower) == (0.5, False)
    assert follower["order_types"] == ["buy_limit"]
    assert follower["filter"] == {"exclude_symbols": ["*_x"]}  # an empty include list is "all": left out
    assert "schedule" not in result.document["coordinator"]
    notes = [note.text for note in result.notes]
    assert "line 13 changes TARGET_TERMINALS after it is assigned: not followed (only TARGET_TERMINALS = {...} itself "\
           "is read); put the change in that literal" in notes
    assert any(text.startswith("TARGET_TERMINALS['follower']['lot_multiplier'] (line 6): not carried over: "
                               "lot_multiplier: must be greater than 0") for text in notes)
    assert any(text.startswith("TARGET_TERMINALS['follower']['max_lot_size'] (line 6): not carried over: max_lot: "
                               "must be at least") for text in notes)
    assert any(text.startswith("SCHEDULE_TIMEFRAME 'M10' (line 10) is not a timeframe mt5-copier schedules on (M1 M5 "
                               "M15 M30 H1 H4 D1): no schedule carried over") for text in notes)
    assert not any("SCHEDULE_OFFSET_SECONDS" in text for text in notes)
    assert any("'MARKET' is not a pending order type" in text for text in notes)
    assert any("case_sensitive'] (line 12) is True: mt5-copier's symbol patterns ignore letter case" in text
               for text in notes)


def test_names_are_made_valid_and_unique_and_so_are_password_variables():
    text = seed_text(*(target(name, login=3000 + index)
                       for index, name in enumerate(["source", "CON", "a b", "a_b", "A.B", "é"])))

    result = import_seed_config(text)

    names = [terminal["name"] for terminal in result.document["targets"]]
    assert names == ["source-2", "target_CON", "a_b", "a_b-2", "A.B", "target"]
    variables = [password.variable for password in result.passwords]
    assert variables == ["MT5_PASSWORD_SOURCE", "MT5_PASSWORD_SOURCE_2", "MT5_PASSWORD_TARGET_CON", "MT5_PASSWORD_A_B",
                         "MT5_PASSWORD_A_B_2", "MT5_PASSWORD_A_B_3", "MT5_PASSWORD_TARGET"]


def test_the_toml_text_reads_back_as_the_document(tmp_path):
    document = {"source": {"name": "x", "path": "C:\\it's\\terminal64.exe", "quote": 'a "b" \\ c\n\t\x7f é 😀',
                           "n": 3, "f": 0.1, "tiny": 1e-05, "yes": True, "list": ["a", 1.5],
                           "map": {"NAT.GAS": "N", "": "empty", "sub": {"k": "v"}}}}

    text = "\n".join(toml_table("source", document["source"])) + "\n"

    assert tomllib.loads(text) == document
    assert toml_string("C:\\MT5\\terminal64.exe") == "'C:\\MT5\\terminal64.exe'"
    assert toml_string("plain") == '"plain"'
    assert toml_key("NAT.GAS") == '"NAT.GAS"' and toml_key("EURUSD") == "EURUSD"
    assert toml_value(10.0) == "10.0" and toml_value(False) == "false"

    result = import_seed_config(SAMPLE.read_text(), base_dir=tmp_path)
    assert tomllib.loads(render_toml(result, SAMPLE, tmp_path / "copier.toml")) == result.document
