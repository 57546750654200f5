"""Nothing a peer sends or does crashes the coordinator's hub (issue 7, point 17).

libzmq 4.3.5 aborts the process (``Assertion failed: !_io_error (src/stream_engine_base.cpp:310)``) when a
connection stopped at the receive high-water mark is hung up and then has to write; ROUTER_HANDOVER with two
connections claiming one routing id got there within seconds. Each scenario runs in a subprocess, so an abort
fails the test instead of killing pytest.
"""

from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
SECONDS = 5.0

# A hub behind a busy engine (it reads in bursts), peers that ping at the ZMTP level every millisecond:
# one keeps the routing id b"alpha", a second b"alpha" and an anonymous one connect, flood valid and
# malformed frames for 0.3 s and hang up, over and over. The valid ones are answered "hello-required".
ABUSE = textwrap.dedent("""
    import sys, threading, time
    import zmq
    from coordinator.runtime.hub import Hub
    from protocol import ErrorMessage, Heartbeat, encode

    seconds = float(sys.argv[1])
    hub = Hub("tcp://127.0.0.1:*")
    stop = threading.Event()

    def peers():
        context = zmq.Context()
        def dealer(routing_id):
            socket = context.socket(zmq.DEALER)
            socket.linger = 0
            if routing_id:
                socket.setsockopt(zmq.ROUTING_ID, routing_id)
            socket.setsockopt(zmq.HEARTBEAT_IVL, 1)
            socket.connect(hub.endpoint)
            return socket
        valid, junk = encode(Heartbeat(sent_at_ms=1)), [b"junk"]
        first = dealer(b"alpha")
        while not stop.is_set():
            others = [dealer(b"alpha"), dealer(b"")]
            until = time.monotonic() + 0.3
            while time.monotonic() < until and not stop.is_set():
                for socket in (first, *others):
                    for index in range(300):
                        try:
                            socket.send_multipart(valid if index % 2 else junk, zmq.DONTWAIT)
                        except zmq.Again:
                            break
                time.sleep(0.001)
            for socket in others:
                socket.close()
        context.destroy(linger=0)

    thread = threading.Thread(target=peers, daemon=True)
    thread.start()
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        for name, message in hub.poll(10):  # what the engine answers a worker that has not said hello
            hub.send(name, ErrorMessage(code="hello-required", message="send hello first"))
        time.sleep(0.03)  # the engine's work between two polls
    stop.set()
    thread.join(5)
    hub.close()
    print("survived", hub.dropped > 0)
""")


def test_peers_flooding_pinging_and_fighting_over_a_routing_id_never_crash_the_hub():
    completed = subprocess.run(
        [sys.executable, "-c", ABUSE, str(SECONDS)], cwd=REPO, capture_output=True, text=True,
        timeout=SECONDS + 30,
    )
    output = completed.stdout + completed.stderr
    assert completed.returncode == 0, f"the hub process died with {completed.returncode}: {output[-2000:]}"
    assert "survived True" in completed.stdout, output[-2000:]
