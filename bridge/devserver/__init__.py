"""A small scriptable POP3 server for development, the demo and tests: asyncio, stdlib only.

It serves a list of messages on 127.0.0.1, port 0, and speaks enough of RFC 1939 / 2449 /
2595 / 5034 for a client: USER, PASS, APOP, AUTH (PLAIN, LOGIN, XOAUTH2, OAUTHBEARER), CAPA,
STLS (when given a TLS context), STAT, LIST, UIDL, RETR, TOP, DELE, NOOP, RSET, QUIT. Like a
real server it locks the maildrop per session (a second session gets ``-ERR [IN-USE]``) and
deletes marked messages only on QUIT.

What a real server will not do on demand, it does here: faults keyed by command verb
(``"GREETING"`` for the greeting) that drop the connection, answer garbage or a given line,
answer slowly, send an endless line, stop before the ``.`` terminator, or drop in the middle of a
multi-line answer. ``commands`` records every line received, arguments included (so tests can
assert on them); the server never logs or prints them.

    server = FakePop3Server([b"Subject: hi\\r\\n\\r\\nbody\\r\\n"])
    await server.start()
    server.drop_on("RETR")            # the next RETR gets no answer, the connection closes
    server.refuse_login("-ERR [IN-USE] somebody else is in")
    ...
    await server.stop()
"""

from bridge.devserver.messages import FakeMessage, Fault, crlf, stuff
from bridge.devserver.server import FakePop3Server

__all__ = ["FakeMessage", "FakePop3Server", "Fault", "crlf", "stuff"]
