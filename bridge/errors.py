"""Every error the bridge raises, rooted at :class:`BridgeError`.

The tree::

    BridgeError
    ├── ConfigError                     a config file or value is wrong (exit code 2)
    ├── Pop3Error                       anything from the POP3 client (.command, .mailbox)
    │   ├── Pop3ConnectionError         connect failed or the peer dropped (also ConnectionError)
    │   ├── Pop3TimeoutError            a read or connect timed out (also TimeoutError)
    │   ├── Pop3ProtocolError           the server broke the protocol (garbage, no terminator)
    │   │   ├── Pop3LineTooLongError    a status or data line past the limit
    │   │   └── Pop3MessageTooLargeError  RETR passed the caller's size limit
    │   ├── Pop3TLSError                TLS handshake / verification failed, STLS missing
    │   ├── Pop3InsecureAuthError       refusing to send credentials over plain text
    │   ├── Pop3CommandArgumentError    an argument held CR, LF or NUL (also ValueError)
    │   └── Pop3ResponseError           the server answered -ERR (.code, .text)
    │       ├── Pop3AuthError           login refused ([AUTH] or a plain -ERR to PASS/APOP/AUTH)
    │       ├── Pop3InUseError          [IN-USE]: the maildrop is locked by another session
    │       ├── Pop3LoginDelayError     [LOGIN-DELAY]: logged in too soon
    │       ├── Pop3SysTempError        [SYS/TEMP]: a passing server-side fault
    │       └── Pop3SysPermError        [SYS/PERM]: a lasting server-side fault
    ├── WebhookError                    a delivery failed (.target, .status, .attempt)
    │   ├── WebhookTransientError       worth retrying: 408/425/429/5xx, timeouts, connection errors
    │   └── WebhookRejectedError        the receiver refused it: other 4xx, 3xx
    ├── LedgerError                     the durable ledger could not be read or written
    ├── DataDirError                    data_dir cannot be used (exit code 2)
    │   └── DataDirLockedError          another live process holds data_dir (exit code 5)
    ├── OAuth2Error                     an OAuth 2 token could not be had (.client)
    │   ├── OAuth2RefusedError          the provider refused the grant or client: fix config
    │   └── OAuth2UnavailableError      the token endpoint failed for now (5xx, timeout)
    └── AttachmentStoreError            an attachment could not be written to (or pruned from)
                                        the content store (.store); transient

Whether a failure is worth retrying is part of its type: :attr:`BridgeError.transient`.
Messages never contain a password, token, digest or SASL payload.
"""

from __future__ import annotations


class BridgeError(Exception):
    """Root of every error the bridge raises."""

    transient: bool = False
    """True when the same operation may succeed if tried again later."""


class ConfigError(BridgeError):
    """The configuration is invalid; ``problems`` lists one ``key.path: message`` per issue."""

    def __init__(self, message: str, problems: list[str] | None = None) -> None:
        super().__init__(message)
        self.problems: list[str] = problems or []


# --------------------------------------------------------------------------- POP3


class Pop3Error(BridgeError):
    """Anything that went wrong talking POP3."""

    def __init__(self, message: str, *, command: str | None = None, mailbox: str | None = None):
        super().__init__(message)
        self.message = message
        self.command = command
        self.mailbox = mailbox

    def __str__(self) -> str:
        where = f"[{self.mailbox}] " if self.mailbox else ""
        what = f" (after {self.command})" if self.command else ""
        return f"{where}{self.message}{what}"


class Pop3ConnectionError(Pop3Error, ConnectionError):
    """Could not connect, or the server closed the connection."""

    transient = True


class Pop3TimeoutError(Pop3Error, TimeoutError):
    """The server did not answer in time; the connection has been closed."""

    transient = True


class Pop3ProtocolError(Pop3Error):
    """The server sent something that is not POP3; the connection has been closed."""

    transient = True


class Pop3LineTooLongError(Pop3ProtocolError):
    """A line exceeded the configured maximum length."""


class Pop3MessageTooLargeError(Pop3ProtocolError):
    """A retrieved message exceeded the caller's size limit.

    Its body was read to the end and dropped, so the session can go on (``connection_kept``);
    only a body that went on far past the limit closed the connection.
    """

    transient = False

    def __init__(
        self, message: str, *, limit: int, command: str | None = None, mailbox: str | None = None
    ):
        super().__init__(message, command=command, mailbox=mailbox)
        self.limit = limit
        self.connection_kept = False


class Pop3TLSError(Pop3Error):
    """TLS could not be established or verified, or STLS was required but not offered."""


class Pop3InsecureAuthError(Pop3Error):
    """Credentials would cross an unencrypted connection and that was not allowed."""


class Pop3CommandArgumentError(Pop3Error, ValueError):
    """A command argument contained CR, LF or NUL."""


class Pop3ResponseError(Pop3Error):
    """The server answered ``-ERR``; ``code`` is the RFC 2449 response code, if any."""

    def __init__(
        self,
        message: str,
        *,
        code: str | None = None,
        text: str = "",
        command: str | None = None,
        mailbox: str | None = None,
    ):
        super().__init__(message, command=command, mailbox=mailbox)
        self.code = code
        self.text = text


class Pop3AuthError(Pop3ResponseError):
    """The server refused the credentials. Check the username, password or token."""


class Pop3InUseError(Pop3ResponseError):
    """``[IN-USE]``: another session holds the maildrop lock."""

    transient = True


class Pop3LoginDelayError(Pop3ResponseError):
    """``[LOGIN-DELAY]``: the server wants more time between logins."""

    transient = True

    def __init__(self, message: str, *, delay: float | None = None, **kwargs: object) -> None:
        super().__init__(message, **kwargs)  # type: ignore[arg-type]
        self.delay = delay


class Pop3SysTempError(Pop3ResponseError):
    """``[SYS/TEMP]``: a passing fault on the server."""

    transient = True


class Pop3SysPermError(Pop3ResponseError):
    """``[SYS/PERM]``: a lasting fault on the server that needs a human."""


# --------------------------------------------------------------------------- webhooks


class WebhookError(BridgeError):
    """A webhook delivery failed."""

    def __init__(
        self,
        message: str,
        *,
        target: str,
        status: int | None = None,
        attempt: int = 1,
        retry_after: float | None = None,
    ):
        super().__init__(message)
        self.target = target
        self.status = status
        self.attempt = attempt
        self.retry_after = retry_after


class WebhookTransientError(WebhookError):
    """The receiver may accept it later: 408, 425, 429, 5xx, timeouts, connection errors."""

    transient = True


class WebhookRejectedError(WebhookError):
    """The receiver refused it: other 4xx and 3xx. Retrying the same body will not help."""


# --------------------------------------------------------------------------- ledger


class LedgerError(BridgeError):
    """The durable ledger could not be read or written; check ``data_dir``."""


class DataDirError(BridgeError):
    """``data_dir`` cannot be used: missing permissions, a full disk, a corrupt ledger."""

    def __init__(self, message: str, *, data_dir: str) -> None:
        super().__init__(message)
        self.data_dir = data_dir


class DataDirLockedError(DataDirError):
    """Another live process holds the lock on ``data_dir`` (``pid``, when it could be read)."""

    def __init__(self, message: str, *, data_dir: str, pid: int | None) -> None:
        super().__init__(message, data_dir=data_dir)
        self.pid = pid


# --------------------------------------------------------------------------- OAuth 2


class OAuth2Error(BridgeError):
    """An access token could not be obtained; ``client`` names the OAuth 2 client."""

    def __init__(self, message: str, *, client: str) -> None:
        super().__init__(message)
        self.client = client


class OAuth2RefusedError(OAuth2Error):
    """The provider refused (``invalid_grant``: a revoked or expired refresh token,
    ``invalid_client``: a wrong secret). Retrying will not help until the config changes."""


class OAuth2UnavailableError(OAuth2Error):
    """The token endpoint failed for now: 5xx, 429, a timeout or a connection error."""

    transient = True


class AttachmentStoreError(BridgeError):
    """The attachment content store (a directory or an S3 bucket) refused a write or a prune.

    Transient: the message stays on the server and is tried again; nothing is posted that
    refers to an object that was not written. ``store`` is ``"dir"`` or ``"s3"``.
    """

    transient = True

    def __init__(self, message: str, *, store: str) -> None:
        super().__init__(message)
        self.store = store
