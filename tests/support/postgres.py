"""A private PostgreSQL server for one test, which the test may stop and start again (the shared one never is)."""
from __future__ import annotations

import os
import pwd
import shutil
import subprocess
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import psycopg2

from tests.support.ports import free_port
from tests.support.waiting import wait_until


def _binaries() -> Path:
    """The folder of the newest installed PostgreSQL's server programs."""
    found = sorted(Path("/usr/lib/postgresql").glob("*/bin/initdb"))
    assert found, "PostgreSQL's server programs are missing (Debian: apt-get install postgresql)"
    return found[-1].parent


def _as_server_user(command: list[str]) -> list[str]:
    """command run as the postgres user when this is root (the server refuses to run as root)."""
    return ["runuser", "-u", "postgres", "--", *command] if os.geteuid() == 0 else command


@dataclass
class PrivateServer:
    """A PostgreSQL server on a port of its own, data in a folder of its own."""

    folder: Path
    port: int

    @property
    def url(self) -> str:
        """The URL of its postgres database."""
        return f"postgresql://postgres@127.0.0.1:{self.port}/postgres"

    def start(self) -> None:
        """Start the server and wait until it accepts connections."""
        options = f"-p {self.port} -k {self.folder} -c listen_addresses=127.0.0.1 -c fsync=off"
        subprocess.run(_as_server_user([str(_binaries() / "pg_ctl"), "-D", str(self.folder / "data"), "-o", options,
                                        "-l", str(self.folder / "server.log"), "-w", "start"]),
                       check=True, capture_output=True)
        wait_until(self.answers, 30, "the private PostgreSQL to accept connections")

    def stop(self, mode: str = "immediate") -> None:
        """Stop the server (immediate: as a crash would, no clean shutdown)."""
        subprocess.run(_as_server_user([str(_binaries() / "pg_ctl"), "-D", str(self.folder / "data"), "-m", mode,
                                        "-w", "stop"]), check=False, capture_output=True)

    def answers(self) -> bool:
        """Whether the server accepts a connection now."""
        try:
            psycopg2.connect(self.url, connect_timeout=2).close()
        except psycopg2.OperationalError:
            return False
        return True


@contextmanager
def private_postgres() -> Iterator[PrivateServer]:
    """A fresh server, started; stopped and removed afterwards."""
    folder = Path(tempfile.mkdtemp(prefix="studio-pg-", dir="/tmp"))
    if os.geteuid() == 0:
        account = pwd.getpwnam("postgres")
        os.chown(folder, account.pw_uid, account.pw_gid)
    server = PrivateServer(folder, free_port())
    try:
        subprocess.run(_as_server_user([str(_binaries() / "initdb"), "-D", str(folder / "data"), "-A", "trust",
                                        "-U", "postgres"]), check=True, capture_output=True)
        server.start()
        yield server
    finally:
        server.stop()
        shutil.rmtree(folder, ignore_errors=True)
