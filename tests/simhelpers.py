"""Helpers for tests that drive simulated terminals the way a trader would."""

from __future__ import annotations

from pathlib import Path

import mt5sim
from protocol.tags import parse_tag

BUY_LIMIT, SELL_LIMIT, BUY_STOP, SELL_STOP, BUY_STOP_LIMIT, SELL_STOP_LIMIT = 2, 3, 4, 5, 6, 7
ALL_PENDING_TYPES = (BUY_LIMIT, SELL_LIMIT, BUY_STOP, SELL_STOP, BUY_STOP_LIMIT, SELL_STOP_LIMIT)


def place_pending(terminal: mt5sim.Terminal, order_type: int, symbol: str = "EURUSD", volume: float = 0.1,
                  distance_points: int = 500, *, with_stops: bool = True, type_time: int = 0,
                  expiration: int = 0, magic: int = 0, comment: str = "trader") -> int:
    """Place a valid pending order ``distance_points`` away from the market; return its ticket."""
    info = terminal.symbol_info(symbol)
    tick = terminal.symbol_info_tick(symbol)
    distance = distance_points * info.point
    buy = order_type in (BUY_LIMIT, BUY_STOP, BUY_STOP_LIMIT)
    reference = tick.ask if buy else tick.bid
    below = order_type in (BUY_LIMIT, SELL_STOP, SELL_STOP_LIMIT)
    price = round(reference - distance if below else reference + distance, info.digits)
    stoplimit = 0.0
    if order_type == BUY_STOP_LIMIT:
        stoplimit = round(price - distance / 2, info.digits)
    elif order_type == SELL_STOP_LIMIT:
        stoplimit = round(price + distance / 2, info.digits)
    entry = stoplimit or price
    sl = tp = 0.0
    if with_stops:
        sl = round(entry - distance if buy else entry + distance, info.digits)
        tp = round(entry + distance if buy else entry - distance, info.digits)
    result = terminal.order_send({
        "action": mt5sim.TRADE_ACTION_PENDING, "symbol": symbol, "volume": volume, "type": order_type,
        "price": price, "stoplimit": stoplimit, "sl": sl, "tp": tp, "type_time": type_time,
        "expiration": expiration, "type_filling": mt5sim.ORDER_FILLING_RETURN, "magic": magic, "comment": comment,
    })
    assert result is not None and result.retcode == mt5sim.TRADE_RETCODE_DONE, result
    return result.order


def copies(terminal: mt5sim.Terminal) -> dict[int, object]:
    """The copier's pending copies on a target, by source ticket."""
    found = {}
    for order in terminal.orders_get() or ():
        if parse_tag(order.comment) == order.magic:
            assert order.magic not in found, f"two copies of source #{order.magic}"
            found[order.magic] = order
    return found


def create(path: Path, login: int, server: str = "Sim-Server", **options) -> mt5sim.Terminal:
    mt5sim.create_terminal(path, login=login, server=server, **options)
    return mt5sim.Terminal(path)


# ---- helpers for the synchronisation and per-target rules tests ----------------------------------------


def place_at(terminal: mt5sim.Terminal, order_type: int, price: float, *, symbol: str = "EURUSD",
             volume: float = 0.1, stoplimit: float = 0.0, sl: float = 0.0, tp: float = 0.0, type_time: int = 0,
             expiration: int = 0) -> int:
    """Place a pending order at exactly these prices (the caller makes them valid); return its ticket."""
    result = terminal.order_send({
        "action": mt5sim.TRADE_ACTION_PENDING, "symbol": symbol, "volume": volume, "type": order_type,
        "price": price, "stoplimit": stoplimit, "sl": sl, "tp": tp, "type_time": type_time,
        "expiration": expiration, "type_filling": mt5sim.ORDER_FILLING_RETURN, "comment": "trader",
    })
    assert result is not None and result.retcode == mt5sim.TRADE_RETCODE_DONE, result
    return result.order


def pending(terminal: mt5sim.Terminal, ticket: int):
    """The pending order ``ticket`` on a terminal, or None."""
    found = terminal.orders_get(ticket=ticket)
    return found[0] if found else None


def modify_order(terminal: mt5sim.Terminal, ticket: int, **changes: float) -> None:
    """TRADE_ACTION_MODIFY the way a trader does it: the order's current levels with ``changes`` applied
    (keys: price, stoplimit, sl, tp, type_time, expiration)."""
    order = pending(terminal, ticket)
    assert order is not None, f"no pending order #{ticket}"
    request = {
        "action": mt5sim.TRADE_ACTION_MODIFY, "order": ticket, "price": order.price_open,
        "stoplimit": order.price_stoplimit, "sl": order.sl, "tp": order.tp, "type_time": order.type_time,
        "expiration": order.time_expiration,
    }
    request.update(changes)
    result = terminal.order_send(request)
    assert result is not None and result.retcode == mt5sim.TRADE_RETCODE_DONE, result


def remove_order(terminal: mt5sim.Terminal, ticket: int) -> None:
    """TRADE_ACTION_REMOVE, as a person deleting the order by hand."""
    result = terminal.order_send({"action": mt5sim.TRADE_ACTION_REMOVE, "order": ticket})
    assert result is not None and result.retcode == mt5sim.TRADE_RETCODE_DONE, result


def copier_config(*targets: str, interval: float = 1.0, hello_timeout: float = 10.0, command_timeout: float = 5.0,
                  heartbeat_interval: float = 0.2, source: str = "") -> str:
    """A config file: loopback on any port, the source ``master`` (terminals/master, 1001@Sim-Server, plus
    ``source`` lines) and the given ``[[targets]]`` sections (see ``target_section``). Heartbeats come five
    times a second (not once): what they carry (server clocks, prices) reaches the coordinator sooner."""
    head = (
        "[coordinator]\n"
        'bind = "tcp://127.0.0.1:*"\n'
        'state_dir = "state"\n'
        f"interval = {interval}\n"
        f"hello_timeout = {hello_timeout}\n"
        f"command_timeout = {command_timeout}\n"
        f"heartbeat_interval = {heartbeat_interval}\n"
        "\n"
        "[source]\n"
        'name = "master"\n'
        'backend = "sim"\n'
        'path = "terminals/master"\n'
        "login = 1001\n"
        'server = "Sim-Server"\n'
        f"{source}\n"
    )
    return head + "\n".join(targets)


def target_section(name: str, login: int, settings: str = "", tables: str = "", server: str = "Sim-Server") -> str:
    """One ``[[targets]]`` entry at terminals/<name>; ``settings`` are plain keys, ``tables`` sub-tables
    such as ``[targets.orphans]`` (they must come last)."""
    return (
        "\n[[targets]]\n"
        f'name = "{name}"\n'
        'backend = "sim"\n'
        f'path = "terminals/{name}"\n'
        f"login = {login}\n"
        f'server = "{server}"\n'
        f"{settings.strip()}\n"
        f"{tables.strip()}\n"
    )


def summary_counts(output: str, target: str) -> dict[str, int]:
    """The counters of one target's line in the --once summary ("placed 1, modified 0, ...")."""
    import re

    for line in output.splitlines():
        if line.startswith(f"target {target}: ") and "NOT SYNCED" not in line:
            counts = re.findall(r"([a-z][a-z ]*?) (\d+)(?:,|$)", line[len(f"target {target}: "):])
            return {label.strip(): int(number) for label, number in counts}
    raise AssertionError(f"no summary line for target {target}:\n{output}")


def log_text(directory: Path, process: str = "coordinator") -> str:
    """A process's log file under state/logs ("" until it exists)."""
    path = directory / "state" / "logs" / f"{process}.log"
    return path.read_text(encoding="utf-8", errors="replace") if path.exists() else ""


def target_login(index: int) -> int:
    """The login of the index-th target made by ``sim_terminals`` (2001, 3001, ...)."""
    return 2001 + 1000 * index


def sim_terminals(directory: Path, *names: str, **options) -> list[mt5sim.Terminal]:
    """The source ``master`` (1001) and targets at ``directory``/terminals/<name> with ``target_login`` logins,
    all on Sim-Server; ``options`` are create_terminal keywords per name (``alpha={"balance": 10.0}``)."""
    root = directory / "terminals"
    made = [create(root / "master", 1001, **options.get("master", {}))]
    for index, name in enumerate(names):
        made.append(create(root / name, target_login(index), **options.get(name, {})))
    return made
