"""The reconcile phase of a session: messages every target acknowledged before are proven
(:mod:`bridge.reconcile`) before a DELE, kept ones left alone (:mod:`bridge.keep`), and a
message whose identity moved carries its delivery over instead of being posted again."""

from __future__ import annotations

from bridge.errors import Pop3TimeoutError
from bridge.identity import Message, key_base
from bridge.keep import same_listing
from bridge.ledger import Row, identity_base
from bridge.poller.fetch import _Fetch
from bridge.reconcile import Acknowledged, acknowledged, verify
from bridge.webhook import webhook_id


class _Prove(_Fetch):
    """Reconcile: prove acknowledged messages before deleting them, keep what keep holds."""

    def _keep_apart(
        self,
        candidates: list[tuple[Message, Acknowledged | None]],
        known: dict[str, dict[str, Row]],
        renamed: dict[int, Message],
    ) -> list[tuple[Message, Acknowledged | None]]:
        """With keep: the candidates to prove now. A kept message listed at its first size is
        left alone (no RETR at every poll). One listed with another size names another message
        now: if exactly one message told apart by content under this identity was delivered at
        this size (an earlier session proved it), it is that one, kept as well (``renamed``);
        otherwise it is proven (and so posted as new). Messages whose keep_days passed are
        proven for DELE (within the session's budget, :meth:`_prove`)."""
        now = self.p.clock.time()
        prove: list[tuple[Message, Acknowledged | None]] = []
        for msg, ack in candidates:
            rows = known[msg.uid]
            if not self._holds(rows, now):
                prove.append((msg, ack))
            elif same_listing(rows, msg.size):
                self._kept.add(msg.uid)
            elif (twin := self._kept_twin(msg, known, now)) is not None:
                renamed[msg.num] = twin
                self._kept.add(twin.uid)
            else:
                prove.append((msg, ack))
        return prove

    def _kept_twin(
        self, msg: Message, known: dict[str, dict[str, Row]], now: float
    ) -> Message | None:
        """The one kept content identity ``<uid>~<hash>`` delivered at ``msg``'s size, if any."""
        base = key_base(msg.uid)
        twins = [
            key
            for key, rows in known.items()
            if key != msg.uid
            and identity_base(key) == base
            and all(r.done for r in rows.values())
            and same_listing(rows, msg.size)
            and self._holds(rows, now)
        ]
        if len(twins) != 1:
            return None
        key = twins[0]
        return Message(
            num=msg.num, uid=key, size=msg.size, webhook_id=webhook_id(self.policy.name, key)
        )

    def _spare(
        self, inventory: list[Message], known: dict[str, dict[str, Row]]
    ) -> dict[str, tuple[str, int]]:
        """Delivered messages no listed identity accounts for: ``{content hash: (identity,
        listed size)}`` of every done identity not listed now at its size and never deleted by
        a committed session. A message listed under a new identity with that content is the
        one delivered (a UIDL that moved: positional UIDLs, a rebuilt UID list, a look-alike
        twin that left): :meth:`_prove` adopts its delivery instead of posting it again."""
        listed = {m.uid: m.size for m in inventory}
        spare: dict[str, tuple[str, int]] = {}
        for uid, rows in known.items():
            if uid in listed and same_listing(rows, listed[uid]):
                continue
            if any(r.committed_at is not None for r in rows.values()):
                continue
            ack = acknowledged(rows)
            if ack is None or ack.sha256 is None or ack.listed_size is None:
                continue
            if not all(t in rows for t in self.policy.targets):
                continue
            spare.setdefault(ack.sha256, (uid, ack.listed_size))
        return spare

    def _over_budget(
        self, checks: list[tuple[Message, Acknowledged | None]]
    ) -> tuple[list[tuple[Message, Acknowledged | None]], list[Message]]:
        """Split the messages to retrieve for proof by the session's message and byte budget:
        ``(now, later)``. A delivered message left for later is kept one more session (keep);
        any other waits, neither posted nor deleted; the next session starts at once."""
        now: list[tuple[Message, Acknowledged | None]] = []
        later: list[Message] = []
        size = 0
        for msg, ack in checks:
            if now and (
                len(now) >= self.policy.session_max_messages
                or size + msg.size > self.policy.session_max_bytes
            ):
                later.append(msg)
                continue
            now.append((msg, ack))
            size += msg.size
        if later:
            self.result.more_pending = True
        return now, later

    async def _prove(
        self, inventory: list[Message], known: dict[str, dict[str, Row]]
    ) -> list[Message]:
        """Check the messages every target acknowledged before (reconcile candidates) against
        what was acknowledged; the unproven become new messages (see :mod:`bridge.reconcile`).
        A new identity with the size of a delivered message no identity accounts for is
        retrieved too: with that content, it is that message under a moved UIDL, and its
        delivery is adopted instead of posting it again."""
        targets = self.policy.targets
        mono = self.p.clock.monotonic()
        later = {uid for uid, until in self.p.unverifiable.items() if until > mono}
        candidates = [
            (m, acknowledged(known[m.uid]))
            for m in inventory
            if m.uid in known
            and m.uid not in later
            and all(t in known[m.uid] and known[m.uid][t].done for t in targets)
        ]
        held_back = [m for m in inventory if m.uid in later]
        if held_back:
            self.result.skipped += len(held_back)
            inventory = [m for m in inventory if m.uid not in later]
        replaced: dict[int, Message] = {}
        if self.policy.keep:
            candidates = self._keep_apart(candidates, known, replaced)
        spare = self._spare(inventory, known)
        sizes = {size for _, size in spare.values()}
        lookalikes = {m.num for m in inventory if m.uid not in known and m.size in sizes}
        checks = candidates + [(m, None) for m in inventory if m.num in lookalikes]
        checks, waiting = self._over_budget(checks)
        dropped: set[int] = set()
        for msg in waiting:
            if msg.num not in lookalikes and self.policy.keep:
                self._kept.add(msg.uid)  # delivered: kept one more session, proven then
            else:
                dropped.add(msg.num)
                self.result.skipped += 1
        if not checks:
            return [replaced.get(m.num, m) for m in inventory if m.num not in dropped]
        verdict = await verify(
            self._client(),
            mailbox=self.policy.name,
            candidates=checks,
            max_message_bytes=self.policy.max_message_bytes,
        )
        if verdict.timed_out is not None:
            # Its proof could not be retrieved in time: leave it alone for a while (it stays
            # on the server, nothing is posted), reconnect and go on with the others.
            stuck = verdict.timed_out
            self.p.unverifiable[stuck.uid] = mono + self.policy.retr_retry_base
            self._timed_out = stuck
            self.result.retr_failed += 1
            self.p.metrics.retr_failed(self.policy.name, "timeout")
            self.log.warning("reconcile_timed_out", uidl=stuck.uid)
            failure = self._client().failure
            assert isinstance(failure, Pop3TimeoutError)
            raise failure
        for msg in verdict.proven:
            spare.pop(verdict.digests[msg.num], None)  # accounted for by its own identity
        for old, new in verdict.renamed:
            moved = spare.get(verdict.digests[old.num])
            if moved is not None and moved[1] == old.size:
                del spare[verdict.digests[old.num]]
                replaced[old.num] = self._adopt(old if old.num in lookalikes else new, moved[0])
                continue
            if old.num in lookalikes:
                continue  # another message: posted under the identity it is listed with
            replaced[old.num] = new
            self.result.reused_identities += 1
            self.p.metrics.identity_problem(self.policy.name, "reused")
            self.log.warning(
                "identity_reused",
                uidl=old.uid,
                new_identity=new.uid,
                detail="the message listed under this identity is not the one acknowledged "
                "under it: posted as a new message, not deleted",
            )
        gone = {msg.num for msg, _ in verdict.unreadable} | dropped
        for msg, error in verdict.unreadable:
            self.result.skipped += 1
            self.log.warning("reconcile_unreadable", uidl=msg.uid, error=str(error))
        return [replaced.get(m.num, m) for m in inventory if m.num not in gone]

    def _adopt(self, msg: Message, source: str) -> Message:
        """``msg`` is proven to be the message delivered as ``source``: record it as such."""
        self.p.ledger.adopt(self.policy.name, source, msg.uid, msg.webhook_id, msg.size)
        self.result.moved_identities += 1
        self.p.metrics.identity_problem(self.policy.name, "moved")
        self.log.warning(
            "identity_moved",
            uidl=msg.uid,
            delivered_as=source,
            detail="this message was delivered before under another identity (UIDLs that "
            "moved: positional UIDLs, a rebuilt UID list): not posted again",
        )
        return msg
