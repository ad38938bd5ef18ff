"""The deployment's shell scripts parse, and shellcheck finds nothing in them."""
from __future__ import annotations

import shutil
import subprocess

import pytest
import yaml

from app.settings import PROJECT_ROOT

BASH_SCRIPTS = ["scripts/backup.sh", "scripts/restore.sh", "scripts/backup_lib.sh", "scripts/test_production.sh",
                "scripts/postgres_role.sh"]
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


def test_the_compose_files_inline_scripts_parse_and_shellcheck_finds_nothing(tmp_path):
    raw = yaml.safe_load((PROJECT_ROOT / "docker-compose.prod.yml").read_text())
    inline = {name: service["command"][0] for name, service in raw["services"].items()
              if service.get("entrypoint") == ["/bin/sh", "-euc"]}
    assert {"redis", "minio-init"} <= set(inline)
    for name, script in inline.items():
        path = tmp_path / f"{name}.sh"
        # $$ is compose's escape for a $ the container's shell expands.
        path.write_text("#!/bin/sh\nset -eu\n" + script.replace("$$", "$"))
        assert subprocess.run(["sh", "-n", str(path)], timeout=30).returncode == 0, name
        result = subprocess.run([shutil.which("shellcheck"), "--shell", "sh", str(path)], capture_output=True,
                                text=True, timeout=60)
        assert result.returncode == 0, f"{name}: {result.stdout}"
