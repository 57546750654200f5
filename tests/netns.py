"""Separate machines for end-to-end tests: Linux network namespaces on one bridge.

The coordinator's machine holds a bridge at 198.18.0.1/24 (198.18.0.0/15 is reserved for network tests,
RFC 2544); every other machine is a namespace joined to that bridge by a veth pair, at 198.18.0.N, its
end of the pair named ``eth0`` so a test can cut its link (interface down) and restore it. Processes run
in a machine with ``ip netns exec``, which execs the command: the process id is the program's own.

Creating namespaces needs root and iproute2; where the host does not allow it, ``make_lan`` skips the
test with the reason.
"""

from __future__ import annotations

import contextlib
import itertools
import os
import shutil
import subprocess
import sys
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field

import pytest

COORDINATOR_ADDRESS = "198.18.0.1"
_PREFIX_LENGTH = 24
_serial = itertools.count()


def _ip(*args: str) -> None:
    completed = subprocess.run(["ip", *args], capture_output=True, text=True, timeout=10)
    if completed.returncode != 0:
        raise RuntimeError(f"ip {' '.join(args)} failed: {completed.stderr.strip()}")


@dataclass
class Machine:
    namespace: str
    address: str
    link: str = "eth0"  # its end of the veth pair (in its namespace)

    def command(self, argv: Sequence[str]) -> list[str]:
        """``argv`` run inside this machine."""
        return ["ip", "netns", "exec", self.namespace, *argv]

    def cut(self) -> None:
        """Pull its cable: the interface goes down, connections over it hang (no reset reaches anyone)."""
        _ip("-n", self.namespace, "link", "set", self.link, "down")

    def restore(self) -> None:
        _ip("-n", self.namespace, "link", "set", self.link, "up")


@dataclass
class Lan:
    """A coordinator machine and worker machines, on one bridge."""

    tag: str
    coordinator: Machine
    machines: list[Machine] = field(default_factory=list)

    def machine(self) -> Machine:
        """A new machine joined to the coordinator's bridge."""
        index = len(self.machines) + 1
        namespace = f"{self.tag}m{index}"
        ours, theirs = f"{self.tag}v{index}", f"{self.tag}p{index}"
        _ip("netns", "add", namespace)
        machine = Machine(namespace, f"198.18.0.{10 + index}")
        self.machines.append(machine)  # deleted at the end even if the set-up below fails
        _ip("link", "add", ours, "type", "veth", "peer", "name", theirs)
        _ip("link", "set", ours, "netns", namespace)
        _ip("link", "set", theirs, "netns", self.coordinator.namespace)
        _ip("-n", namespace, "link", "set", ours, "name", machine.link)
        _ip("-n", namespace, "addr", "add", f"{machine.address}/{_PREFIX_LENGTH}", "dev", machine.link)
        _ip("-n", namespace, "link", "set", machine.link, "up")
        _ip("-n", namespace, "link", "set", "lo", "up")
        _ip("-n", self.coordinator.namespace, "link", "set", theirs, "master", "br0")
        _ip("-n", self.coordinator.namespace, "link", "set", theirs, "up")
        return machine

    def delete(self) -> None:
        for machine in [*self.machines, self.coordinator]:
            with contextlib.suppress(RuntimeError, subprocess.TimeoutExpired):
                _ip("netns", "del", machine.namespace)


def _unavailable() -> str | None:
    if not sys.platform.startswith("linux"):
        return "network namespaces are Linux only"
    if os.geteuid() != 0:
        return "creating network namespaces needs root (CI runs as root)"
    if shutil.which("ip") is None:
        return "iproute2's ip command is not installed"
    return None


@contextlib.contextmanager
def make_lan() -> Iterator[Lan]:
    """A coordinator machine with its bridge; skips the test where namespaces cannot be made here."""
    why = _unavailable()
    if why:
        pytest.skip(why)
    tag = f"mc{os.getpid() % 100000}{next(_serial)}"  # unique across parallel test processes; short for ifnames
    namespace = f"{tag}c"
    try:
        _ip("netns", "add", namespace)
    except RuntimeError as e:
        pytest.skip(f"this host does not allow network namespaces: {e}")
    lan = Lan(tag, Machine(namespace, COORDINATOR_ADDRESS, link="br0"))
    try:
        _ip("-n", namespace, "link", "set", "lo", "up")
        _ip("-n", namespace, "link", "add", "br0", "type", "bridge")
        _ip("-n", namespace, "addr", "add", f"{COORDINATOR_ADDRESS}/{_PREFIX_LENGTH}", "dev", "br0")
        _ip("-n", namespace, "link", "set", "br0", "up")
        yield lan
    finally:
        lan.delete()
