"""Logging in: USER/PASS, APOP, SASL AUTH (PLAIN, LOGIN, XOAUTH2, OAUTHBEARER, ...), and the
checks before any credential is sent (TLS or explicit consent, no control characters)."""

from __future__ import annotations

from bridge.errors import (
    Pop3AuthError,
    Pop3CommandArgumentError,
    Pop3InsecureAuthError,
)
from bridge.pop3 import auth
from bridge.pop3.auth import Mechanism
from bridge.pop3.hints import offered_methods
from bridge.pop3.responses import Response, Status
from bridge.pop3.session import SessionMixin
from bridge.pop3.wire import encode_command

__all__ = ["LoginMixin"]

_SASL_MAX_ROUNDS = 8
_RFC5034_MAX_COMMAND = 255  # an AUTH line with its initial response must fit (RFC 5034 4.)


class LoginMixin(SessionMixin):
    """Authentication; after it, CAPA again and UTF8 where announced."""

    def _check_secure(self, verb: str, allow_insecure: bool) -> None:
        if not self.tls_active and not allow_insecure:
            offers = (
                " (the server offers STLS: use tls: starttls)" if self.capabilities.stls else ""
            )
            raise Pop3InsecureAuthError(
                f"refusing to send credentials ({verb}) over an unencrypted connection to "
                f"{self.host}:{self.port}; use tls: implicit or starttls, or allow insecure "
                f"authentication explicitly{offers}",
                command=verb,
                mailbox=self.mailbox,
            )

    @staticmethod
    def _check_credentials(verb: str, *values: str) -> None:
        for value in values:
            if any(ch in value for ch in "\r\n\0\x01"):
                raise Pop3CommandArgumentError(
                    f"refusing to send {verb}: a credential contains a control character "
                    "(CR, LF, NUL or ^A)",
                    command=verb,
                )

    async def _logged_in(self) -> None:
        self.authenticated = True
        await self.capa()  # RFC 2449: capabilities may change after login
        await self._enable_utf8()

    async def user(self, username: str, *, allow_insecure: bool = False) -> Response:
        """``USER name``; the first half of USER/PASS."""
        self._check_secure("USER", allow_insecure)
        return await self._simple("USER", username)

    async def pass_(self, password: str, *, allow_insecure: bool = False) -> Response:
        """``PASS``; on success the session is logged in and ``CAPA`` is asked again."""
        self._check_secure("PASS", allow_insecure)
        self._check_credentials("PASS", password)
        response = await self._simple("PASS", password, secrets=(password,))
        await self._logged_in()
        return response

    async def apop(self, username: str, password: str, *, allow_insecure: bool = False) -> Response:
        """``APOP name digest`` with the greeting's timestamp (RFC 1939 section 7)."""
        self._check_secure("APOP", allow_insecure)
        self._check_credentials("APOP", username, password)
        timestamp = self.greeting.apop_timestamp if self.greeting else None
        if timestamp is None:
            raise Pop3AuthError(
                "the server does not offer APOP (no timestamp in its greeting)",
                command="APOP",
                mailbox=self.mailbox,
            )
        digest = auth.apop_digest(timestamp, password)
        response = await self._simple("APOP", username, digest, secrets=(password, digest))
        await self._logged_in()
        return response

    async def auth(
        self,
        mechanism: Mechanism | str,
        username: str,
        password: str | None = None,
        *,
        token: str | None = None,
        authzid: str = "",
        initial_response: bool | None = None,
        allow_insecure: bool = False,
    ) -> Response:
        """SASL ``AUTH`` (RFC 5034): PLAIN, LOGIN, XOAUTH2 or OAUTHBEARER.

        ``initial_response`` None sends the response on the AUTH line when it fits in 255
        octets, else waits for the ``+`` challenge (the two-step form Office 365 needs).
        A failed XOAUTH2/OAUTHBEARER login answers the server's error challenge as the
        providers document (an empty line / ``^A``) and raises :class:`Pop3AuthError`.
        """
        mech = Mechanism(str(mechanism).lower())
        self._check_secure("AUTH", allow_insecure)
        caps = self.capabilities
        if caps.known and mech.upper() not in caps.sasl:
            # Never send a command CAPA left out: a server without SASL answers AUTH with
            # errors that read like a wrong password ("-ERR Not implemented").
            offered = offered_methods(caps, self.greeting)
            raise Pop3AuthError(
                f"the server does not offer SASL {mech.upper()} (its CAPA lists "
                f"{'SASL ' + ' '.join(caps.sasl) if caps.sasl else 'no SASL'}); "
                f"use another auth ({', '.join(offered) or 'none'} offered)",
                command="AUTH",
                mailbox=self.mailbox,
            )
        self._auth_method = mech.value
        oauth = mech in (Mechanism.XOAUTH2, Mechanism.OAUTHBEARER)
        secret = token if oauth else password
        if secret is None:
            raise Pop3AuthError(
                f"AUTH {mech.upper()} needs a {'token' if oauth else 'password'}",
                command="AUTH",
                mailbox=self.mailbox,
            )
        self._check_credentials("AUTH", username, secret, authzid)
        steps: tuple[str, ...]
        if mech is Mechanism.PLAIN:
            steps = (auth.sasl_plain(authzid, username, secret),)
        elif mech is Mechanism.LOGIN:
            steps = auth.sasl_login(username, secret)
        elif mech is Mechanism.XOAUTH2:
            steps = (auth.xoauth2(username, secret),)
        elif mech is Mechanism.OAUTHBEARER:
            steps = (auth.oauthbearer(username, secret, self.server_hostname, self.port),)
        else:
            raise Pop3CommandArgumentError(f"{mech.value} is not a SASL mechanism", command="AUTH")
        name = mech.upper()
        if initial_response is None:
            first = len(f"AUTH {name} {steps[0]}\r\n")
            initial_response = mech is not Mechanism.LOGIN and first <= _RFC5034_MAX_COMMAND
        secrets = (secret, *steps)
        conn = self._connection("AUTH")
        async with self._bounded("AUTH"):
            if initial_response:
                line, sent = encode_command("AUTH", name, steps[0]), 1
            else:
                line, sent = encode_command("AUTH", name), 0
            reply = await conn.request(line, "AUTH", allow_continuation=True)
            rounds = 0
            while reply.response.status is Status.CONTINUE:
                rounds += 1
                if rounds > _SASL_MAX_ROUNDS:
                    raise self._protocol_error("the SASL exchange does not end", "AUTH")
                if sent < len(steps):
                    payload, sent = steps[sent], sent + 1
                elif mech is Mechanism.XOAUTH2:
                    payload = ""  # the error challenge is acknowledged with an empty response
                elif mech is Mechanism.OAUTHBEARER:
                    payload = "AQ=="  # RFC 7628 3.2.3: a single ^A
                else:
                    payload = "*"  # cancel (RFC 5034 4.)
                reply = await conn.request(
                    payload.encode("ascii") + b"\r\n", "AUTH", allow_continuation=True
                )
        if not reply.response.ok:
            raise self._error(reply.response, "AUTH", secrets)
        await self._logged_in()
        return reply.response

    async def login(
        self,
        username: str,
        password: str | None = None,
        *,
        token: str | None = None,
        method: Mechanism | str = Mechanism.AUTO,
        allow_insecure: bool = False,
        authzid: str = "",
    ) -> Mechanism:
        """Log in with a password or a bearer token; returns the mechanism used.

        ``method="auto"`` picks the strongest mechanism the server offers (see
        :func:`bridge.pop3.auth.choose_mechanism`). Credentials are refused over an
        unencrypted connection unless ``allow_insecure`` is True.
        """
        if password is None and token is None:
            raise Pop3AuthError("login needs a password or a token", mailbox=self.mailbox)
        chosen = Mechanism(str(method).lower())
        if chosen is Mechanism.AUTO:
            chosen = auth.choose_mechanism(
                self.capabilities,
                self.greeting,
                has_password=password is not None,
                has_token=token is not None,
                tls_active=self.tls_active,
                allow_insecure=allow_insecure,
            )
        if chosen is Mechanism.USER:
            if password is None:
                raise Pop3AuthError("USER/PASS needs a password", mailbox=self.mailbox)
            self._check_secure("USER", allow_insecure)
            self._check_credentials("PASS", username, password)
            await self.user(username, allow_insecure=allow_insecure)
            await self.pass_(password, allow_insecure=allow_insecure)
        elif chosen is Mechanism.APOP:
            if password is None:
                raise Pop3AuthError("APOP needs a password", mailbox=self.mailbox)
            await self.apop(username, password, allow_insecure=allow_insecure)
        else:
            await self.auth(
                chosen,
                username,
                password,
                token=token,
                authzid=authzid,
                allow_insecure=allow_insecure,
            )
        self.mechanism = chosen.value
        return chosen

    # ------------------------------------------------------------------ keep-alive and end
