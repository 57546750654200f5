"""What a worker runs: its terminal, its link and its folders, from either kind of config file.

A worker file (``worker.toml``, a worker on another machine) names its terminal and its link and nothing else;
its role is the coordinator's to say. The coordinator's own config names every terminal: ``--terminal`` picks
one, and the coordinator starts its local workers that way. Both end up as one ``WorkerPlan``; whatever is
wrong with them is a ``PlanError``, a configuration error (exit 2: no restart mends it).
"""

from __future__ import annotations

import argparse
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

from config import AppConfig, Backend, load_config
from config.worker_file import is_worker_file, load_worker_file
from config.worker_model import WorkerFileConfig
from protocol.curve import CurveClient, KeyFileError, load_public_key_file, load_secret_key_file, local_worker_key_path


class PlanError(Exception):
    """The worker cannot run as configured; ``str()`` says why and what to do."""


class TerminalSettings(Protocol):
    """A terminal's keys, as both kinds of config file give them (``TerminalConfig``, ``WorkerTerminalConfig``)."""

    @property
    def name(self) -> str: ...
    @property
    def backend(self) -> Backend: ...
    @property
    def path(self) -> Path: ...
    @property
    def login(self) -> int: ...
    @property
    def server(self) -> str: ...
    @property
    def password_env(self) -> str | None: ...
    @property
    def poll_interval(self) -> float | None: ...
    @property
    def portable(self) -> bool: ...
    @property
    def connect_timeout(self) -> float: ...
    def password(self) -> str | None: ...


@dataclass(frozen=True)
class WorkerPlan:
    terminal: TerminalSettings
    role: str  # "" from a worker file: the coordinator's Welcome says it
    worker_file: bool
    endpoint: str
    state_dir: Path  # locks/ and logs/
    log_level: str
    curve: CurveClient | None  # None: the link is not encrypted
    # Until the coordinator's Welcome says its own (a worker file does not know them).
    heartbeat_interval: float = 1.0
    worker_timeout: float = 10.0


def plan_worker(args: argparse.Namespace) -> WorkerPlan:
    """The plan for ``mt5-copier worker`` with these arguments; ``ConfigError`` or ``PlanError`` when there is
    none."""
    if is_worker_file(args.config):
        return _from_worker_file(load_worker_file(args.config), args)
    return _from_coordinator_config(load_config(args.config), args)


def _from_worker_file(config: WorkerFileConfig, args: argparse.Namespace) -> WorkerPlan:
    terminal = config.terminal
    if args.terminal is not None and args.terminal != terminal.name:
        raise PlanError(f"--terminal {args.terminal}, but {config.path} is the worker file of terminal "
                        f"{terminal.name}: leave --terminal out, or give this terminal's worker file")
    curve = None
    link = config.link
    secret, server = link.secret_key_file, link.coordinator_key_file
    if secret is not None and server is not None:
        try:
            curve = CurveClient(keys=load_secret_key_file(secret), server_public=load_public_key_file(server))
        except KeyFileError as e:
            raise PlanError(str(e)) from None
    return WorkerPlan(terminal=terminal, role="", worker_file=True, endpoint=args.connect or link.connect,
                      state_dir=config.worker.state_dir, log_level=config.worker.log_level, curve=curve)


def _from_coordinator_config(config: AppConfig, args: argparse.Namespace) -> WorkerPlan:
    names = ", ".join(terminal.name for terminal in config.terminals())
    if args.terminal is None:
        raise PlanError(f"{config.path} is the coordinator's config, which names every terminal ({names}): say "
                        "which one this worker drives with --terminal NAME, or give a worker file (worker.toml)")
    try:
        terminal = config.terminal(args.terminal)
    except KeyError as e:
        raise PlanError(str(e.args[0] if e.args else e)) from None
    coordinator = config.coordinator
    endpoint = args.connect or coordinator.bind
    if endpoint.endswith(":*"):
        raise PlanError(f"coordinator.bind {endpoint} picks a random port: pass --connect with the real endpoint")
    curve = None
    secret_key_file = coordinator.secret_key_file
    if secret_key_file is not None:
        if terminal.remote:
            raise PlanError(
                f"terminal {terminal.name} is remote and the coordinator's links are encrypted: its worker runs from "
                "a worker file (worker.toml) on its own machine, with its own key pair (mt5-copier keys new), whose "
                "secret key is not in the coordinator's config. See README, \"Workers on other machines\"")
        # A local worker: the key pair the coordinator generated for it, and the coordinator's own public key.
        try:
            curve = CurveClient(keys=load_secret_key_file(local_worker_key_path(coordinator.state_dir, terminal.name)),
                                server_public=load_secret_key_file(secret_key_file).public)
        except KeyFileError as e:
            raise PlanError(str(e)) from None
    return WorkerPlan(terminal=terminal, role=terminal.role.value, worker_file=False, endpoint=endpoint,
                      state_dir=coordinator.state_dir, log_level=coordinator.log_level, curve=curve,
                      heartbeat_interval=coordinator.heartbeat_interval, worker_timeout=coordinator.worker_timeout)
