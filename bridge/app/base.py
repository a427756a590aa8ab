"""The service's parts and state: :class:`MailboxState`, and what :class:`~bridge.app.App` builds
from its config (ledger, webhooks, metrics, pollers, HTTP) and one session of a mailbox."""

from __future__ import annotations

import asyncio
import random
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import structlog

from bridge.attachments import AttachmentStore, ClaimCheck
from bridge.checkup import QUIT_WARN_SECONDS
from bridge.clock import Clock, SystemClock
from bridge.config import Config, MailboxConfig
from bridge.deadletter import DeadLetterStore
from bridge.deadletter_metrics import DeadLetterCollector
from bridge.errors import BridgeError, LedgerError
from bridge.health import HealthState
from bridge.ledger import Ledger
from bridge.logindelay import LoginPacer
from bridge.metrics import Metrics
from bridge.oauth2 import OAuth2Client, OAuth2Metrics
from bridge.poller import Poller, SessionResult
from bridge.pop3 import Pop3Client
from bridge.scheduler import phase_of
from bridge.secretfiles import SecretFiles
from bridge.tlsctx import TlsContexts
from bridge.webhook import WebhookClient, WebhookTarget

if TYPE_CHECKING:
    from bridge.server import HttpServer

from bridge.app.parts import (
    attachment_store,
    client_factory,
    mailbox_policy,
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


class _AppBase:
    """The parts built from one config, and one session of a mailbox."""

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
