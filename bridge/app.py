"""The service: builds every concrete part from config and schedules the mailboxes.

This is the only module that turns config into objects (STYLE.md). It owns the ledger, the
webhook client, the metrics and the HTTP server, one :class:`~bridge.poller.Poller` per
mailbox, and the scheduling rules: each mailbox polls every ``poll_interval`` with jitter,
one session per mailbox at a time, at most ``max_concurrent_sessions`` at once, a failing
mailbox backs off by the kind of failure and never delays the others.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import random
import ssl
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import structlog

from bridge.attachments import (
    AttachmentStore,
    ClaimCheck,
    DirStore,
    OnWrite,
    PruneResult,
    S3Store,
    s3_available,
)
from bridge.clock import Clock, SystemClock
from bridge.config import AttachmentsConfig, Config, MailboxConfig, WebhookConfig
from bridge.deadletter import DeadLetterStore
from bridge.errors import (
    AttachmentStoreError,
    BridgeError,
    ConfigError,
    LedgerError,
    Pop3AuthError,
    Pop3ConnectionError,
    Pop3Error,
    Pop3InUseError,
    Pop3LoginDelayError,
    Pop3ProtocolError,
    Pop3ResponseError,
    Pop3TimeoutError,
    Pop3TLSError,
)
from bridge.health import HealthState
from bridge.ledger import Ledger
from bridge.metrics import Metrics, SessionOutcome
from bridge.mime import PayloadOptions
from bridge.poller import MailboxPolicy, Poller, SessionResult
from bridge.pop3 import Pop3Client, Timeouts
from bridge.webhook import BasicAuth, WebhookClient, WebhookTarget

if TYPE_CHECKING:
    from bridge.server import HttpServer

log = structlog.get_logger("bridge.app")

MAX_FAILURE_BACKOFF = 900.0  # seconds; a broken mailbox is retried at least every 15 minutes
JITTER = 0.1  # +-10 % on every interval, so mailboxes do not poll in lock-step
RETENTION_INTERVAL = 3600.0  # seconds between prunes of the attachment store (retention)


# ---------------------------------------------------------------------- config -> parts


def webhook_target(name: str, cfg: WebhookConfig, *, store: bool = False) -> WebhookTarget:
    """The webhook package's value object for one configured target.

    ``store`` tells whether an attachments store is configured: it decides the default
    ``on_too_large`` (reference with a store, park without).
    """
    basic = None
    if cfg.basic_auth is not None and cfg.basic_auth.password is not None:
        basic = BasicAuth(cfg.basic_auth.username, cfg.basic_auth.password.get_secret_value())
    return WebhookTarget(
        name=name,
        url=cfg.url,
        secrets=tuple(s.get_secret_value() for s in cfg.signing_secrets()),
        timeout=cfg.timeout,
        headers={k: v.get_secret_value() for k, v in cfg.headers.items()},
        bearer_token=cfg.bearer_token.get_secret_value() if cfg.bearer_token else None,
        basic_auth=basic,
        max_attempts=cfg.max_attempts,
        backoff_base=cfg.backoff_initial,
        backoff_max=cfg.backoff_max,
        breaker_threshold=cfg.breaker_failures,
        breaker_cooldown=cfg.breaker_cooldown,
        on_too_large=cfg.on_too_large or ("reference" if store else "park"),
        max_payload_bytes=cfg.max_payload_bytes,
    )


def attachment_store(
    cfg: AttachmentsConfig, data_dir: Path, *, on_write: OnWrite | None = None
) -> AttachmentStore:
    """The content store for attachments sent by reference; ConfigError if it cannot be."""
    if cfg.store == "dir":
        return DirStore(
            cfg.path or data_dir / "attachments", base_url=cfg.base_url, on_write=on_write
        )
    if not s3_available():
        problem = (
            "attachments.store: s3 needs the aiobotocore package; install it with "
            "pip install 'popbridge[s3]'"
        )
        raise ConfigError(problem, [problem])
    assert cfg.bucket is not None  # the config validator requires it for s3
    return S3Store(
        bucket=cfg.bucket,
        prefix=cfg.prefix,
        endpoint_url=cfg.endpoint_url,
        region=cfg.region,
        addressing_style=cfg.addressing_style,
        access_key_id=cfg.access_key_id,
        secret_access_key=(
            cfg.secret_access_key.get_secret_value() if cfg.secret_access_key else None
        ),
        url_expiry=cfg.url_expiry,
        on_write=on_write,
    )


async def prune_attachments(
    store: AttachmentStore, older_than: float, metrics: Metrics | None = None
) -> PruneResult:
    """Remove stored attachments older than ``older_than`` seconds; count and log it."""
    try:
        result = await store.prune(older_than)
    except AttachmentStoreError:
        if metrics is not None:
            metrics.attachment_store_failed()
        raise
    if metrics is not None:
        metrics.attachments_pruned_by_retention(result.removed, result.removed_bytes)
    log.info(
        "attachments_pruned",
        store=store.kind,
        older_than=older_than,
        removed=result.removed,
        removed_bytes=result.removed_bytes,
        kept=result.kept,
        kept_bytes=result.kept_bytes,
    )
    return result


def mailbox_policy(cfg: MailboxConfig, *, store: bool = False) -> MailboxPolicy:
    """What the poller needs from one mailbox's config.

    With an attachments ``store`` the payload keeps every attachment's content:
    ``max_attachment_bytes`` then picks the ones the claim check stores instead.
    """
    return MailboxPolicy(
        name=cfg.name,
        targets=tuple(cfg.webhooks),
        max_message_bytes=cfg.max_message_bytes,
        oversize_policy=cfg.oversize_policy,
        reject_policy=cfg.reject_policy,
        session_max_messages=cfg.session_max_messages,
        session_max_bytes=cfg.session_max_bytes,
        session_max_seconds=cfg.session_max_seconds,
        delivery_concurrency=cfg.delivery_concurrency,
        strict_order=cfg.strict_order,
        # NOOP well inside the server's idle timeout (RFC 1939: at least 10 minutes)
        keepalive_interval=min(30.0, cfg.command_timeout),
        payload_options=PayloadOptions(
            include_raw=cfg.include_raw,
            max_attachment_bytes=None if store else cfg.max_attachment_bytes,
        ),
    )


def client_factory(cfg: MailboxConfig) -> Callable[[], Awaitable[Pop3Client]]:
    """A function that opens a logged-in POP3 client for this mailbox."""

    context: ssl.SSLContext | None = None
    if not cfg.tls_verify:
        # Explicitly asked for (tls_verify: false): encryption without authentication.
        context = ssl.create_default_context()
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE
        if cfg.client_cert:
            context.load_cert_chain(cfg.client_cert, cfg.client_key)

    async def open_client() -> Pop3Client:
        client = Pop3Client(
            cfg.host,
            cfg.port,
            tls=cfg.tls,
            ssl_context=context,
            ca_file=cfg.ca_file,
            client_cert=cfg.client_cert,
            client_key=cfg.client_key,
            timeouts=Timeouts(
                connect=cfg.connect_timeout,
                read=cfg.command_timeout,
                command=cfg.command_timeout,
                min_rate=cfg.min_transfer_rate,
            ),
            mailbox=cfg.name,
        )
        try:
            await client.connect()
            await client.login(
                cfg.username,
                password=cfg.password.get_secret_value() if cfg.password else None,
                token=cfg.token.get_secret_value() if cfg.token else None,
                method=cfg.auth,
                allow_insecure=cfg.allow_insecure_auth,
            )
        except BaseException:
            await client.close()
            raise
        return client

    return open_client


def shard_of(name: str, count: int) -> int:
    """The replica (0-based) that owns a mailbox: a stable hash, the same on every host."""
    return int.from_bytes(hashlib.sha256(name.encode()).digest()[:8], "big") % count


def select_shard(
    mailboxes: Sequence[MailboxConfig], shard: tuple[int, int] | None
) -> list[MailboxConfig]:
    """The mailboxes this replica polls under ``--shard INDEX/COUNT``."""
    if shard is None:
        return list(mailboxes)
    index, count = shard
    return [m for m in mailboxes if shard_of(m.name, count) == index]


def session_outcome(exc: BaseException | None, result: SessionResult | None) -> SessionOutcome:
    """The ``outcome`` label of ``bridge_pop3_sessions_total``."""
    if exc is None:
        return "commit_error" if result is not None and result.commit_errors else "ok"
    table: tuple[tuple[type[BaseException], SessionOutcome], ...] = (
        (Pop3AuthError, "auth_error"),
        (Pop3InUseError, "in_use"),
        (Pop3LoginDelayError, "login_delay"),
        (Pop3TLSError, "tls_error"),
        (Pop3TimeoutError, "timeout"),
        (Pop3ConnectionError, "connect_error"),
        (Pop3ProtocolError, "protocol_error"),
        (Pop3ResponseError, "server_error"),
    )
    for cls, label in table:
        if isinstance(exc, cls):
            return label
    if isinstance(exc, OSError | TimeoutError):
        return "connect_error"
    return "error"


@dataclass
class MailboxState:
    """Scheduling state of one mailbox."""

    config: MailboxConfig
    poller: Poller
    failures: int = 0
    last_result: SessionResult | None = None
    last_exception: BaseException | None = None


@dataclass(frozen=True)
class CheckRow:
    """One line of ``popbridge check``."""

    mailbox: str
    ok: bool
    messages: int | None
    size: int | None
    detail: str


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
        self.metrics = metrics or Metrics(clock=self.clock.time)
        mailboxes = select_shard(config.mailboxes, shard)
        self.metrics.prepare(
            {m.name: m.webhooks for m in mailboxes}, extra_targets=list(config.webhooks)
        )
        self.health = HealthState(
            {m.name: m.poll_interval for m in mailboxes}, clock=self.clock.time
        )
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
        has_store = self.store is not None
        self.targets = {
            name: webhook_target(name, cfg, store=has_store)
            for name, cfg in config.webhooks.items()
        }
        self.webhooks = WebhookClient(
            on_request=self.metrics.webhook_attempt,
            on_breaker_change=self.metrics.breaker_changed,
            on_too_large=self.metrics.too_large,
            wall_clock=self.clock.time,
        )
        self.mailboxes = {
            m.name: MailboxState(
                config=m,
                poller=Poller(
                    mailbox_policy(m, store=has_store),
                    open_client=client_factory(m),
                    ledger=self.ledger,
                    webhooks=self.webhooks,
                    targets=self.targets,
                    deadletters=self.deadletters,
                    metrics=self.metrics,
                    clock=self.clock,
                    claim_check=(
                        ClaimCheck(
                            self.store,
                            store_above=m.max_attachment_bytes,
                            on_error=self.metrics.attachment_store_failed,
                        )
                        if self.store is not None
                        else None
                    ),
                ),
            )
            for m in mailboxes
        }
        self._sessions = asyncio.Semaphore(config.max_concurrent_sessions)
        self.server: HttpServer | None = None  # only `run` serves HTTP (see start_http)
        self.health.set_config_loaded()

    async def close(self) -> None:
        """Close the webhook client, the attachment store, the HTTP server and the ledger."""
        await self.webhooks.close()
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
            exc: BaseException | None = None
            result: SessionResult | None = None
            try:
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
        if exc is None and result is not None:
            state.failures = 0
            state.last_exception = None
            self.health.mailbox_polled(name, self.clock.time())
            self.metrics.poll_succeeded(name, self.clock.time())
            log.info(
                "session",
                mailbox=name,
                outcome=outcome,
                on_server=result.stat_messages,
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
                skipped=result.skipped,
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

    async def once(self, stop: asyncio.Event | None = None) -> bool:
        """One pass over every mailbox, draining what is there; True when all went well.

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
        return all(not t.cancelled() and t.exception() is None and t.result() for t in tasks)

    async def _drain(self, state: MailboxState, stop: asyncio.Event) -> bool:
        ok = True
        result: SessionResult | None = None
        while not stop.is_set():
            result = await self.session(state, stop)
            if result is None:
                return False
            ok = (
                ok
                and result.ok
                and not result.rejected
                and not result.oversize
                and not result.retr_failed
                and result.ledger_error is None
            )
            if not (result.more_pending and (result.fetched or result.reconciled)):
                break
        # Stopped (SIGTERM) with mail left behind: not "everything delivered".
        return ok and not (stop.is_set() and result is not None and result.more_pending)

    async def run(self, stop: asyncio.Event) -> None:
        """The service: poll every mailbox until ``stop`` is set, then wind down."""
        tasks = [
            asyncio.create_task(self._mailbox_loop(state, stop), name=f"mailbox:{name}")
            for name, state in self.mailboxes.items()
        ]
        retention = self.config.attachments.retention if self.config.attachments else None
        if self.store is not None and retention is not None:
            tasks.append(
                asyncio.create_task(self._retention_loop(retention, stop), name="retention")
            )
        try:
            await stop.wait()
            log.info("shutting_down", grace=self.config.shutdown_grace)
            self.health.set_shutting_down()
            self.metrics.set_up(False)
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
            for task in tasks:
                task.cancel()

    async def _retention_loop(self, older_than: float, stop: asyncio.Event) -> None:
        """Prune the attachment store at start and then every hour, while running."""
        assert self.store is not None
        while not stop.is_set():
            try:
                await prune_attachments(self.store, older_than, self.metrics)
            except AttachmentStoreError as exc:
                log.warning("attachments_prune_failed", error=str(exc))
            if await _wait(stop, RETENTION_INTERVAL, self.clock):
                return

    async def _mailbox_loop(self, state: MailboxState, stop: asyncio.Event) -> None:
        delay = self.rng.uniform(0, min(state.config.poll_interval, 5.0))
        while not stop.is_set():
            if await _wait(stop, delay, self.clock):
                return
            result = await self.session(state, stop)
            delay = self._delay_after(state, result)

    def _delay_after(self, state: MailboxState, result: SessionResult | None) -> float:
        cfg = state.config
        if result is not None:
            if result.more_pending and (result.fetched or result.reconciled):
                return 0.0
            return self._jitter(cfg.poll_interval)
        error = state.last_exception
        if isinstance(error, Pop3AuthError):
            return self._jitter(cfg.login_backoff_auth)
        if isinstance(error, Pop3InUseError):
            return self._jitter(cfg.login_backoff_in_use)
        if isinstance(error, Pop3LoginDelayError):
            return max(error.delay or cfg.poll_interval, 1.0)
        return self._jitter(
            min(cfg.poll_interval * 2 ** min(state.failures - 1, 10), MAX_FAILURE_BACKOFF)
        )

    async def check(self) -> list[CheckRow]:
        """Connect, authenticate and STAT each mailbox; change nothing."""

        async def one(state: MailboxState) -> CheckRow:
            name = state.config.name
            try:
                async with self._sessions:
                    client = await client_factory(state.config)()
                    try:
                        stat = await client.stat()
                        await client.quit()
                    finally:
                        await client.close()
            except (Pop3Error, OSError, TimeoutError, ssl.SSLError) as exc:
                return CheckRow(name, False, None, None, f"{session_outcome(exc, None)}: {exc}")
            return CheckRow(name, True, stat.count, stat.size, "ok")

        return list(await asyncio.gather(*(one(s) for s in self.mailboxes.values())))


async def _wait(stop: asyncio.Event, seconds: float, clock: Clock) -> bool:
    """Sleep ``seconds`` on ``clock`` unless ``stop`` is set first; True when stopped."""
    if seconds <= 0:
        return stop.is_set()
    sleeper = asyncio.ensure_future(clock.sleep(seconds))
    stopper = asyncio.ensure_future(stop.wait())
    try:
        await asyncio.wait({sleeper, stopper}, return_when=asyncio.FIRST_COMPLETED)
    finally:
        for fut in (sleeper, stopper):
            fut.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await fut
    return stop.is_set()
