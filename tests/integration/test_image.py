"""The container image, built from the real Dockerfile and run, where a Docker engine is.

No registry is reachable here, so the base image is made locally: debootstrap writes a
minimal Debian 12 with python3 and python3-venv (Debian's packages are reachable), ``docker
import`` turns it into ``popbridge-test-base:bookworm`` (kept for later runs), and the
Dockerfile is built ``--build-arg PYTHON_IMAGE=`` that base. pip inside the build reaches no
index either: the dependencies, at the versions of constraints.txt, are downloaded on the
host and served to the build over loopback (``WHEELHOUSE_URL``), so the image is built from
constraints.txt exactly as a release would be.

Where no engine runs these tests are skipped and say why. ``make test-image`` installs
docker.io and debootstrap, starts dockerd if none runs (POPBRIDGE_START_DOCKERD=1), and runs
only these tests: about 4 minutes the first time (1.5 for the base, 1 for the wheels, 1.5
for the build), about 3 after that.
"""

from __future__ import annotations

import asyncio
import functools
import http.server
import os
import shutil
import signal
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import aiohttp
import pytest

from bridge import __version__
from tests.dovecot import Dovecot, Pop3User, free_port
from tests.integration.kit import config_dict, make_message, write_config
from tests.integration.test_deploy import build_context_sources
from tests.receiver import WebhookReceiver

# The first test also builds the base (~1.5 min) and the image (~2.5 min).
pytestmark = [pytest.mark.docker, pytest.mark.dovecot, pytest.mark.timeout(900)]

ROOT = Path(__file__).resolve().parents[2]
BASE = "popbridge-test-base:bookworm"
MIRROR = "http://deb.debian.org/debian"
UID = 10001


def _docker(*args: str, timeout: float = 120, check: bool = True) -> str:
    result = subprocess.run(
        ["docker", *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
        env={**os.environ, "DOCKER_BUILDKIT": "0"},  # BuildKit would pull its frontend
    )
    if check and result.returncode != 0:
        raise AssertionError(f"docker {' '.join(args)}: {result.stdout}{result.stderr}")
    return result.stdout


def _engine_ready() -> str | None:
    """None when ``docker info`` works, else why not."""
    try:
        result = subprocess.run(
            ["docker", "info", "--format", "{{.ServerVersion}}"],
            capture_output=True,
            text=True,
            timeout=20,
            check=False,
        )
    except (OSError, subprocess.TimeoutExpired) as exc:
        return str(exc)
    return None if result.returncode == 0 else (result.stderr.strip() or "docker info failed")


@pytest.fixture(scope="module")
def engine(tmp_path_factory: pytest.TempPathFactory) -> Iterator[None]:
    """A Docker engine: the running one, or (POPBRIDGE_START_DOCKERD=1, root) one we start."""
    if shutil.which("docker") is None:
        pytest.skip("no Docker engine: the docker command is not installed (make test-image)")
    problem = _engine_ready()
    started: subprocess.Popen[bytes] | None = None
    if problem is not None:
        dockerd = shutil.which("dockerd")
        wanted = os.environ.get("POPBRIDGE_START_DOCKERD") == "1"
        if not (wanted and dockerd and os.geteuid() == 0):
            pytest.skip(f"no Docker engine running ({problem}); `make test-image` starts one")
        log = tmp_path_factory.mktemp("dockerd") / "dockerd.log"
        with log.open("wb") as out:
            started = subprocess.Popen([dockerd], stdout=out, stderr=subprocess.STDOUT)
        deadline = time.monotonic() + 60
        while (problem := _engine_ready()) is not None and time.monotonic() < deadline:
            if started.poll() is not None:
                break
            time.sleep(0.5)
        if problem is not None:
            started.terminate()
            started.wait(30)
            tail = log.read_text(errors="replace").splitlines()[-5:]
            pytest.skip(f"dockerd did not start here ({problem}): " + " | ".join(tail))
    try:
        yield
    finally:
        if started is not None:
            started.send_signal(signal.SIGTERM)
            started.wait(60)


@pytest.fixture(scope="module")
def base_image(engine: None, tmp_path_factory: pytest.TempPathFactory) -> str:
    """A minimal Debian 12 with python3 and python3-venv, made once with debootstrap."""
    if _docker("images", "-q", BASE).strip():
        return BASE
    debootstrap = shutil.which("debootstrap")
    if debootstrap is None:
        pytest.skip(f"{BASE} is missing and debootstrap is not installed (make test-image)")
    rootfs = tmp_path_factory.mktemp("rootfs")
    subprocess.run(
        [debootstrap, "--variant=minbase", "--include=python3,python3-venv",
         "bookworm", str(rootfs), MIRROR],
        check=True, capture_output=True, timeout=900,
    )  # fmt: skip
    with subprocess.Popen(["tar", "-C", str(rootfs), "-c", "."], stdout=subprocess.PIPE) as tar:
        subprocess.run(
            ["docker", "import", "-", BASE], stdin=tar.stdout, check=True, capture_output=True
        )
    assert tar.returncode == 0
    shutil.rmtree(rootfs, ignore_errors=True)
    return BASE


class _QuietHandler(http.server.SimpleHTTPRequestHandler):
    def log_message(self, format: str, *args: object) -> None:
        """Serve the wheelhouse without a log line per file."""


@pytest.fixture(scope="module")
def image(base_image: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """The Dockerfile built FROM the local base, dependencies from constraints.txt."""
    work = tmp_path_factory.mktemp("image-build")
    wheels = work / "wheelhouse"
    subprocess.run(
        [sys.executable, "-m", "pip", "download", "-q", "-d", str(wheels),
         "setuptools", "wheel", str(ROOT)],
        check=True, capture_output=True, timeout=600,
        env={**os.environ, "PIP_CONSTRAINT": str(ROOT / "constraints.txt")},
    )  # fmt: skip
    context = work / "context"
    context.mkdir()
    for name in (*build_context_sources(), "Dockerfile", ".dockerignore"):
        source = ROOT / name
        if source.is_dir():
            shutil.copytree(source, context / name, ignore=shutil.ignore_patterns("__pycache__"))
        else:
            shutil.copy2(source, context / name)
    handler = functools.partial(_QuietHandler, directory=str(wheels))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    tag = f"popbridge-test:{uuid.uuid4().hex[:12]}"
    try:
        _docker(
            "build", "--network", "host", "-q", "-t", tag,
            "--build-arg", f"PYTHON_IMAGE={base_image}",
            "--build-arg", f"WHEELHOUSE_URL=http://127.0.0.1:{server.server_port}/",
            str(context),
            timeout=900,
        )  # fmt: skip
    finally:
        server.shutdown()
        server.server_close()
    try:
        yield tag
    finally:
        _docker("rmi", "-f", tag, check=False)


def test_image_is_non_root_and_reports_its_version(image: str) -> None:
    """The built image runs popbridge as uid 10001 and is this version."""
    assert _docker("run", "--rm", image, "--version").strip() == f"popbridge {__version__}"
    assert _docker("run", "--rm", "--entrypoint", "id", image, "-u").strip() == str(UID)


def _mounts(tmp_path: Path, config: Path, dovecot: Dovecot) -> list[str]:
    data = tmp_path / "data"
    data.mkdir(mode=0o700)
    os.chown(data, UID, UID)
    return [
        "--network", "host", "--read-only", "--tmpfs", "/tmp",  # noqa: S108 - in the container
        "-v", f"{data}:/var/lib/popbridge",
        "-v", f"{config}:/etc/popbridge/config.yaml:ro",
        "-v", f"{dovecot.ca_file}:/etc/popbridge/ca.pem:ro",
    ]  # fmt: skip


def _config(tmp_path: Path, dovecot: Dovecot, user: Pop3User, url: str) -> Path:
    config = config_dict(dovecot, user, url, Path("/var/lib/popbridge"))
    config["mailboxes"][0]["ca_file"] = "/etc/popbridge/ca.pem"
    path = write_config(tmp_path / "config.yaml", config)
    path.chmod(0o644)
    return path


async def _run(*args: str, within: float = 120) -> tuple[int, str]:
    proc = await asyncio.create_subprocess_exec(
        "docker", *args, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT
    )
    out, _ = await asyncio.wait_for(proc.communicate(), within)
    assert proc.returncode is not None
    return proc.returncode, out.decode(errors="replace")


async def test_image_drains_dovecot_read_only_with_once(
    image: str,
    dovecot: Dovecot,
    pop3_user: Pop3User,
    receiver: WebhookReceiver,
    tmp_path: Path,
) -> None:
    """``popbridge once`` in the image, read-only root, config and data mounted: every message
    is posted, deleted, and the exit code is 0."""
    pop3_user.deliver_many(make_message(i) for i in range(5))
    config = _config(tmp_path, dovecot, pop3_user, receiver.url)
    port = free_port()
    code, out = await _run(
        "run", "--rm", *_mounts(tmp_path, config, dovecot),
        "-e", f"POPBRIDGE_HTTP__LISTEN=127.0.0.1:{port}",
        image, "once", "-c", "/etc/popbridge/config.yaml",
    )  # fmt: skip
    assert code == 0, out
    assert pop3_user.count() == 0
    assert len(receiver.distinct_webhook_ids()) == 5
    assert pop3_user.password not in out
    assert (tmp_path / "data" / "ledger.sqlite3").exists()


async def test_image_serves_health_and_stops_cleanly_on_sigterm(
    image: str,
    dovecot: Dovecot,
    pop3_user: Pop3User,
    receiver: WebhookReceiver,
    tmp_path: Path,
) -> None:
    """The default command runs the service: /healthz answers, Docker's HEALTHCHECK reports
    healthy, and ``docker stop`` (SIGTERM) ends it with exit code 0."""
    pop3_user.deliver_many([make_message(1)])
    config = _config(tmp_path, dovecot, pop3_user, receiver.url)
    port = free_port()
    name = f"popbridge-test-{uuid.uuid4().hex[:8]}"
    code, out = await _run(
        "run", "-d", "--name", name, *_mounts(tmp_path, config, dovecot),
        "-e", f"POPBRIDGE_HTTP__LISTEN=127.0.0.1:{port}",
        "--health-interval", "1s", "--health-start-period", "1s",
        image,
    )  # fmt: skip
    assert code == 0, out
    try:
        status = ""
        for _ in range(60):
            _, status = await _run("inspect", "-f", "{{.State.Health.Status}}", name)
            if status.strip() == "healthy":
                break
            await asyncio.sleep(0.5)
        assert status.strip() == "healthy"
        url = f"http://127.0.0.1:{port}/healthz"
        async with aiohttp.ClientSession() as session, session.get(url) as response:
            assert response.status == 200
        await receiver.wait_for(1, within=30)
        code, out = await _run("stop", "-t", "40", name)
        assert code == 0, out
        _, exit_code = await _run("inspect", "-f", "{{.State.ExitCode}}", name)
        assert exit_code.strip() == "0"
    finally:
        await _run("rm", "-f", name)
    assert pop3_user.count() == 0
