import time
import pytest
from tests.simhelpers import create, place_pending, copies, BUY_LIMIT, SELL_STOP, BUY_STOP_LIMIT, SELL_LIMIT

CONFIG = """
[coordinator]
bind = "tcp://127.0.0.1:*"
state_dir = "state"
hello_timeout = 20
command_timeout = 5
heartbeat_interval = 0.5
worker_timeout = 3

[source]
name = "master"
backend = "sim"
path = "terminals/master"
login = 1001
server = "Sim-Server"

[[targets]]
name = "alpha"
backend = "sim"
path = "terminals/alpha"
login = 2001
server = "Sim-Server"
symbol_suffix = ".m"

[[targets]]
name = "beta"
backend = "sim"
path = "terminals/beta"
login = 3001
server = "Sim-Server"
"""

@pytest.mark.parametrize("point", ["after-intent", "after-send", "after-result", "before-order-send", "after-order-send", "mid-batch"])
def test_x(copier, point):
    root = copier.directory / "terminals"
    master = create(root / "master", 1001)
    alpha = create(root / "alpha", 2001, suffix=".m")
    beta = create(root / "beta", 3001)
    copier.write_config(CONFIG)
    for t in (BUY_LIMIT, SELL_STOP, BUY_STOP_LIMIT, SELL_LIMIT):
        place_pending(master, t)
    if point == "after-send":
        alpha.set_latency(0.5)
    t0 = time.monotonic()
    r = copier.once(env={"MT5_COPIER_CRASH": point})
    print("FIRST", r.code, time.monotonic() - t0, len(copies(alpha)), len(copies(beta)))
    print(r.output[-3000:])
    alpha.set_latency(0)
    t0 = time.monotonic()
    r = copier.once()
    print("SECOND", r.code, time.monotonic() - t0, len(copies(alpha)), len(copies(beta)))
    print(r.output[-3000:])
