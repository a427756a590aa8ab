"""The running service: :class:`App`, its mailboxes' scheduling state, and its modes."""

from __future__ import annotations

import asyncio
import contextlib
import random
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import structlog

from bridge.attachments import (
    AttachmentStore,
    ClaimCheck,
)
from bridge.checkup import QUIT_WARN_SECONDS, CheckRow, check_mailbox
from bridge.clock import Clock, SystemClock, sleep_unless
from bridge.config import Config, MailboxConfig
from bridge.deadletter import DeadLetterStore
from bridge.deadletter_metrics import DeadLetterCollector
from bridge.errors import (
    AttachmentStoreError,
    BridgeError,
    LedgerError,
    OAuth2RefusedError,
    Pop3AuthError,
    Pop3InUseError,
    Pop3LoginDelayError,
)
from bridge.exitcodes import ExitCode, OnceReport, session_exit_code
from bridge.health import HealthState
from bridge.ledger import Ledger
from bridge.logindelay import LoginPacer
from bridge.metrics import Metrics
from bridge.oauth2 import OAuth2Client, OAuth2Metrics
from bridge.poller import Poller, SessionResult
from bridge.pop3 import Pop3Client
from bridge.reload import ConfigChange, diff_configs
from bridge.scheduler import first_delay, next_slot, phase_of
from bridge.secretfiles import SecretFiles
from bridge.tlsctx import TlsContexts
from bridge.webhook import WebhookClient, WebhookTarget

if TYPE_CHECKING:
    from bridge.server import HttpServer

from bridge.app.parts import (
    attachment_store,
    client_factory,
    mailbox_policy,
    prune_attachments,
    select_shard,
    session_outcome,
    webhook_target,
)

log = structlog.get_logger("bridge.app")

MAX_FAILURE_BACKOFF = 900.0  # seconds; a broken mailbox is retried at least every 15 minutes
ONCE_MAX_WAIT = 120.0
"""Seconds `once` waits in all for one mailbox (LOGIN-DELAY, [IN-USE]) before it gives up."""
JITTER = 0.1  # +-10 % on short retry waits (the regular polls keep their phase instead)
RETENTION_INTERVAL = 3600.0  # seconds between prunes of the attachment store (retention)


@dataclass
class MailboxState:
    """Scheduling state of one mailbox."""

    config: MailboxConfig
    poller: Poller
    failures: int = 0
    last_result: SessionResult | None = None
    last_exception: BaseException | None = None
    due: float | None = None
    """Monotonic time the next scheduled poll is due (for ``bridge_poll_lag_seconds``)."""

    @property
    def phase(self) -> float:
        """Offset of the mailbox's polls within its interval (see :mod:`bridge.scheduler`)."""
        return phase_of(self.config.name, self.config.poll_interval)


# ---------------------------------------------------------------------- the app


class App:
    """Everything the service runs, built from one :class:`~bridge.config.Config`."""

    def __init__(
        self,
        config: Config,
        *,
        clock: Clock | None = None,
        shard: tuple[int, int] | None = None,
        rng: random.Random | None = None,
        metrics: Metrics | None = None,
        open_ledger: bool = True,
    ) -> None:
        """Build every part; ``open_ledger=False`` (``check``) touches nothing on disk."""
        self.config = config
        self.clock = clock or SystemClock()
        self.rng = rng or random.Random()
        self.metrics = metrics or Metrics(
            clock=self.clock.time, mailbox_detail=config.metrics.mailbox_detail
        )
        mailboxes = select_shard(config.mailboxes, shard)
        self.metrics.prepare(
            {m.name: m.webhooks for m in mailboxes},
            extra_targets=list(config.webhooks),
            configured=len(config.mailboxes),
        )
        self.health = HealthState(
            {m.name: m.poll_interval for m in mailboxes},
            clock=self.clock.time,
            stall_factor=config.http.stall_factor,
            stall_min_seconds=config.http.stall_min_seconds,
        )
        self.metrics.on_progress(self.health.mailbox_progress)
        data_dir = Path(config.data_dir)
        self.store: AttachmentStore | None = None
        if config.attachments is not None:
            self.store = attachment_store(
                config.attachments, data_dir, on_write=self.metrics.attachment_stored
            )
        self.ledger = Ledger(
            data_dir / "ledger.sqlite3", clock=self.clock.time, defer_open=not open_ledger
        )
        self.deadletters = DeadLetterStore(data_dir / "dead-letters")
        if open_ledger:
            self.metrics.registry.register(DeadLetterCollector(self.deadletters))
        self.secret_files = SecretFiles()
        self.tls = TlsContexts()
        self.oauth2_metrics = OAuth2Metrics(self.metrics.registry)
        self.oauth2: dict[str, OAuth2Client] = {}
        self._update_oauth2(config, mailboxes)
        self._has_store = self.store is not None
        self.targets = self._build_targets(config)
        self.webhooks = WebhookClient(
            on_request=self.metrics.webhook_attempt,
            on_breaker_change=self.metrics.breaker_changed,
            on_too_large=self.metrics.too_large,
            wall_clock=self.clock.time,
        )
        self.pacer = LoginPacer(self.clock)
        self.once_max_wait = ONCE_MAX_WAIT
        self.check_quit_warn = QUIT_WARN_SECONDS
        self._shard = shard
        self.mailboxes = {m.name: MailboxState(config=m, poller=self._poller(m)) for m in mailboxes}
        self._sessions = asyncio.Semaphore(config.max_concurrent_sessions)
        self.server: HttpServer | None = None  # only `run` serves HTTP (see start_http)
        self._loops: dict[str, asyncio.Task[None]] = {}
        self._loop_stops: dict[str, asyncio.Event] = {}
        self._running: asyncio.Event | None = None
        self.health.set_config_loaded()

    def _on_login(self, name: str) -> Callable[[Pop3Client], None]:
        def record(client: Pop3Client) -> None:
            self.pacer.logged_in(name, client.capabilities.login_delay)

        return record

    def _build_targets(self, config: Config) -> dict[str, WebhookTarget]:
        return {
            name: webhook_target(name, cfg, self.secret_files, store=self._has_store)
            for name, cfg in config.webhooks.items()
        }

    def _update_oauth2(self, config: Config, mailboxes: Sequence[MailboxConfig]) -> None:
        """One OAuth2Client per client name in use; a reload keeps their cached tokens."""
        for cfg in mailboxes:
            found = config.oauth2_for(cfg)
            if found is None:
                continue
            name, client_cfg = found
            if name in self.oauth2:
                self.oauth2[name].reconfigure(client_cfg)
            else:
                self.oauth2[name] = OAuth2Client(
                    name,
                    client_cfg,
                    data_dir=Path(config.data_dir),
                    files=self.secret_files,
                    metrics=self.oauth2_metrics,
                    clock=self.clock.time,
                )

    def _client_factory(self, cfg: MailboxConfig) -> Callable[[], Awaitable[Pop3Client]]:
        found = self.config.oauth2_for(cfg)
        oauth2 = self.oauth2[found[0]] if found is not None else None
        return client_factory(
            cfg, self.secret_files, oauth2, self._on_login(cfg.name), contexts=self.tls
        )

    def _poller(self, cfg: MailboxConfig) -> Poller:
        return Poller(
            mailbox_policy(cfg, store=self._has_store),
            open_client=self._client_factory(cfg),
            ledger=self.ledger,
            webhooks=self.webhooks,
            targets=self.targets,
            deadletters=self.deadletters,
            metrics=self.metrics,
            clock=self.clock,
            claim_check=(
                ClaimCheck(
                    self.store,
                    store_above=cfg.max_attachment_bytes,
                    on_error=self.metrics.attachment_store_failed,
                )
                if self.store is not None
                else None
            ),
        )

    def refresh_secret_files(self) -> None:
        """Rebuild the targets whose ``*_file`` secrets changed on disk (cheap when none did).

        Runs before every session; the new target is used from the next delivery on.
        """
        for name, cfg in self.config.webhooks.items():
            if not (
                cfg.secret_file
                or cfg.bearer_token_file
                or (cfg.basic_auth is not None and cfg.basic_auth.password_file)
            ):
                continue
            fresh = webhook_target(name, cfg, self.secret_files, store=self._has_store)
            current = self.targets.get(name)
            if current is None or current.sensitive_values() != fresh.sensitive_values():
                self.targets[name] = fresh

    # ------------------------------------------------------------------ reload

    def reload(self, config: Config) -> ConfigChange:
        """Use ``config`` from the next session of each mailbox on; sessions running finish.

        Mailboxes added start polling (under ``run``), removed ones stop after their current
        session, changed ones use the new settings at their next session. Settings that
        only a restart applies (``data_dir``, ``http.listen``, ``max_concurrent_sessions``)
        are reported in :attr:`ConfigChange.needs_restart` and left as they were.
        """
        old = self.config
        mailboxes = select_shard(config.mailboxes, self._shard)
        change = diff_configs(old, config, [m.name for m in mailboxes], list(self.mailboxes))
        self.config = config
        self._update_oauth2(config, mailboxes)
        self.health.stall_factor = config.http.stall_factor
        self.health.stall_min_seconds = config.http.stall_min_seconds
        self.metrics.prepare(
            {m.name: m.webhooks for m in mailboxes},
            extra_targets=list(config.webhooks),
            configured=len(config.mailboxes),
        )
        # A fresh mapping: sessions in progress keep delivering with the old one.
        self.targets = self._build_targets(config)
        for name in change.removed:
            del self.mailboxes[name]
            self.health.unregister_mailbox(name)
            stop = self._loop_stops.get(name)
            if stop is not None:
                stop.set()
        for cfg in mailboxes:
            self.health.register_mailbox(cfg.name, cfg.poll_interval)
            state = self.mailboxes.get(cfg.name)
            if state is None:
                self.mailboxes[cfg.name] = MailboxState(config=cfg, poller=self._poller(cfg))
                if self._running is not None:
                    self._start_loop(cfg.name, self._running)
            else:
                state.config = cfg
                state.poller = self._poller(cfg)
        return change

    async def close(self) -> None:
        """Close the webhook client, the OAuth 2 clients, the HTTP server and the ledger."""
        await self.webhooks.close()
        for client in self.oauth2.values():
            await client.close()
        if self.store is not None:
            await self.store.close()
        if self.server is not None:
            await self.server.stop()
            self.server = None
        self.ledger.close()

    async def start_http(self) -> int:
        """Serve /metrics, /healthz and /readyz; returns the bound port."""
        from bridge.server import HttpServer  # aiohttp.web: imported only where it is used

        self.server = HttpServer(self.config.http.listen, self.metrics, self.health)
        await self.server.start()
        return self.server.port

    # ------------------------------------------------------------------ one session

    async def session(self, state: MailboxState, stop: asyncio.Event) -> SessionResult | None:
        """Run one session under the global limit, record metrics, health and a log line."""
        name = state.config.name
        async with self._sessions:
            started = self.clock.monotonic()
            if state.due is not None:  # a scheduled poll (run), not once or check
                self.metrics.poll_lag(started - state.due)
                state.due = None
            exc: BaseException | None = None
            result: SessionResult | None = None
            try:
                self.refresh_secret_files()
                result = await state.poller.run_session(stop)
            except (BridgeError, OSError, TimeoutError) as error:
                exc = error
            except Exception as error:  # a bug must not end the mailbox loop; logged
                log.exception("session_crashed", mailbox=name)
                exc = error
            duration = self.clock.monotonic() - started
        outcome = session_outcome(exc, result)
        self.metrics.pop3_session(name, outcome, duration)
        state.last_result = result
        if result is not None:
            self.health.ledger_failed(result.ledger_error)
        elif isinstance(exc, LedgerError):  # e.g. a full disk while recording new messages
            self.metrics.ledger_write_failed(name)
            self.health.ledger_failed(str(exc))
        if name not in self.mailboxes:  # removed by a reload while this session ran
            log.info("mailbox_removed", mailbox=name, outcome=outcome)
            return result
        if exc is None and result is not None:
            state.failures = 0
            state.last_exception = None
            self.health.mailbox_polled(name, self.clock.time())
            self.metrics.poll_succeeded(name, self.clock.time())
            log.info(
                "session",
                mailbox=name,
                outcome=outcome,
                on_server=result.on_server,
                fetched=result.fetched,
                delivered=result.delivered,
                deleted=result.deleted,
                reconciled=result.reconciled,
                rejected=result.rejected,
                retry_later=result.transient,
                dead_lettered=result.dead_lettered,
                oversize=result.oversize,
                retr_failed=result.retr_failed,
                reused_identities=result.reused_identities,
                moved_identities=result.moved_identities,
                skipped=result.skipped,
                kept=result.kept,
                more_pending=result.more_pending,
                duration=round(duration, 3),
            )
        else:
            state.failures += 1
            state.last_exception = exc
            self.health.mailbox_failed(name, f"{outcome}: {exc}")
            log.warning(
                "session_failed",
                mailbox=name,
                outcome=outcome,
                error=str(exc),
                failures=state.failures,
                duration=round(duration, 3),
            )
        return result

    def _jitter(self, seconds: float) -> float:
        return max(0.0, seconds * (1 + self.rng.uniform(-JITTER, JITTER)))

    # ------------------------------------------------------------------ modes

    async def once(self, stop: asyncio.Event | None = None) -> OnceReport:
        """One pass over every mailbox, draining what is there; true when all went well.

        The report's exit code describes what the pass leaves behind (bridge.exitcodes).

        When ``stop`` is set (SIGTERM/SIGINT), no new work starts; sessions finish their
        in-flight deliveries and QUIT within ``shutdown_grace``, as in :meth:`run`.
        """
        stop = stop or asyncio.Event()
        tasks = [
            asyncio.create_task(self._drain(state, stop), name=f"once:{name}")
            for name, state in self.mailboxes.items()
        ]
        stopper = asyncio.create_task(stop.wait())
        try:
            await asyncio.wait({*tasks, stopper}, return_when=asyncio.FIRST_COMPLETED)
            while not stop.is_set() and not all(t.done() for t in tasks):
                await asyncio.wait({*tasks, stopper}, return_when=asyncio.FIRST_COMPLETED)
            if stop.is_set():
                log.info("shutting_down", grace=self.config.shutdown_grace)
                _, pending = await asyncio.wait(tasks, timeout=self.config.shutdown_grace)
                for task in pending:
                    task.cancel()
                if pending:
                    log.warning("shutdown_grace_expired", cancelled=[t.get_name() for t in pending])
                await asyncio.gather(*tasks, return_exceptions=True)
        finally:
            stopper.cancel()
            for task in tasks:
                task.cancel()
        codes = {
            name: (
                ExitCode.LEFT_ON_SERVER  # cancelled when the shutdown grace expired
                if t.cancelled()
                else ExitCode.INTERNAL_ERROR
                if t.exception() is not None
                else t.result()
            )
            for name, t in zip(self.mailboxes, tasks, strict=True)
        }
        return OnceReport(codes)

    async def _drain(self, state: MailboxState, stop: asyncio.Event) -> ExitCode:
        """Sessions until the mailbox is drained; the last one decides the exit code. Waits,
        within ``once_max_wait`` in all, for an announced LOGIN-DELAY before each login after
        the first and after a refused login ([LOGIN-DELAY], [IN-USE]); a longer wait leaves
        the rest for the next run (exit code 3)."""
        code = ExitCode.LEFT_ON_SERVER  # stopped before the first session: nothing is known
        name = state.config.name
        waited = 0.0
        while not stop.is_set():
            pause = self.pacer.remaining(name)
            if pause > 0:
                if waited + pause > self.once_max_wait:
                    log.warning(
                        "login_delay_too_long",
                        mailbox=name,
                        wait=round(pause, 1),
                        bound=self.once_max_wait,
                        detail="messages left on the server for the next run",
                    )
                    return ExitCode.LEFT_ON_SERVER
                log.info("login_delay_wait", mailbox=name, seconds=round(pause, 1))
                waited += pause
                if await sleep_unless(stop, pause, self.clock):
                    return ExitCode.LEFT_ON_SERVER
            result = await self.session(state, stop)
            code = session_exit_code(result, state.last_exception)
            if result is None:
                retry = self._once_retry(state)
                if retry is None or waited + retry > self.once_max_wait:
                    return code
                log.info(
                    "login_retry_wait",
                    mailbox=name,
                    seconds=round(retry, 1),
                    reason=session_outcome(state.last_exception, None),
                )
                waited += retry
                if await sleep_unless(stop, retry, self.clock):
                    return ExitCode.LEFT_ON_SERVER
                continue
            if not (result.more_pending and (result.fetched or result.reconciled)):
                break
        return code

    def _once_retry(self, state: MailboxState) -> float | None:
        """How long `once` waits before it tries a refused login again (None: it does not)."""
        error = state.last_exception
        if isinstance(error, Pop3LoginDelayError):
            delay = error.delay or self.pacer.announced(state.config.name) or 60.0
            self.pacer.refused(state.config.name, delay)
            return delay
        if isinstance(error, Pop3InUseError):
            return max(1.0, min(state.config.login_backoff_in_use, 10.0))
        return None

    async def run(self, stop: asyncio.Event) -> None:
        """The service: poll every mailbox until ``stop`` is set, then wind down."""
        self._running = stop
        for name in self.mailboxes:
            self._start_loop(name, stop)
        retention = self.config.attachments.retention if self.config.attachments else None
        retention_task = None
        if self.store is not None and retention is not None:
            retention_task = asyncio.create_task(
                self._retention_loop(retention, stop), name="retention"
            )
        try:
            await stop.wait()
            log.info("shutting_down", grace=self.config.shutdown_grace)
            self.health.set_shutting_down()
            self.metrics.set_up(False)
            for event in self._loop_stops.values():
                event.set()
            tasks = list(self._loops.values())
            done, pending = await asyncio.wait(tasks, timeout=self.config.shutdown_grace)
            for task in pending:
                task.cancel()
            for task in pending:
                with contextlib.suppress(asyncio.CancelledError):
                    await task
            if pending:
                log.warning("shutdown_grace_expired", cancelled=[t.get_name() for t in pending])
            del done
        finally:
            for task in self._loops.values():
                task.cancel()
            if retention_task is not None:
                retention_task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await retention_task

    async def _retention_loop(self, older_than: float, stop: asyncio.Event) -> None:
        """Prune the attachment store at start and then every hour, while running."""
        assert self.store is not None
        while not stop.is_set():
            try:
                await prune_attachments(self.store, older_than, self.metrics)
            except AttachmentStoreError as exc:
                log.warning("attachments_prune_failed", error=str(exc))
            if await sleep_unless(stop, RETENTION_INTERVAL, self.clock):
                return

    def _start_loop(self, name: str, stop: asyncio.Event) -> None:
        """Start polling ``name``; a loop of a removed mailbox of that name finishes first."""
        previous = self._loops.get(name)
        own_stop = asyncio.Event()
        if stop.is_set():
            own_stop.set()
        self._loop_stops[name] = own_stop
        self._loops[name] = asyncio.create_task(
            self._mailbox_loop(name, own_stop, previous), name=f"mailbox:{name}"
        )

    async def _mailbox_loop(
        self, name: str, stop: asyncio.Event, previous: asyncio.Task[None] | None = None
    ) -> None:
        if previous is not None and not previous.done():
            # The same name was removed and added again: one session per maildrop.
            await asyncio.wait({previous})
        first = self.mailboxes.get(name)
        if first is None:
            return
        delay = first_delay(first.phase, first.config.poll_interval, len(self.mailboxes))
        while not stop.is_set():
            due = self.clock.monotonic() + delay
            if await sleep_unless(stop, delay, self.clock):
                return
            state = self.mailboxes.get(name)
            if state is None:
                return
            state.due = due
            result = await self.session(state, stop)
            delay = self._delay_after(state, result)
            pause = self.pacer.remaining(state.config.name)
            if pause > delay:
                log.info("login_delay_wait", mailbox=state.config.name, seconds=round(pause, 1))
                delay = pause

    def _delay_after(self, state: MailboxState, result: SessionResult | None) -> float:
        """Seconds until the next poll: on the mailbox's own grid whenever it waits an
        interval or more, so it keeps its phase through failures and outages."""
        cfg = state.config
        if result is not None:
            if result.more_pending and (result.fetched or result.reconciled):
                return 0.0
            return self._on_grid(state, 0.0)
        error = state.last_exception
        if isinstance(error, Pop3AuthError | OAuth2RefusedError):
            return self._on_grid(state, cfg.login_backoff_auth)
        if isinstance(error, Pop3InUseError):
            return self._on_grid(state, cfg.login_backoff_in_use)
        if isinstance(error, Pop3LoginDelayError):
            delay = max(error.delay or self.pacer.announced(cfg.name) or cfg.poll_interval, 1.0)
            self.pacer.refused(cfg.name, delay)
            return self._on_grid(state, delay, jitter=False)
        backoff = min(cfg.poll_interval * 2 ** min(state.failures - 1, 10), MAX_FAILURE_BACKOFF)
        return self._on_grid(state, backoff)

    def _on_grid(self, state: MailboxState, at_least: float, *, jitter: bool = True) -> float:
        """The delay to the mailbox's first grid slot at least ``at_least`` seconds away.

        A wait shorter than the interval (an [IN-USE] retry, a short LOGIN-DELAY) is not
        worth a whole interval: it is taken as it is (with jitter when asked for).
        """
        interval = state.config.poll_interval
        if at_least >= interval or at_least <= 0:
            now = self.clock.time()
            return next_slot(now + at_least, state.phase, interval) - now
        return self._jitter(at_least) if jitter else at_least

    async def check(self) -> list[CheckRow]:
        """Try what a session needs on each mailbox, changing nothing (:mod:`bridge.checkup`)."""

        async def one(state: MailboxState) -> CheckRow:
            async with self._sessions:
                return await check_mailbox(
                    state.config.name, state.poller.open_client, quit_warn=self.check_quit_warn
                )

        return list(await asyncio.gather(*(one(s) for s in self.mailboxes.values())))
