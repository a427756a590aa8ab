"""The running service: :class:`App`, its modes (`run`, `once`, `check`) and its reloads."""

from __future__ import annotations

import asyncio

import structlog

from bridge.app.base import (
    JITTER,
    MAX_FAILURE_BACKOFF,
    ONCE_MAX_WAIT,
    RETENTION_INTERVAL,
    MailboxState,
)
from bridge.app.loops import _Loops
from bridge.app.parts import select_shard, session_outcome
from bridge.checkup import CheckRow, check_mailbox
from bridge.clock import sleep_unless
from bridge.config import Config
from bridge.errors import Pop3InUseError, Pop3LoginDelayError
from bridge.exitcodes import ExitCode, OnceReport, session_exit_code
from bridge.reload import ConfigChange, diff_configs

log = structlog.get_logger("bridge.app")

__all__ = [
    "JITTER",
    "MAX_FAILURE_BACKOFF",
    "ONCE_MAX_WAIT",
    "RETENTION_INTERVAL",
    "App",
    "MailboxState",
]


class App(_Loops):
    """Everything the service runs, built from one :class:`~bridge.config.Config`."""

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

    async def check(self) -> list[CheckRow]:
        """Try what a session needs on each mailbox, changing nothing (:mod:`bridge.checkup`)."""

        async def one(state: MailboxState) -> CheckRow:
            async with self._sessions:
                return await check_mailbox(
                    state.config.name, state.poller.open_client, quit_warn=self.check_quit_warn
                )

        return list(await asyncio.gather(*(one(s) for s in self.mailboxes.values())))
