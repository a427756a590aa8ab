"""Config to parts: the builders :class:`~bridge.app.App` uses, one per kind of object.

Webhook targets and their TLS contexts, the attachment store, a mailbox's policy and POP3
client factory, and which mailboxes a shard owns. Only :mod:`bridge.app` uses them
(STYLE.md: the app is the only place that turns config into objects); ``check`` shares
:func:`session_outcome`.
"""

from __future__ import annotations

import hashlib
import ssl
from collections.abc import Awaitable, Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING

import structlog

from bridge.attachments import (
    AttachmentStore,
    DirStore,
    OnWrite,
    PruneResult,
    S3Store,
    s3_available,
)
from bridge.config import AttachmentsConfig, MailboxConfig, WebhookConfig
from bridge.errors import (
    AttachmentStoreError,
    ConfigError,
    OAuth2RefusedError,
    OAuth2UnavailableError,
    Pop3AuthError,
    Pop3ConnectionError,
    Pop3InUseError,
    Pop3LoginDelayError,
    Pop3ProtocolError,
    Pop3ResponseError,
    Pop3TimeoutError,
    Pop3TLSError,
)
from bridge.metrics import Metrics, SessionOutcome
from bridge.mime import PayloadOptions
from bridge.oauth2 import OAuth2Client
from bridge.poller import MailboxPolicy, SessionResult
from bridge.pop3 import Pop3Client, Timeouts
from bridge.redact import basic_forms, register, sasl_forms, secret_forms
from bridge.secretfiles import SecretFiles
from bridge.tlsctx import TlsContexts
from bridge.webhook import BasicAuth, WebhookTarget
from bridge.webhook.signing import decode_secret

if TYPE_CHECKING:
    pass


log = structlog.get_logger("bridge.app")


def webhook_target(
    name: str, cfg: WebhookConfig, files: SecretFiles | None = None, *, store: bool = False
) -> WebhookTarget:
    """The webhook package's value object for one configured target.

    ``store`` tells whether an attachments store is configured: it decides the default
    ``on_too_large`` (reference with a store, park without).

    With ``files``, every ``*_file`` secret is its file's current content (a rotated
    secret is used without a reload); a new signing secret that is not valid is ignored
    (logged) and the loaded one kept.
    """
    where = f"webhooks.{name}"
    secrets = [s.get_secret_value() for s in cfg.signing_secrets()]
    bearer = cfg.bearer_token.get_secret_value() if cfg.bearer_token else None
    basic = None
    if cfg.basic_auth is not None and cfg.basic_auth.password is not None:
        password = cfg.basic_auth.password.get_secret_value()
        if files is not None and cfg.basic_auth.password_file is not None:
            user = cfg.basic_auth.username
            password = files.read(
                cfg.basic_auth.password_file,
                forms=lambda value: basic_forms(user, value),
                what=f"{where}.basic_auth.password_file",
            )
        basic = BasicAuth(cfg.basic_auth.username, password)
    if files is not None and cfg.bearer_token_file is not None:
        bearer = files.read(cfg.bearer_token_file, what=f"{where}.bearer_token_file")
    if files is not None and cfg.secret_file is not None and cfg.secret is not None:
        current = files.read(
            cfg.secret_file,
            forms=lambda v: secret_forms(v) | secret_forms(v.removeprefix("whsec_")),
            what=f"{where}.secret_file",
        )
        loaded = cfg.secret.get_secret_value()
        if current != loaded:
            try:
                decode_secret(current)
            except ValueError as exc:
                log.warning("secret_file_invalid", key=f"{where}.secret_file", problem=str(exc))
            else:
                secrets = [current if s == loaded else s for s in secrets]
    return WebhookTarget(
        name=name,
        url=cfg.url,
        secrets=tuple(dict.fromkeys(secrets)),
        timeout=cfg.timeout,
        headers={k: v.get_secret_value() for k, v in cfg.headers.items()},
        bearer_token=bearer,
        basic_auth=basic,
        max_attempts=cfg.max_attempts,
        backoff_initial=cfg.backoff_initial,
        backoff_max=cfg.backoff_max,
        breaker_threshold=cfg.breaker_failures,
        breaker_cooldown=cfg.breaker_cooldown,
        ssl_context=webhook_ssl_context(name, cfg),
        on_too_large=cfg.on_too_large or ("reference" if store else "park"),
        max_payload_bytes=cfg.max_payload_bytes,
    )


def webhook_ssl_context(name: str, cfg: WebhookConfig) -> ssl.SSLContext | None:
    """The TLS context of a target with its own ``ca_file`` or client certificate, or None."""
    if cfg.ca_file is None and cfg.cert_file is None:
        return None
    key = f"webhooks.{name}"
    try:
        context = ssl.create_default_context(cafile=cfg.ca_file)
    except (ssl.SSLError, OSError) as exc:
        problem = f"{key}.ca_file: cannot load {cfg.ca_file}: {exc.strerror or exc}"
        raise ConfigError(problem, [problem]) from None
    if cfg.cert_file is not None:
        try:
            context.load_cert_chain(cfg.cert_file, cfg.key_file)
        except (ssl.SSLError, OSError) as exc:
            problem = (
                f"{key}.cert_file: cannot load the client certificate {cfg.cert_file}"
                f"{' with ' + str(cfg.key_file) if cfg.key_file else ''}: "
                f"{exc.strerror or type(exc).__name__}; it must be PEM, with the key in "
                "cert_file or key_file"
            )
            raise ConfigError(problem, [problem]) from None
    return context


def attachment_store(
    cfg: AttachmentsConfig, data_dir: Path, *, on_write: OnWrite | None = None
) -> AttachmentStore:
    """The content store for attachments sent by reference; ConfigError if it cannot be."""
    if cfg.store == "dir":
        return DirStore(
            cfg.path or data_dir / "attachments", base_url=cfg.base_url, on_write=on_write
        )
    if not s3_available():
        problem = (
            "attachments.store: s3 needs the aiobotocore package; install it with "
            "pip install 'popbridge[s3]'"
        )
        raise ConfigError(problem, [problem])
    assert cfg.bucket is not None  # the config validator requires it for s3
    return S3Store(
        bucket=cfg.bucket,
        prefix=cfg.prefix,
        endpoint_url=cfg.endpoint_url,
        region=cfg.region,
        addressing_style=cfg.addressing_style,
        access_key_id=cfg.access_key_id,
        secret_access_key=(
            cfg.secret_access_key.get_secret_value() if cfg.secret_access_key else None
        ),
        url_expiry=cfg.url_expiry,
        on_write=on_write,
    )


async def prune_attachments(
    store: AttachmentStore, older_than: float, metrics: Metrics | None = None
) -> PruneResult:
    """Remove stored attachments older than ``older_than`` seconds; count and log it."""
    try:
        result = await store.prune(older_than)
    except AttachmentStoreError:
        if metrics is not None:
            metrics.attachment_store_failed()
        raise
    if metrics is not None:
        metrics.attachments_pruned_by_retention(result.removed, result.removed_bytes)
    log.info(
        "attachments_pruned",
        store=store.kind,
        older_than=older_than,
        removed=result.removed,
        removed_bytes=result.removed_bytes,
        kept=result.kept,
        kept_bytes=result.kept_bytes,
    )
    return result


def mailbox_policy(cfg: MailboxConfig, *, store: bool = False) -> MailboxPolicy:
    """What the poller needs from one mailbox's config.

    With an attachments ``store`` the payload keeps every attachment's content:
    ``max_attachment_bytes`` then picks the ones the claim check stores instead.
    """
    return MailboxPolicy(
        name=cfg.name,
        targets=tuple(cfg.webhooks),
        max_message_bytes=cfg.max_message_bytes,
        oversize_policy=cfg.oversize_policy,
        reject_policy=cfg.reject_policy,
        session_max_messages=cfg.session_max_messages,
        session_max_bytes=cfg.session_max_bytes,
        session_max_seconds=cfg.session_max_seconds,
        delivery_concurrency=cfg.delivery_concurrency,
        strict_order=cfg.strict_order,
        keep=cfg.keep,
        keep_days=cfg.keep_days,
        # NOOP well inside the server's idle timeout (RFC 1939: at least 10 minutes)
        keepalive_interval=min(30.0, cfg.command_timeout),
        payload_options=PayloadOptions(
            include_raw=cfg.include_raw,
            max_attachment_bytes=None if store else cfg.max_attachment_bytes,
        ),
    )


def client_factory(
    cfg: MailboxConfig,
    files: SecretFiles | None = None,
    oauth2: OAuth2Client | None = None,
    on_login: Callable[[Pop3Client], None] | None = None,
    contexts: TlsContexts | None = None,
) -> Callable[[], Awaitable[Pop3Client]]:
    """A function that opens a logged-in POP3 client for this mailbox.

    With ``files``, ``password_file`` and ``token_file`` are read again when they changed,
    at each session: a rotated password works without a restart. With ``oauth2``, the
    token comes from that client; when the server refuses it (``-ERR [AUTH]``), a new one is
    fetched and the login tried once more. Each login is logged once at info (TLS mode and
    version, mechanism, UTF8) and handed to ``on_login`` (the LOGIN-DELAY pacer). TLS
    contexts come from ``contexts``, shared by every mailbox with the same TLS settings
    (building one per session costs ~20 ms of CPU with the system trust store).
    """
    shared = contexts if contexts is not None else TlsContexts()

    def new_client() -> Pop3Client:
        context = None
        if cfg.tls != "none":
            context = shared.get(
                verify=cfg.tls_verify,
                ca_file=cfg.ca_file,
                client_cert=cfg.client_cert,
                client_key=cfg.client_key,
            )
        return Pop3Client(
            cfg.host,
            cfg.port,
            tls=cfg.tls,
            ssl_context=context,
            timeouts=Timeouts(
                connect=cfg.connect_timeout,
                read=cfg.command_timeout,
                command=cfg.command_timeout,
                min_rate=cfg.min_transfer_rate,
            ),
            mailbox=cfg.name,
        )

    async def logged_in(password: str | None, token: str | None) -> Pop3Client:
        client = new_client()
        try:
            await client.connect()
            await client.login(
                cfg.username,
                password=password,
                token=token,
                method=cfg.auth,
                allow_insecure=cfg.allow_insecure_auth,
            )
        except BaseException:
            await client.close()
            raise
        log_login(cfg, client)
        if on_login is not None:
            on_login(client)
        return client

    async def open_client() -> Pop3Client:
        password = cfg.password.get_secret_value() if cfg.password else None
        token = cfg.token.get_secret_value() if cfg.token else None
        if files is not None:
            user = cfg.username
            if cfg.password_file is not None:
                password = files.read(
                    cfg.password_file,
                    forms=lambda v: sasl_forms(user, v, None),
                    what=f"mailboxes.{cfg.name}.password_file",
                )
            if cfg.token_file is not None:
                token = files.read(
                    cfg.token_file,
                    forms=lambda v: sasl_forms(user, None, v),
                    what=f"mailboxes.{cfg.name}.token_file",
                )
        if oauth2 is None:
            return await logged_in(password, token)
        token = await oauth2.token()
        register(sasl_forms(cfg.username, None, token))
        try:
            return await logged_in(None, token)
        except Pop3AuthError:
            # The server refused a token we thought valid (revoked, or expired early):
            # fetch a new one and try once more, on a new connection.
            oauth2.invalidate(token)
            fresh = await oauth2.token()
            if fresh == token:
                raise
            register(sasl_forms(cfg.username, None, fresh))
            log.info("oauth2_token_refused_retrying", mailbox=cfg.name, client=oauth2.name)
            return await logged_in(None, fresh)

    return open_client


def log_login(cfg: MailboxConfig, client: Pop3Client) -> None:
    """One info line per session: how the connection is protected and how it logged in."""
    caps = client.capabilities
    log.info(
        "pop3_login",
        mailbox=cfg.name,
        tls=str(cfg.tls),
        tls_version=client.tls_version,
        mechanism=client.mechanism,
        utf8=client.utf8,
        login_delay=caps.login_delay,
        pipelining=client.pipelining,
    )
    if not client.tls_active and caps.stls:
        log.warning(
            "pop3_plaintext_login",
            mailbox=cfg.name,
            detail="the server offers STLS: tls: starttls would encrypt the login and the mail",
        )


def shard_of(name: str, count: int) -> int:
    """The replica (0-based) that owns a mailbox, out of ``count``: rendezvous hashing.

    Each replica index gets a score, SHA-256 of ``index NUL name``; the highest wins. The
    same on every host, and stable under resizing: going from N to N+1 replicas moves only
    the mailboxes the new replica wins, about 1/(N+1) of them (hash-modulo moved ~N/(N+1)).
    """
    data = name.encode()
    best, owner = b"", 0
    for index in range(count):
        score = hashlib.sha256(index.to_bytes(4, "big") + b"\0" + data).digest()[:8]
        if score > best:
            best, owner = score, index
    return owner


def select_shard(
    mailboxes: Sequence[MailboxConfig], shard: tuple[int, int] | None
) -> list[MailboxConfig]:
    """The mailboxes this replica polls under ``--shard INDEX/COUNT``."""
    if shard is None:
        return list(mailboxes)
    index, count = shard
    return [m for m in mailboxes if shard_of(m.name, count) == index]


def session_outcome(exc: BaseException | None, result: SessionResult | None) -> SessionOutcome:
    """The ``outcome`` label of ``bridge_pop3_sessions_total``."""
    if exc is None:
        return "commit_error" if result is not None and result.commit_errors else "ok"
    table: tuple[tuple[type[BaseException], SessionOutcome], ...] = (
        (Pop3AuthError, "auth_error"),
        (OAuth2RefusedError, "auth_error"),
        (OAuth2UnavailableError, "connect_error"),
        (Pop3InUseError, "in_use"),
        (Pop3LoginDelayError, "login_delay"),
        (Pop3TLSError, "tls_error"),
        (Pop3TimeoutError, "timeout"),
        (Pop3ConnectionError, "connect_error"),
        (Pop3ProtocolError, "protocol_error"),
        (Pop3ResponseError, "server_error"),
    )
    for cls, label in table:
        if isinstance(exc, cls):
            return label
    if isinstance(exc, OSError | TimeoutError):
        return "connect_error"
    return "error"
