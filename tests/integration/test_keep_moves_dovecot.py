"""keep with moving identities on a real Dovecot (`pop3_uidl_format = %u`).

A mail client deletes one kept message in the maildir and the UID list is rebuilt (a restore,
a migration, a lost index): Dovecot numbers the remaining messages 1, 2, ... again, so each
shifts onto the UIDL of its predecessor, at the same size (messages built alike) or another.
New mail then gets a UIDL that named a delivered message before. Every message must be posted
exactly once per target, the new one too, and an idle session after must retrieve nothing.
"""

from __future__ import annotations

import asyncio
import poplib
import shutil
import sqlite3
from collections import Counter
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from bridge.app import App
from bridge.config import Config
from bridge.keep import DAY
from bridge.ledger import DEFAULT_FILENAME
from bridge.poller import SessionResult
from tests.dovecot import Dovecot, Pop3User
from tests.fakes.cutproxy import CutProxy
from tests.integration.kit import SECRET, config_dict, make_message
from tests.receiver import WebhookReceiver

pytestmark = pytest.mark.dovecot


async def _session(
    dovecot: Dovecot,
    user: Pop3User,
    urls: dict[str, str],
    data: Path,
    **mailbox: Any,
) -> tuple[SessionResult, list[bytes]]:
    """One session through a recording proxy, to every target in ``urls``."""
    proxy = await CutProxy(dovecot.host, dovecot.port).start()
    hooks = {
        name: {"url": url, "secret": SECRET, "timeout": 5, "backoff_initial": 0.01,
               "backoff_max": 0.05}
        for name, url in urls.items()
    }  # fmt: skip
    try:
        config = config_dict(
            dovecot, user, "", data, port=proxy.port, tls="none",
            mailbox={"webhooks": list(urls), **mailbox}, webhooks=hooks,
        )  # fmt: skip
        app = App(Config.from_dict(config, env={}))
        try:
            result = await app.session(app.mailboxes["inbox"], asyncio.Event())
        finally:
            await app.close()
    finally:
        await proxy.stop()
    assert result is not None
    assert result.committed
    return result, proxy.commands


def _posted(receiver: WebhookReceiver) -> Counter[str]:
    """subject -> how many times it was acknowledged (2xx) by this receiver."""
    return Counter(
        r.json()["subject"] for r in receiver.requests if r.answered and r.answered < 300
    )


def _subject(raw: bytes) -> str:
    for line in raw.splitlines():
        if line.startswith(b"Subject:"):
            return line.split(b":", 1)[1].strip().decode()
    raise AssertionError("no Subject")


def _on_server(user: Pop3User) -> list[str]:
    return sorted(_subject(raw) for raw in user.messages())


def _delete_in_maildir(user: Pop3User, subject: str) -> None:
    """What a mail client does: the message's file goes."""
    for sub in ("new", "cur"):
        for path in (user.maildir / sub).iterdir():
            if _subject(path.read_bytes()) == subject:
                path.unlink()
                return
    raise AssertionError(f"{subject} not in the maildir")


def _rebuild_uid_list(user: Pop3User) -> None:
    """The UID list and indexes are lost: Dovecot numbers the mail anew from 1."""
    for path in user.maildir.iterdir():
        if path.name.startswith("dovecot"):
            if path.is_dir():
                shutil.rmtree(path)
            else:
                path.unlink()


def _listing(dovecot: Dovecot, user: Pop3User) -> dict[str, str]:
    """UIDL -> subject as Dovecot lists the mailbox now (a plain POP3 client, UIDL and TOP)."""
    pop = poplib.POP3(dovecot.host, dovecot.port, timeout=10)
    try:
        pop.user(user.name)
        pop.pass_(user.password)
        out = {}
        for line in pop.uidl()[1]:
            num, uidl = line.decode().split()
            out[uidl] = _subject(b"\n".join(pop.top(int(num), 0)[1]))
        return out
    finally:
        pop.quit()


def _age_acks(data: Path, days: float) -> None:
    with sqlite3.connect(data / DEFAULT_FILENAME) as conn:
        conn.execute("UPDATE deliveries SET acked_at = acked_at - ?", (days * DAY,))


# Four kept messages, three of one size (0, 1, 2) and one of another (3), then a new one of
# either size.
SAME = [make_message(i) for i in range(3)]
OTHER = make_message(3, body="Body of message 3, a little longer.\n")
NEW_OTHER = make_message(4, body="Body of message 4, a little longer.\n")
NEW_SAME = make_message(4)
ALL = Counter({f"message {i}": 1 for i in range(5)})


def test_the_messages_are_built_as_the_scenarios_need() -> None:
    assert len({len(m) for m in SAME}) == 1
    assert len(OTHER) == len(NEW_OTHER) != len(SAME[0])
    assert len(NEW_SAME) == len(SAME[0])
    assert len({*SAME, OTHER, NEW_OTHER, NEW_SAME}) == 6


async def _kept_then_moved(
    dovecot: Dovecot,
    user: Pop3User,
    urls: dict[str, str],
    data: Path,
    *,
    gone: str,
    new: bytes,
    **mailbox: Any,
) -> None:
    """Deliver and keep the four (UIDLs 1-4), delete ``gone`` in the maildir, rebuild the UID
    list, deliver ``new``: the three left are UIDLs 1-3 in their order, the new one 4."""
    user.deliver_many([*SAME, OTHER])
    _, sent = await _session(dovecot, user, urls, data, keep=True, **mailbox)
    assert b"DELE" not in sent
    assert _listing(dovecot, user) == {str(i + 1): f"message {i}" for i in range(4)}
    _delete_in_maildir(user, gone)
    _rebuild_uid_list(user)
    user.deliver(new)
    left = [f"message {i}" for i in range(4) if f"message {i}" != gone] + ["message 4"]
    assert _listing(dovecot, user) == {str(i + 1): s for i, s in enumerate(left)}


async def _settle(
    dovecot: Dovecot, user: Pop3User, urls: dict[str, str], data: Path, **mailbox: Any
) -> tuple[list[SessionResult], list[bytes]]:
    """Sessions until one retrieves nothing (at most 4): their results and the last one's
    commands (with RETR in them if every session retrieved something)."""
    results = []
    for _ in range(4):
        result, sent = await _session(dovecot, user, urls, data, **mailbox)
        results.append(result)
        if b"RETR" not in sent and b"TOP" not in sent:
            break
    return results, sent


@pytest.fixture
async def audit() -> AsyncIterator[WebhookReceiver]:
    """A second target's receiver."""
    async with WebhookReceiver() as server:
        yield server


async def _two_targets(
    dovecot: Dovecot,
    receiver: WebhookReceiver,
    audit: WebhookReceiver,
    tmp_path: Path,
    *,
    failed: str,
    gone: str,
    new: bytes,
    **mailbox: Any,
) -> tuple[Pop3User, list[SessionResult], list[bytes]]:
    """main and audit; audit answers 500 for ``failed`` in the first session (main has it);
    then ``gone`` deleted, the UID list rebuilt, ``new`` delivered (acknowledgements aged
    past ``keep_days`` if given); audit answers 200 again; sessions until idle."""
    user = dovecot.new_user()
    urls = {"main": receiver.url, "audit": audit.url}
    data = tmp_path / "data"
    audit.decide(lambda r: 500 if r.json()["subject"] == failed else None)
    await _kept_then_moved(dovecot, user, urls, data, gone=gone, new=new, **mailbox)
    assert _posted(receiver)[failed] == 1
    assert _posted(audit)[failed] == 0
    audit.decide(None)
    if mailbox.get("keep_days"):
        _age_acks(data, days=mailbox["keep_days"] + 1)
    results, sent = await _settle(dovecot, user, urls, data, keep=True, **mailbox)
    return user, results, sent


# ---------------------------------------------------------------------- passing scenarios


@pytest.mark.parametrize("gone", ["message 0", "message 1", "message 3"])
async def test_kept_mail_after_a_deletion_and_rebuilt_uid_list_is_posted_once(
    dovecot_u: Dovecot, receiver: WebhookReceiver, tmp_path: Path, gone: str
) -> None:
    """keep: true, one target. Messages 0, 1, 2 (one size) and 3 (another) delivered and
    kept as UIDLs 1-4. ``gone`` is deleted in the maildir, the UID list rebuilt, a new
    message of the common size delivered: the ones after ``gone`` move onto their
    predecessors' UIDLs (at the same size, or 3 onto a UIDL of the other size) and the new one
    gets UIDL 4. The new one is posted once, none of the others again, nothing is deleted,
    and then an idle session retrieves nothing."""
    user = dovecot_u.new_user()
    urls = {"main": receiver.url}
    data = tmp_path / "data"
    await _kept_then_moved(dovecot_u, user, urls, data, gone=gone, new=NEW_SAME)

    results, sent = await _settle(dovecot_u, user, urls, data, keep=True)
    assert _posted(receiver) == ALL, f"main: {_posted(receiver)}; {results}"
    assert len(receiver.requests) == 5
    assert b"RETR" not in sent, f"retrieving at every poll: {results}"
    assert len(results) <= 2
    assert (results[-1].fetched, results[-1].kept) == (0, 4)
    assert b"DELE" not in sent
    assert user.count() == 4


@pytest.mark.parametrize(
    ("gone", "failed"),
    [
        ("message 0", "message 2"),  # 2 moves from UIDL 3 (partly acked) onto UIDL 2
        ("message 0", "message 3"),  # 3 moves from UIDL 4 (partly acked); the new one takes 4
        ("message 3", "message 1"),  # nothing moves; the new one takes 3's UIDL, other size
        ("message 3", "message 3"),  # the failed one is gone; the new one takes its UIDL
    ],
)
async def test_two_targets_one_failed_at_the_rebuild_each_gets_each_message_once(
    dovecot_u: Dovecot,
    receiver: WebhookReceiver,
    audit: WebhookReceiver,
    tmp_path: Path,
    gone: str,
    failed: str,
) -> None:
    """keep: true, targets main and audit; audit answered 500 for ``failed`` (only main has
    it) when ``gone`` is deleted in the maildir, the UID list rebuilt and a new message (of
    the common size) delivered; audit answers 200 again. Each message still on the server
    reaches each target exactly once (``failed`` reaches audit, not main again), the new one
    both, nothing is deleted, and then an idle session retrieves nothing."""
    user, results, sent = await _two_targets(
        dovecot_u, receiver, audit, tmp_path, failed=failed, gone=gone, new=NEW_SAME
    )
    assert _posted(receiver) == ALL, f"main: {_posted(receiver)}; {results}"
    want_audit = ALL - Counter([gone]) if gone == failed else ALL
    assert _posted(audit) == want_audit, f"audit: {_posted(audit)}; {results}"
    assert b"RETR" not in sent, f"retrieving at every poll: {results}"
    assert results[-1].fetched == 0
    assert b"DELE" not in sent
    assert user.count() == 4


async def test_keep_days_after_a_rebuilt_uid_list_deletes_each_delivered_message_once(
    dovecot_u: Dovecot, receiver: WebhookReceiver, tmp_path: Path
) -> None:
    """keep: true, keep_days: 3. The four delivered and kept; message 0 deleted in the
    maildir, the UID list rebuilt, a new message (common size) delivered (UIDL 4, which
    named message 3, of the other size); every acknowledgement aged 4 days
    (sqlite3 on the ledger). Messages 1, 2, 3 are proven under their new UIDLs and deleted
    (gone from the maildir, one DELE each), none posted again; the new one is posted once and
    kept (acknowledged just now); then an idle session retrieves and deletes nothing."""
    user = dovecot_u.new_user()
    urls = {"main": receiver.url}
    data = tmp_path / "data"
    box = {"keep_days": 3}
    await _kept_then_moved(dovecot_u, user, urls, data, gone="message 0", new=NEW_SAME, **box)
    _age_acks(data, days=4)

    results, sent = await _settle(dovecot_u, user, urls, data, keep=True, **box)
    assert _posted(receiver) == ALL, f"main: {_posted(receiver)}; {results}"
    assert _on_server(user) == ["message 4"], results
    assert sum(r.deleted for r in results) == 3
    assert b"RETR" not in sent, f"retrieving at every poll: {results}"
    assert b"DELE" not in sent
    assert (results[-1].fetched, results[-1].kept) == (0, 1)


async def test_keep_days_after_a_rebuilt_uid_list_with_a_failed_target(
    dovecot_u: Dovecot, receiver: WebhookReceiver, audit: WebhookReceiver, tmp_path: Path
) -> None:
    """keep: true, keep_days: 3, targets main and audit; audit answered 500 for message 3
    (UIDL 4). Message 0 deleted in the maildir, the UID list rebuilt (3 moves to UIDL 3), a
    new message (common size) delivered (UIDL 4); every acknowledgement aged 4 days; audit
    answers 200 again. Message 3 reaches audit once (not main again) and stays (acknowledged
    by its last target just now); 1 and 2 are proven and deleted; nothing reaches a target
    twice; the new one reaches both and stays; then an idle session retrieves nothing."""
    failed = "message 3"
    user, results, sent = await _two_targets(
        dovecot_u, receiver, audit, tmp_path, failed=failed, gone="message 0", new=NEW_SAME,
        keep_days=3,
    )  # fmt: skip
    assert _posted(receiver) == ALL, f"main: {_posted(receiver)}; {results}"
    assert _posted(audit) == ALL, f"audit: {_posted(audit)}; {results}"
    assert _on_server(user) == sorted(["message 4", failed]), results
    assert sum(r.deleted for r in results) == 2
    assert b"RETR" not in sent, f"retrieving at every poll: {results}"


# ---------------------------------------------------------------------- r19: failing


async def test_r19_a_moved_kept_message_adopts_and_new_mail_in_its_place_is_posted(
    dovecot_u: Dovecot, receiver: WebhookReceiver, tmp_path: Path
) -> None:
    """r19 (real Dovecot, %u), keep: true, one target.

    Sequence: 0, 1, 2 (one size) and 3 (another size) delivered and kept as UIDLs 1-4.
    Message 0 is deleted in the maildir, the UID list rebuilt, and a new message 4 of 3's
    size delivered: 1, 2, 3 are now UIDLs 1, 2, 3 and 4 is UIDL 4, at the very size 3 was
    acknowledged with under UIDL 4.

    Before the fix (r19): 1 and 2 are compared and found moved (the common size is loose: UIDL 3,
    acknowledged at it, lists the other size now). UIDL 3 (it named 2) is a reused
    identity: retrieved, and although its content is byte for byte the delivery
    acknowledged under UIDL 4, it is posted again as new (3~<hash>, a new webhook-id).
    UIDL 4 at 3's size is taken for 3 without a download: message 4 is never posted (the
    next session is idle, RETR none). Same with 1 deleted instead of 0.

    Expected: 3 posted once in all (its delivery carried over to UIDL 3); UIDL 4, whose
    delivery was just found elsewhere, retrieved and 4 posted once."""
    user = dovecot_u.new_user()
    urls = {"main": receiver.url}
    data = tmp_path / "data"
    await _kept_then_moved(dovecot_u, user, urls, data, gone="message 0", new=NEW_OTHER)

    results, _ = await _settle(dovecot_u, user, urls, data, keep=True)
    posted = _posted(receiver)
    assert posted["message 3"] == 1, f"message 3 posted again: {posted}; {results}"
    assert posted["message 4"] == 1, f"message 4 never posted: {posted}; {results}"
    assert posted == ALL


async def test_r19_a_partly_acknowledged_message_moved_by_a_rebuild_is_posted_once(
    dovecot_u: Dovecot, receiver: WebhookReceiver, audit: WebhookReceiver, tmp_path: Path
) -> None:
    """r19 (real Dovecot, %u), keep: true, targets main and audit.

    Sequence: 0, 1, 2 (one size) and 3 (another) delivered as UIDLs 1-4; audit answers 500
    for 1 (UIDL 2: main acknowledged it, audit waits). 0 is deleted in the maildir, the UID
    list rebuilt, a new message 4 (common size) delivered: 1 is UIDL 1 (it named 0), 2 is
    UIDL 2 (the partly acknowledged one), 3 is UIDL 3 (it named 2, another size), 4 is UIDL
    4 (it named 3, another size). audit answers 200 again.

    Before the fix (r19): 3 and 4 are right (3 found moved, 4 posted once). But 1 under UIDL 1 is
    "not the one acknowledged under it" and posted as new (1~<hash>) to both targets: main
    gets it a second time; 2 under UIDL 2 is "another message was acknowledged under this
    identity" and posted as new (2~<hash>) to both: main and audit a second time. Then UIDL
    2 is retrieved at every poll, for ever (audit's row for 1 under UIDL 2 never settles).
    The same with keep_days passed (acknowledgements aged): 1 and 2 posted again, UIDL 2
    retrieved at every poll.

    Expected: 1 reaches audit once (its content is the one main acknowledged under UIDL 2)
    and is not posted to main again; 2 is found moved (its delivery is the one under UIDL 3)
    and posted to nobody; an idle session retrieves nothing."""
    _, results, sent = await _two_targets(
        dovecot_u, receiver, audit, tmp_path, failed="message 1", gone="message 0", new=NEW_SAME
    )
    main, other = _posted(receiver), _posted(audit)
    assert (main["message 1"], main["message 2"]) == (1, 1), f"main: {main}; {results}"
    assert (other["message 1"], other["message 2"]) == (1, 1), f"audit: {other}; {results}"
    assert (main, other) == (ALL, ALL)
    assert b"RETR" not in sent, f"retrieving at every poll: {results}"


async def test_r19_new_mail_under_a_partly_acknowledged_uidl_is_not_retrieved_again(
    dovecot_u: Dovecot, receiver: WebhookReceiver, audit: WebhookReceiver, tmp_path: Path
) -> None:
    """r19 (real Dovecot, %u), keep: true, targets main and audit.

    Sequence: 0, 1, 2 (one size) and 3 (another) delivered as UIDLs 1-4; audit answers 500
    for 3 (UIDL 4: main acknowledged it, audit waits). 3 is deleted in the maildir (audit
    will never get it), the UID list rebuilt, and a new message 4 of 3's size delivered:
    it is UIDL 4, at the size main acknowledged 3 with. audit answers 200 again.

    Before the fix (r19): 4 is retrieved, told apart from 3 by content and posted once to each
    target (4~<hash>), right. But UIDL 4 is then retrieved again at every poll, for ever
    ("another message was acknowledged under this identity"): audit's row for 3 under UIDL
    4 never settles although 4~<hash> is known.

    Expected: after 4 is posted, an idle session retrieves nothing."""
    user, results, sent = await _two_targets(
        dovecot_u, receiver, audit, tmp_path, failed="message 3", gone="message 3", new=NEW_OTHER
    )
    assert _posted(receiver) == ALL, f"main: {_posted(receiver)}; {results}"
    assert _posted(audit) == ALL - Counter(["message 3"]), f"audit: {_posted(audit)}; {results}"
    assert user.count() == 4
    assert b"RETR" not in sent, f"retrieved at each of {len(results)} sessions: {results}"


async def test_r19_keep_days_leaves_mail_under_a_moved_deletions_uidl_alone(
    dovecot_u: Dovecot, receiver: WebhookReceiver, tmp_path: Path
) -> None:
    """r19 (real Dovecot, %u), keep: true, keep_days: 3, one target.

    Sequence: 0, 1, 2 (one size) and 3 (another) delivered and kept as UIDLs 1-4. 0 is
    deleted in the maildir, the UID list rebuilt, and a new message 4 of 3's size delivered
    (UIDL 4, which named 3); every acknowledgement aged 4 days.

    Before the fix (r19): the next session proves 1, 2, 3 under their new UIDLs 1, 2, 3 and deletes
    them, and posts 4 once: right. But every later session sends RETR 1 (message 4, under
    UIDL 4) and deletes and posts nothing, for ever (it looks as if UIDL 4 still counted as
    3's delivery due for deletion, although 3 was proven elsewhere and deleted).
    SessionResult.fetched says 0 for those sessions (Dovecot's log: retr=1/303 each). Two
    targets show the same (next test).

    Expected: an idle session retrieves nothing."""
    user = dovecot_u.new_user()
    urls = {"main": receiver.url}
    data = tmp_path / "data"
    box = {"keep_days": 3}
    await _kept_then_moved(dovecot_u, user, urls, data, gone="message 0", new=NEW_OTHER, **box)
    _age_acks(data, days=4)

    results, sent = await _settle(dovecot_u, user, urls, data, keep=True, **box)
    assert _posted(receiver) == ALL, f"main: {_posted(receiver)}; {results}"
    assert _on_server(user) == ["message 4"], results
    assert sum(r.deleted for r in results) == 3
    assert b"RETR" not in sent, f"retrieved at each of {len(results)} sessions: {results}"


async def test_r19_keep_days_two_targets_leave_mail_under_a_moved_deletions_uidl_alone(
    dovecot_u: Dovecot, receiver: WebhookReceiver, audit: WebhookReceiver, tmp_path: Path
) -> None:
    """r19 (real Dovecot, %u), keep: true, keep_days: 3, targets main and audit.

    Sequence: 0, 1, 2 (one size) and 3 (another) delivered as UIDLs 1-4; audit answers 500
    for 2 (UIDL 3). 0 is deleted in the maildir, the UID list rebuilt (1, 2, 3 now UIDLs 1,
    2, 3), a new message 4 (common size) delivered (UIDL 4); every acknowledgement aged 4
    days; audit answers 200 again.

    Before the fix (r19): 1 and 3 are proven and deleted, 2 found moved and posted to audit only, 4
    posted once to each: right. But every later session retrieves message 2 (UIDL 2, which
    named 1, proven under UIDL 1 and deleted there) and deletes and posts nothing, for ever;
    SessionResult.fetched says 0.

    Expected: 2 and 4 stay on the server, an idle session retrieves nothing."""
    user, results, sent = await _two_targets(
        dovecot_u, receiver, audit, tmp_path, failed="message 2", gone="message 0", new=NEW_SAME,
        keep_days=3,
    )  # fmt: skip
    assert _posted(receiver) == ALL, f"main: {_posted(receiver)}; {results}"
    assert _posted(audit) == ALL, f"audit: {_posted(audit)}; {results}"
    assert _on_server(user) == ["message 2", "message 4"], results
    assert b"RETR" not in sent, f"retrieved at each of {len(results)} sessions: {results}"
