"""Which ZeroMQ endpoints the coordinator may bind to, and which of them other machines can reach.

Anyone who can reach the coordinator's socket could command trading terminals, unless links are
authenticated (coordinator.secret_key_file: CurveZMQ, only the configured keys get in). So an endpoint other
machines can reach (TCP on anything but a loopback address) is accepted only with secret_key_file; that rule
compares two keys and lives in ``config.checks``. Here: the endpoint's form, and whether it is local.
"""

from __future__ import annotations

import ipaddress
import re

LOCAL_ENDPOINTS = "a loopback (tcp://127.0.0.1:PORT, tcp://localhost:PORT, tcp://[::1]:PORT) or ipc:// endpoint"

_PORT = re.compile(r"[0-9]+")
_EXPECTED_FORM = "expected tcp://HOST:PORT or ipc://PATH"


def bind_endpoint_problem(endpoint: str) -> str | None:
    """Why ``endpoint`` is not an acceptable coordinator bind address, or None when it is (it may still need
    secret_key_file: ``is_local_endpoint``)."""
    transport, separator, address = endpoint.partition("://")
    if not separator:
        return f"malformed endpoint {endpoint!r}: {_EXPECTED_FORM}"
    if transport == "ipc":
        return None if address else f"malformed endpoint {endpoint!r}: ipc:// needs a path"
    if transport == "inproc":
        return (
            "inproc:// endpoints only reach sockets inside the coordinator process and workers are "
            f"separate processes; use tcp://127.0.0.1:PORT or ipc://PATH, got {endpoint!r}"
        )
    if transport != "tcp":
        return f"unsupported transport {transport!r} in {endpoint!r}: {_EXPECTED_FORM}"
    return _tcp_problem(endpoint, address)


def _tcp_problem(endpoint: str, address: str) -> str | None:
    if address.startswith("["):
        close = address.find("]")
        if close < 0 or not address[close + 1 :].startswith(":"):
            return f"malformed endpoint {endpoint!r}: expected tcp://[IPV6]:PORT"
        host, port = address[1:close], address[close + 2 :]
        bracketed = True
    else:
        host, separator, port = address.rpartition(":")
        if not separator:
            return f"malformed endpoint {endpoint!r}: missing :PORT"
        bracketed = False
    if not host:
        return f"malformed endpoint {endpoint!r}: missing host"
    if ":" in host and not bracketed:
        return f"malformed endpoint {endpoint!r}: IPv6 addresses need brackets, e.g. tcp://[::1]:5757"
    if port != "*":
        if not _PORT.fullmatch(port):
            return f"malformed endpoint {endpoint!r}: the port must be a number from 1 to 65535 or '*'"
        if not 1 <= int(port) <= 65535:
            return f"port must be from 1 to 65535 or '*' (any free port), got {port} in {endpoint!r}"
    return None


def is_local_endpoint(endpoint: str) -> bool:
    """Only this machine can reach ``endpoint`` (an ipc:// socket, or TCP on a loopback address); call it on
    an endpoint ``bind_endpoint_problem`` accepts."""
    transport, _, address = endpoint.partition("://")
    if transport != "tcp":
        return transport == "ipc"
    if address.startswith("["):
        return _is_loopback(address[1 : address.find("]")], bracketed=True)
    return _is_loopback(address.rpartition(":")[0], bracketed=False)


def reachable_bind_problem(endpoint: str) -> str:
    """The problem with binding ``endpoint``, which other machines can reach, without secret_key_file."""
    return (f"{endpoint!r} can be reached from other machines, so links must be authenticated: set "
            "coordinator.secret_key_file (a key pair made by mt5-copier keys new) and give every remote terminal "
            f'its public_key_file (README, "Workers on other machines"), or bind {LOCAL_ENDPOINTS}')


def _is_loopback(host: str, *, bracketed: bool) -> bool:
    if not bracketed and host.lower() == "localhost":
        return True
    try:
        address = ipaddress.ip_address(host)
    except ValueError:  # a host name or a network interface name
        return False
    # Brackets are for IPv6 only; an IPv4 address is never bracketed in a ZeroMQ endpoint.
    return address.is_loopback and (address.version == 6) == bracketed


# ---- the metrics and status page's HTTP listen address ([metrics] listen) ----------------------------------


def listen_address_problem(listen: str) -> str | None:
    """Why ``listen`` is not a "HOST:PORT" the coordinator's HTTP server can bind, or None when it is."""
    try:
        split_listen_address(listen)
    except ValueError as e:
        return str(e)
    return None


def split_listen_address(listen: str) -> tuple[str, int]:
    """(host, port) of "HOST:PORT" or "[IPV6]:PORT"; ValueError saying what is wrong."""
    expected = f'expected "HOST:PORT" such as "127.0.0.1:9464" (an IPv6 address in brackets), got {listen!r}'
    if listen.startswith("["):
        close = listen.find("]")
        if close < 0 or not listen[close + 1 :].startswith(":"):
            raise ValueError(expected)
        host, port = listen[1:close], listen[close + 2 :]
    else:
        host, separator, port = listen.rpartition(":")
        if not separator or ":" in host:
            raise ValueError(expected)
    if not host:
        raise ValueError(expected + "; the host is missing")
    if not _PORT.fullmatch(port) or not 1 <= int(port) <= 65535:
        raise ValueError(expected + "; the port must be a number from 1 to 65535")
    return host, int(port)


def is_loopback_host(host: str) -> bool:
    """Only this machine reaches ``host`` (localhost, 127.0.0.0/8, ::1)."""
    if host.lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:  # a host name: it may resolve to anything
        return False
