"""The commit phase of a session: DELE (after the acknowledgements are durable) and QUIT."""

from __future__ import annotations

from collections.abc import Sequence

from bridge.errors import Pop3Error, Pop3ResponseError
from bridge.identity import Message
from bridge.poller.base import _State


class _Commit(_State):
    """Deletion and commit: DELE what every target acknowledged, QUIT."""

    async def _dele(self, messages: Sequence[Message]) -> None:
        """DELE messages whose every target is done, pipelined; ``-ERR`` is counted, not ignored.

        The acknowledgements are made durable first (one fsync for the whole batch): a message
        is never marked for deletion before its acknowledgement is on disk.
        """
        if messages or self.p.ledger.pending:
            # Also with nothing to delete (keep, a target that waits): acknowledgements are
            # written without fsync while the batch runs; they become durable here.
            await self.p.ledger.flush()
        if not messages:
            return
        mailbox = self.policy.name
        results = await self._client().dele_many([m.num for m in messages])
        sent: list[str] = []
        for msg, error in zip(messages, results, strict=True):
            if error is None:
                sent.append(msg.uid)
                continue
            self.p.metrics.commit_failed(mailbox, "DELE")
            self.p.metrics.pop3_error_response(mailbox, error.code)
            self.result.commit_errors.append(f"DELE {msg.num}: {error.text or error}")
            self.log.error("dele_failed", uidl=msg.uid, num=msg.num, error=error.text or str(error))
        self.deleted_uids.extend(sent)
        self.p.ledger.mark_dele_sent(mailbox, sent, sync=False)

    async def _quit(self) -> None:
        mailbox = self.policy.name
        client = self._client()
        try:
            await client.quit()
        except (Pop3Error, OSError) as exc:
            self.p.metrics.commit_failed(mailbox, "QUIT")
            if isinstance(exc, Pop3ResponseError):
                self.p.metrics.pop3_error_response(mailbox, exc.code)
            self.result.commit_errors.append(f"QUIT: {exc}")
            self.log.error("quit_failed", error=str(exc), uncommitted=len(self.deleted_uids))
            return
        self.result.committed = True
        self.result.deleted = len(self.deleted_uids)
        if self.deleted_uids:
            self.p.ledger.commit_session(mailbox, self.deleted_uids)
            self.p.metrics.messages_deleted_committed(mailbox, len(self.deleted_uids))
        self._report_backlog()
