"""The delivery phase of a session: one retrieved message parsed, posted to each target due,
and its outcome recorded in the ledger (acknowledged, retry later, parked, dead-lettered)."""

from __future__ import annotations

import asyncio
import contextlib
import re
import time
from collections.abc import Sequence
from datetime import UTC, datetime

from bridge.clock import sleep_unless
from bridge.errors import AttachmentStoreError
from bridge.identity import Message, content_key
from bridge.ledger import RowState
from bridge.mime import Payload, build_headers_only_payload, build_payload, payload_json
from bridge.poller.commit import _Commit
from bridge.poller.model import (
    _MAY_WAIT,
    LARGE_MESSAGE_BYTES,
    PARSE_IN_THREAD_BYTES,
    _Batch,
    _Fetched,
)
from bridge.reconcile import HEAD_PREFIX, Acknowledged, content_digest
from bridge.webhook import DeliveryKind, DeliveryOutcome, ReferenceBody, webhook_id

_COPY = re.compile(r"#\d+\Z")  # the number of a byte-identical copy (identity.content_key)


class _Deliver(_Commit):
    """Delivery: parse, POST to every target due, record what each answered."""

    def _build(self, msg: Message, data: _Fetched) -> Payload:
        if self._client().utf8:
            return self._build_unmarked(msg, data).model_copy(update={"pop3_utf8": True})
        return self._build_unmarked(msg, data)

    def _build_unmarked(self, msg: Message, data: _Fetched) -> Payload:
        fetched_at = datetime.now(UTC)
        options = self.policy.payload_options
        mailbox = self.policy.name
        if data.raw is not None:
            return build_payload(
                data.raw,
                mailbox=mailbox,
                uidl=msg.uid,
                webhook_id=msg.webhook_id,
                fetched_at=fetched_at,
                options=options,
            )
        assert data.head is not None
        return build_headers_only_payload(
            data.head,
            size=msg.size,
            mailbox=mailbox,
            uidl=msg.uid,
            webhook_id=msg.webhook_id,
            fetched_at=fetched_at,
            reason=data.reason,
            options=options,
        )

    async def _handle(
        self, batch: _Batch, msg: Message, due: tuple[str, ...], data: _Fetched
    ) -> None:
        # A payload and its JSON body take about 2.7 times the raw message: large messages
        # go one at a time, so memory stays near a few times the largest message.
        large = data.raw is not None and len(data.raw) >= LARGE_MESSAGE_BYTES
        async with self._large if large else contextlib.nullcontext(), self._semaphore:
            await self._handle_locked(batch, msg, due, data)

    async def _handle_locked(
        self, batch: _Batch, msg: Message, due: tuple[str, ...], data: _Fetched
    ) -> None:
        mailbox = self.policy.name
        began = time.monotonic()
        if msg.uid in self._expected:
            # Some target acknowledged this identity before: is it still that message?
            # No proof (no stored hash, another size, another hash) means a new message.
            ack = self._expected[msg.uid]
            by_head = data.raw is None or (
                data.head is not None and ack is not None and ack.head_only
            )
            if self._is_content(msg, ack, self._digest(msg, data, by_head)):
                if by_head and data.raw is not None:
                    # The others get it headers-only, as the first target did (one content
                    # per webhook-id), though it is within max_message_bytes now.
                    data.raw = None
                    data.reason = "delivered headers-only to another target before"
            else:
                # Another message: it goes by today's max_message_bytes (the fetch read it
                # the way the acknowledgement was taken).
                limit = self.policy.max_message_bytes
                over = msg.size > limit
                reason = self._oversize_reason(msg)
                if data.raw is not None and over and data.head is not None:
                    data.raw, data.reason = None, reason  # oversize_policy headers_only
                    self.result.oversize += 1
                    self.p.metrics.message_oversize(self.policy.name)
                elif data.raw is not None:
                    data.head = None
                renamed = self._reidentify(msg, self._digest(msg, data, data.raw is None))
                if renamed is None:
                    return
                msg, due = renamed
                if data.raw is not None and over:  # oversize_policy park (or no TOP)
                    self._park_oversize(msg, due, reason)
                    return
        size = len(data.raw) if data.raw is not None else msg.size
        if size > PARSE_IN_THREAD_BYTES:
            payload = await asyncio.to_thread(self._build, msg, data)
        else:
            payload = self._build(msg, data)
        if data.raw is not None:
            data.content = (len(data.raw), payload.sha256 or content_digest(data.raw))
        elif data.head is not None:
            data.content = (msg.size, self._digest(msg, data, by_head=True))
        if self.policy.reject_policy != "dead_letter":
            data.raw = None  # only a dead letter needs the raw bytes again: free them early
        if payload.defects:
            self.p.metrics.parse_defects_found(mailbox, len(payload.defects))
        claim = self.p.claim_check
        try:
            # Large attachments go to the content store before the POST that refers to them.
            payload = await claim.store_large(payload) if claim is not None else payload
        except AttachmentStoreError as exc:
            outcomes = [
                DeliveryOutcome(DeliveryKind.TRANSIENT, t, payload.webhook_id, error=str(exc))
                for t in due
            ]
        else:
            body = payload_json(payload)
            # Without a content store there is no reference body: a 413 parks or rejects.
            reference = claim.reference_body(payload) if claim is not None else None
            posts = [
                self.p.webhooks.deliver(
                    self.p.targets[t], payload.webhook_id, body, reference_body=reference
                )
                for t in due
            ]
            # One target (the common case) needs no extra task; several are posted concurrently.
            self._posting += 1
            self._idle.clear()
            try:
                outcomes = (
                    [await posts[0]] if len(posts) == 1 else list(await asyncio.gather(*posts))
                )
            finally:
                self._posting -= 1
                if not self._posting:
                    self._idle.set()
            if any(o.kind is DeliveryKind.ACKED for o in outcomes) and any(
                o.kind in _MAY_WAIT for o in outcomes
            ):
                # Another target may now wait for its breaker's trial request (up to its
                # cool-down): what was acknowledged goes to the ledger first, so neither a
                # SIGTERM nor a crash during the wait makes it be posted again.
                early = {o.target for o in outcomes if o.kind is DeliveryKind.ACKED}
                self.p.ledger.mark_acked(
                    self.policy.name, msg.uid, sorted(early), content=data.content, sync=False
                )
                data.acked_early = early
            outcomes = await self._after_recovery(payload.webhook_id, body, reference, outcomes)
            if data.raw is not None:  # dead_letter policy: keep what was posted, for replay
                data.body = body
            del body
        outcome = await self._record(batch, msg, outcomes, data)
        self.log.info(
            "message",
            uidl=msg.uid,
            webhook_id=msg.webhook_id,
            size=msg.size,
            outcome=outcome,
            targets={o.target: o.kind.value for o in outcomes},
            attempts=sum(o.attempts for o in outcomes),
            status={o.target: o.status for o in outcomes if o.status is not None},
            error=next((o.error for o in outcomes if o.error), None),
            duration=round(time.monotonic() - began, 4),
        )

    def _park_oversize(self, msg: Message, due: tuple[str, ...], reason: str) -> None:
        mailbox = self.policy.name
        self.result.oversize += 1
        self.p.metrics.message_oversize(mailbox)
        until = self.p.clock.time() + self.policy.oversize_park_delay
        for target in due:
            self.p.ledger.mark_parked(mailbox, msg.uid, target, reason, until, refused=False)
        self.log.warning("oversize_parked", uidl=msg.uid, size=msg.size, reason=reason)
        if self.policy.strict_order:
            self._strict_blocked = True

    def _oversize_reason(self, msg: Message) -> str:
        limit = self.policy.max_message_bytes
        return f"message is {msg.size} bytes, over max_message_bytes={limit}"

    @staticmethod
    def _digest(msg: Message, data: _Fetched, by_head: bool) -> str:
        """The stored form of the hash of what was fetched: of the header block (and the
        ``LIST`` size) when ``by_head``, else of the whole message."""
        if by_head or data.raw is None:
            return content_digest((data.head or b"") + b"size:%d" % msg.size, head_only=True)
        return content_digest(data.raw)

    def _content_key(self, msg: Message, digest: str) -> str:
        """The identity of ``msg``'s content (``digest``) under the identity it is listed with.

        Named after the listed identity: a message renamed to a content key that proves to be
        other content is that identity's next content (no nested ``<uid>~<a>~<b>``)."""
        short = digest.removeprefix(HEAD_PREFIX)
        prefix = "t" if short != digest else ""
        return content_key(self._listed.get(msg.num, msg.uid), prefix + short, {})

    def _is_content(self, msg: Message, ack: Acknowledged | None, digest: str) -> bool:
        """True when ``msg`` is the message its identity stands for: the content some target
        acknowledged under it or, where none did, the content its content key names."""
        if ack is not None:
            return ack.listed_size in (None, msg.size) and ack.sha256 == digest
        return self._renamed(msg) and self._content_key(msg, digest) == _COPY.sub("", msg.uid)

    def _reidentify(self, msg: Message, digest: str) -> tuple[Message, tuple[str, ...]] | None:
        """``msg`` is not the content its identity stands for (what a target acknowledged
        under it, or what its content key names): it is new, and gets an identity of its
        content. Returns it with the targets still due, or None when
        every target already acknowledged this very content (it is then deleted)."""
        mailbox, targets = self.policy.name, self.policy.targets
        key = self._content_key(msg, digest)
        new = Message(num=msg.num, uid=key, size=msg.size, webhook_id=webhook_id(mailbox, key))
        self.p.ledger.mark_seen(mailbox, [(key, new.webhook_id, msg.size)], targets)
        self.p.ledger.mark_proven(mailbox, key, self.p.clock.time())  # a key known before too
        rows = self.p.ledger.rows_for(mailbox, key)
        waiting = tuple(t for t in targets if not rows[t].done)
        self.result.reused_identities += 1
        self.p.metrics.identity_problem(mailbox, "reused")
        self.log.warning(
            "identity_reused",
            uidl=msg.uid,
            new_identity=key,
            detail="another message was acknowledged under this identity: posted as new",
        )
        if not waiting:
            if self._holds(rows, self.p.clock.time()):
                self.result.kept += 1  # delivered under this content before, and kept
                return None
            self.to_delete.append(new)
            self.result.reconciled += 1
            return None
        self._waiting[key] = waiting
        self._refused[key] = {
            t for t in waiting if rows[t].state == RowState.PARKED and rows[t].refused
        }
        return new, waiting

    async def _after_recovery(
        self,
        webhook_id: str,
        body: bytes,
        reference: ReferenceBody | None,
        outcomes: list[DeliveryOutcome],
    ) -> list[DeliveryOutcome]:
        """A message already fetched whose target's breaker is open waits for the breaker's
        next trial request (if it comes within the session's time budget) and, when the
        target is back, is delivered in this session instead of being fetched again later.
        One wait per message and target: a target still down leaves the message for later."""
        webhooks, clock = self.p.webhooks, self.p.clock
        for i, o in enumerate(outcomes):
            if o.kind not in _MAY_WAIT:
                continue
            if o.kind is DeliveryKind.TRANSIENT and not webhooks.is_open(o.target):
                # The first failures come before the breaker opens: whether the target is
                # down is known once the POSTs under way have their answers.
                await self._idle.wait()
            if not webhooks.is_open(o.target):
                continue  # failed on its own; the breaker has not given up on the target
            target = self.p.targets[o.target]
            # the trial request itself may take up to the target's timeout
            until = clock.monotonic() + webhooks.retry_in(o.target) + target.timeout + 1.0
            if until > self._deadline or self.stop.is_set():
                continue
            while not self.stop.is_set():
                # Wait out the cool-down, then for a trial request another message may have
                # started; CIRCUIT_OPEN comes back at once, without a request.
                while webhooks.is_open(o.target) and clock.monotonic() < until:
                    left = until - clock.monotonic()
                    pause = min(left, max(webhooks.retry_in(o.target), 0.05))
                    if await sleep_unless(self.stop, pause, clock):
                        break  # SIGTERM: the message waits for a later session
                if webhooks.is_open(o.target) or self.stop.is_set():
                    break
                outcomes[i] = await webhooks.deliver(
                    target, webhook_id, body, reference_body=reference
                )
                if outcomes[i].kind is not DeliveryKind.CIRCUIT_OPEN:
                    break
        return outcomes

    async def _record(
        self, batch: _Batch, msg: Message, outcomes: Sequence[DeliveryOutcome], data: _Fetched
    ) -> str:
        """Write the outcomes to the ledger and metrics; decide delete, dead-letter or wait."""
        mailbox = self.policy.name
        ledger = self.p.ledger
        now = self.p.clock.time()
        for o in outcomes:
            if o.kind is DeliveryKind.ACKED:
                self.p.metrics.message_delivered(mailbox, o.target)
            elif o.kind is DeliveryKind.REJECTED:
                self.p.metrics.message_rejected(mailbox, o.target)
                self.p.metrics.delivery_failed(mailbox, o.target, "rejected")
            elif o.kind is DeliveryKind.CIRCUIT_OPEN:
                self.p.metrics.delivery_failed(mailbox, o.target, "circuit_open")
            else:
                self.p.metrics.delivery_failed(mailbox, o.target, "transient")
        acked = {o.target for o in outcomes if o.kind is DeliveryKind.ACKED}
        rejected = [o for o in outcomes if o.kind is DeliveryKind.REJECTED]
        transient = [
            o for o in outcomes if o.kind not in (DeliveryKind.ACKED, DeliveryKind.REJECTED)
        ]
        if acked - data.acked_early:
            # Committed now (a crash cannot lose it); one fsync before the batch's DELEs.
            ledger.mark_acked(
                mailbox,
                msg.uid,
                sorted(acked - data.acked_early),
                now,
                content=data.content,
                sync=False,
            )
        for o in rejected:
            # A 413 parked for size is no refusal of the message (it must not be dead-lettered).
            by_receiver = not getattr(o, "parked", False)
            ledger.mark_parked(
                mailbox, msg.uid, o.target, o.error or "rejected", None, refused=by_receiver
            )
        for o in transient:
            # Due again at the next session unless the receiver itself asked for a pause
            # (Retry-After); a target that keeps failing is held back by its circuit
            # breaker, which lives in memory, not by a per-message wait.
            paused = o.retry_after if o.retry_after_from_receiver else None
            due_at = now + paused if paused else now
            ledger.mark_transient(mailbox, msg.uid, o.target, o.error or o.kind.value, due_at)

        # Targets done before this session are not in `waiting`; the rest must answer now.
        waiting = set(self._waiting.get(msg.uid, self.policy.targets))
        refused = {o.target for o in rejected} | self._refused.get(msg.uid, set())
        settled = acked | refused
        if waiting <= acked:
            self.result.delivered += 1
            if self.policy.keep:
                self.result.kept += 1  # stays on the server; its acked rows remember it
            else:
                self.to_delete.append(msg)  # DELE after this batch, once the acks are synced
            return "acked"
        if transient:
            self.result.transient += 1
            batch.failed = True
            outcome = "retry_later"
        elif (
            refused
            and waiting <= settled
            and self.policy.reject_policy == "dead_letter"
            and data.raw is not None  # a headers-only (oversize) payload stays parked
            and not any(o.parked for o in rejected)  # too large, on_too_large: park
        ):
            # Every target has answered for good (acknowledged or refused): spool it durably,
            # then it may go. A target that only failed for now keeps it on the server.
            why = "; ".join(f"{o.target}: {o.error}" for o in rejected) or "rejected before"
            await asyncio.to_thread(
                self.p.deadletters.write,
                mailbox,
                msg.uid,
                data.raw,
                why,
                webhook_id=msg.webhook_id,
                payload=data.body,
                extra={"targets": sorted(refused)},
            )
            ledger.mark_dead_lettered(mailbox, msg.uid, why, now, content=data.content)
            self.p.metrics.message_dead_lettered(mailbox)
            self.result.dead_lettered += 1
            if self.policy.keep:
                self.result.kept += 1  # spooled and done; keep leaves it on the server
            else:
                self.to_delete.append(msg)
            return "dead_lettered"
        elif rejected:
            self.result.rejected += 1
            outcome = "parked"
        else:
            self.result.skipped += 1  # delivered where due; another target waits (parked, breaker)
            outcome = "waiting_for_other_targets"
        if self.policy.strict_order:
            self._strict_blocked = True
        return outcome
