"""Webhook transport rules: no credentials over plain http to a remote host; per-target TLS.

The TLS tests run a real aiohttp receiver over HTTPS with a certificate from a private CA
(``trustme``), one of them requiring a client certificate (mutual TLS).
"""

from __future__ import annotations

import ssl
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
import trustme

from bridge.app import webhook_target
from bridge.config import Config
from bridge.errors import ConfigError
from bridge.webhook import DeliveryKind, WebhookClient
from tests.integration.kit import SECRET
from tests.receiver import WebhookReceiver


def _config(webhook: dict[str, Any]) -> dict[str, Any]:
    return {
        "data_dir": "/var/lib/bridge",
        "webhooks": {"main": {"secret": SECRET, **webhook}},
        "mailboxes": [
            {
                "name": "a",
                "host": "pop.example.org",
                "username": "u",
                "password": "pw-123456",
                "webhooks": ["main"],
            }
        ],
    }


def _problems(webhook: dict[str, Any]) -> list[str]:
    with pytest.raises(ConfigError) as info:
        Config.from_dict(_config(webhook), env={})
    return info.value.problems


CREDENTIALS = {
    "bearer_token": {"bearer_token": "tok-123456789"},
    "basic_auth": {"basic_auth": {"username": "u", "password": "pw-123456789"}},
    "headers": {"headers": {"X-Api-Key": "key-123456789"}},
}


@pytest.mark.parametrize("kind", list(CREDENTIALS))
def test_credentials_over_plain_http_to_a_remote_host_are_refused(kind: str) -> None:
    """http:// to a non-loopback host with a credential fails to load, naming the key."""
    problems = _problems({"url": "http://hooks.example.org/in", **CREDENTIALS[kind]})
    assert len(problems) == 1
    assert problems[0].startswith("webhooks.main.url: http:// to hooks.example.org")
    assert kind in problems[0]
    assert "allow_insecure_auth" in problems[0]
    assert "123456789" not in problems[0]


@pytest.mark.parametrize("kind", list(CREDENTIALS))
def test_the_opt_in_allows_credentials_over_plain_http(kind: str) -> None:
    """allow_insecure_auth: true is the explicit way to accept a trusted network."""
    webhook = {"url": "http://hooks.example.org/in", "allow_insecure_auth": True}
    Config.from_dict(_config({**webhook, **CREDENTIALS[kind]}), env={})


@pytest.mark.parametrize(
    "url",
    [
        "http://127.0.0.1:8080/in",
        "http://127.5.6.7/in",
        "http://localhost:8080/in",
        "http://[::1]:8080/in",
        "https://hooks.example.org/in",
    ],
)
def test_loopback_and_https_need_no_opt_in(url: str) -> None:
    """Loopback never leaves the host; https encrypts: both load with credentials."""
    Config.from_dict(_config({"url": url, **CREDENTIALS["bearer_token"]}), env={})


def test_plain_http_without_credentials_is_allowed() -> None:
    """Only the signature travels: nothing to steal that would let anyone in."""
    Config.from_dict(_config({"url": "http://hooks.example.org/in"}), env={})


def test_tls_files_need_https_and_key_needs_cert(tmp_path: Path) -> None:
    """ca_file/cert_file on an http:// URL and key_file alone are errors naming the key."""
    pem = tmp_path / "x.pem"
    pem.write_text("x")
    problems = _problems({"url": "http://127.0.0.1/in", "ca_file": str(pem)})
    assert problems == ["webhooks.main.url: ca_file and cert_file need an https:// URL"]
    problems = _problems({"url": "https://h.example.org/in", "key_file": str(pem)})
    assert problems == ["webhooks.main.key_file: needs cert_file"]
    problems = _problems({"url": "https://h.example.org/in", "ca_file": str(tmp_path / "no")})
    assert problems[0].startswith("webhooks.main.ca_file:")


@pytest.fixture(scope="module")
def ca() -> trustme.CA:
    return trustme.CA()


@pytest.fixture
async def mtls_receiver(ca: trustme.CA) -> AsyncIterator[WebhookReceiver]:
    """An HTTPS receiver with a private-CA certificate that requires a client certificate."""
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ca.issue_cert("127.0.0.1").configure_cert(context)
    ca.configure_trust(context)
    context.verify_mode = ssl.CERT_REQUIRED
    async with WebhookReceiver(ssl_context=context) as receiver:
        yield receiver


def _files(ca: trustme.CA, tmp_path: Path) -> dict[str, str]:
    ca.cert_pem.write_to_path(str(tmp_path / "ca.pem"))
    client = ca.issue_cert("popbridge-client")
    client.cert_chain_pems[0].write_to_path(str(tmp_path / "client.pem"))
    client.private_key_pem.write_to_path(str(tmp_path / "client.key"))
    return {
        "ca_file": str(tmp_path / "ca.pem"),
        "cert_file": str(tmp_path / "client.pem"),
        "key_file": str(tmp_path / "client.key"),
    }


async def _deliver(webhook: dict[str, Any]) -> DeliveryKind:
    config = Config.from_dict(_config(webhook), env={})
    target = webhook_target("main", config.webhooks["main"])
    async with WebhookClient() as client:
        outcome = await client.deliver(target, "msg_1", b"{}")
    return outcome.kind


async def test_ca_file_and_client_certificate_reach_a_mutual_tls_receiver(
    ca: trustme.CA, mtls_receiver: WebhookReceiver, tmp_path: Path
) -> None:
    """With ca_file, cert_file and key_file the POST is verified both ways and acknowledged."""
    files = _files(ca, tmp_path)
    kind = await _deliver({"url": mtls_receiver.url, "max_attempts": 1, **files})
    assert kind is DeliveryKind.ACKED
    assert len(mtls_receiver.requests) == 1


async def test_without_the_client_certificate_the_receiver_refuses(
    ca: trustme.CA, mtls_receiver: WebhookReceiver, tmp_path: Path
) -> None:
    """The same target without cert_file: the TLS handshake fails, nothing is delivered."""
    files = _files(ca, tmp_path)
    kind = await _deliver(
        {"url": mtls_receiver.url, "max_attempts": 1, "ca_file": files["ca_file"]}
    )
    assert kind is DeliveryKind.TRANSIENT
    assert mtls_receiver.requests == []


async def test_without_ca_file_the_private_ca_is_not_trusted(
    mtls_receiver: WebhookReceiver,
) -> None:
    """The system trust store does not know the private CA: no request is made."""
    kind = await _deliver({"url": mtls_receiver.url, "max_attempts": 1})
    assert kind is DeliveryKind.TRANSIENT
    assert mtls_receiver.requests == []


def test_an_unloadable_client_certificate_is_a_config_error(tmp_path: Path) -> None:
    """A cert_file that is not PEM fails when the target is built, naming the key."""
    bad = tmp_path / "bad.pem"
    bad.write_text("not a certificate")
    config = Config.from_dict(
        _config({"url": "https://h.example.org/in", "cert_file": str(bad)}), env={}
    )
    with pytest.raises(ConfigError, match=r"webhooks\.main\.cert_file: cannot load"):
        webhook_target("main", config.webhooks["main"])
