"""The data_dir lock: one process per data_dir, released by the kernel, with a clear error."""

from __future__ import annotations

import os
import stat
import subprocess
import sys
from pathlib import Path

import pytest

from bridge.errors import DataDirError, DataDirLockedError
from bridge.lock import LOCK_FILENAME, DataDirLock, check_data_dir


def test_a_second_holder_is_refused_with_the_pid(tmp_path: Path) -> None:
    """While one lock is held, another on the same data_dir fails at once, naming the pid."""
    with DataDirLock(tmp_path / "data"), pytest.raises(DataDirLockedError) as caught:
        DataDirLock(tmp_path / "data").acquire()
    assert caught.value.pid == os.getpid()
    assert str(tmp_path / "data") in str(caught.value)
    assert f"pid {os.getpid()}" in str(caught.value)
    # Released on exit: a new holder gets it.
    with DataDirLock(tmp_path / "data") as again:
        assert again.held


def test_the_kernel_releases_the_lock_of_a_dead_process(tmp_path: Path) -> None:
    """A process killed while holding the lock does not block the next one."""
    data = tmp_path / "data"
    child = subprocess.Popen(
        [
            sys.executable,
            "-c",
            "import sys, time; from bridge.lock import DataDirLock; "
            f"DataDirLock({str(data)!r}).acquire(); print('held', flush=True); time.sleep(60)",
        ],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert child.stdout is not None
        assert child.stdout.readline().strip() == "held"
        with pytest.raises(DataDirLockedError) as caught:
            DataDirLock(data).acquire()
        assert caught.value.pid == child.pid
    finally:
        child.kill()
        child.wait()
        if child.stdout is not None:
            child.stdout.close()
    with DataDirLock(data) as lock:
        assert lock.held


def test_data_dir_and_lock_file_are_private(tmp_path: Path) -> None:
    """data_dir is created 0700 and the lock file 0600."""
    data = tmp_path / "new" / "data"
    with DataDirLock(data):
        assert stat.S_IMODE(data.stat().st_mode) == 0o700
        assert stat.S_IMODE((data / LOCK_FILENAME).stat().st_mode) == 0o600


def test_check_data_dir_creates_nothing(tmp_path: Path) -> None:
    """A missing data_dir under a writable parent is fine, and stays missing."""
    assert check_data_dir(tmp_path / "a" / "b") is None
    assert not (tmp_path / "a").exists()


def test_read_only_file_system_is_one_clear_line(tmp_path: Path) -> None:
    """data_dir on a read-only mount (as root: a read-only tmpfs) is refused before any write."""
    if os.geteuid() != 0:
        pytest.skip("mounting a read-only file system needs root")
    mount = tmp_path / "ro"
    mount.mkdir()
    subprocess.run(["mount", "-t", "tmpfs", "-o", "ro,size=1m", "tmpfs", str(mount)], check=True)
    try:
        problem = str(check_data_dir(mount / "data"))
        assert "read-only file system" in problem
        with pytest.raises(DataDirError, match="read-only"):
            DataDirLock(mount / "data").acquire()
    finally:
        subprocess.run(["umount", str(mount)], check=True)


def test_data_dir_that_is_a_file_is_refused(tmp_path: Path) -> None:
    """A data_dir that points at a file is an error that says so."""
    target = tmp_path / "file"
    target.write_text("x")
    with pytest.raises(DataDirError, match="not a directory"):
        DataDirLock(target).acquire()
