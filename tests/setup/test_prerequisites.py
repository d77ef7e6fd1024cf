"""scripts/prerequisites.sh: the first unmet prerequisite stops `make setup` with one line saying what and how to fix.

The unmet prerequisites are simulated from outside the script where the real thing can be arranged (an old python3
first on PATH, a user that is not root and has no sudo, another os-release) and through its documented threshold for
free disk (this machine cannot be made to lack 20 GiB for a test).
"""

import os
import shutil
import subprocess
import tempfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
SCRIPT = ROOT / "scripts" / "prerequisites.sh"


def run(tmp_path: Path, prefix: tuple[str, ...] = (), **env: str) -> subprocess.CompletedProcess:
    environment = {**os.environ, "ARCHIPELAGO_CACHE": str(tmp_path / "cache"), **env}
    return subprocess.run([*prefix, str(SCRIPT)], env=environment, capture_output=True, text=True, timeout=60, check=False)


def assert_one_line_failure(result: subprocess.CompletedProcess, *words: str) -> str:
    assert result.returncode == 1, result
    assert result.stdout == ""
    lines = result.stderr.splitlines()
    assert len(lines) == 1, result.stderr
    line = lines[0]
    assert line.startswith("prerequisite missing: ")
    for word in words:
        assert word in line, line
    return line


def test_this_host_meets_every_prerequisite(tmp_path):
    result = run(tmp_path)
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith("prerequisites met: Debian GNU/Linux 12 (bookworm), Python 3.")
    assert len(result.stdout.splitlines()) == 1


def test_python_older_than_3_11_stops_with_one_line(tmp_path):
    fake = tmp_path / "bin" / "python3"
    fake.parent.mkdir()
    fake.write_text('#!/bin/sh\necho 3.9.2\n')
    fake.chmod(0o755)
    result = run(tmp_path, PATH=f"{fake.parent}:{os.environ['PATH']}")
    assert_one_line_failure(result, "Python >= 3.11", f"{fake} is 3.9.2", "/usr/bin/python3")


def test_too_little_free_disk_stops_with_one_line(tmp_path):
    result = run(tmp_path, ARCHIPELAGO_MIN_FREE_GIB="1000000")
    # The cache does not exist yet: the space is measured on its nearest existing parent.
    assert_one_line_failure(result, "free disk:", f"GiB free at {tmp_path} ", "1000000 GiB needed", "ARCHIPELAGO_CACHE")


def test_another_system_stops_with_one_line(tmp_path):
    os_release = tmp_path / "os-release"
    os_release.write_text('PRETTY_NAME="Debian GNU/Linux 11 (bullseye)"\nID=debian\nVERSION_ID="11"\n')
    result = run(tmp_path, ARCHIPELAGO_OS_RELEASE=str(os_release))
    assert_one_line_failure(result, "Debian 12 (bookworm)", "this is Debian GNU/Linux 11 (bullseye)")


@pytest.mark.skipif(os.geteuid() != 0 or not shutil.which("setpriv"), reason="needs root and setpriv to become another user")
def test_neither_root_nor_sudo_stops_with_one_line():
    # nobody, with a PATH that has no sudo in it, in a directory nobody can reach (pytest's tmp_path is root's only).
    with tempfile.TemporaryDirectory() as tmp:
        bare = Path(tmp)
        bare.chmod(0o755)
        path = "/usr/sbin:/usr/bin:/sbin:/bin"
        for tool in ("bash", "id", "dirname", "df", "awk", "sort", "head", "apt-get", "dpkg-query", "python3"):
            found = shutil.which(tool, path=path)
            assert found, tool
            (bare / tool).symlink_to(found)
        assert not (bare / "sudo").exists()
        result = run(bare, (shutil.which("setpriv"), "--reuid=65534", "--regid=65534", "--clear-groups"), PATH=str(bare))
    assert_one_line_failure(result, "root:", "nobody is not root and cannot sudo", "sudo make setup")


@pytest.mark.skipif(os.geteuid() != 0 or not shutil.which("setpriv"), reason="needs root and setpriv to become another user")
def test_a_cache_the_user_cannot_write_stops_with_one_line():
    # nobody with a sudo that lets it through (`sudo -n true` succeeds), and the default cache, which root owns.
    with tempfile.TemporaryDirectory() as tmp:
        bare = Path(tmp)
        bare.chmod(0o755)
        path = "/usr/sbin:/usr/bin:/sbin:/bin"
        for tool in ("bash", "id", "dirname", "df", "awk", "sort", "head", "apt-get", "dpkg-query", "python3"):
            (bare / tool).symlink_to(shutil.which(tool, path=path))
        (bare / "sudo").write_text("#!/bin/sh\nexit 0\n")
        (bare / "sudo").chmod(0o755)
        cache = Path("/var/cache/archipelago-not-there")
        result = run(bare, (shutil.which("setpriv"), "--reuid=65534", "--regid=65534", "--clear-groups"), PATH=str(bare),
                     ARCHIPELAGO_CACHE=str(cache))
    assert_one_line_failure(result, "a writable cache: /var/cache (for ARCHIPELAGO_CACHE=/var/cache/archipelago-not-there)",
                            "not writable by nobody", "set ARCHIPELAGO_CACHE to a directory you own")
