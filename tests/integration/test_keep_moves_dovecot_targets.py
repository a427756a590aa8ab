"""Several targets across moving identities on a real Dovecot.

Builds on test_keep_moves_dovecot.py and test_keep_moves_dovecot_more.py. Here: keep off
(a message is deleted once every target acknowledged it) with two targets, one of which
fails, across a rebuilt UID list (`pop3_uidl_format = %u`: the messages left shift onto
their predecessors' UIDLs, new mail takes UIDLs that named deleted ones) and a lost QUIT
reply (the server deleted, the bridge does not know); keep on with three targets failing
on different messages; a target added to the config on a mailbox with kept mail after a
rebuild; and what a target that is down costs in RETRs. After every session: no message
left the server before every target acknowledged it. Each message reaches each target
exactly once, and once settled an idle session retrieves nothing.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import AsyncIterator
from typing import Any

import pytest

from tests.dovecot import Dovecot
from tests.integration.kit import make_message
from tests.integration.test_keep_moves_dovecot import _on_server, _posted, _rebuild_uid_list
from tests.integration.test_keep_moves_dovecot_more import (
    FORMATS,
    Box,
    O,
    S,
    _assert_idle,
    _once,
    _server,
)
from tests.receiver import WebhookReceiver

pytestmark = pytest.mark.dovecot

LOST_QUIT = {"swallow_reply_to": b"QUIT"}
BREAKER = {"max_attempts": 2, "breaker_failures": 2, "breaker_cooldown": 0.2}


@pytest.fixture
async def audit() -> AsyncIterator[WebhookReceiver]:
    """A second target's receiver."""
    async with WebhookReceiver() as server:
        yield server


@pytest.fixture
async def third() -> AsyncIterator[WebhookReceiver]:
    """A third target's receiver."""
    async with WebhookReceiver() as server:
        yield server


def _fail(receiver: WebhookReceiver, *subjects: str) -> None:
    """``receiver`` answers 500 for these subjects (None: everything answers 200 again)."""
    wanted = set(subjects)
    receiver.decide(lambda r: 500 if r.json()["subject"] in wanted else None)


class Guard:
    """Checks after each session that nothing left the server before every target had it."""

    def __init__(self, box: Box, targets: dict[str, WebhookReceiver]) -> None:
        self.box = box
        self.targets = targets
        self.delivered: set[str] = set()
        self.removed: set[str] = set()  # deleted in the maildir by another client

    def deliver(self, *raws: bytes) -> None:
        for raw in raws:
            self.box.user.deliver(raw)
            self.delivered.add(_subject_of(raw))

    def rebuild(self, *, gone: list[str], new: list[bytes]) -> dict[str, str]:
        self.removed |= set(gone)
        self.delivered |= {_subject_of(r) for r in new}
        return self.box.rebuild(gone=gone, new=new)

    def check(self) -> None:
        left = set(_on_server(self.box.user))
        for subject in sorted(self.delivered - self.removed - left):
            for name, receiver in self.targets.items():
                assert _posted(receiver)[subject] >= 1, (
                    f"{subject} deleted from the server, never acknowledged by {name}: lost\n"
                    f"{self.box.why()}"
                )

    async def session(self, **kw: Any) -> tuple[Any, list[bytes]]:
        out = await self.box.session(**kw)
        self.check()
        return out

    async def settle(self, most: int = 4, **mailbox: Any) -> list[bytes]:
        for _ in range(most):
            result, sent = await self.session(**mailbox)
            if b"RETR" not in sent and b"TOP" not in sent and not result.more_pending:
                break
        return sent


def _assert_distinct_ids(receiver: WebhookReceiver) -> None:
    """Each acknowledged post is a message of its own: no webhook-id carried two messages (a
    receiver that drops repeated webhook-ids would lose the second)."""
    subjects: dict[str | None, set[str]] = {}
    for r in receiver.requests:
        if r.answered and r.answered < 300:
            subjects.setdefault(r.webhook_id, set()).add(r.json()["subject"])
    shared = {i: sorted(s) for i, s in subjects.items() if len(s) > 1}
    assert not shared, f"one webhook-id for several messages: {shared}"


def _subject_of(raw: bytes) -> str:
    for line in raw.splitlines():
        if line.startswith(b"Subject:"):
            return line.split(b":", 1)[1].strip().decode()
    raise AssertionError("no Subject")


def _all(*numbers: int) -> Counter[str]:
    return _once(*(f"message {i}" for i in numbers))


# ------------------------------------------------------------------ keep off, one target fails


async def _partly_acknowledged_across_a_rebuild(
    dovecot: Dovecot,
    receiver: WebhookReceiver,
    audit: WebhookReceiver,
    data: Any,
    fault: str | None,
) -> None:
    """audit 500 for 1 and 3; 0, 1, 2 (common), 3 (other) delivered (0 and 2 deleted, the
    QUIT reply lost with ``fault``); rebuilt, 4 (common) and 5 (other) delivered; audit 200;
    settled (see the tests)."""
    box = Box(dovecot, data, {"main": receiver.url, "audit": audit.url}, **BREAKER)
    guard = Guard(box, {"main": receiver, "audit": audit})
    _fail(audit, "message 1", "message 3")
    guard.deliver(S(0), S(1), S(2), O(3))
    await guard.session(proxy=LOST_QUIT if fault else None, commit=fault is None)
    assert _posted(receiver) == _all(0, 1, 2, 3), box.why()
    assert _posted(audit) == _all(0, 2), box.why()
    assert _on_server(box.user) == ["message 1", "message 3"]

    listing = guard.rebuild(gone=[], new=[S(4), O(5)])
    if dovecot.uidl_format == "%u":
        assert listing == {"1": "message 1", "2": "message 3", "3": "message 4", "4": "message 5"}
    _fail(audit)
    sent = await guard.settle()
    assert _posted(receiver) == _all(0, 1, 2, 3, 4, 5), f"main: {_posted(receiver)}\n{box.why()}"
    assert _posted(audit) == _all(0, 1, 2, 3, 4, 5), f"audit: {_posted(audit)}\n{box.why()}"
    assert _on_server(box.user) == [], box.why()
    _assert_distinct_ids(receiver)
    _assert_distinct_ids(audit)
    _assert_idle(sent, box)


@pytest.mark.parametrize("fault", [None, "lost QUIT reply"])
async def test_keep_off_partly_acknowledged_mail_across_a_rebuild_with_new_mail(
    dovecot: Dovecot,
    receiver: WebhookReceiver,
    audit: WebhookReceiver,
    tmp_path: Any,
    fault: str | None,
) -> None:
    """keep off, targets main and audit, Dovecot's default UIDL format; audit answers 500
    for 1 and 3. 0, 1, 2 (common size), 3 (other) delivered: 0 and 2 reach both and are
    deleted (with ``fault`` the QUIT reply is lost: the server deleted them, the bridge does
    not know); 1 and 3 stay, main has them. The UID list is rebuilt (every message a new
    UIDL) and 4 (common) and 5 (other) delivered; audit answers 200 again. main gets each
    message once, audit each once, nothing leaves the server before both have it, the server
    ends empty and an idle session retrieves nothing. (%u: see the r21 test below.)"""
    await _partly_acknowledged_across_a_rebuild(dovecot, receiver, audit, tmp_path / "data", fault)


@pytest.mark.parametrize("fmt", FORMATS)
@pytest.mark.parametrize("fault", [None, "lost QUIT reply"])
async def test_keep_off_lost_quit_reply_then_new_mail_on_the_deleted_uidls(
    request: pytest.FixtureRequest,
    receiver: WebhookReceiver,
    audit: WebhookReceiver,
    tmp_path: Any,
    fmt: str,
    fault: str | None,
) -> None:
    """keep off, targets main and audit; audit answers 500 for 2. 0, 1, 2 (common size)
    delivered: 0 and 1 reach both and are deleted, but the QUIT reply is lost (``fault``):
    the bridge holds 0 and 1 as acknowledged by both, deletion not known to be committed. 2
    stays (audit waits). The UID list is rebuilt, 3 and 4 (common size) delivered: with %u
    2, 3, 4 are UIDLs 1, 2, 3, at the size 0, 1, 2 were acknowledged with. audit stays down
    one more session (the one that meets the new UIDLs), then answers 200. Neither 2 nor 3
    nor 4 may be taken for a message both targets acknowledged (deleted unposted to audit =
    loss); each reaches each target once; the server ends empty; idle after."""
    box = Box(
        _server(request, fmt), tmp_path / "data", {"main": receiver.url, "audit": audit.url},
        **BREAKER,
    )  # fmt: skip
    guard = Guard(box, {"main": receiver, "audit": audit})
    _fail(audit, "message 2")
    guard.deliver(S(0), S(1), S(2))
    await guard.session(proxy=LOST_QUIT if fault else None, commit=fault is None)
    assert _on_server(box.user) == ["message 2"]

    listing = guard.rebuild(gone=[], new=[S(3), S(4)])
    if fmt == "%u":
        assert listing == {"1": "message 2", "2": "message 3", "3": "message 4"}
    _fail(audit, "message 2", "message 3", "message 4")
    await guard.session(commit=True)
    assert _posted(receiver) == _all(0, 1, 2, 3, 4), f"main: {_posted(receiver)}\n{box.why()}"
    _fail(audit)
    sent = await guard.settle()
    assert _posted(receiver) == _all(0, 1, 2, 3, 4), f"main: {_posted(receiver)}\n{box.why()}"
    assert _posted(audit) == _all(0, 1, 2, 3, 4), f"audit: {_posted(audit)}\n{box.why()}"
    assert _on_server(box.user) == [], box.why()
    _assert_distinct_ids(receiver)
    _assert_idle(sent, box)


@pytest.mark.parametrize("fmt", FORMATS)
async def test_keep_off_target_down_throughout_a_rebuild_with_a_client_deletion(
    request: pytest.FixtureRequest,
    receiver: WebhookReceiver,
    audit: WebhookReceiver,
    tmp_path: Any,
    fmt: str,
) -> None:
    """keep off, targets main and audit (breaker_failures 2); audit answers 500 for
    everything. 0, 1, 2 (common), 3 (other) delivered: main has them, nothing is deleted.
    A mail client deletes 0, the UID list is rebuilt, 4 (common) and 5 (other) delivered
    (with %u: 1-5 are UIDLs 1-5, 1 and 2 on UIDLs main acknowledged 0 and 1 under, 3 on 2's
    at another size, 4 on 3's at another size). Two sessions with audit still down (the
    second with its QUIT reply lost), then audit answers 200. main gets each message once,
    audit 1-5 once, nothing is deleted while audit is down, the server ends empty, idle
    after."""
    box = Box(
        _server(request, fmt), tmp_path / "data", {"main": receiver.url, "audit": audit.url},
        **BREAKER,
    )  # fmt: skip
    guard = Guard(box, {"main": receiver, "audit": audit})
    audit.reply(500)
    guard.deliver(S(0), S(1), S(2), O(3))
    await guard.session()
    guard.rebuild(gone=["message 0"], new=[S(4), O(5)])
    await guard.session()
    await guard.session(proxy=LOST_QUIT, commit=False)
    assert box.user.count() == 5, box.why()
    assert _posted(receiver) == _all(0, 1, 2, 3, 4, 5), f"main: {_posted(receiver)}\n{box.why()}"

    audit.reply(200)
    sent = await guard.settle()
    assert _posted(receiver) == _all(0, 1, 2, 3, 4, 5), f"main: {_posted(receiver)}\n{box.why()}"
    assert _posted(audit) == _all(1, 2, 3, 4, 5), f"audit: {_posted(audit)}\n{box.why()}"
    assert _on_server(box.user) == [], box.why()
    _assert_distinct_ids(receiver)
    _assert_idle(sent, box)


@pytest.mark.parametrize("fmt", FORMATS)
async def test_keep_off_second_rebuild_while_partly_acknowledged_mail_waits(
    request: pytest.FixtureRequest,
    receiver: WebhookReceiver,
    audit: WebhookReceiver,
    tmp_path: Any,
    fmt: str,
) -> None:
    """keep off, targets main and audit; audit answers 500 for 1 and 2. 0-3 (common size)
    delivered: 0 and 3 reach both and are deleted, 1 and 2 wait for audit. Rebuilt, 4
    (common) delivered: 4 reaches both and is deleted (with %u 1, 2, 4 were UIDLs 1, 2, 3).
    A mail client deletes 1, the UID list is rebuilt again, 5 and 6 (common) delivered (with
    %u 2, 5, 6 are UIDLs 1, 2, 3: 2 on 1's UIDL, 5 on 2's, 6 on the deleted 4's, all at the
    size they were acknowledged with). audit answers 200 again. main gets each message once,
    audit each but 1 once, nothing leaves unposted, the server ends empty, idle after. (With
    %u, 6 lands on UIDL 3, forgotten since 4 was deleted under it: it is posted with the
    webhook-id main acknowledged 2 with, see the r21 webhook-id test below.)"""
    box = Box(
        _server(request, fmt), tmp_path / "data", {"main": receiver.url, "audit": audit.url},
        **BREAKER,
    )  # fmt: skip
    guard = Guard(box, {"main": receiver, "audit": audit})
    _fail(audit, "message 1", "message 2")
    guard.deliver(S(0), S(1), S(2), S(3))
    await guard.session()
    guard.rebuild(gone=[], new=[S(4)])
    await guard.settle()
    assert _on_server(box.user) == ["message 1", "message 2"], box.why()
    guard.rebuild(gone=["message 1"], new=[S(5), S(6)])
    _fail(audit)
    sent = await guard.settle()
    assert _posted(receiver) == _all(0, 1, 2, 3, 4, 5, 6), f"main: {_posted(receiver)}\n{box.why()}"
    assert _posted(audit) == _all(0, 2, 3, 4, 5, 6), f"audit: {_posted(audit)}\n{box.why()}"
    assert _on_server(box.user) == [], box.why()
    if fmt != "%u":  # with %u 6 gets the webhook-id main acknowledged 2 with: the r21 test below
        _assert_distinct_ids(receiver)
    _assert_idle(sent, box)


# ------------------------------------------------------------------ keep on, three targets


@pytest.mark.parametrize("fmt", FORMATS)
@pytest.mark.parametrize("gone", ["message 0", "message 1"])
async def test_keep_three_targets_failing_on_different_messages_across_a_rebuild(
    request: pytest.FixtureRequest,
    receiver: WebhookReceiver,
    audit: WebhookReceiver,
    third: WebhookReceiver,
    tmp_path: Any,
    fmt: str,
    gone: str,
) -> None:
    """keep on, targets main, audit and third; audit answers 500 for 1 and 3, third for 2
    and 3. 0, 1, 2 (common size), 3 (other) delivered and kept. ``gone`` deleted in the
    maildir, the UID list rebuilt, 4 (common) and 5 (other) delivered (with %u the partly
    acknowledged ones shift onto UIDLs acknowledged by other targets). One session with the
    failures still on, then everything 200. Each target gets each message once (``gone``
    never, where it was waiting), nothing is deleted, idle after."""
    box = Box(
        _server(request, fmt), tmp_path / "data",
        {"main": receiver.url, "audit": audit.url, "third": third.url}, **BREAKER,
    )  # fmt: skip
    targets = {"main": receiver, "audit": audit, "third": third}
    guard = Guard(box, targets)
    _fail(audit, "message 1", "message 3")
    _fail(third, "message 2", "message 3")
    guard.deliver(S(0), S(1), S(2), O(3))
    await guard.session(keep=True)
    guard.rebuild(gone=[gone], new=[S(4), O(5)])
    await guard.session(keep=True)
    _fail(audit)
    _fail(third)
    sent = await guard.settle(keep=True)
    want = {
        "main": _all(0, 1, 2, 3, 4, 5),
        "audit": _all(0, 1, 2, 3, 4, 5) - _once(*({gone} & {"message 1", "message 3"})),
        "third": _all(0, 1, 2, 3, 4, 5) - _once(*({gone} & {"message 2", "message 3"})),
    }
    got = {name: _posted(r) for name, r in targets.items()}
    assert got == want, f"{got}\n{box.why()}"
    for r in targets.values():
        _assert_distinct_ids(r)
    _assert_idle(sent, box)
    assert b"DELE" not in sent
    assert box.user.count() == 5


@pytest.mark.parametrize("fmt", FORMATS)
async def test_keep_days_three_targets_delete_only_what_all_three_have(
    request: pytest.FixtureRequest,
    receiver: WebhookReceiver,
    audit: WebhookReceiver,
    third: WebhookReceiver,
    tmp_path: Any,
    fmt: str,
) -> None:
    """keep on, keep_days 3, targets main, audit, third; audit answers 500 for 1, third for
    2. 0, 1, 2 (common), 3 (other) delivered; 0 deleted in the maildir, the UID list rebuilt,
    4 (common) delivered; every acknowledgement aged 4 days; a session with the failures
    still on: 3 (all three have it, aged) is deleted, 1 and 2 must stay. Then all 200: 1
    reaches audit, 2 third, once each; they stay (just acknowledged); 4 reaches all three
    once and stays; idle after."""
    box = Box(
        _server(request, fmt), tmp_path / "data",
        {"main": receiver.url, "audit": audit.url, "third": third.url}, **BREAKER,
    )  # fmt: skip
    targets = {"main": receiver, "audit": audit, "third": third}
    guard = Guard(box, targets)
    limits = {"keep": True, "keep_days": 3}
    _fail(audit, "message 1")
    _fail(third, "message 2")
    guard.deliver(S(0), S(1), S(2), O(3))
    await guard.session(**limits)
    guard.rebuild(gone=["message 0"], new=[S(4)])
    box.age(None, days=4)
    await guard.session(**limits)
    assert {"message 1", "message 2"} <= set(_on_server(box.user)), box.why()
    _fail(audit)
    _fail(third)
    sent = await guard.settle(**limits)
    got = {name: _posted(r) for name, r in targets.items()}
    want = dict.fromkeys(targets, _all(0, 1, 2, 3, 4))
    assert got == want, f"{got}\n{box.why()}"
    assert _on_server(box.user) == ["message 1", "message 2", "message 4"], box.why()
    _assert_idle(sent, box)


# ------------------------------------------------------------------ a target added


@pytest.mark.parametrize("fmt", FORMATS)
@pytest.mark.parametrize("when", ["after settling", "with the rebuild"])
async def test_a_target_added_after_a_rebuild_gets_what_is_kept_once(
    request: pytest.FixtureRequest,
    receiver: WebhookReceiver,
    audit: WebhookReceiver,
    tmp_path: Any,
    fmt: str,
    when: str,
) -> None:
    """keep on, target main. 0, 1, 2 (common), 3 (other) delivered and kept; 0 deleted in
    the maildir, the UID list rebuilt, 4 (common) delivered; ``when`` the webhook audit is
    added to the config (after the rebuild was settled with main alone, or in the first
    session after it). audit gets 1-4 (what is on the server) once each, main gets nothing
    again (4 once), nothing is deleted, idle after."""
    box = Box(_server(request, fmt), tmp_path / "data", {"main": receiver.url}, **BREAKER)
    guard = Guard(box, {"main": receiver})
    guard.deliver(S(0), S(1), S(2), O(3))
    await guard.session(keep=True)
    guard.rebuild(gone=["message 0"], new=[S(4)])
    if when == "after settling":
        await guard.settle(keep=True)
        assert _posted(receiver) == _all(0, 1, 2, 3, 4), box.why()
    box.urls["audit"] = audit.url
    sent = await guard.settle(keep=True)
    assert _posted(receiver) == _all(0, 1, 2, 3, 4), f"main: {_posted(receiver)}\n{box.why()}"
    assert _posted(audit) == _all(1, 2, 3, 4), f"audit: {_posted(audit)}\n{box.why()}"
    _assert_distinct_ids(receiver)
    _assert_distinct_ids(audit)
    _assert_idle(sent, box)
    assert b"DELE" not in sent
    assert box.user.count() == 4


@pytest.mark.parametrize("fmt", FORMATS)
async def test_a_target_added_then_keep_days_deletes_only_after_it_has_them(
    request: pytest.FixtureRequest,
    receiver: WebhookReceiver,
    audit: WebhookReceiver,
    tmp_path: Any,
    fmt: str,
) -> None:
    """keep on, keep_days 3, target main. 0, 1, 2 (common), 3 (other) delivered and kept;
    0 deleted in the maildir, UID list rebuilt, 4 (common) delivered; settled; every
    acknowledgement aged 4 days. audit is added to the config and answers 500 for 2: 1, 3,
    4 reach audit (1 and 3 then deletable: main's acknowledgement is old, audit's fresh -
    kept), 2 stays. audit answers 200: 2 reaches audit once. Nothing leaves before both have
    it, nobody gets anything twice, idle after."""
    box = Box(_server(request, fmt), tmp_path / "data", {"main": receiver.url}, **BREAKER)
    guard = Guard(box, {"main": receiver, "audit": audit})
    limits = {"keep": True, "keep_days": 3}
    guard.deliver(S(0), S(1), S(2), O(3))
    await guard.session(**limits)
    guard.rebuild(gone=["message 0"], new=[S(4)])
    await guard.settle(**limits)
    box.age(None, days=4)
    box.urls["audit"] = audit.url
    _fail(audit, "message 2")
    await guard.session(**limits)
    assert "message 2" in _on_server(box.user), box.why()
    _fail(audit)
    sent = await guard.settle(**limits)
    assert _posted(receiver) == _all(0, 1, 2, 3, 4), f"main: {_posted(receiver)}\n{box.why()}"
    assert _posted(audit) == _all(1, 2, 3, 4), f"audit: {_posted(audit)}\n{box.why()}"
    _assert_idle(sent, box)
    assert box.user.count() == 4, box.why()


# ------------------------------------------------------------------ the cost of a target down


@pytest.mark.parametrize("keep", [False, True])
@pytest.mark.parametrize("fmt", FORMATS)
async def test_retrievals_per_session_while_a_target_is_down(
    request: pytest.FixtureRequest,
    receiver: WebhookReceiver,
    audit: WebhookReceiver,
    tmp_path: Any,
    fmt: str,
    keep: bool,
) -> None:
    """keep ``keep``, targets main and audit (breaker_failures 2, cooldown 0.2 s), audit
    answers 500 for everything. 20 messages delivered; three sessions while audit is down,
    then 2 new messages and two more sessions down, then audit answers 200 and sessions until
    idle. At most 2 RETRs per waiting message per session (a known trade-off: retrieved for
    the proof and again for the delivery); each message reaches each target once; nothing
    leaves while audit is down."""
    box = Box(
        _server(request, fmt), tmp_path / "data", {"main": receiver.url, "audit": audit.url},
        **BREAKER,
    )  # fmt: skip
    guard = Guard(box, {"main": receiver, "audit": audit})
    audit.reply(500)
    guard.deliver(*(make_message(n) for n in range(20)))
    retrs: list[int] = []
    for i in range(5):
        if i == 3:
            guard.deliver(make_message(20), make_message(21))
        _, sent = await guard.session(keep=keep)
        retrs.append(sent.count(b"RETR"))
    waiting = [20, 20, 20, 22, 22]
    assert box.user.count() == 22, box.why()
    audit.reply(200)
    sent = await guard.settle(keep=keep)
    print(f"\nRETR per session ({fmt}, keep={keep}), audit down: {retrs}")
    assert _posted(receiver) == _all(*range(22)), f"main: {_posted(receiver)}\n{box.why()}"
    assert _posted(audit) == _all(*range(22)), f"audit: {_posted(audit)}\n{box.why()}"
    _assert_idle(sent, box)
    assert box.user.count() == (22 if keep else 0)
    for n, w in zip(retrs, waiting, strict=True):
        assert n <= 2 * w, f"{n} RETRs for {w} waiting messages: {retrs}\n{box.why()}"


async def test_keep_off_rebuild_between_the_lost_quit_and_recovery_with_a_target_down(
    dovecot_u: Dovecot, receiver: WebhookReceiver, audit: WebhookReceiver, tmp_path: Any
) -> None:
    """keep off, targets main and audit, %u. audit answers 500 for 1. 0, 1, 2, 3 (common
    size) delivered: 0, 2, 3 reach both and are deleted, the QUIT reply lost. The UID list is
    rebuilt (1 now UIDL 1, which named 0, acknowledged by both, deletion unconfirmed), no new
    mail. A session with audit still down for 1, then 200: 1 reaches audit once, main never
    again; nothing is deleted before audit has it; the server ends empty; idle after."""
    box = Box(dovecot_u, tmp_path / "data", {"main": receiver.url, "audit": audit.url}, **BREAKER)
    guard = Guard(box, {"main": receiver, "audit": audit})
    _fail(audit, "message 1")
    guard.deliver(S(0), S(1), S(2), S(3))
    await guard.session(proxy=LOST_QUIT, commit=False)
    assert _on_server(box.user) == ["message 1"]
    _rebuild_uid_list(box.user)
    assert box.listing() == {"1": "message 1"}
    await guard.session()
    assert _on_server(box.user) == ["message 1"], box.why()
    _fail(audit)
    sent = await guard.settle()
    assert _posted(receiver) == _all(0, 1, 2, 3), f"main: {_posted(receiver)}\n{box.why()}"
    assert _posted(audit) == _all(0, 1, 2, 3), f"audit: {_posted(audit)}\n{box.why()}"
    assert _on_server(box.user) == [], box.why()
    _assert_idle(sent, box)


# ------------------------------------------------------------------ r21: failing


@pytest.mark.parametrize("fault", [None, "lost QUIT reply"])
async def test_r21_keep_off_a_partly_acknowledged_message_moved_onto_another_uidl_is_posted_once(
    dovecot_u: Dovecot,
    receiver: WebhookReceiver,
    audit: WebhookReceiver,
    tmp_path: Any,
    fault: str | None,
) -> None:
    """r21 (real Dovecot, %u), keep off, targets main and audit.

    Sequence: audit answers 500 for 1 and 3. 0, 1, 2 (common size S) and 3 (other size O)
    delivered as UIDLs 1-4: 0 and 2 reach both and are deleted (with ``fault`` the QUIT reply
    is lost: Dovecot deleted them, the bridge does not know); 1 (UIDL 2) and 3 (UIDL 4) stay,
    main acknowledged them, audit waits. The UID list is rebuilt and 4 (S) and 5 (O)
    delivered: UIDLs 1-4 are 1 (S), 3 (O), 4 (S), 5 (O). audit answers 200 again.

    Before the fix (r21): 1 is found moved (UIDL 1, delivered_as=2) and reaches audit only, right; 4
    and 5 are told apart under UIDLs 3 and 4 and posted once, right (5 is at the very size 3
    was acknowledged with under UIDL 4). But 3 under UIDL 2 (listed at O where 1 was
    acknowledged at S) is "another message was acknowledged under this identity: posted as
    new" (2~<hash>) and posted to main a second time, under a new webhook-id, although its
    content is byte for byte what main acknowledged under UIDL 4 (whose message was just found
    to be another one). The same with the QUIT reply lost. Dovecot's default UIDL format
    passes (test above); with keep the one-target version was fixed in r19.

    Expected: 3 carries main's delivery from UIDL 4 over (found moved) and reaches audit
    once, not main again; each message reaches each target once; the server ends empty."""
    await _partly_acknowledged_across_a_rebuild(
        dovecot_u, receiver, audit, tmp_path / "data", fault
    )
