"""The deployment's shell scripts parse, and shellcheck finds nothing in them."""
from __future__ import annotations

import shutil
import subprocess

import pytest

from app.settings import PROJECT_ROOT

BASH_SCRIPTS = ["scripts/backup.sh", "scripts/restore.sh", "scripts/backup_lib.sh", "scripts/test_production.sh"]
# Runs in the nginx image's busybox sh: POSIX only.
POSIX_SCRIPTS = ["nginx/studio-site.sh"]


@pytest.mark.parametrize("path", BASH_SCRIPTS + POSIX_SCRIPTS)
def test_script_parses_and_shellcheck_finds_nothing(path):
    shell = "sh" if path in POSIX_SCRIPTS else "bash"
    assert subprocess.run([shell, "-n", path], cwd=PROJECT_ROOT, timeout=30).returncode == 0
    shellcheck = shutil.which("shellcheck")
    assert shellcheck, "shellcheck is missing; `make test` installs it (Debian: apt-get install shellcheck)"
    result = subprocess.run([shellcheck, "-x", "--shell", shell, path], cwd=PROJECT_ROOT, capture_output=True,
                            text=True, timeout=60)
    assert result.returncode == 0, result.stdout


def test_scripts_are_executable():
    for path in BASH_SCRIPTS[:2] + BASH_SCRIPTS[3:] + POSIX_SCRIPTS:
        assert (PROJECT_ROOT / path).stat().st_mode & 0o111, path
