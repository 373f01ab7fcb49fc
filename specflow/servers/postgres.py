"""A throwaway PostgreSQL server on loopback, for tests, benchmarks and local trials.

Uses the PostgreSQL binaries installed on the machine (Debian's ``postgresql`` package:
``/usr/lib/postgresql/<major>/bin``; ``make test`` installs it when missing). The cluster
lives in a fresh temporary directory, listens on 127.0.0.1 only with trust authentication
for one superuser, and is stopped and deleted on exit. PostgreSQL refuses to run as root:
under root the server runs as the ``postgres`` system user the Debian package creates.

A facility runs its own managed PostgreSQL instead (deploy/README.md); the Tiled and MLflow
URIs :class:`PostgresServer` hands out have the same shape as those.
"""

from __future__ import annotations

import contextlib
import os
import pwd
import shutil
import subprocess
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from specflow.servers.ports import free_port

SUPERUSER = "specflow"
SYSTEM_USER = "postgres"  # created by Debian's postgresql-common


class PostgresUnavailable(RuntimeError):
    """No PostgreSQL server binaries on this machine (or no user to run them as root)."""


def find_bindir() -> Path:
    """The directory holding ``initdb``/``pg_ctl``/``postgres`` (newest major first).

    ``$SPECFLOW_PG_BINDIR`` overrides the search.
    """
    override = os.environ.get("SPECFLOW_PG_BINDIR")
    candidates = [Path(override)] if override else []
    candidates += sorted(Path("/usr/lib/postgresql").glob("*/bin"),
                         key=lambda p: int(p.parent.name) if p.parent.name.isdigit() else 0,
                         reverse=True)
    on_path = shutil.which("initdb")
    if on_path:
        candidates.append(Path(on_path).resolve().parent)
    for bindir in candidates:
        if all((bindir / tool).exists() for tool in ("initdb", "pg_ctl", "postgres")):
            return bindir
    raise PostgresUnavailable(
        "no PostgreSQL server binaries found (looked in $SPECFLOW_PG_BINDIR, "
        "/usr/lib/postgresql/*/bin and PATH); install Debian's 'postgresql' package "
        "(make test does this when run as root)")


@dataclass(frozen=True)
class PostgresServer:
    """A running server: ``uri(database)`` gives SQLAlchemy/psycopg2-style URIs."""

    host: str
    port: int
    user: str
    directory: Path
    bindir: Path

    def uri(self, database: str = "postgres", driver: str = "postgresql") -> str:
        """``postgresql://specflow@127.0.0.1:PORT/<database>`` (``driver`` e.g.
        ``postgresql+asyncpg`` for Tiled's catalog)."""
        return f"{driver}://{self.user}@{self.host}:{self.port}/{database}"

    def create_database(self, name: str) -> str:
        """Create database ``name`` (owned by the superuser) and return its URI."""
        if not name.replace("_", "").isalnum():
            raise ValueError(f"database name {name!r}: letters, digits and _ only")
        self._psql("postgres", f'CREATE DATABASE "{name}"')
        return self.uri(name)

    def sql(self, database: str, statement: str) -> str:
        """Run one SQL statement with ``psql`` and return its unaligned output."""
        return self._psql(database, statement)

    def _psql(self, database: str, statement: str) -> str:
        psql = self.bindir / "psql"
        exe = str(psql) if psql.exists() else (shutil.which("psql") or "psql")
        out = subprocess.run(
            [exe, "-h", self.host, "-p", str(self.port), "-U", self.user, "-d", database,
             "-v", "ON_ERROR_STOP=1", "-At", "-c", statement],
            capture_output=True, text=True, check=False)
        if out.returncode != 0:
            raise RuntimeError(f"psql failed: {out.stderr.strip()}")
        return out.stdout



def _as_server_user(cmd: list[str]) -> list[str]:
    """Prefix ``cmd`` so it runs as the ``postgres`` user when we are root."""
    if os.geteuid() != 0:
        return cmd
    try:
        pwd.getpwnam(SYSTEM_USER)
    except KeyError:
        raise PostgresUnavailable(
            f"running as root and there is no '{SYSTEM_USER}' user to run PostgreSQL as "
            "(Debian's postgresql package creates it)") from None
    runuser = shutil.which("runuser") or "/usr/sbin/runuser"
    return [runuser, "-u", SYSTEM_USER, "--", *cmd]


def _run(cmd: list[str], log: Path | None = None) -> None:
    out = subprocess.run(_as_server_user(cmd), capture_output=True, text=True, check=False)
    if out.returncode != 0:
        tail = log.read_text()[-2000:] if log is not None and log.exists() else ""
        raise RuntimeError(f"{Path(cmd[0]).name} failed ({out.returncode}): "
                           f"{out.stderr.strip() or out.stdout.strip()}\n{tail}")


@contextmanager
def postgres_server(timeout: float = 60.0) -> Iterator[PostgresServer]:
    """Start a fresh PostgreSQL cluster on 127.0.0.1 (a free port) for the block.

    Raises :class:`PostgresUnavailable` when the machine has no server binaries.
    """
    bindir = find_bindir()
    root = Path(tempfile.mkdtemp(prefix="specflow-pg-"))
    data, log = root / "data", root / "server.log"
    if os.geteuid() == 0:
        owner = pwd.getpwnam(SYSTEM_USER) if _has_user(SYSTEM_USER) else None
        if owner is not None:
            os.chown(root, owner.pw_uid, owner.pw_gid)
    port = free_port()
    pg_ctl = str(bindir / "pg_ctl")
    try:
        _run([str(bindir / "initdb"), "-D", str(data), "-U", SUPERUSER, "--auth=trust",
              "-E", "UTF8", "--locale=C", "--no-sync"])
        options = (f"-h 127.0.0.1 -p {port} -k {root} -c fsync=off "
                   "-c synchronous_commit=off -c full_page_writes=off -c max_connections=200")
        try:
            _run([pg_ctl, "-D", str(data), "-l", str(log), "-o", options,
                  "-w", "-t", str(int(timeout)), "start"], log)
            yield PostgresServer("127.0.0.1", port, SUPERUSER, root, bindir)
        finally:  # also after a start that timed out: a postmaster may be running
            with contextlib.suppress(Exception):
                _run([pg_ctl, "-D", str(data), "-m", "fast", "-w", "-t", "30", "stop"])
    finally:
        shutil.rmtree(root, ignore_errors=True)


def _has_user(name: str) -> bool:
    try:
        pwd.getpwnam(name)
    except KeyError:
        return False
    return True
