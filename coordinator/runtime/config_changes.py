"""What a new config changes for a running coordinator, and what of it only a restart can apply (a reload).

Pure: two configs in, the differences out, by terminal name. A terminal's entry is split in two: what its worker
reads (its terminal, its account, how it polls: a change restarts a local worker, or resets a remote one's
session) and what the coordinator alone reads (copy rules, a configured server clock: applied at the next
plan). Anything not in ``RUNTIME_COORDINATOR_KEYS`` needs a restart, so a key added later is safe by default.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

from config import AppConfig, TargetConfig, TerminalConfig

# The [coordinator] keys read where they are used, so a reload applies them: ``interval`` (the scheduler's
# next full reconciliation), ``hello_timeout`` (the wait for terminals added by a reload), ``command_timeout``
# (the next commands' deadlines and the ledger's timeouts), ``schedule``, ``schedule_offset``, ``schedule_clock``
# (the engine's schedule gate starts over: its first run is at the next boundary of the new schedule).
RUNTIME_COORDINATOR_KEYS = frozenset({"interval", "hello_timeout", "command_timeout", "schedule", "schedule_offset",
                                      "schedule_clock"})
# Why each of the others needs a restart (a key missing from both lists is treated as needing one).
RESTART_COORDINATOR_KEYS = {
    "bind": "the coordinator's socket is bound once, at start-up",
    "state_dir": "the state folder is locked and opened once, at start-up",
    "secret_key_file": "the coordinator's key is loaded once, at start-up",
    "heartbeat_interval": "every worker was told it in its welcome",
    "worker_timeout": "every worker was told it in its welcome",
    "log_level": "the console log is set up once, at start-up",
}
# What the coordinator alone reads of a terminal's entry: a change reaches no worker.
COORDINATOR_ONLY_TERMINAL_KEYS = frozenset({"server_utc_offset"})


@dataclass(frozen=True)
class ConfigChanges:
    """The differences between the running config and a new one, by terminal name."""

    added: tuple[str, ...] = ()  # targets to start: new entries, or disabled ones enabled
    removed: tuple[str, ...] = ()  # targets no longer in the config: their workers stop
    disabled: tuple[str, ...] = ()  # targets still in the config with enabled = false: their workers stop
    restarted: tuple[str, ...] = ()  # running terminals whose worker reads a changed entry (the source too)
    rules_changed: tuple[str, ...] = ()  # running targets whose copy rules (or coordinator-only keys) changed
    coordinator_keys: tuple[str, ...] = ()  # [coordinator] keys that changed
    needs_restart: tuple[str, ...] = ()  # why the new config cannot be applied without a restart, one per change

    @property
    def stopped(self) -> tuple[str, ...]:
        """Targets whose worker stops: removed or disabled."""
        return self.removed + self.disabled

    @property
    def anything(self) -> bool:
        return bool(self.added or self.stopped or self.restarted or self.rules_changed or self.coordinator_keys)

    def describe(self) -> list[str]:
        """One line per kind of change, for the log and the ``reload`` command."""
        lines = []
        for label, names in (("added", self.added), ("removed", self.removed), ("disabled", self.disabled),
                             ("entry changed (a local worker restarts, a remote one says hello again)", self.restarted),
                             ("copy rules changed", self.rules_changed),
                             ("[coordinator] keys changed", self.coordinator_keys)):
            if names:
                lines.append(f"{label}: {', '.join(names)}")
        return lines or ["nothing changed"]


def config_changes(old: AppConfig, new: AppConfig) -> ConfigChanges:
    """What applying ``new`` over the running ``old`` does (``needs_restart`` empty: it can be applied)."""
    coordinator_keys = tuple(
        field.name for field in dataclasses.fields(old.coordinator)
        if getattr(old.coordinator, field.name) != getattr(new.coordinator, field.name, None))
    needs_restart = [
        f"coordinator.{key}: {RESTART_COORDINATOR_KEYS.get(key, 'read once, at start-up')} (a restart applies it)"
        for key in coordinator_keys if key not in RUNTIME_COORDINATOR_KEYS
    ]
    if old.alerts != new.alerts:
        needs_restart.append("alerts: the alert URLs and min_interval are read once, at start-up (a restart applies "
                             "them)")
    if old.metrics != new.metrics:
        needs_restart.append("metrics.listen: the HTTP server binds once, at start-up (a restart applies it)")
    if old.source.name != new.source.name:
        needs_restart.append(f"source.name: the source terminal is renamed ({old.source.name} -> "
                             f"{new.source.name}) (a restart applies it)")
    old_running = _running_targets(old)
    new_running = _running_targets(new)
    new_names = {target.name for target in new.targets}
    restarted, rules_changed = [], []
    if old.source.name == new.source.name:
        if _worker_entry(old.source) != _worker_entry(new.source):
            restarted.append(new.source.name)
        elif old.source != new.source:
            rules_changed.append(new.source.name)
    for name, target in new_running.items():
        before = old_running.get(name)
        if before is None:
            continue
        if _worker_entry(before.terminal) != _worker_entry(target.terminal):
            restarted.append(name)
        elif before != target:
            rules_changed.append(name)
    return ConfigChanges(
        added=tuple(name for name in new_running if name not in old_running),
        removed=tuple(name for name in old_running if name not in new_names),
        disabled=tuple(name for name in old_running if name in new_names and name not in new_running),
        restarted=tuple(restarted),
        rules_changed=tuple(rules_changed),
        coordinator_keys=coordinator_keys,
        needs_restart=tuple(needs_restart),
    )


def _running_targets(config: AppConfig) -> dict[str, TargetConfig]:
    """The targets a worker runs for (enabled), by name, in file order."""
    return {target.name: target for target in config.targets if target.copy.enabled}


def _worker_entry(terminal: TerminalConfig) -> dict[str, object]:
    """What a terminal's worker reads of its entry (everything but the coordinator-only keys)."""
    return {field.name: getattr(terminal, field.name) for field in dataclasses.fields(terminal)
            if field.name not in COORDINATOR_ONLY_TERMINAL_KEYS}
