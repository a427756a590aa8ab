"""The reconcile phase of a session: messages every target acknowledged before are proven
(:mod:`bridge.reconcile`) before a DELE, kept ones left alone (:mod:`bridge.keep`), and a
message whose identity moved carries its delivery over instead of being posted again."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass

from bridge.errors import Pop3TimeoutError
from bridge.identity import Message, key_base
from bridge.keep import same_listing
from bridge.ledger import Row, identity_base
from bridge.poller.fetch import _Fetch
from bridge.reconcile import Acknowledged, Verdict, acknowledged, verify
from bridge.webhook import webhook_id


def _written(rows: dict[str, Row]) -> float:
    """When an identity's rows were last written (acknowledged, adopted, proven)."""
    return max(r.updated_at for r in rows.values())


def _acked_at(rows: dict[str, Row]) -> set[float]:
    """When the done rows of an identity were acknowledged (copied as they are by
    :meth:`~bridge.ledger.Ledger.adopt`)."""
    return {r.acked_at for r in rows.values() if r.done and r.acked_at is not None}


@dataclass(frozen=True)
class _Spare:
    """A delivered message no listed identity accounts for (see :meth:`_Prove._spare`)."""

    uid: str
    size: int
    ack: Acknowledged


class _Prove(_Fetch):
    """Reconcile: prove acknowledged messages before deleting them, keep what keep holds."""

    def _keep_apart(
        self,
        candidates: list[tuple[Message, Acknowledged | None]],
        known: dict[str, dict[str, Row]],
        renamed: dict[int, Message],
        twins: dict[int, Message],
        orphans: Counter[int],
        loose: set[int],
        waited: set[int],
        optional: list[tuple[Message, Acknowledged | None]],
        stale: set[int],
    ) -> list[tuple[Message, Acknowledged | None]]:
        """With keep: the candidates to prove now (and the twins to take for the messages
        in ``waited``: listed under an identity some target still waits for).

        A kept message listed at its first size is left alone (no RETR at every poll). One
        listed with another size names another message now. If an earlier session told it
        apart by content under this identity at this size (its ``twins`` entry), it is that
        one (``renamed``: kept or, past keep_days, proven under that identity; a twin some
        target still waits for is delivered to it after a check of the content) unless
        another listed message of that size has no such twin (``orphans``: it could be the
        twin's message, moved), in which case it is proven like a message without a twin
        (and so posted as new if it is new). Messages whose keep_days passed are proven for
        DELE (within the session's budget). Kept messages of a size at which a delivered
        message left its place now (``loose``) go to ``optional``: one of them may be that
        message, moved, and another message under its identity (positional UIDLs after a
        deletion in a mail client), which keep would not notice at the same size
        (:meth:`_compare_loose`). So are those whose rows are ``stale``."""
        now = self.p.clock.time()
        prove: list[tuple[Message, Acknowledged | None]] = []
        for msg, ack in candidates:
            rows = known[msg.uid]
            if msg.num in twins or not same_listing(rows, msg.size):
                twin = twins.get(msg.num)
                if twin is None or orphans[msg.size]:
                    if msg.num not in waited:  # that one is checked when it is delivered
                        prove.append((msg, ack))
                    continue
                renamed[msg.num] = twin
                rows = known[twin.uid]
                if not all(r.done for r in rows.values()):
                    continue  # a target still due gets it, once its content is checked
                if self._holds(rows, now):
                    self._kept.add(twin.uid)
                else:
                    # Past keep_days: proven against the twin's content before any DELE;
                    # another content is renamed under the listed identity and posted.
                    prove.append((msg, acknowledged(rows)))
                continue
            if not self._holds(rows, now) or msg.num in stale:
                prove.append((msg, ack))
            elif msg.size in loose:
                optional.append((msg, ack))
            else:
                self._kept.add(msg.uid)
        return prove

    def _twin(
        self,
        msg: Message,
        known: dict[str, dict[str, Row]],
        listed: set[str],
        after: float | None = None,
    ) -> Message | None:
        """The content identity ``<uid>~<hash>`` taken for ``msg`` without a download, if any.

        One that an earlier session told apart by content under this identity, recorded at
        ``msg``'s size, and not the identity of another message listed now (a delivery still
        due under it checks the content first: :attr:`_expected`). With several, the one
        proven last (:meth:`Ledger.mark_proven`): the identity holds it unless it changed at
        the same size (keep's limit, as with one). With ``after``: only one proven later.
        """
        base = key_base(msg.uid)
        found = [
            key
            for key, rows in known.items()
            if key != msg.uid
            and key not in listed
            and identity_base(key) == base
            and same_listing(rows, msg.size)
            and (after is None or _written(rows) > after)
        ]
        if not found:
            return None
        key = max(found, key=lambda k: (_written(known[k]), k))
        return Message(
            num=msg.num, uid=key, size=msg.size, webhook_id=webhook_id(self.policy.name, key)
        )

    @staticmethod
    def _superseded(
        uid: str, known: dict[str, dict[str, Row]], since: float, listed: set[str]
    ) -> bool:
        """True when a content of ``uid`` was told apart under it (``<uid>~<hash>``, at any
        size, not listed itself now) after ``since``: its own rows may stand for a message
        that left."""
        base = key_base(uid)
        return any(
            key != uid
            and key not in listed
            and identity_base(key) == base
            and _written(rows) > since
            for key, rows in known.items()
        )

    def _waiting_for(
        self,
        partly: list[Message],
        known: dict[str, dict[str, Row]],
        twins: dict[int, Message],
        chosen: set[int],
        loose: set[int],
        optional: list[tuple[Message, Acknowledged | None]],
    ) -> list[tuple[Message, Acknowledged | None]]:
        """The messages some target acknowledged and another is due to get now (its breaker
        not open), at their size or not: compared with what was acknowledged, with the other
        proofs (one listed at another size is another message: if it moved from an identity
        found to hold other content now, it adopts the delivery there). Those not due
        now, of a size at which a delivered message left its place (``loose``), go to
        ``optional`` (compared once, :meth:`_compare_loose`). With ``strict_order``, only
        those before the first message that waits (they are the ones delivered now; the
        others would be retrieved at every poll and held back)."""
        now = self.p.clock.time()
        blocked = self._open_targets()
        first = min(self._holding(known, now, blocked), default=None)
        out: list[tuple[Message, Acknowledged | None]] = []
        for m in partly:
            rows = known[m.uid]
            if m.num in twins or m.num in chosen or (first is not None and m.num > first):
                continue
            if self._due_now(rows, now, blocked):
                out.append((m, acknowledged(rows)))
            elif m.size in loose:
                optional.append((m, acknowledged(rows)))
        return out

    def _due_now(self, rows: dict[str, Row], now: float, blocked: set[str]) -> bool:
        """True when a target is due to get this message now: not done, its next attempt
        reached (or no row yet: a target added), its breaker not open."""
        return any(
            t not in blocked and (t not in rows or rows[t].due(now)) for t in self.policy.targets
        )

    def _holding(
        self, known: dict[str, dict[str, Row]], now: float, blocked: set[str]
    ) -> list[int]:
        """With ``strict_order``: the numbers of the messages that hold the later ones back
        (targets wait for them and none of those is due now with its breaker closed, as the
        delivery phase sees it; or their proof waits)."""
        if not self.policy.strict_order:
            return []
        out = list(self._deferred)
        for num, uid in self._listed.items():
            rows = known.get(uid, {})
            waiting = any(t not in rows or not rows[t].done for t in self.policy.targets)
            if rows and waiting and not self._due_now(rows, now, blocked):
                out.append(num)
        return out

    def _trusted(self, twins: dict[int, Message], loose: set[int]) -> dict[int, Message]:
        """The ``twins`` that may be taken without a download: those of a size at which no
        delivered message is unaccounted for (``loose``, :meth:`_loose`): otherwise a twin
        could be any listed message of its size now (moved under it), and those are
        retrieved and compared."""
        return {num: twin for num, twin in twins.items() if twin.size not in loose}

    def _loose(
        self,
        inventory: list[Message],
        known: dict[str, dict[str, Row]],
        twins: dict[int, Message],
    ) -> set[int]:
        """The sizes of delivered messages no listed identity (nor twin) accounts for, by
        place or by content, that left their place now (not an earlier content of a listed
        identity): such a message can be any listed message of its size now, moved there
        (positional UIDLs after a message before it was deleted, a rebuilt UID list)."""
        sizes = {m.uid: m.size for m in inventory} | {t.uid: t.size for t in twins.values()}
        # A delivery another listed identity accounts for: the same content acknowledged at
        # the same moment (rows carried over by an adoption). A byte-identical copy
        # delivered on its own (at another moment) is a message of its own.
        claimed: set[tuple[str, float]] = set()
        for uid, size in sizes.items():
            rows = known.get(uid)
            if rows is not None and same_listing(rows, size):
                ack = acknowledged(rows)
                if ack is not None and ack.sha256 is not None:
                    claimed.update((ack.sha256, at) for at in _acked_at(rows))
        # An earlier content of a listed identity ``u`` stays while ``u`` is listed, gone or
        # not: it must not make every message of its size be retrieved for ever. That is a
        # content key ``u~<hash>``, or ``u``'s own rows once a content of ``u`` listed now
        # was told apart from them (a twin taken). Any other (a key not listed now, ``u``
        # listed at another size for the first time) is a message that left its place now
        # and can have moved.
        bases = {key_base(m.uid) for m in inventory} | {m.uid for m in inventory}
        told = {m.uid for m in inventory if m.num in twins}
        return {
            s.size
            for sha, group in self._spare(sizes, known).items()
            for s in group
            if not any((sha, at) in claimed for at in _acked_at(known[s.uid]))
            and s.uid not in told
            and (identity_base(s.uid) == s.uid or identity_base(s.uid) not in bases)
        }

    def _spare(
        self, listed: dict[str, int], known: dict[str, dict[str, Row]]
    ) -> dict[str, list[_Spare]]:
        """Delivered messages no listed identity accounts for, by content hash (byte-identical
        copies each have an entry): every done identity not ``listed`` now at its size and
        never deleted by a committed session. A message listed under a new identity with that
        content is the one delivered (a UIDL that moved: positional UIDLs, a rebuilt UID list,
        a look-alike twin that left): :meth:`_prove` adopts its delivery instead of posting it
        again (to the targets it was delivered to; a target added since gets it)."""
        spare: dict[str, list[_Spare]] = {}
        for uid, rows in known.items():
            if uid in listed and same_listing(rows, listed[uid]):
                continue
            if any(r.committed_at is not None for r in rows.values()):
                continue
            ack = acknowledged(rows)
            if ack is None or ack.sha256 is None or ack.listed_size is None:
                continue
            spare.setdefault(ack.sha256, []).append(_Spare(uid, ack.listed_size, ack))
        return spare

    def _over_budget(
        self, checks: list[tuple[Message, Acknowledged | None]]
    ) -> tuple[list[tuple[Message, Acknowledged | None]], list[Message]]:
        """Split the messages to retrieve for proof by the session's message and byte budget:
        ``(now, later)``; the next session starts at once for the later ones."""
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

    def _compare_loose(
        self,
        optional: list[tuple[Message, Acknowledged | None]],
        checks: list[tuple[Message, Acknowledged | None]],
        waiting: list[Message],
    ) -> list[tuple[Message, Acknowledged | None]]:
        """The kept messages of a loose size to compare now: those of a size whose messages
        all fit in what the session's budget leaves, after the checks that cannot wait, and
        only once (the delivery that made the size loose is not retained for them). The
        others stay kept without a download (keep's limit at the same size): a size never
        holds the budget at every poll nor takes it from a message that must be told apart."""
        picked: list[tuple[Message, Acknowledged | None]] = []
        count = len(checks)
        size = sum(m.size for m, _ in checks)
        by_size: dict[int, list[tuple[Message, Acknowledged | None]]] = {}
        for msg, ack in optional:
            by_size.setdefault(msg.size, []).append((msg, ack))
        for group in by_size.values():
            more = sum(m.size for m, _ in group)
            if (
                not waiting
                and not self._deferred  # its delivery's rows are retained: later, once
                and count + len(group) <= self.policy.session_max_messages
                and size + more <= self.policy.session_max_bytes
            ):
                picked += group
                count, size = count + len(group), size + more
            else:
                self._kept.update(m.uid for m, _ in group)
        return picked

    def _defer(self, msg: Message) -> None:
        """Neither post nor delete ``msg`` in this session (its proof is still to come)."""
        self._deferred.add(msg.num)

    async def _prove(
        self, inventory: list[Message], known: dict[str, dict[str, Row]]
    ) -> list[Message]:
        """Check the messages every target acknowledged before (reconcile candidates) against
        what was acknowledged; the unproven become new messages (see :mod:`bridge.reconcile`).
        A new identity with the size of a delivered message no identity accounts for is
        retrieved too: with that content, it is that message under a moved UIDL, and its
        delivery is adopted instead of posting it again.

        Messages whose proof is not had in this session (over the budget, timed out before,
        unreadable) are deferred (:attr:`_deferred`: neither posted nor deleted, and with
        ``strict_order`` nothing after them goes first), and while any is, the rows a moved
        message could adopt are not pruned (:attr:`_retain`)."""
        targets = self.policy.targets
        self._listed = {m.num: m.uid for m in inventory}
        mono = self.p.clock.monotonic()
        later = {uid for uid, until in self.p.unverifiable.items() if until > mono}
        now = self.p.clock.time()
        for msg in inventory:
            mine = known.get(msg.uid, {}).values()
            aside = all(r.done for r in mine) and any(
                r.next_attempt_at is not None and r.next_attempt_at > now for r in mine
            )  # its proof retrieval failed lately (Ledger.mark_proof_failed)
            if msg.uid in later or aside:
                self._defer(msg)
        candidates = [
            (m, acknowledged(known[m.uid]))
            for m in inventory
            if m.uid in known
            and m.num not in self._deferred
            and all(t in known[m.uid] and known[m.uid][t].done for t in targets)
        ]
        unsettled = [
            m
            for m in inventory
            if m.num not in self._deferred
            and (m.uid not in known or not same_listing(known[m.uid], m.size))
        ]
        uids = {m.uid for m in inventory}
        twins = {
            m.num: twin
            for m in unsettled
            if m.uid in known and (twin := self._twin(m, known, uids)) is not None
        }
        # Listed at its size under a UIDL some target acknowledged: a content told apart under
        # it since its rows were last written (they stand for a message that left this place:
        # proven elsewhere, or gone) is the message listed now; one told apart since at
        # another size makes its rows stale (``stale``: retrieved and compared). Not for
        # header identities, which several messages share at once.
        partly = [
            m
            for m in inventory
            if m.num not in self._deferred
            and m.num not in twins
            and not m.uid.startswith("hdr:")
            and m.uid in known
            and same_listing(known[m.uid], m.size)
            and any(r.done for r in known[m.uid].values())
        ]
        stale: set[int] = set()
        for m in partly:
            since = _written(known[m.uid])
            twin = self._twin(m, known, uids, after=since)
            if twin is not None:
                twins[m.num] = twin
            elif self._superseded(m.uid, known, since, uids):
                stale.add(m.num)
        loose = self._loose(inventory, known, twins)
        twins = self._trusted(twins, loose)
        orphans = Counter(m.size for m in unsettled if m.num not in twins)
        replaced: dict[int, Message] = {}
        optional: list[tuple[Message, Acknowledged | None]] = []
        # A message with a twin whose own identity's rows are not all done (another message,
        # partly delivered) is that twin too: kept, or delivered after a content check.
        chosen = {m.num for m, _ in candidates}
        waited = {m.num for m in unsettled + partly if m.num in twins and m.num not in chosen}
        extra: list[tuple[Message, Acknowledged | None]] = [
            (m, None) for m in unsettled + partly if m.num in waited
        ]
        if self.policy.keep:
            candidates = self._keep_apart(
                candidates + extra, known, replaced, twins, orphans, loose, waited, optional, stale
            )
        else:
            candidates += self._keep_apart(
                extra, known, replaced, twins, orphans, loose, waited, optional, stale
            )
        # One some target still waits for, and is due to get now, is retrieved anyway: it is
        # compared here, with the others, so a message that moved onto its identity adopts
        # the delivery there and its own message (moved elsewhere) is found.
        waiting_known = [
            m
            for m in inventory
            if m.num not in self._deferred
            and m.uid in known
            and any(r.done for r in known[m.uid].values())
        ]
        candidates += self._waiting_for(waiting_known, known, twins, chosen, loose, optional)
        listed = {replaced.get(m.num, m).uid: m.size for m in inventory}
        spare = self._spare(listed, known)
        lookalikes: list[tuple[Message, Acknowledged | None]] = []
        proving = {m.num for m, _ in candidates}
        for m in inventory:
            if m.num in self._deferred or m.num in proving:
                continue
            was = known.get(m.uid)
            if m.num in replaced or (
                was is not None
                and (same_listing(was, m.size) or all(t in was and was[t].done for t in targets))
            ):
                # Known: only rows at another size that some target still waits for may be
                # its place (one every target acknowledged is proven as a candidate).
                continue
            same = [s.ack for group in spare.values() for s in group if s.size == m.size]
            if same:  # a whole acknowledgement is proven whole (bridge.reconcile.proof_by_head)
                lookalikes.append((m, next((a for a in same if not a.head_only), same[0])))
        looks = {m.num for m, _ in lookalikes}
        # Messages with a twin of their own come last: the budget goes first to those that
        # cannot be settled otherwise, so no message waits behind the same ones every session.
        ordered = sorted(candidates + lookalikes, key=lambda c: c[0].num in twins)
        checks, waiting = self._over_budget(ordered)
        checks += self._compare_loose(optional, checks, waiting)
        for msg in waiting:
            rows = known.get(msg.uid)
            if self.policy.keep and rows is not None and same_listing(rows, msg.size):
                self._kept.add(msg.uid)  # delivered (its listing says so): proven later
            else:
                self._defer(msg)
        if self._deferred:
            self._retain.update(s.uid for group in spare.values() for s in group)
        if not checks:
            return [replaced.get(m.num, m) for m in inventory]
        verdict = await self._verify(checks)
        await self._follow_moves(inventory, known, replaced, checks, verdict)
        proven = {m.num for m in verdict.proven}
        # What the proof found decides which deliveries are accounted for: one proven is
        # (by its identity), one whose identity was proven to hold other content is not
        # (its message may be listed under another identity now, and adopts it).
        found = {old.num: new.uid for old, new in verdict.renamed if old.num not in looks}
        spare = self._spare(
            {found.get(m.num, replaced.get(m.num, m).uid): m.size for m in inventory}, known
        )
        for msg in verdict.proven:
            if msg.num not in looks:  # its rows are what the identity holds (not stale)
                uid = replaced.get(msg.num, msg).uid
                self.p.ledger.mark_proven(self.policy.name, uid, self.p.clock.time())
        checked = [(m, m) for m in verdict.proven if m.num in looks] + verdict.renamed
        for old, new in checked:
            if old.num in self._deferred:
                continue  # where its content was delivered is not known yet
            group = spare.get(verdict.digests[old.num], [])
            moved = next((s for s in group if s.size == old.size), None)
            if new.uid in known and old.num not in looks:
                replaced[old.num] = new  # the identity this content was given before
                self.p.ledger.mark_proven(self.policy.name, new.uid, self.p.clock.time())
                continue
            if moved is not None:
                group.remove(moved)
                into = old if old.num in looks else new
                if into.uid in known and any(r.done for r in known[into.uid].values()):
                    # A target acknowledged another message under this identity: the one
                    # listed now is known by its content's identity.
                    key = self._content_key(into, verdict.digests[old.num])
                    into = Message(into.num, key, into.size, webhook_id(self.policy.name, key))
                # Proven to be the very delivery it stands for: nothing to carry over.
                replaced[old.num] = into if into.uid == moved.uid else self._adopt(into, moved.uid)
                continue
            if old.num in looks or old.num in proven:
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
        for msg, error in verdict.unreadable:
            self._defer(msg)
            self._put_aside(msg)
            self.result.retr_failed += 1
            self.p.metrics.retr_failed(self.policy.name, "refused")
            self.log.warning("reconcile_unreadable", uidl=msg.uid, error=str(error))
        if self._deferred:
            self._retain.update(s.uid for group in spare.values() for s in group)
        return [replaced.get(m.num, m) for m in inventory]

    async def _verify(self, checks: list[tuple[Message, Acknowledged | None]]) -> Verdict:
        """Retrieve and compare ``checks`` (:func:`bridge.reconcile.verify`); a retrieval that
        timed out leaves its message alone for a while (it stays on the server, nothing is
        posted) and ends this connection (the session reconnects and goes on)."""
        verdict = await verify(
            self._client(),
            mailbox=self.policy.name,
            candidates=checks,
            max_message_bytes=self.policy.max_message_bytes,
        )
        if verdict.timed_out is not None:
            stuck = verdict.timed_out
            self._put_aside(stuck)
            self._timed_out = stuck
            self.result.retr_failed += 1
            self.p.metrics.retr_failed(self.policy.name, "timeout")
            self.log.warning("reconcile_timed_out", uidl=stuck.uid)
            failure = self._client().failure
            assert isinstance(failure, Pop3TimeoutError)
            raise failure
        return verdict

    async def _follow_moves(
        self,
        inventory: list[Message],
        known: dict[str, dict[str, Row]],
        replaced: dict[int, Message],
        checks: list[tuple[Message, Acknowledged | None]],
        verdict: Verdict,
    ) -> None:
        """Retrieve too the listed messages not retrieved now whose identity's acknowledged
        content (at their size) a retrieved message was found to hold under another
        identity: the content moved there (a rebuilt UID list moves every later message onto
        its predecessor's UIDL), so the identity may hold another message now, which may
        have moved too (followed until no new one). The moved messages then adopt their
        deliveries and the one listed in their place is posted if it is new. A moved message
        whose suspect cannot be retrieved now is deferred (neither posted nor deleted)."""
        checked = {m.num for m, _ in checks}
        fresh = verdict.renamed
        while fresh:
            moved: dict[tuple[str, int], list[int]] = {}
            for old, _ in fresh:
                moved.setdefault((verdict.digests[old.num], old.size), []).append(old.num)
            suspects: list[tuple[Message, Acknowledged | None]] = []
            pointing: dict[int, list[int]] = {}
            for m in inventory:
                rows = known.get(replaced.get(m.num, m).uid)
                if m.num in checked or not rows or not same_listing(rows, m.size):
                    continue
                ack = acknowledged(rows)
                nums = moved.get((ack.sha256, m.size), []) if ack and ack.sha256 else []
                if not nums:
                    continue
                if m.num in self._deferred:  # its proof waits (timed out before)
                    self._hold_back(inventory, nums)
                    continue
                suspects.append((m, ack))
                pointing[m.num] = nums
                checked.add(m.num)
            if not suspects:
                return
            more = await self._verify(suspects)
            verdict.proven += more.proven
            verdict.renamed += more.renamed
            verdict.unreadable += more.unreadable
            verdict.digests.update(more.digests)
            for msg, _ in more.unreadable:
                self._put_aside(msg)
                self._hold_back(inventory, pointing[msg.num])
            fresh = more.renamed

    def _hold_back(self, inventory: list[Message], nums: list[int]) -> None:
        """Defer the messages ``nums`` (moved: where they were delivered is not known yet)
        for as long as the message they wait for is put aside."""
        for m in inventory:
            if m.num in nums:
                self._defer(m)
                self._put_aside(m)

    def _put_aside(self, msg: Message) -> None:
        """Leave ``msg`` alone (not retrieved for its proof) for a while: ``retr_retry_base``
        after its first failure, doubling with each, as a failed RETR. Remembered by the
        ledger for a known identity (also across processes: ``once`` from cron), in memory
        for the others."""
        until = self.p.ledger.mark_proof_failed(
            self.policy.name, msg.uid, backoff_base=self.policy.retr_retry_base
        )
        wait = max(until - self.p.clock.time(), self.policy.retr_retry_base)
        self.p.unverifiable[msg.uid] = self.p.clock.monotonic() + wait

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
