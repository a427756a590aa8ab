"""Metrics: the exported names, labels and values, parsed back from the exposition text."""

from __future__ import annotations

import asyncio
import platform
from pathlib import Path

import pytest
from prometheus_client.parser import text_string_to_metric_families

from bridge import __version__
from bridge.metrics import (
    ERROR_CODES,
    MAILBOX_ERROR_KINDS,
    SESSION_OUTCOMES,
    Metrics,
    error_code_label,
    status_class,
)
from bridge.webhook import BreakerState

DOCUMENTED = {
    "bridge_messages_fetched_total": {"mailbox"},
    "bridge_messages_delivered_total": {"mailbox", "target"},
    "bridge_messages_deleted_total": {"mailbox"},
    "bridge_messages_rejected_total": {"mailbox", "target"},
    "bridge_messages_dead_lettered_total": {"mailbox"},
    "bridge_messages_oversize_total": {"mailbox"},
    "bridge_delivery_failures_total": {"mailbox", "target", "reason"},
    "bridge_parse_defects_total": {"mailbox"},
    "bridge_webhook_requests_total": {"target", "status_class"},
    "bridge_webhook_request_duration_seconds_bucket": {"target", "le"},
    "bridge_webhook_request_duration_seconds_count": {"target"},
    "bridge_webhook_request_duration_seconds_sum": {"target"},
    "bridge_webhook_circuit_state": {"target"},
    "bridge_webhook_too_large_total": {"target", "action"},
    "bridge_attachments_stored_total": set(),
    "bridge_attachments_stored_bytes_total": set(),
    "bridge_attachment_store_errors_total": set(),
    "bridge_attachments_pruned_total": set(),
    "bridge_attachments_pruned_bytes_total": set(),
    "bridge_pop3_sessions_total": {"mailbox", "outcome"},
    "bridge_pop3_session_duration_seconds_bucket": {"mailbox", "le"},
    "bridge_pop3_session_duration_seconds_count": {"mailbox"},
    "bridge_pop3_session_duration_seconds_sum": {"mailbox"},
    "bridge_pop3_error_responses_total": {"mailbox", "code"},
    "bridge_commit_failures_total": {"mailbox", "command"},
    "bridge_identity_problems_total": {"mailbox", "kind"},
    "bridge_retr_failures_total": {"mailbox", "reason"},
    "bridge_ledger_write_errors_total": {"mailbox"},
    "bridge_mailbox_messages": {"mailbox"},
    "bridge_mailbox_bytes": {"mailbox"},
    "bridge_oldest_undelivered_age_seconds": {"mailbox"},
    "bridge_parked_messages": {"mailbox"},
    "bridge_last_successful_poll_timestamp_seconds": {"mailbox"},
    "bridge_mailbox_errors_total": {"mailbox", "kind"},
    "bridge_poll_lag_seconds_bucket": {"le"},
    "bridge_poll_lag_seconds_count": set(),
    "bridge_poll_lag_seconds_sum": set(),
    "bridge_mailboxes_owned": set(),
    "bridge_mailboxes_configured": set(),
    "bridge_up": set(),
    "bridge_build_info": {"version", "python"},
}
"""Full detail (``metrics.mailbox_detail: full``), after prepare()."""

PER_MAILBOX = {
    "bridge_last_successful_poll_timestamp_seconds",
    "bridge_oldest_undelivered_age_seconds",
    "bridge_mailbox_messages",
}
ESSENTIAL = {
    name: labels if name in PER_MAILBOX else labels - {"mailbox"}
    for name, labels in DOCUMENTED.items()
    if name != "bridge_mailbox_errors_total"  # appears with a mailbox's first error
}
"""The default detail: ``mailbox`` only on what an operator acts on per mailbox."""


def samples(metrics: Metrics) -> dict[tuple[str, frozenset[tuple[str, str]]], float]:
    """Every sample of the exposition as {(name, labels): value}, `_created` left out."""
    out = {}
    for family in text_string_to_metric_families(metrics.render().decode()):
        for sample in family.samples:
            if not sample.name.endswith("_created"):
                out[(sample.name, frozenset(sample.labels.items()))] = sample.value
    return out


def value(metrics: Metrics, name: str, **labels: str) -> float:
    return samples(metrics)[(name, frozenset(labels.items()))]


def test_every_documented_metric_exists_with_its_labels_after_prepare() -> None:
    """After prepare(), every documented name is exported with exactly its label names."""
    metrics = Metrics()
    metrics.prepare({"support": ["main"]})
    found: dict[str, set[str]] = {}
    for name, labels in samples(metrics):
        found.setdefault(name, set()).update(key for key, _ in labels)
    assert found == DOCUMENTED


def test_essential_detail_keeps_the_mailbox_label_only_where_it_is_acted_on() -> None:
    """With essential detail, only the last good poll, the oldest undelivered age and the
    backlog are per mailbox; every other family is summed over the mailboxes."""
    metrics = Metrics(mailbox_detail="essential")
    metrics.prepare({"support": ["main"], "sales": ["main"]})
    assert "bridge_oldest_undelivered_age_seconds{" not in metrics.render().decode()
    metrics.set_oldest_undelivered("sales", 0.0)  # only a mailbox with mail waiting has one
    found: dict[str, set[str]] = {}
    for name, labels in samples(metrics):
        found.setdefault(name, set()).update(key for key, _ in labels)
    assert found == ESSENTIAL
    metrics.message_fetched("support", 2)
    metrics.message_fetched("sales", 3)
    metrics.mailbox_stat("support", 4, 400)
    metrics.mailbox_stat("sales", 5, 500)
    metrics.set_parked("sales", 1)
    assert value(metrics, "bridge_messages_fetched_total") == 5
    assert value(metrics, "bridge_mailbox_messages", mailbox="support") == 4
    assert value(metrics, "bridge_mailbox_bytes") == 900
    assert value(metrics, "bridge_parked_messages") == 1


def test_mailbox_errors_by_kind_appear_with_the_first_error() -> None:
    """bridge_mailbox_errors_total{mailbox, kind} exists in both detail levels: failed
    sessions by outcome, rejected and oversize messages. With essential detail a series
    appears with the first error of its kind; with full detail every kind exists at 0."""
    for detail, created in (("essential", 0), ("full", 2 * len(MAILBOX_ERROR_KINDS))):
        m = Metrics(mailbox_detail=detail)  # type: ignore[arg-type]
        m.prepare({"a": ["t"], "b": ["t"]})
        assert len([k for k in samples(m) if k[0] == "bridge_mailbox_errors_total"]) == created
        m.pop3_session("a", "ok", 0.1)
        m.pop3_session("a", "auth_error", 0.1)
        m.pop3_session("a", "auth_error", 0.1)
        m.message_rejected("b", "t")
        m.message_oversize("b")
        m.retr_failed("b", "timeout")
        m.identity_problem("a", "reused", 2)
        errors = {
            dict(labels)["mailbox"] + "/" + dict(labels)["kind"]: v
            for (name, labels), v in samples(m).items()
            if name == "bridge_mailbox_errors_total" and v
        }
        assert errors == {
            "a/auth_error": 2,
            "a/identity_problem": 2,
            "b/rejected": 1,
            "b/oversize": 1,
            "b/retr_failed": 1,
        }
    with pytest.raises(ValueError, match="mailbox error kind"):
        m.mailbox_error("a", "ok")  # type: ignore[arg-type]


def test_no_created_series_are_exported() -> None:
    """Counters and histograms come without their `_created` twins."""
    m = Metrics(mailbox_detail="full")
    m.prepare({"a": ["t"]})
    m.message_fetched("a")
    assert "_created" not in m.render().decode()


def test_essential_exposition_stays_small_at_ten_thousand_mailboxes() -> None:
    """10,000 mailboxes, one in a hundred failing and one in a hundred stuck, render to under
    2 MB (names of 22 characters); the chunked
    async rendering gives the same bytes, and the text parses back."""
    m = Metrics(mailbox_detail="essential", clock=lambda: 2000.0)
    names = [f"customer-mailbox-{i:05d}" for i in range(10_000)]
    m.prepare({name: ["main"] for name in names})
    for i, name in enumerate(names):
        m.poll_succeeded(name, 1_800_000_000.25 + i)
        m.mailbox_stat(name, i % 3, 2048 * (i % 3))
        m.set_oldest_undelivered(name, 1000.0 if i % 100 == 1 else None)
        if i % 100 == 0:
            m.pop3_session(name, "connect_error", 0.2)
    text = m.render()
    assert len(text) < 2_000_000, len(text)
    assert asyncio.run(m.render_async(chunk=333)) == text
    parsed = samples(m)
    assert parsed[("bridge_mailbox_messages", frozenset({("mailbox", names[2])}))] == 2
    oldest = "bridge_oldest_undelivered_age_seconds"
    assert parsed[(oldest, frozenset({("mailbox", names[1])}))] == 1000
    assert (oldest, frozenset({("mailbox", names[3])})) not in parsed  # nothing waiting


def test_render_async_yields_to_the_event_loop() -> None:
    """While a large exposition is rendered, other tasks get to run between chunks."""
    m = Metrics(mailbox_detail="essential")
    m.prepare({f"m{i}": ["main"] for i in range(5000)})
    ticks = 0

    async def ticker() -> None:
        nonlocal ticks
        while True:
            ticks += 1
            await asyncio.sleep(0)

    async def go() -> None:
        task = asyncio.create_task(ticker())
        await asyncio.sleep(0)
        before = ticks
        await m.render_async(chunk=500)
        task.cancel()
        assert ticks - before >= 10  # 3 families x 10 chunks: the loop ran in between

    asyncio.run(go())


def test_prepare_creates_zero_series_for_each_label_set() -> None:
    """Counters and gauges exist at 0 for configured mailboxes, targets and enum values."""
    metrics = Metrics()
    metrics.prepare({"support": ["main", "audit"], "sales": ["main"]}, extra_targets=["spare"])
    got = samples(metrics)
    assert value(metrics, "bridge_messages_fetched_total", mailbox="sales") == 0
    assert value(metrics, "bridge_messages_delivered_total", mailbox="support", target="audit") == 0
    assert ("bridge_messages_delivered_total",
            frozenset({("mailbox", "sales"), ("target", "audit")})) not in got  # fmt: skip
    for outcome in SESSION_OUTCOMES:
        assert value(metrics, "bridge_pop3_sessions_total", mailbox="sales", outcome=outcome) == 0
    for code in ERROR_CODES:
        assert value(metrics, "bridge_pop3_error_responses_total", mailbox="sales", code=code) == 0
    for reason in ("transient", "rejected", "circuit_open"):
        assert value(metrics, "bridge_delivery_failures_total", mailbox="sales", target="main",
                     reason=reason) == 0  # fmt: skip
    for klass in ("2xx", "3xx", "4xx", "5xx", "timeout", "error"):
        assert value(metrics, "bridge_webhook_requests_total", target="spare",
                     status_class=klass) == 0  # fmt: skip
    assert value(metrics, "bridge_webhook_circuit_state", target="spare") == 0
    assert value(metrics, "bridge_last_successful_poll_timestamp_seconds", mailbox="sales") == 0
    assert value(metrics, "bridge_oldest_undelivered_age_seconds", mailbox="sales") == 0


def test_instances_do_not_share_a_registry() -> None:
    """Two Metrics objects count independently (no global registry collisions)."""
    first, second = Metrics(), Metrics()
    first.message_fetched("a", 3)
    second.message_fetched("a")
    assert value(first, "bridge_messages_fetched_total", mailbox="a") == 3
    assert value(second, "bridge_messages_fetched_total", mailbox="a") == 1


def test_message_helpers_count_the_right_series() -> None:
    """Each message helper increments its own counter with the given labels."""
    m = Metrics()
    m.message_fetched("a", 2)
    m.message_delivered("a", "t")
    m.messages_deleted_committed("a", 5)
    m.messages_deleted_committed("a", 0)
    m.message_rejected("a", "t")
    m.delivery_failed("a", "t", "rejected")
    m.delivery_failed("a", "t", "circuit_open")
    m.message_dead_lettered("a")
    m.message_oversize("a")
    m.parse_defects_found("a", 3)
    assert value(m, "bridge_messages_fetched_total", mailbox="a") == 2
    assert value(m, "bridge_messages_delivered_total", mailbox="a", target="t") == 1
    assert value(m, "bridge_messages_deleted_total", mailbox="a") == 5
    assert value(m, "bridge_messages_rejected_total", mailbox="a", target="t") == 1
    assert value(m, "bridge_delivery_failures_total", mailbox="a", target="t",
                 reason="rejected") == 1  # fmt: skip
    assert value(m, "bridge_delivery_failures_total", mailbox="a", target="t",
                 reason="circuit_open") == 1  # fmt: skip
    assert value(m, "bridge_messages_dead_lettered_total", mailbox="a") == 1
    assert value(m, "bridge_messages_oversize_total", mailbox="a") == 1
    assert value(m, "bridge_parse_defects_total", mailbox="a") == 3


def test_webhook_request_records_status_class_and_duration() -> None:
    """webhook_request counts by status class and observes the duration histogram."""
    m = Metrics()
    m.webhook_request("t", 204, 0.02)
    m.webhook_request("t", 503, 0.3)
    m.webhook_request("t", "timeout", 15.0)
    m.webhook_attempt("t", "4xx", 0.01)
    assert value(m, "bridge_webhook_requests_total", target="t", status_class="2xx") == 1
    assert value(m, "bridge_webhook_requests_total", target="t", status_class="5xx") == 1
    assert value(m, "bridge_webhook_requests_total", target="t", status_class="timeout") == 1
    assert value(m, "bridge_webhook_requests_total", target="t", status_class="4xx") == 1
    assert value(m, "bridge_webhook_request_duration_seconds_count", target="t") == 4
    assert value(m, "bridge_webhook_request_duration_seconds_sum", target="t") == pytest.approx(
        15.33
    )
    assert value(m, "bridge_webhook_request_duration_seconds_bucket", target="t", le="0.025") == 2


@pytest.mark.parametrize(
    ("status", "label"),
    [(200, "2xx"), (299, "2xx"), (301, "3xx"), (404, "4xx"), (599, "5xx"), (101, "error"),
     (700, "error"), ("timeout", "timeout"), ("error", "error")],
)  # fmt: skip
def test_status_class(status: int | str, label: str) -> None:
    """HTTP statuses map to 2xx..5xx; others, timeouts and errors to their own labels."""
    assert status_class(status) == label  # type: ignore[arg-type]


def test_circuit_state_values_and_breaker_enum() -> None:
    """Breaker state is 0 closed, 1 half-open, 2 open; the webhook enum is accepted as is."""
    m = Metrics()
    m.set_circuit_state("t", "open")
    assert value(m, "bridge_webhook_circuit_state", target="t") == 2
    m.breaker_changed("t", BreakerState.HALF_OPEN)
    assert value(m, "bridge_webhook_circuit_state", target="t") == 1
    m.breaker_changed("t", BreakerState.CLOSED)
    assert value(m, "bridge_webhook_circuit_state", target="t") == 0


def test_pop3_helpers() -> None:
    """Session outcome and duration, error codes, commit failures and STAT are recorded."""
    m = Metrics()
    m.pop3_session("a", "ok", 1.5)
    m.pop3_session("a", "in_use", 0.1)
    m.pop3_error_response("a", "IN-USE")
    m.pop3_error_response("a", "sys/temp/quota")
    m.pop3_error_response("a", None)
    m.pop3_error_response("a", "X-VENDOR")
    m.commit_failed("a", "QUIT")
    m.mailbox_stat("a", 12, 34567)
    m.set_parked("a", 2)
    assert value(m, "bridge_pop3_sessions_total", mailbox="a", outcome="ok") == 1
    assert value(m, "bridge_pop3_sessions_total", mailbox="a", outcome="in_use") == 1
    assert value(m, "bridge_pop3_session_duration_seconds_count", mailbox="a") == 2
    assert value(m, "bridge_pop3_error_responses_total", mailbox="a", code="IN-USE") == 1
    assert value(m, "bridge_pop3_error_responses_total", mailbox="a", code="SYS/TEMP") == 1
    assert value(m, "bridge_pop3_error_responses_total", mailbox="a", code="none") == 1
    assert value(m, "bridge_pop3_error_responses_total", mailbox="a", code="other") == 1
    assert value(m, "bridge_commit_failures_total", mailbox="a", command="QUIT") == 1
    assert value(m, "bridge_mailbox_messages", mailbox="a") == 12
    assert value(m, "bridge_mailbox_bytes", mailbox="a") == 34567
    assert value(m, "bridge_parked_messages", mailbox="a") == 2


@pytest.mark.parametrize(
    ("code", "label"),
    [("AUTH", "AUTH"), ("LOGIN-DELAY", "LOGIN-DELAY"), ("SYS/PERM", "SYS/PERM"),
     ("IN-USE-X", "other"), ("", "none")],
)  # fmt: skip
def test_error_code_label_is_bounded(code: str, label: str) -> None:
    """RFC 2449 codes map to a fixed label set; anything else is 'other'."""
    assert error_code_label(code) == label


def test_enum_labels_are_checked() -> None:
    """An unknown outcome, reason, command, class or state raises instead of adding a series."""
    m = Metrics()
    with pytest.raises(ValueError, match="session outcome"):
        m.pop3_session("a", "weird", 1.0)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="delivery failure reason"):
        m.delivery_failed("a", "t", "bad")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="commit command"):
        m.commit_failed("a", "RSET")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="status class"):
        m.webhook_attempt("t", "6xx", 1.0)
    with pytest.raises(ValueError, match="circuit state"):
        m.breaker_changed("t", "ajar")
    with pytest.raises(ValueError, match="outcome"):
        m.webhook_request("t", "lost", 1.0)  # type: ignore[arg-type]


def test_oldest_undelivered_age_grows_at_scrape_time() -> None:
    """The age is computed from the first-seen time on every scrape; None resets it to 0."""
    now = [1000.0]
    m = Metrics(clock=lambda: now[0])
    m.set_oldest_undelivered("a", 900.0)
    assert value(m, "bridge_oldest_undelivered_age_seconds", mailbox="a") == 100
    now[0] = 1060.0
    assert value(m, "bridge_oldest_undelivered_age_seconds", mailbox="a") == 160
    m.set_oldest_undelivered("a", None)
    assert value(m, "bridge_oldest_undelivered_age_seconds", mailbox="a") == 0


def test_last_successful_poll_timestamp_uses_clock_or_given_time() -> None:
    """poll_succeeded records Unix time, from the injected clock by default."""
    m = Metrics(clock=lambda: 1234.5)
    m.poll_succeeded("a")
    assert value(m, "bridge_last_successful_poll_timestamp_seconds", mailbox="a") == 1234.5
    m.poll_succeeded("a", when=2000.0)
    assert value(m, "bridge_last_successful_poll_timestamp_seconds", mailbox="a") == 2000.0


def test_build_info_and_up() -> None:
    """bridge_build_info is 1 with version and python labels; bridge_up follows set_up."""
    m = Metrics()
    assert value(m, "bridge_build_info", version=__version__,
                 python=platform.python_version()) == 1  # fmt: skip
    assert value(m, "bridge_up") == 1
    m.set_up(False)
    assert value(m, "bridge_up") == 0


def test_render_is_text_exposition_with_help_and_type() -> None:
    """render() gives text format with HELP/TYPE lines; content_type names that format."""
    text = Metrics().render().decode()
    assert "# TYPE bridge_up gauge" in text
    assert "# HELP bridge_build_info" in text
    assert Metrics.content_type.startswith("text/plain; version=")


def test_every_exported_family_is_documented() -> None:
    """docs/metrics.md has a table row for every metric family the registry exports."""
    doc = (Path(__file__).resolve().parents[2] / "docs" / "metrics.md").read_text()
    metrics = Metrics()
    names = set()
    for family in text_string_to_metric_families(metrics.render().decode()):
        if family.name.endswith("_created"):  # a label-less counter's creation time
            continue
        suffix = "_total" if family.type == "counter" else ""
        names.add(family.name + suffix)
    assert len(names) == 35
    missing = {name for name in names if f"| `{name}` |" not in doc}
    assert not missing, f"not in docs/metrics.md: {sorted(missing)}"


def test_too_large_and_attachment_store_metrics() -> None:
    """413 handling is counted per target and action; store writes, errors and prunes add up."""
    m = Metrics()
    m.prepare({"support": ["main"]})
    for action in ("reference", "parked", "rejected"):
        assert value(m, "bridge_webhook_too_large_total", target="main", action=action) == 0
    m.too_large("main", "parked")
    m.too_large("main", "parked")
    assert value(m, "bridge_webhook_too_large_total", target="main", action="parked") == 2
    with pytest.raises(ValueError, match="too-large action"):
        m.too_large("main", "dropped")
    m.attachment_stored(1000)
    m.attachment_stored(24)
    m.attachment_store_failed()
    m.attachments_pruned_by_retention(3, 4096)
    assert value(m, "bridge_attachments_stored_total") == 2
    assert value(m, "bridge_attachments_stored_bytes_total") == 1024
    assert value(m, "bridge_attachment_store_errors_total") == 1
    assert value(m, "bridge_attachments_pruned_total") == 3
    assert value(m, "bridge_attachments_pruned_bytes_total") == 4096


@pytest.mark.parametrize("detail", ["essential", "full"])
async def test_app_exports_session_counters_at_zero_before_any_session(
    tmp_path: Path, detail: str
) -> None:
    """The alerts on failing first sessions (deploy/prometheus/alerts.yml) rely on this: from
    start-up on, before any session ran, the last-good-poll gauge of each mailbox is 0 and
    every session outcome is exported at 0 (per mailbox with ``full``, summed with
    ``essential``, whose per-mailbox error series are born with the first error)."""
    from bridge.app import App
    from bridge.config import Config
    from tests.integration.kit import SECRET

    config = Config.from_dict(
        {
            "data_dir": str(tmp_path),
            "metrics": {"mailbox_detail": detail},
            "webhooks": {"main": {"url": "http://127.0.0.1:9/h", "secret": SECRET}},
            "mailboxes": [
                {"name": "inbox", "host": "127.0.0.1", "username": "u", "password": "p",
                 "webhooks": ["main"]}
            ],
        },
        env={},
    )  # fmt: skip
    app = App(config)
    try:
        text = app.metrics.render().decode()
    finally:
        await app.close()
    label = 'mailbox="inbox",' if detail == "full" else ""
    for outcome in ("ok", "auth_error", "connect_error", "timeout", "tls_error"):
        assert f'bridge_pop3_sessions_total{{{label}outcome="{outcome}"}} 0.0' in text
    for kind in ("auth_error", "connect_error"):
        series = f'bridge_mailbox_errors_total{{kind="{kind}",mailbox="inbox"}} 0.0'
        assert (series in text) == (detail == "full")
    assert 'bridge_last_successful_poll_timestamp_seconds{mailbox="inbox"} 0.0' in text
