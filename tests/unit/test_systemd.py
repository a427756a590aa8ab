"""deploy/systemd/popbridge.service: hardened, consistent with the CLI and the config defaults,
and accepted by systemd's own tools (systemd-analyze verify and security)."""

from __future__ import annotations

import re
import shlex
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from bridge.cli import build_parser
from bridge.config import Config
from bridge.exitcodes import ExitCode

UNIT = Path(__file__).resolve().parents[2] / "deploy" / "systemd" / "popbridge.service"
INSTALLED = "/opt/popbridge/bin/popbridge"
NO_ANALYZE = "systemd-analyze is not installed (Debian package systemd): unit not verified"


def directives() -> dict[str, list[str]]:
    """Every ``Key=value`` of the unit (comments skipped); a key may repeat."""
    found: dict[str, list[str]] = {}
    for line in UNIT.read_text().splitlines():
        line = line.strip()
        if line and not line.startswith(("#", ";", "[")):
            key, _, value = line.partition("=")
            found.setdefault(key, []).append(value)
    return found


def one(key: str) -> str:
    (value,) = directives()[key]
    return value


def test_unit_is_hardened() -> None:
    """A dedicated unprivileged user, a read-only system, no privilege gain, one state dir."""
    d = directives()
    assert one("DynamicUser") == "yes" or "User" in d
    assert one("ProtectSystem") == "strict"
    assert one("NoNewPrivileges") == "yes"
    assert one("ProtectHome") == "yes"
    assert one("PrivateTmp") == "yes"
    assert one("CapabilityBoundingSet") == ""
    assert "ReadWritePaths" not in d  # the state directory is the only writable place


def test_state_directory_is_the_default_data_dir() -> None:
    """StateDirectory=popbridge is /var/lib/popbridge, popbridge's default data_dir, so a
    config without data_dir writes its ledger where systemd keeps it."""
    default = Config.model_fields["data_dir"].default
    assert Path("/var/lib") / one("StateDirectory") == default


def test_commands_are_valid_popbridge_command_lines() -> None:
    """ExecStartPre validates and ExecStart runs the same config, as our CLI parses them."""
    pre, start = shlex.split(one("ExecStartPre")), shlex.split(one("ExecStart"))
    assert pre[0] == start[0] == INSTALLED
    pre_args, start_args = build_parser().parse_args(pre[1:]), build_parser().parse_args(start[1:])
    assert (pre_args.command, start_args.command) == ("validate", "run")
    assert pre_args.config == start_args.config


def test_stop_and_restart_fit_the_bridge() -> None:
    """SIGTERM with more time than shutdown_grace (+10 s for the QUITs); a configuration
    error (exit 2) is not restarted in a loop."""
    grace = Config.model_fields["shutdown_grace"].default
    match = re.fullmatch(r"(\d+)s?", one("TimeoutStopSec"))
    assert match
    assert int(match.group(1)) >= grace + 10
    assert one("KillSignal") == "SIGTERM"
    assert str(int(ExitCode.CONFIG_ERROR)) in one("RestartPreventExitStatus").split()


def _local_copy(tmp_path: Path) -> Path:
    """The unit with ExecStart pointing at this checkout's popbridge (verify checks it runs)."""
    here = str(Path(sys.executable).parent / "popbridge")
    unit = tmp_path / "popbridge.service"
    unit.write_text(UNIT.read_text().replace(INSTALLED, here))
    return unit


@pytest.mark.skipif(shutil.which("systemd-analyze") is None, reason=NO_ANALYZE)
def test_systemd_analyze_verify_accepts_the_unit(tmp_path: Path) -> None:
    """systemd itself finds no error or warning in the unit."""
    result = subprocess.run(
        ["systemd-analyze", "verify", str(_local_copy(tmp_path))],
        capture_output=True,
        text=True,
        check=False,
        cwd=tmp_path,
    )
    assert result.returncode == 0, result.stderr
    assert result.stderr.strip() == ""


@pytest.mark.skipif(shutil.which("systemd-analyze") is None, reason=NO_ANALYZE)
def test_systemd_analyze_security_rates_it_ok(tmp_path: Path) -> None:
    """systemd's exposure score is at most 2.0 ("OK"; 10 is an unprotected service)."""
    result = subprocess.run(
        ["systemd-analyze", "security", "--offline=yes", str(_local_copy(tmp_path))],
        capture_output=True,
        text=True,
        check=False,
        cwd=tmp_path,
    )
    match = re.search(r"Overall exposure level for popbridge\.service: (\d+\.\d+)", result.stdout)
    assert match, result.stdout + result.stderr
    assert float(match.group(1)) <= 2.0
