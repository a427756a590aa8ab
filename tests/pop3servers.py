"""Throwaway GNU mailutils and Courier POP3 servers for the tests (see ../shared/TESTBED.md).

Their Debian packages conflict with ``dovecot-pop3d`` (all provide ``pop3-server``), so the
daemons are not installed: ``make test-deps`` unpacks them with ``apt-get download`` and
``dpkg -x`` into :data:`SERVERS_DIR` and installs only their libraries (and Courier's
authentication daemon, which does not conflict). Each server runs on free loopback ports with
its own config, a TLS certificate from a ``trustme`` CA, and Maildirs under a temp directory:

* **GNU mailutils pop3d**: one config file; users in a ``virtdomain`` passwd file (logins are
  ``name@example.test``); APOP from a ``popauth`` database; a plain port with STLS and an
  implicit-TLS port.
* **Courier**: ``authdaemond`` with a ``userdb``, then ``couriertcpd`` running the unpacked
  ``courierpop3login``/``courierpop3d``. Courier's auth library has its paths compiled in
  (``/etc/courier``, ``/run/courier``), so the whole server runs in a private mount namespace
  (``unshare -m``) in which the temp directory is bind-mounted over them: nothing on the
  machine is changed, and two test runs do not share users.

Both servers serve a Maildir file stored with CRLF line ends wrongly (mailutils as 2 bytes,
Courier with doubled CRs): messages are stored with LF line ends, as a local delivery agent
writes them.
"""

from __future__ import annotations

import contextlib
import itertools
import os
import secrets
import shutil
import signal
import socket
import subprocess
import tempfile
import time
import warnings
from pathlib import Path

import trustme

from tests.dovecot import MAIL_GID, MAIL_UID, Pop3User, free_port

SERVERS_DIR = Path(os.environ.get("POPBRIDGE_SERVERS_DIR", "/var/cache/popbridge/servers"))
"""Where ``make test-deps`` unpacks the POP3 servers that cannot be installed beside Dovecot."""

HINT = (
    "Run 'make test-deps' as root (it unpacks the Debian packages courier-pop, mailutils-pop3d "
    "and mailutils into {dir} and installs their libraries); see ../shared/TESTBED.md."
)

_sequence = itertools.count(1)


class ServerUnavailable(RuntimeError):
    """A test server cannot be started here; the message says why and what to do."""


def _need(path: Path | str) -> Path:
    path = Path(path)
    if not path.exists():
        raise ServerUnavailable(f"{path} is missing. " + HINT.format(dir=SERVERS_DIR))
    return path


def _wait_listening(ports: list[int], proc: subprocess.Popen[bytes], log: Path, within: float):
    deadline = time.monotonic() + within
    for port in ports:
        while True:
            if proc.poll() is not None:
                raise ServerUnavailable(f"the server exited at start:\n{_tail(log)}")
            try:
                with socket.create_connection(("127.0.0.1", port), timeout=1):
                    break
            except OSError:
                if time.monotonic() > deadline:
                    raise ServerUnavailable(
                        f"the server did not listen on 127.0.0.1:{port} within {within} s\n"
                        f"{_tail(log)}"
                    ) from None
                time.sleep(0.05)


def _tail(path: Path, lines: int = 30) -> str:
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return f"(no log at {path})"


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


def _crypt(password: str) -> str:
    """A crypt(3) SHA-512 hash, as mailutils' virtdomain and Courier's userdb compare it."""
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", DeprecationWarning)
            import crypt  # deprecated since 3.11, gone in 3.13: then openssl makes the hash
    except ImportError:
        result = subprocess.run(
            ["openssl", "passwd", "-6", "-stdin"],
            input=password.encode(),
            capture_output=True,
            check=True,
        )
        return result.stdout.decode().strip()
    return crypt.crypt(password, crypt.mksalt(crypt.METHOD_SHA512))


class ServerBed:
    """What the two servers share: a root directory, ports, a CA, a process group."""

    name = "server"
    host = "127.0.0.1"
    methods: tuple[str, ...] = ()
    """The ``auth`` values the server offers."""
    added_headers: tuple[bytes, ...] = ()
    """Header fields the server writes into a message it serves (the rest stays byte-exact)."""

    def __init__(self) -> None:
        self.root = Path(tempfile.mkdtemp(prefix=f"popbridge-{self.name}-", dir="/tmp"))
        self.root.chmod(0o755)
        self.port = free_port()
        self.tls_port = free_port()
        self.ca_file = self.root / "ca.pem"
        self.log_path = self.root / "server.log"
        self._process: subprocess.Popen[bytes] | None = None

    def _check_root(self) -> None:
        if os.geteuid() != 0:
            raise ServerUnavailable(f"the {self.name} test server must run as root (CI does)")

    def _ca(self) -> trustme.LeafCert:
        ca = trustme.CA()
        ca.cert_pem.write_to_path(str(self.ca_file))
        return ca.issue_cert("localhost", "127.0.0.1")

    def _home(self, name: str) -> Path:
        home = self.root / "home" / name
        for path in (
            home,
            home / "Maildir",
            *[home / "Maildir" / s for s in ("cur", "new", "tmp")],
        ):
            path.mkdir(parents=True, exist_ok=True)
            os.chown(path, MAIL_UID, MAIL_GID)
        return home

    def _spawn(self, argv: list[str], within: float = 20.0) -> None:
        log = self.log_path.open("ab")
        try:
            self._process = subprocess.Popen(
                argv, stdout=log, stderr=subprocess.STDOUT, start_new_session=True
            )
        finally:
            log.close()
        try:
            _wait_listening([self.port, self.tls_port], self._process, self.log_path, within)
        except ServerUnavailable:
            self.stop()
            raise

    def stop(self) -> None:
        """Stop the server (its whole process group) and remove its directory."""
        proc, self._process = self._process, None
        if proc is not None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGTERM)
            try:
                proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(proc.pid, signal.SIGKILL)
                proc.wait()
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGKILL)  # children that outlived the leader
        shutil.rmtree(self.root, ignore_errors=True)

    def log_tail(self) -> str:
        return _tail(self.log_path)

    def __enter__(self) -> ServerBed:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def start(self) -> ServerBed:
        raise NotImplementedError

    def new_user(self) -> Pop3User:
        raise NotImplementedError


# ---------------------------------------------------------------------- GNU mailutils


class Mailutils(ServerBed):
    """GNU mailutils pop3d 3.15: USER and APOP (no SASL), STLS and implicit TLS."""

    name = "mailutils"
    methods = ("user", "apop")
    added_headers = (b"X-UIDL",)  # written into the message once UIDL was asked
    domain = "example.test"

    def __init__(self) -> None:
        super().__init__()
        self.pop3d = SERVERS_DIR / "mailutils/usr/sbin/pop3d"
        self.popauth = SERVERS_DIR / "mailutils/usr/bin/popauth"
        self.passwd = self.root / "pw" / self.domain
        self.apop_text = self.root / "apop.txt"
        self.apop_db = self.root / "apop.db"
        self.config_path = self.root / "pop3d.conf"

    def start(self) -> Mailutils:
        """Write the config and the user databases, start pop3d, wait for both ports."""
        self._check_root()
        _need(self.pop3d)
        _need(self.popauth)
        leaf = self._ca()
        cert, key = self.root / "cert.pem", self.root / "key.pem"
        leaf.cert_chain_pems[0].write_to_path(str(cert))
        leaf.private_key_pem.write_to_path(str(key))
        key.chmod(0o600)
        (self.root / "pw").mkdir()
        self.passwd.touch()
        locks = self.root / "locks"
        locks.mkdir()
        locks.chmod(0o1777)
        self.apop_text.write_text("")
        self._popauth()
        self.config_path.write_text(
            f"""# throwaway test instance written by tests/pop3servers.py
mode daemon;
foreground yes;
pidfile {self.root}/pop3d.pid;
auth {{ authorization virtdomain; authentication generic; }};
virtdomain {{ passwd-dir {self.root}/pw; }};
mailbox {{ mailbox-type maildir; }};
mandatory-locking {{ enable yes; lock-directory {locks}; }};
logging {{ syslog no; }};
apop-database-file {self.apop_db};
apop-database-safety none;
tls {{ ssl-certificate-file {cert}; ssl-key-file {key}; }};
server {self.host}:{self.port} {{ tls-mode stls; }};
server {self.host}:{self.tls_port} {{ tls-mode connection; }};
"""
        )
        self._spawn([str(self.pop3d), f"--config-file={self.config_path}"])
        return self

    def _popauth(self) -> None:
        result = subprocess.run(
            [str(self.popauth), "-c", "-f", str(self.apop_text), "-o", str(self.apop_db)],
            capture_output=True,
            check=False,
        )
        if result.returncode != 0:
            raise ServerUnavailable(f"popauth failed: {result.stderr.decode(errors='replace')}")

    def new_user(self) -> Pop3User:
        """A fresh, empty mailbox; the login name is ``userN@example.test``."""
        local = f"mu{next(_sequence)}x{secrets.token_hex(2)}"
        password = secrets.token_urlsafe(12)
        home = self._home(local)
        # mailutils opens ~/INBOX; the Maildir the tests deliver into is that INBOX.
        (home / "INBOX").symlink_to(home / "Maildir")
        with self.passwd.open("a") as f:
            f.write(f"{local}:{_crypt(password)}:{MAIL_UID}:{MAIL_GID}::{home}:/bin/sh\n")
        login = f"{local}@{self.domain}"
        with self.apop_text.open("a") as f:
            f.write(f"{login} {password}\n")
        self._popauth()
        return Pop3User(name=login, password=password, home=home)


# ---------------------------------------------------------------------- Courier


class Courier(ServerBed):
    """Courier POP3 1.0.16: USER and SASL PLAIN/LOGIN, STLS and implicit TLS, UTF8,
    LOGIN-DELAY 10 announced (not enforced)."""

    name = "courier"
    methods = ("user", "plain", "login")
    bin_dir = Path("courier/usr/lib/courier/courier")

    def __init__(self) -> None:
        super().__init__()
        self.etc = self.root / "etc"
        self.run = self.root / "run"
        self.login = SERVERS_DIR / self.bin_dir / "courierpop3login"
        self.pop3d = SERVERS_DIR / self.bin_dir / "courierpop3d"
        self._users: list[tuple[str, str, Path]] = []

    def start(self) -> Courier:
        self._check_root()
        for path in (
            self.login,
            self.pop3d,
            "/usr/sbin/couriertcpd",
            "/usr/bin/couriertls",
            "/usr/sbin/makeuserdb",
            "/usr/lib/courier/courier-authlib/authdaemond",
        ):
            _need(path)
        if shutil.which("unshare") is None or shutil.which("nsenter") is None:
            raise ServerUnavailable("unshare and nsenter (util-linux) are needed for Courier")
        self.etc.mkdir()
        (self.run / "authdaemon").mkdir(parents=True)
        leaf = self._ca()
        pem = self.etc / "pop3d.pem"
        leaf.private_key_pem.write_to_path(str(pem))
        leaf.cert_chain_pems[0].write_to_path(str(pem), append=True)
        shutil.chown(pem, "courier")
        pem.chmod(0o600)
        dh = Path("/etc/courier/dhparams.pem")
        if dh.exists():
            shutil.copy(dh, self.etc / "dhparams.pem")
        (self.etc / "authdaemonrc").write_text(
            'authmodulelist="authuserdb"\ndaemons=3\nauthdaemonvar=/run/courier/authdaemon\n'
            'DEBUG_LOGIN=0\nDEFAULTOPTIONS=""\nLOGGEROPTS=""\n'
        )
        userdb = self.etc / "userdb"
        userdb.touch()
        userdb.chmod(0o600)
        login, pop3d = str(self.login), str(self.pop3d)
        tcpd = (
            "/usr/sbin/couriertcpd -address=127.0.0.1 -nodnslookup -noidentlookup "
            "-maxprocs=60 -maxperip=60"
        )
        script = self.root / "start.sh"
        script.write_text(
            f"""#!/bin/sh
# Runs in a private mount namespace (unshare -m): /etc/courier and /run/courier are ours.
set -e
mkdir -p /etc/courier /run/courier
mount --bind {self.etc} /etc/courier
mount --bind {self.run} /run/courier
/usr/sbin/makeuserdb
chown -R courier:courier /run/courier/authdaemon
/usr/lib/courier/courier-authlib/authdaemond &
echo $! >> {self.root}/pids
export POP3AUTH="PLAIN LOGIN" POP3AUTH_TLS="PLAIN LOGIN" POP3_STARTTLS=YES \\
    POP3_TLS_REQUIRED=0 COURIERTLS=/usr/bin/couriertls TLS_CERTFILE=/etc/courier/pop3d.pem \\
    TLS_DHPARAMS=/etc/courier/dhparams.pem TLS_VERIFYPEER=NONE TLS_PROTOCOL=TLS1_2:TLS1_3 \\
    MAILDIRPATH=Maildir
# authdaemond takes a moment to open its socket
for i in $(seq 100); do [ -S /run/courier/authdaemon/socket ] && break; sleep 0.05; done
# couriertcpd makes itself a process group leader: stop() kills each group by these pids
{tcpd} {self.port} {login} {pop3d} Maildir &
echo $! >> {self.root}/pids
POP3_TLS=1 {tcpd} {self.tls_port} /usr/bin/couriertls -server -tcpd {login} {pop3d} Maildir &
echo $! >> {self.root}/pids
wait
"""
        )
        script.chmod(0o755)
        self._spawn(["unshare", "-m", "--propagation", "private", str(script)])
        return self

    def stop(self) -> None:
        """Stop couriertcpd (each its own process group, with its sessions) and authdaemond,
        then the namespace's shell and the directory."""
        try:
            pids = [int(p) for p in (self.root / "pids").read_text().split()]
        except (OSError, ValueError):
            pids = []
        for sig in (signal.SIGTERM, signal.SIGKILL):
            for pid in pids:
                for kill in (os.killpg, os.kill):
                    with contextlib.suppress(ProcessLookupError, PermissionError):
                        kill(pid, sig)
            deadline = time.monotonic() + 5
            while pids and time.monotonic() < deadline and any(_alive(p) for p in pids):
                time.sleep(0.05)
        super().stop()

    def _makeuserdb(self) -> None:
        assert self._process is not None
        result = subprocess.run(
            ["nsenter", "-t", str(self._process.pid), "-m", "/usr/sbin/makeuserdb"],
            capture_output=True,
            check=False,
        )
        if result.returncode != 0:
            raise ServerUnavailable(f"makeuserdb failed: {result.stderr.decode(errors='replace')}")

    def new_user(self) -> Pop3User:
        """A fresh, empty mailbox (userdb entry, then ``makeuserdb`` in the namespace)."""
        name = f"cu{next(_sequence)}x{secrets.token_hex(2)}"
        password = secrets.token_urlsafe(12)
        home = self._home(name)
        fields = (
            f"uid={MAIL_UID}|gid={MAIL_GID}|home={home}|mail={home / 'Maildir'}"
            f"|systempw={_crypt(password)}"
        )
        with (self.etc / "userdb").open("a") as f:
            f.write(f"{name}\t{fields}\n")
        self._makeuserdb()
        return Pop3User(name=name, password=password, home=home)


SERVERS: dict[str, type[ServerBed]] = {"mailutils": Mailutils, "courier": Courier}
