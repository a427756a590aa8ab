"""A throwaway Dovecot POP3 server for the tests (see ../shared/TESTBED.md).

One instance per test session, on free loopback ports: a plain port that offers STLS and an
implicit-TLS port, both with a certificate from a test CA made by ``trustme``. Users are added
at any time (``new_user``); the passwd-file passdb keeps plaintext passwords so APOP works.
Mail is seeded the way Dovecot itself delivers it: written to ``Maildir/tmp`` and renamed into
``Maildir/new`` with ``,S=`` and ``,W=`` in the name, owned by the mail uid.

It is also used outside pytest (the benchmark, the crash test's helper process), so it depends
on nothing but the standard library and trustme.
"""

from __future__ import annotations

import itertools
import os
import secrets
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import trustme

DOVECOT = os.environ.get("POPBRIDGE_DOVECOT", "/usr/sbin/dovecot")
MAIL_UID = 5000
MAIL_GID = 5000
USER_POOL = 300

INSTALL_HINT = (
    "The integration tests need Dovecot's POP3 server at {path}. Install it with "
    "'apt-get install dovecot-pop3d' (Debian/Ubuntu, as root), or run 'make test', which does "
    "so when it runs as root."
)


class DovecotUnavailable(RuntimeError):
    """Dovecot cannot be started here; the message says why and what to do."""


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nobody listens on right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def crlf_size(raw: bytes) -> int:
    """The size of ``raw`` once every bare LF is turned into CRLF, as POP3 sends it."""
    return len(raw) + raw.count(b"\n") - raw.count(b"\r\n")


_sequence = itertools.count(1)


@dataclass
class Pop3User:
    """One mailbox on the test server."""

    name: str
    password: str
    home: Path
    chown: bool = field(default=True, repr=False)

    @property
    def maildir(self) -> Path:
        return self.home / "Maildir"

    def deliver(self, raw: bytes, *, listed_size: int | None = None) -> Path:
        """Drop one message into ``Maildir/new``; messages keep the order they were delivered in.

        ``listed_size`` makes Dovecot's LIST claim another size (it trusts ``W=``): a server
        that understates sizes, for the memory tests.
        """
        seq = next(_sequence)
        # The leading number is what Dovecot sorts new files by: keep it monotonic.
        base = f"{1_700_000_000 + seq:012d}.M{seq:08d}P{os.getpid()}.popbridge-test"
        wire = crlf_size(raw) if listed_size is None else listed_size
        name = f"{base},S={len(raw)},W={wire}"
        tmp = self.maildir / "tmp" / name
        tmp.write_bytes(raw)
        if self.chown:
            os.chown(tmp, MAIL_UID, MAIL_GID)
        final = self.maildir / "new" / name
        tmp.rename(final)
        return final

    def deliver_many(self, raws: Iterable[bytes]) -> list[Path]:
        """Deliver several messages in order."""
        return [self.deliver(raw) for raw in raws]

    def _files(self) -> list[Path]:
        files = [p for sub in ("new", "cur") for p in (self.maildir / sub).iterdir()]
        return sorted(files, key=lambda p: p.name.split(":", 1)[0])

    def count(self) -> int:
        """How many messages the mailbox holds on disk now."""
        return len(self._files())

    def messages(self) -> list[bytes]:
        """The stored messages, oldest first, exactly as on disk."""
        return [p.read_bytes() for p in self._files()]

    def clear(self) -> None:
        """Remove every message."""
        for p in self._files():
            p.unlink()


class Dovecot:
    """A running throwaway Dovecot; use :meth:`start` / :meth:`stop` or ``with``."""

    host = "127.0.0.1"

    def __init__(self, root: Path | None = None, *, uidl_format: str = "%08Xu%08Xv") -> None:
        self._own_root = root is None
        self.uidl_format = uidl_format
        self.root = Path(root or tempfile.mkdtemp(prefix="popbridge-dovecot-", dir="/tmp"))
        self.port = free_port()
        self.tls_port = free_port()
        self.instance = f"popbridge-{os.getpid()}-{secrets.token_hex(3)}"
        self.config_path = self.root / "dovecot.conf"
        self.passwd = self.root / "passwd"
        self.log_path = self.root / "dovecot.log"
        self.ca_file = self.root / "ca.pem"
        self._users: dict[str, Pop3User] = {}
        self._root_mode = os.geteuid() == 0
        self._process: subprocess.Popen[bytes] | None = None
        self._passwd_stamp = 0
        self._pool: list[tuple[str, str]] = []

    # ------------------------------------------------------------------ lifecycle

    def _check_can_run(self) -> None:
        if not Path(DOVECOT).exists():
            raise DovecotUnavailable(INSTALL_HINT.format(path=DOVECOT))
        if not self._root_mode:
            raise DovecotUnavailable(
                "The Dovecot test bed must run as root: Dovecot's master process switches to the "
                "'dovecot' user for authentication and to uid 5000 for mail. Run the tests as root "
                "(CI does), for example with 'sudo make test'."
            )

    def _write_tls(self) -> tuple[Path, Path]:
        ca = trustme.CA()
        cert = ca.issue_cert("localhost", "127.0.0.1")
        ca.cert_pem.write_to_path(str(self.ca_file))
        cert_path = self.root / "server.pem"
        key_path = self.root / "server.key"
        cert.cert_chain_pems[0].write_to_path(str(cert_path))
        for extra in cert.cert_chain_pems[1:]:
            extra.write_to_path(str(cert_path), append=True)
        cert.private_key_pem.write_to_path(str(key_path))
        os.chmod(key_path, 0o600)
        return cert_path, key_path

    def _write_config(self, cert: Path, key: Path) -> None:
        dh = Path("/usr/share/dovecot/dh.pem")
        dh_line = f"ssl_dh = <{dh}" if dh.exists() else ""
        self.config_path.write_text(
            f"""# throwaway test instance written by tests/dovecot.py
instance_name = {self.instance}
base_dir = {self.root}/run
state_dir = {self.root}/state
log_path = {self.log_path}
info_log_path = {self.log_path}
protocols = pop3
listen = 127.0.0.1
ssl = yes
ssl_cert = <{cert}
ssl_key = <{key}
{dh_line}
disable_plaintext_auth = no
auth_mechanisms = plain login apop
auth_failure_delay = 0
auth_cache_size = 0
mail_location = maildir:~/Maildir
pop3_uidl_format = {self.uidl_format}
first_valid_uid = {MAIL_UID}
passdb {{
  driver = passwd-file
  args = scheme=PLAIN username_format=%u {self.passwd}
}}
userdb {{
  driver = passwd-file
  args = username_format=%u {self.passwd}
  default_fields = uid={MAIL_UID} gid={MAIL_GID} home={self.root}/home/%u
}}
service pop3-login {{
  inet_listener pop3 {{
    address = 127.0.0.1
    port = {self.port}
  }}
  inet_listener pop3s {{
    address = 127.0.0.1
    port = {self.tls_port}
    ssl = yes
  }}
}}
protocol pop3 {{
  mail_max_userip_connections = 10
}}
"""
        )

    def start(self, timeout: float = 20.0) -> Dovecot:
        """Write the config and start Dovecot; wait until both ports accept connections."""
        self._check_can_run()
        self.root.chmod(0o755)
        for sub in ("run", "state", "home"):
            (self.root / sub).mkdir(exist_ok=True)
        self.passwd.touch()
        self.passwd.chmod(0o644)
        self._fill_pool(USER_POOL)
        cert, key = self._write_tls()
        self._write_config(cert, key)
        check = subprocess.run(
            [DOVECOT, "-n", "-c", str(self.config_path)], capture_output=True, check=False
        )
        if check.returncode != 0:
            raise DovecotUnavailable(
                f"Dovecot rejected the test configuration: {check.stderr.decode(errors='replace')}"
            )
        self._process = subprocess.Popen(
            [DOVECOT, "-F", "-c", str(self.config_path)],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
        )
        deadline = time.monotonic() + timeout
        for port in (self.port, self.tls_port):
            while True:
                if self._process.poll() is not None:
                    err = (
                        self._process.stderr.read().decode(errors="replace")
                        if self._process.stderr
                        else ""
                    )
                    raise DovecotUnavailable(f"Dovecot exited at start: {err}\n{self.log_tail()}")
                try:
                    with socket.create_connection((self.host, port), timeout=1):
                        break
                except OSError:
                    if time.monotonic() > deadline:
                        self.stop()
                        raise DovecotUnavailable(
                            f"Dovecot did not listen on {self.host}:{port} within {timeout} s.\n"
                            f"{self.log_tail()}"
                        ) from None
                    time.sleep(0.05)
        return self

    def stop(self) -> None:
        """Stop Dovecot and remove its directory."""
        proc, self._process = self._process, None
        if proc is not None and proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
        if proc is not None and proc.stderr is not None:
            proc.stderr.close()
        if self._own_root:
            shutil.rmtree(self.root, ignore_errors=True)

    def __enter__(self) -> Dovecot:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def log_tail(self, lines: int = 30) -> str:
        """The end of Dovecot's log, for failure messages."""
        try:
            text = self.log_path.read_text(errors="replace")
        except OSError:
            return "(no Dovecot log)"
        return "\n".join(text.splitlines()[-lines:])

    # ------------------------------------------------------------------ users

    def _add_passwd_lines(self, entries: list[tuple[str, str]]) -> None:
        for _, password in entries:
            if ":" in password or "\n" in password:
                raise ValueError("test passwords may not contain ':' or newlines")
        with self.passwd.open("a") as f:
            f.writelines(f"{name}:{{PLAIN}}{password}::::::\n" for name, password in entries)
        # Dovecot re-reads the passwd file when its mtime changes, but looks at most once a
        # second: give each change a distinct mtime and let a second pass before it is used.
        self._passwd_stamp = max(self._passwd_stamp + 1, int(time.time()))
        os.utime(self.passwd, (self._passwd_stamp, self._passwd_stamp))

    def _fill_pool(self, count: int) -> None:
        entries = [(f"user{next(_sequence)}", secrets.token_urlsafe(12)) for _ in range(count)]
        self._add_passwd_lines(entries)
        self._pool.extend(entries)

    def new_user(self, password: str | None = None) -> Pop3User:
        """Create a fresh, empty mailbox and return it.

        Users come from a pool written before Dovecot started, so they work at once; a chosen
        password costs a passwd-file reload (about a second).
        """
        if password is not None:
            name = f"user{next(_sequence)}"
            self._add_passwd_lines([(name, password)])
            time.sleep(1.1)
        else:
            if not self._pool:
                self._fill_pool(USER_POOL)
                time.sleep(1.1)
            name, password = self._pool.pop(0)
        home = self.root / "home" / name
        dirs = [home, home / "Maildir", *[home / "Maildir" / s for s in ("cur", "new", "tmp")]]
        for path in dirs:
            path.mkdir(parents=True, exist_ok=True)
            os.chown(path, MAIL_UID, MAIL_GID)
        user = Pop3User(name=name, password=password, home=home)
        self._users[name] = user
        return user

    def users(self) -> Iterator[Pop3User]:
        return iter(self._users.values())
