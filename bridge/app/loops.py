"""The scheduling of `popbridge run`: a loop per mailbox on its phase grid, backoff by the
kind of failure, and the attachment store's retention loop."""

from __future__ import annotations

import asyncio
import contextlib

import structlog

from bridge.app.base import JITTER, MAX_FAILURE_BACKOFF, RETENTION_INTERVAL, MailboxState, _AppBase
from bridge.app.parts import prune_attachments
from bridge.clock import sleep_unless
from bridge.errors import (
    AttachmentStoreError,
    OAuth2RefusedError,
    Pop3AuthError,
    Pop3InUseError,
    Pop3LoginDelayError,
)
from bridge.poller import SessionResult
from bridge.scheduler import first_delay, next_slot

log = structlog.get_logger("bridge.app")


class _Loops(_AppBase):
    """`popbridge run`: every mailbox polled on its own schedule until stopped."""

    def _jitter(self, seconds: float) -> float:
        return max(0.0, seconds * (1 + self.rng.uniform(-JITTER, JITTER)))

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
