"""Real servers for tests: an S3-compatible server (moto's server mode over HTTP) and
PostgreSQL (an existing server, or a throwaway one made with initdb/pg_ctl).

Nothing here imports pytest; ``fixtures.py`` wraps these helpers as session fixtures.
"""

from __future__ import annotations

import glob
import json
import os
import shlex
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import uuid
from dataclasses import dataclass, replace
from pathlib import Path
from urllib.parse import quote, unquote, urlsplit

LOOPBACK = "127.0.0.1"


class ServerUnavailable(RuntimeError):
    """The binaries a server needs are not installed (the only reason a local run may skip)."""


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on right now."""
    with socket.socket() as sock:
        sock.bind((LOOPBACK, 0))
        return int(sock.getsockname()[1])


def port_open(host: str, port: int, timeout: float = 0.3) -> bool:
    """True when something accepts TCP connections on ``host:port``."""
    try:
        with socket.create_connection((host, port), timeout=timeout):
            return True
    except OSError:
        return False


def _process_output(process: subprocess.Popen) -> str:
    log = getattr(process, "log_file", None)
    if log is not None:
        log.seek(0)
        return log.read().decode(errors="replace")
    return process.stderr.read().decode(errors="replace") if process.stderr else ""


def wait_for_port(
    host: str, port: int, *, timeout: float, process: subprocess.Popen | None = None, what: str
) -> None:
    """Wait until ``host:port`` accepts connections; raise with the server's output if not."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if port_open(host, port, timeout=0.2):
            return
        if process is not None and process.poll() is not None:
            output = _process_output(process)
            raise RuntimeError(
                f"{what} exited with code {process.returncode} before listening on {host}:{port}: {output[-2000:]}"
            )
        time.sleep(0.05)
    raise RuntimeError(f"{what} did not listen on {host}:{port} within {timeout:.0f} s")


# -- S3 (moto server) ----------------------------------------------------------------------
@dataclass(frozen=True)
class S3Server:
    """A running S3-compatible server and credentials it accepts."""

    endpoint_url: str
    access_key: str
    secret_key: str
    region: str = "us-east-1"

    def client(self, *, secret_key: str | None = None):  # noqa: ANN201 - boto3 client
        import boto3

        return boto3.client(
            "s3",
            endpoint_url=self.endpoint_url,
            aws_access_key_id=self.access_key,
            aws_secret_access_key=secret_key or self.secret_key,
            region_name=self.region,
        )


def _moto_command(port: int) -> list[str]:
    script = Path(sys.executable).with_name("moto_server")
    if script.exists():
        return [str(script), "-H", LOOPBACK, "-p", str(port)]
    if shutil.which("moto_server"):
        return ["moto_server", "-H", LOOPBACK, "-p", str(port)]
    try:
        import moto.server  # noqa: F401
    except ImportError:
        raise ServerUnavailable(
            "moto_server is not installed (uv sync installs moto[server] with the dev group)"
        ) from None
    return [sys.executable, "-m", "moto.server", "-H", LOOPBACK, "-p", str(port)]


# moto enforces credentials after this many unauthenticated requests; the first three create
# the IAM user, its access key and its allow-all policy, so wrong secrets are really refused.
_MOTO_SETUP_REQUESTS = 3


def start_moto_server() -> tuple[S3Server, subprocess.Popen]:
    """Start ``moto_server`` on a free loopback port with credential checks switched on."""
    import boto3

    port = free_port()
    env = dict(os.environ, INITIAL_NO_AUTH_ACTION_COUNT=str(_MOTO_SETUP_REQUESTS))
    # moto logs every request to stderr; a pipe nobody reads fills up and hangs the server
    # after a few hundred requests, so the log goes to an unlinked temporary file instead.
    log = tempfile.TemporaryFile()
    process = subprocess.Popen(_moto_command(port), env=env, stdout=subprocess.DEVNULL, stderr=log)
    process.log_file = log  # type: ignore[attr-defined] - read by wait_for_port on early exit
    try:
        wait_for_port(LOOPBACK, port, timeout=30, process=process, what="moto_server")
        endpoint = f"http://{LOOPBACK}:{port}"
        iam = boto3.client(
            "iam",
            endpoint_url=endpoint,
            region_name="us-east-1",
            aws_access_key_id="setup",
            aws_secret_access_key="setup",
        )
        iam.create_user(UserName="daydream-tests")
        key = iam.create_access_key(UserName="daydream-tests")["AccessKey"]
        policy = {
            "Version": "2012-10-17",
            "Statement": [{"Effect": "Allow", "Action": "*", "Resource": "*"}],
        }
        iam.put_user_policy(
            UserName="daydream-tests", PolicyName="allow-all", PolicyDocument=json.dumps(policy)
        )
    except BaseException:
        stop_process(process)
        raise
    return S3Server(endpoint, key["AccessKeyId"], key["SecretAccessKey"]), process


def stop_process(process: subprocess.Popen) -> None:
    """Terminate a server process we started (kill it if it lingers)."""
    if process.poll() is None:
        process.terminate()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=10)
    if process.stderr:
        process.stderr.close()
    log = getattr(process, "log_file", None)
    if log is not None:
        log.close()


def unique_bucket(prefix: str = "dd-test") -> str:
    """A bucket name no other test uses."""
    return f"{prefix}-{uuid.uuid4().hex[:12]}"


# -- PostgreSQL ----------------------------------------------------------------------------
@dataclass(frozen=True)
class PostgresServer:
    """How to reach a PostgreSQL database."""

    host: str
    port: int
    user: str
    password: str | None
    database: str

    def url(self, driver: str = "postgresql+psycopg", *, database: str | None = None) -> str:
        auth = quote(self.user, safe="")
        if self.password:
            auth += ":" + quote(self.password, safe="")
        return f"{driver}://{auth}@{self.host}:{self.port}/{database or self.database}"

    def connect(
        self, *, database: str | None = None, password: str | None = None, autocommit: bool = True
    ):  # noqa: ANN201
        import psycopg

        return psycopg.connect(
            host=self.host,
            port=self.port,
            user=self.user,
            password=password if password is not None else (self.password or ""),
            dbname=database or self.database,
            autocommit=autocommit,
            connect_timeout=10,
        )


def server_from_url(url: str) -> PostgresServer:
    """Parse ``postgresql://user:password@host:port/db`` (any ``+driver`` suffix)."""
    parts = urlsplit(url)
    if not parts.scheme.startswith("postgres"):
        raise ValueError(
            f"DAYDREAMING_PG_URL must be a postgresql:// URL, got scheme {parts.scheme!r}"
        )
    return PostgresServer(
        host=parts.hostname or LOOPBACK,
        port=parts.port or 5432,
        user=unquote(parts.username or "postgres"),
        password=unquote(parts.password) if parts.password else None,
        database=(parts.path or "/postgres").lstrip("/") or "postgres",
    )


def postgres_bin_dir() -> Path:
    """Directory holding ``initdb`` and ``pg_ctl`` (Debian's layout first)."""
    candidates = sorted(
        glob.glob("/usr/lib/postgresql/*/bin/initdb"),
        key=lambda p: int(p.split("/")[4]) if p.split("/")[4].isdigit() else 0,
    )
    if candidates:
        return Path(candidates[-1]).parent
    found = shutil.which("initdb")
    if found and shutil.which("pg_ctl"):
        return Path(found).parent
    raise ServerUnavailable(
        "PostgreSQL server binaries (initdb, pg_ctl) are missing: run scripts/install_system_deps.sh"
    )


@dataclass
class ThrowawayPostgres:
    """A PostgreSQL cluster in a temporary directory, on a free loopback port, with
    password (scram-sha-256) authentication. ``stop()`` shuts it down and deletes it."""

    directory: Path
    bin_dir: Path
    server: PostgresServer
    as_postgres_user: bool

    def _run(self, *args: str) -> None:
        command = [str(self.bin_dir / args[0]), *args[1:]]
        if self.as_postgres_user:
            # initdb/pg_ctl refuse to run as root; the Debian package provides a postgres user.
            command = ["su", "postgres", "-s", "/bin/sh", "-c", shlex.join(command)]
        completed = subprocess.run(command, capture_output=True, text=True, timeout=120)
        if completed.returncode != 0:
            raise RuntimeError(
                f"{args[0]} failed ({completed.returncode}): {completed.stderr.strip() or completed.stdout.strip()}"
            )

    def stop(self) -> None:
        try:
            self._run("pg_ctl", "-D", str(self.directory / "data"), "-m", "immediate", "-w", "stop")
        finally:
            shutil.rmtree(self.directory, ignore_errors=True)


def start_throwaway_postgres() -> ThrowawayPostgres:
    """initdb + pg_ctl start a password-protected server (as ``postgres`` when run as root)."""
    bin_dir = postgres_bin_dir()
    as_root = os.geteuid() == 0
    directory = Path(tempfile.mkdtemp(prefix="dd-pg-"))
    password = uuid.uuid4().hex
    user = "postgres"
    (directory / "pwfile").write_text(password + "\n")
    if as_root:
        import pwd

        try:
            entry = pwd.getpwnam("postgres")
        except KeyError:
            shutil.rmtree(directory, ignore_errors=True)
            raise ServerUnavailable(
                "running as root but there is no 'postgres' user to run the server as"
            ) from None
        os.chown(directory, entry.pw_uid, entry.pw_gid)
        os.chown(directory / "pwfile", entry.pw_uid, entry.pw_gid)
    else:
        import getpass

        user = getpass.getuser()
    port = free_port()
    cluster = ThrowawayPostgres(
        directory, bin_dir, PostgresServer(LOOPBACK, port, user, password, "postgres"), as_root
    )
    data = directory / "data"
    try:
        cluster._run(
            "initdb",
            "-D",
            str(data),
            "-A",
            "scram-sha-256",
            "-U",
            user,
            f"--pwfile={directory / 'pwfile'}",
            "-E",
            "UTF8",
        )
        options = f"-p {port} -k {directory} -c listen_addresses={LOOPBACK} -c fsync=off -c full_page_writes=off"
        cluster._run(
            "pg_ctl",
            "-D",
            str(data),
            "-o",
            options,
            "-l",
            str(directory / "server.log"),
            "-w",
            "-t",
            "60",
            "start",
        )
        wait_for_port(LOOPBACK, port, timeout=30, what="PostgreSQL")
    except BaseException:
        log = directory / "server.log"
        detail = log.read_text(errors="replace")[-2000:] if log.exists() else ""
        try:
            cluster.stop()
        except Exception:  # noqa: BLE001 - the original failure matters more
            shutil.rmtree(directory, ignore_errors=True)
        if detail:
            raise RuntimeError(
                f"throwaway PostgreSQL failed to start; server log:\n{detail}"
            ) from None
        raise
    return cluster


def create_database(admin: PostgresServer, prefix: str = "dd_test") -> PostgresServer:
    """Create a uniquely named database on ``admin``'s server and return how to reach it."""
    name = f"{prefix}_{uuid.uuid4().hex[:10]}"
    with admin.connect() as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    return replace(admin, database=name)


def drop_database(admin: PostgresServer, name: str) -> None:
    """Drop a database created by :func:`create_database` (closing its connections)."""
    with admin.connect() as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def rejects_wrong_password(server: PostgresServer) -> bool:
    """True when the server checks passwords (a trust-configured server lets anyone in)."""
    import psycopg

    try:
        with server.connect(password=f"wrong-{uuid.uuid4().hex}"):
            return False
    except psycopg.OperationalError as exc:
        return "password" in str(exc).lower() or "authentication" in str(exc).lower()
