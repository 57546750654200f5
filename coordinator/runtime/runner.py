"""Runs the coordinator: binds the hub, starts the workers, and drives the engine once or forever."""

from __future__ import annotations

import signal
import sys
import time
from collections.abc import Callable
from pathlib import Path

from loguru import logger

from config import AppConfig, ConfigError
from config.exit_codes import ExitCode
from coordinator import __version__
from coordinator.domain.alert_rules import AlertContext
from coordinator.domain.events import CoordinatorStarted, CoordinatorStopped
from coordinator.persistence.state import StateError, StateStore
from coordinator.runtime import collector
from coordinator.runtime.alerts import Alerts, AlertTeller, alerts_from_config
from coordinator.runtime.dry_run import DryRun
from coordinator.runtime.engine import Engine
from coordinator.runtime.full_plans import FullPlanPace
from coordinator.runtime.hub import Hub
from coordinator.runtime.instance_lock import AnotherCoordinatorRunning, CoordinatorLock
from coordinator.runtime.kill_switch import REMOVE_COPIES, KillSwitch, refused
from coordinator.runtime.link_keys import prepare_link_keys
from coordinator.runtime.operator_requests import Request, RequestInbox
from coordinator.runtime.reload import reload_config
from coordinator.runtime.reload_requests import RELOAD, ReloadRequest, ReloadResult
from coordinator.runtime.summary import once_exit_code, render_dry_run, render_summary
from coordinator.runtime.supervisor import Supervisor, WorkerExit, allowed_silence
from coordinator.runtime.web import WebServer
from protocol import Shutdown
from protocol.curve import KeyFileError
from protocol.messages import SHUTDOWN_COORDINATOR_STOPPING

ONCE_MAX_ROUNDS = 10
# The coordinator's timers and watches (the workers' processes, hung workers, commands unanswered, operators'
# requests, the status) run at most this often, not after every message: 20 workers' heartbeats alone wake it 20
# times a second, and each round polls every worker process and the request folder. Each of them is measured in
# seconds (a restart delay, command_timeout, a person's request): a fifth of a second late changes nothing, and
# an idle coordinator wakes 5 times a second for them instead of 20. Messages are handled the moment they arrive.
HOUSEKEEPING_SECONDS = 0.2
LOOP_TICK_MS = 200  # the longest wait for a message: the timers above are run within it (a signal ends it at once)


class Coordinator:
    def __init__(self, config: AppConfig, *, once: bool, dry_run: bool = False, worker_console_level: str = "WARNING",
                 print_summary: Callable[[str], None] = print) -> None:
        """``dry_run`` (with ``once``): plan every target and print the plan, sending nothing
        (coordinator/runtime/dry_run.py)."""
        if config.path is None:
            raise ValueError("the coordinator needs a config file on disk: workers load it too")
        if dry_run and not once:
            raise ValueError("a dry run is one sync: run --once --dry-run")
        self.config = config
        self.once = once
        self.dry_run = dry_run
        self._dry_run: DryRun | None = None  # a dry run's engine: its walls and its scratch state
        self.worker_console_level = worker_console_level
        self._print = print_summary
        self._stop_reason = ""
        self.engine: Engine | None = None
        self._hub: Hub | None = None
        self._supervisor: Supervisor | None = None
        self._exit_codes: dict[str, int] = {}  # the last exit code of each local worker that exited
        self._requests: RequestInbox | None = None  # what operators' commands ask (reload, remove-copies)
        self._kill_switch: KillSwitch | None = None
        self._reload_signalled = False  # SIGHUP: applied on the loop, never inside the signal handler
        self._alerts = Alerts((), min_interval=0)  # none until run() reads [alerts]
        self._crash = ""  # why the coordinator crashed, for its last alert
        self._web: WebServer | None = None  # [metrics] listen: /metrics and the status page
        self._next_housekeeping = 0.0  # monotonic: when pump runs the timers and watches again
        self._wake_on_signals = False  # install_signal_handlers: a signal also ends the loop's wait

    def signals_handled_here(self) -> None:
        """``install_signal_handlers`` gave this coordinator the process's signals: a stop or a reload then also
        ends the wait for messages at once (``Hub.wake_on_signals``), rather than at its end (LOOP_TICK_MS)."""
        self._wake_on_signals = True

    def request_stop(self, reason: str) -> None:
        self._stop_reason = self._stop_reason or reason

    def request_reload(self) -> None:
        """Re-read the config file at the loop's next turn (SIGHUP)."""
        self._reload_signalled = True

    def _serve_requests(self) -> None:
        """Serve what operators' commands asked (coordinator/runtime/operator_requests.py) and SIGHUP, on this
        thread, between two messages; answer the removals that finished."""
        assert self._requests is not None and self._kill_switch is not None
        asked = self._requests.take()
        self._serve_reloads([request for request in asked if request.kind == RELOAD])
        for request in asked:
            if request.kind == REMOVE_COPIES:
                answer = refused("a run --once does not take remove-copies: it ends in a moment; run it against "
                                 "`mt5-copier run`") if self.once else self._kill_switch.ask(request)
                if answer is not None:
                    self._requests.answer(request, answer.to_body())
            elif request.kind != RELOAD:
                why = f"this coordinator does not serve {request.kind!r} requests" if request.kind else \
                    "the request could not be read"
                # In the words every command reads: a reload's and a removal's refusal.
                self._requests.answer(request, {"applied": False, "problems": [why], "refused": why})
        for request, answer in self._kill_switch.step():
            self._requests.answer(request, answer.to_body())

    def _serve_reloads(self, requests: list[Request]) -> None:
        """Apply what SIGHUP or ``mt5-copier reload`` asked for."""
        assert self._requests is not None and self._hub is not None and self._supervisor is not None
        assert self.engine is not None
        asked: list[tuple[Request | None, Path | None]] = [
            (r, ReloadRequest.from_request(r).config) for r in requests]
        if self._reload_signalled:
            self._reload_signalled = False
            asked.append((None, None))
        for request, path in asked:
            if self.once or (request is not None and path is None):
                why = "a run --once does not reload" if self.once else "the reload request could not be read"
                logger.warning("reload refused: {}", why)
                result = ReloadResult(applied=False, problems=(why,))
            else:
                logger.info("reloading the config{}", " (SIGHUP)" if request is None else "")
                try:
                    reloaded = reload_config(self.config, self.engine, self._hub, self._supervisor, requested=path)
                    self.config = reloaded.config or self.config
                    result = reloaded.result
                except Exception as e:  # a bug, or a worker that cannot be spawned: copying must go on
                    logger.exception("the reload failed part-way; the coordinator goes on with what was applied")
                    self.config = self.engine.config  # the runner runs what the engine runs
                    result = ReloadResult(applied=False, problems=(f"the reload failed part-way ({e}); the "
                                                                   "coordinator's log says what was applied",))
            if request is not None:
                self._requests.answer(request, result.to_body())

    @property
    def stopping(self) -> bool:
        return bool(self._stop_reason)

    def run(self) -> ExitCode:
        """Hold the state folder for the coordinator's whole life, then serve. Two coordinators on one folder
        would both own its copy links and both start workers for the same terminals: the second one exits."""
        if not self.dry_run:  # a dry run changes nothing, so it has nothing to tell
            try:
                self._alerts = alerts_from_config(self.config.alerts, str(self.config.path))
            except ConfigError as e:
                logger.critical("{}", e)
                return ExitCode.CONFIG_ERROR
        state_dir = self.config.coordinator.state_dir
        lock = CoordinatorLock(state_dir)
        try:
            lock.acquire()
        except AnotherCoordinatorRunning as e:
            logger.critical("{}", e)
            return ExitCode.FATAL
        except OSError as e:
            logger.critical("cannot lock the state folder {}: {}", state_dir, e)
            return ExitCode.FATAL
        try:
            return self._run_holding_the_lock()
        finally:
            if self._dry_run is not None:
                self._dry_run.close()
            lock.release()

    def _run_holding_the_lock(self) -> ExitCode:
        coordinator = self.config.coordinator
        collector.tune()
        try:
            state = self._open_state()
        except StateError as e:
            logger.critical("{}", e)
            return ExitCode.FATAL
        try:
            curve, allowed_keys = prepare_link_keys(self.config)
        except KeyFileError as e:  # a key file changed since the config was checked: the config's problem
            logger.critical("{}", e)
            state.close()
            return ExitCode.CONFIG_ERROR
        except OSError as e:
            logger.critical("cannot write the local workers' key pairs: {}", e)
            state.close()
            return ExitCode.FATAL
        try:
            # With curve, the hub proves an unknown key is refused before it serves (OSError otherwise).
            self._hub = Hub(coordinator.bind, worker_timeout=coordinator.worker_timeout, curve=curve,
                            allowed_keys=allowed_keys)
        except OSError as e:
            logger.critical("{}", e)
            state.close()
            return ExitCode.FATAL
        logger.info("coordinator listening on {} (state in {})", self._hub.endpoint, coordinator.state_dir)
        if self._wake_on_signals:
            self._hub.wake_on_signals()
        self.engine = self._dry_run.engine(self.config, self._hub.send) if self._dry_run is not None else \
            Engine(self.config, state, self._hub.send)
        local = [terminal for terminal in self.config.terminals() if not terminal.remote
                 and terminal.name in self.engine.views]
        for terminal in self.config.terminals():
            if terminal.remote:
                logger.info("waiting for remote worker {} to connect to {}", terminal.name, self._hub.endpoint)
        assert self.config.path is not None  # checked in __init__: workers load the same file
        self._supervisor = Supervisor(self.config.path, self._hub.endpoint, local, restart=not self.once,
                                      console_level=self.worker_console_level, on_exit=self._worker_lost)
        self._start_alerts()
        self._supervisor.start_all()
        self._requests = RequestInbox(coordinator.state_dir)
        self._requests.clear()
        self._kill_switch = KillSwitch(self.engine)
        self._start_web()
        try:
            return self._run_once() if self.once else self._run_forever()
        except Exception as e:  # the crash itself is logged by the caller
            self._crash = f"it crashed ({type(e).__name__}; coordinator.log has the traceback)"
            raise
        finally:
            self._shutdown()
            state.close()

    def _start_web(self) -> None:
        """Serve /metrics and the status page on threads of their own ([metrics] listen; not for a run --once).
        An address that cannot be bound is an error in the log, not a stop: copying matters more than the page."""
        assert self.engine is not None
        if self.config.metrics.listen is None or self.once:
            return
        web = WebServer(lambda: self.config, self.engine.metrics.registry)
        try:
            web.start()
        except OSError as e:
            logger.error("cannot serve the status page and metrics on {}: {}; copying goes on without them (fix "
                         "[metrics] listen and restart)", self.config.metrics.listen, e)
            return
        self._web = web

    def _open_state(self) -> StateStore:
        """The state file; a dry run's engine books into a scratch copy of it (coordinator/runtime/dry_run.py)."""
        if not self.dry_run:
            return StateStore(self.config.coordinator.state_dir)
        self._dry_run = DryRun(self.config.coordinator.state_dir)
        return self._dry_run.state

    def _shutdown(self) -> None:
        assert self._hub is not None and self._supervisor is not None and self.engine is not None
        assert self._requests is not None and self._kill_switch is not None
        for request, answer in self._kill_switch.stop("the coordinator stopped before every answer came"):
            self._requests.answer(request, answer.to_body())
        # Only the workers this coordinator started: a remote one is a service that stays attached to its terminal
        # and reconnects when a coordinator is back (it notices the silence after worker_timeout).
        for view in self.engine.views.values():
            if not view.config.remote:
                self._hub.send(view.name, Shutdown(reason=self._stop_reason or "coordinator stopping",
                                                   code=SHUTDOWN_COORDINATOR_STOPPING))
        self._supervisor.stop_all()
        self.engine.sessions.all_stopped()
        self.engine.publish_status(final=True)
        if self._web is not None:
            self._web.stop()
        self._hub.close()
        logger.info("coordinator stopped{}", f": {self._stop_reason}" if self._stop_reason else "")
        self._stop_alerts()

    def _start_alerts(self) -> None:
        """Alerts (coordinator/runtime/alerts.py): every event the rules alert on goes to the sender, which works
        on threads of its own. A run --once is a scheduled step: its start and stop are no news."""
        assert self.engine is not None
        self.engine.events.subscribe(AlertTeller(self._alerts, AlertContext(config_file=str(self.config.path))))
        self._alerts.start()
        if not self.once:
            self.engine.events.emit(CoordinatorStarted(version=__version__, host=self._alerts.host,
                                                       source=self.config.source.name,
                                                       targets=tuple(self.engine.targets)))

    def _stop_alerts(self) -> None:
        """The last alert, then a few seconds for the sender to deliver what it still has."""
        assert self.engine is not None
        if not self.once:
            self.engine.events.emit(CoordinatorStopped(host=self._alerts.host, crashed=bool(self._crash),
                                                       reason=self._crash or self._stop_reason or "stopped"))
        self._alerts.stop()

    def _worker_lost(self, gone: WorkerExit) -> None:
        """A local worker exited when no one asked it to: told (an alert), unless the coordinator is stopping (a
        service's stop signals the workers too)."""
        assert self.engine is not None
        view = self.engine.views.get(gone.name)
        if view is not None and not self.stopping:
            self.engine.sessions.worker_lost(view, gone.code, restart_in=gone.restart_in, restarts=gone.restarts)

    def pump(self, timeout_ms: int) -> None:
        """Receive and handle what arrived within ``timeout_ms``, run timers, watch the workers."""
        assert self._hub is not None and self._supervisor is not None and self.engine is not None
        for name, message in self._hub.poll(timeout_ms):
            try:
                self.engine.on_message(name, message)
            except Exception:  # one bad message (or a bug it trips) must not stop the coordinator
                logger.exception("handling a {} from {} failed; it is dropped", type(message).__name__, name)
        now = time.monotonic()
        if now < self._next_housekeeping:
            return
        self._next_housekeeping = now + HOUSEKEEPING_SECONDS
        self.engine.tick()
        for name, code in self._supervisor.check():
            self._exit_codes[name] = code
            self.engine.worker_exited(name, code)
        self._kill_hung_workers()
        for name, view in self.engine.views.items():
            self.engine.sessions.note_restarts(view, self._supervisor.restarts(name))
        self._serve_requests()

    def _kill_hung_workers(self) -> None:
        """A local worker silent too long is stuck (a terminal call that blocks, a stopped process): kill it,
        so the supervisor starts a fresh one. Remote workers are not ours to kill (the supervisor has none)."""
        assert self._supervisor is not None and self.engine is not None
        now = time.monotonic()
        for name, view in self.engine.views.items():
            started_at = self._supervisor.watchable_since(name)
            if started_at is None:
                continue
            silent = now - max(view.last_seen, started_at)
            allowed = allowed_silence(view, self.config.coordinator)
            if silent <= allowed:
                continue
            # The exit that follows adds its code to this error.
            self.engine.sessions.note_unavailable(view, f"silent for {silent:.0f}s, killed as hung")
            logger.error("worker {} has been silent for {:.1f}s (allowed {:.0f}s): it is hung; killing it{}", name,
                         silent, allowed, "" if self.once else " so it is restarted")
            self._supervisor.kill_hung(name)

    def _wait(self, seconds: float, until: Callable[[], bool]) -> bool:
        deadline = time.monotonic() + seconds
        while not self.stopping:
            if until():
                return True
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                return False
            self.pump(min(LOOP_TICK_MS, int(remaining * 1000) + 1))
        return False

    # ---- scheduler -----------------------------------------------------------------------------

    def _run_forever(self) -> ExitCode:
        assert self.engine is not None
        next_pass = time.monotonic()
        hello_deadline: float | None = next_pass + self.config.coordinator.hello_timeout
        settled = False  # the start-up's state frozen out of the collector's passes (runtime/collector.py)
        pace = FullPlanPace()
        while not self.stopping:
            self.pump(LOOP_TICK_MS)
            if hello_deadline is not None and time.monotonic() > hello_deadline:
                hello_deadline = None
                self._report_missing_terminals()
            dirty = self.engine.take_dirty()
            now = time.monotonic()
            timed = now >= next_pass
            if timed:
                # Every plan brought up to date, incrementally where the engine shows that gives the same plan
                # (little work when nothing changed): what waits on time (a backoff ending, a fact asked for) is
                # acted on within an interval. The full plans follow, paced (runtime/full_plans.py).
                self.engine.reconcile(set(self.engine.targets), full=False)
                next_pass = now + self.config.coordinator.interval  # read each time: a reload may change it
            elif dirty:
                # React to a change at once; the timer is only the safety net.
                self.engine.reconcile(dirty)
            self._plan_in_full_when_due(pace)
            if not settled and (timed or dirty) and self._started_up(timed):
                collector.settle()
                settled = True
        return ExitCode.OK

    def _plan_in_full_when_due(self, pace: FullPlanPace) -> None:
        """The periodic full plans that are due, one target at a time, as far as their pace allows."""
        assert self.engine is not None
        if not self.engine.source_fresh()[0]:
            return  # nothing is planned then; they are made once the source is back
        for name in pace.due(self.engine.planned_in_full_at, self.engine.targets,
                             self.config.coordinator.interval):
            if not pace.may_plan():
                break
            began = time.monotonic()
            self.engine.reconcile({name}, full=True)
            pace.planned(name, time.monotonic() - began)

    def _started_up(self, timed_pass: bool) -> bool:
        """Start-up is over once the source is fresh and every terminal has reported (or at the first timed pass
        with a fresh source, if one never does): the state its collection freezes is then the one copying runs
        on. Not later: the collection pauses the loop for tens of milliseconds, harmless before the first copies
        go out, not in the middle of them."""
        assert self.engine is not None
        if not self.engine.source_fresh()[0]:
            return False
        return timed_pass or all(view.snapshot is not None for view in self.engine.views.values())

    def _report_missing_terminals(self) -> list[str]:
        assert self.engine is not None
        missing = [name for name in self.engine.views if not self._ready(name)]
        for name in missing:
            view = self.engine.views[name]
            why = view.last_error or \
                f"its worker did not say hello within {self.config.coordinator.hello_timeout:.0f}s"
            logger.error("terminal {} is not available: {}", name, why)
            self.engine.sessions.note_unavailable(view, why)
        return missing

    # ---- one sync ------------------------------------------------------------------------------

    def _ready(self, name: str) -> bool:
        assert self.engine is not None
        return self.engine.sessions.ready(self.engine.views[name])

    def _given_up(self, name: str) -> bool:
        """Not worth waiting for: its worker reported a failure that will not mend within seconds (terminal
        not found, authorization failed, the terminal not answering), or exited for good (--once restarts
        nothing; a configuration error is never restarted)."""
        assert self.engine is not None
        code = self._exit_codes.get(name)
        exited_for_good = code is not None and (code == ExitCode.CONFIG_ERROR or self.once)
        return exited_for_good or bool(self.engine.views[name].definite_failure)

    def _outstanding(self) -> bool:
        """Commands or requests still to be answered by a worker that can answer them: one that exited in
        --once is not restarted, so what it had can only be reported as unknown."""
        assert self.engine is not None
        engine = self.engine
        if not engine.busy():  # it also gives up requests unanswered for long
            return False
        return any(engine.outstanding(name) for name in engine.views if not self._given_up(name))

    def _run_once(self) -> ExitCode:
        assert self.engine is not None
        engine = self.engine
        coordinator = self.config.coordinator
        # A run --once is an explicit one-off: it syncs now, schedule or not (coordinator/runtime/schedule_gate.py).
        schedule_note = f"schedule {engine.schedule.describe()}: not applied, a run --once syncs at once (the " \
            "schedule is for `mt5-copier run`)" if engine.schedule.active else ""
        if schedule_note:
            engine.schedule.suspend()
            logger.info("{}", schedule_note)
        names = list(engine.views)
        self._wait(self.config.coordinator.hello_timeout,
                   lambda: all(self._ready(name) or self._given_up(name) for name in names))
        if self.stopping:
            return ExitCode.INCOMPLETE
        missing = self._report_missing_terminals()
        if engine.source.name in missing:
            self._print(f"source {engine.source.name} is not available: {engine.source.last_error}; nothing copied")
            return ExitCode.FATAL
        settle_seconds = self.config.coordinator.command_timeout + 5.0
        facts_deadline: float | None = None
        rounds = 0
        while rounds < ONCE_MAX_ROUNDS and not self.stopping:
            sent = engine.reconcile()
            self._wait(settle_seconds, lambda: not self._outstanding())
            if self.stopping or self._outstanding():
                break
            if sent:
                rounds += 1
                continue
            if engine.waiting_for_facts():
                # A clock, a price or a history record is on its way (heartbeats bring them every second).
                facts_deadline = facts_deadline or time.monotonic() + max(5.0, 4 * coordinator.heartbeat_interval)
                if time.monotonic() < facts_deadline:
                    self._wait(0.25, lambda: False)
                    continue
            retry_in = engine.next_retry_in()
            if retry_in is None or retry_in > 10.0:
                break
            rounds += 1
            self._wait(retry_in + 0.1, lambda: False)
        if schedule_note:
            self._print(schedule_note)
        if self._dry_run is not None:
            self._print(render_dry_run(engine, self._dry_run.dispatcher.planned))
            return ExitCode.INCOMPLETE if self.stopping else ExitCode.OK
        self._print(render_summary(engine))
        return once_exit_code(engine, stopped=self.stopping)


def install_signal_handlers(coordinator: Coordinator) -> None:
    def stop(signum: int, _frame: object) -> None:
        logger.info("received {}; shutting down", signal.Signals(signum).name)
        coordinator.request_stop(f"signal {signal.Signals(signum).name}")

    signal.signal(signal.SIGINT, stop)
    signal.signal(signal.SIGTERM, stop)
    coordinator.signals_handled_here()
    if sys.platform != "win32":  # Windows has no SIGHUP: `mt5-copier reload` works everywhere
        def reload(_signum: int, _frame: object) -> None:
            logger.info("received SIGHUP; reloading the config")
            coordinator.request_reload()

        signal.signal(signal.SIGHUP, reload)
    if sys.platform == "win32":
        signal.signal(signal.SIGBREAK, stop)
