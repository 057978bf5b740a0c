"""One study across machines: an MLflow tracking server on a database, with its artifacts proxied by the server.

    xablate server --database postgresql://xablate@dbhost:5432/xablate --artifacts /srv/xablate/artifacts
    xablate server --postgres /srv/xablate/postgres     # a PostgreSQL of its own in that folder (Debian's)

The server is `mlflow server --backend-store-uri <database> --artifacts-destination <folder> --serve-artifacts`
(the field's standard: runs in a SQL database, artifacts uploaded through the server, so a job needs only the
server's address). It prints the overrides every job of the study uses — `tracking.uri` (the server) and
`tracking.database` (the database, where a tuning search keeps its Optuna studies too, xablate.tuning) — and
serves until the command is stopped; the server, and a PostgreSQL it started, die with it.

`LocalPostgres` runs Debian's PostgreSQL in a folder as a non-root user (initdb refuses root): for a lab
without a database server, for the tests and for `xablate bench store`.
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

from xablate.tracking.ui_server import watched

POSTGRES_USER = "postgres"  # the system user Debian's package creates; the server runs as it when we are root
ROLE = DATABASE = "xablate"


def postgres_bin() -> Path:
    """The newest PostgreSQL server programs on this machine (Debian: /usr/lib/postgresql/<version>/bin)."""
    found = sorted(Path("/usr/lib/postgresql").glob("*/bin/initdb"), key=lambda p: int(p.parent.parent.name)
                   if p.parent.parent.name.isdigit() else 0)
    if not found:
        raise RuntimeError("PostgreSQL's server programs are not installed (Debian: apt-get install postgresql)")
    return found[-1].parent


def free_port(host: str = "127.0.0.1") -> int:
    with socket.socket() as probe:
        probe.bind((host, 0))
        return probe.getsockname()[1]


def _as_server_user(command: list[str]) -> list[str]:
    """`command` as the non-root user PostgreSQL runs as (we are root: `runuser`), else as ourselves."""
    if os.geteuid() != 0:
        return command
    return ["runuser", "-u", POSTGRES_USER, "--", *command]


class LocalPostgres:
    """Debian's PostgreSQL in `folder` on 127.0.0.1:`port`, a database `xablate` owned by the role `xablate`
    (trust authentication: a server for this machine's loopback only); stopped on exit, and with this process."""

    def __init__(self, folder: Path, port: int | None = None):
        self.folder = Path(folder).resolve()
        remembered = self.folder / "port"  # the folder's server keeps its port: the database URI stays the same
        self.port = port or (int(remembered.read_text()) if remembered.exists() else free_port())
        self.data = self.folder / "data"

    @property
    def uri(self) -> str:
        return f"postgresql://{ROLE}@127.0.0.1:{self.port}/{DATABASE}"

    def start(self) -> "LocalPostgres":
        bin_dir = postgres_bin()
        self.folder.mkdir(parents=True, exist_ok=True)
        if os.geteuid() == 0:
            shutil.chown(self.folder, POSTGRES_USER)
        (self.folder / "port").write_text(str(self.port))
        fresh = not (self.data / "PG_VERSION").exists()
        if fresh:
            subprocess.run(_as_server_user([str(bin_dir / "initdb"), "-D", str(self.data), "--auth=trust",
                                            f"--username={ROLE}", "--encoding=UTF8"]),
                           check=True, capture_output=True, text=True)
        # the server in the foreground under xablate's watchdog: it dies with this process, even by SIGKILL
        log = open(self.folder / "postgres.log", "ab")  # noqa: SIM115 - the server's own log, closed with it
        self.process = subprocess.Popen(watched(_as_server_user([
            str(bin_dir / "postgres"), "-D", str(self.data), "-c", "listen_addresses=127.0.0.1",
            "-p", str(self.port), "-k", str(self.folder)])), stdout=log, stderr=subprocess.STDOUT,
            start_new_session=True)
        deadline = time.time() + 60
        while subprocess.run([str(bin_dir / "pg_isready"), "-q", "-h", "127.0.0.1", "-p", str(self.port)]).returncode:
            if self.process.poll() is not None or time.time() > deadline:
                self.stop()
                raise RuntimeError(f"PostgreSQL in {self.folder} did not start (see postgres.log there)")
            time.sleep(0.2)
        if fresh:
            createdb = bin_dir / "createdb" if (bin_dir / "createdb").exists() else Path("createdb")
            subprocess.run([str(createdb), "-h", "127.0.0.1", "-p", str(self.port), "-U", ROLE, DATABASE],
                           check=True, capture_output=True, text=True)
        return self

    def stop(self) -> None:
        if getattr(self, "process", None) is not None:
            stop_server(self.process)

    def __enter__(self) -> "LocalPostgres":
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()


def server_command(database: str, artifacts: Path, host: str = "127.0.0.1", port: int = 5000,
                   workers: int = 2) -> list[str]:
    """`mlflow server` on `database`, artifacts proxied to `artifacts` (jobs upload through the server)."""
    return [sys.executable, "-m", "mlflow", "server", "--backend-store-uri", database,
            "--artifacts-destination", str(Path(artifacts).resolve()), "--serve-artifacts",
            "--host", host, "--port", str(port), "--workers", str(workers)]


def wait_until_up(url: str, process: subprocess.Popen | None = None, timeout: float = 120.0) -> None:
    """Returns once the server at `url` answers /health; RuntimeError if it exits or the time runs out."""
    deadline = time.time() + timeout
    while time.time() < deadline:
        if process is not None and process.poll() is not None:
            raise RuntimeError(f"the tracking server exited with code {process.returncode} before it served")
        try:
            with urllib.request.urlopen(f"{url}/health", timeout=2) as answer:
                if answer.status == 200:
                    return
        except OSError:
            time.sleep(0.3)
    raise RuntimeError(f"the tracking server at {url} did not answer within {timeout:.0f} s")


def start_server(database: str, artifacts: Path, host: str = "127.0.0.1", port: int | None = None,
                 log: Path | None = None) -> tuple[subprocess.Popen, str]:
    """(the server process, its URL), started and answering; stop it with stop_server."""
    port = port or free_port(host)
    out = open(log, "ab") if log else subprocess.DEVNULL  # noqa: SIM115 - the server's own log, closed with it
    # under xablate's watchdog: the server and its workers die with this process, even by SIGKILL
    process = subprocess.Popen(watched(server_command(database, artifacts, host, port)), stdout=out,
                               stderr=subprocess.STDOUT, start_new_session=True)
    url = f"http://{host}:{port}"
    try:
        wait_until_up(url, process)
    except RuntimeError:
        stop_server(process)
        raise
    return process, url


def stop_server(process: subprocess.Popen) -> None:
    """Stops a server started here (its watchdog's process group: the watchdog stops the server's tree)."""
    if process.poll() is None:
        try:
            os.killpg(process.pid, signal.SIGTERM)
            process.wait(timeout=30)
        except (ProcessLookupError, subprocess.TimeoutExpired):
            os.killpg(process.pid, signal.SIGKILL)
            process.wait(timeout=30)


def job_overrides(url: str, database: str) -> str:
    return f"tracking.uri={url} tracking.database={database}"


def serve(database: str | None, artifacts: Path | None, host: str, port: int, postgres: Path | None) -> int:
    """`xablate server`: the tracking server until interrupted; prints what every job of the study uses."""
    if (database is None) == (postgres is None):
        print("xablate: Received " + ("both --database and --postgres" if database else "neither --database nor "
              "--postgres") + "; allowed: one of them (a database URI, or a folder for a PostgreSQL of its own)",
              file=sys.stderr)
        return 2
    if database is not None and not database.startswith(("postgresql://", "postgresql+", "mysql", "sqlite:///")):
        print(f"xablate: Received --database={database!r}; allowed: a SQLAlchemy database URI "
              f"(postgresql://user@host:port/name, mysql://…, sqlite:///…)", file=sys.stderr)
        return 2
    if postgres is not None or database.startswith("postgresql"):
        from xablate.extras import MissingExtra, require

        try:
            require("server", "xablate server on PostgreSQL")
        except MissingExtra as error:
            print(f"xablate: {error}", file=sys.stderr)
            return 2
    local = LocalPostgres(postgres).start() if postgres is not None else None
    database = local.uri if local is not None else database
    artifacts = Path(artifacts or (Path(postgres or ".") / "artifacts"))
    try:
        process, url = start_server(database, artifacts, host, port)
    except RuntimeError as error:
        if local is not None:
            local.stop()
        print(f"xablate: {error}", file=sys.stderr)
        return 1
    print(f"[xablate] tracking server {url} on {database}, artifacts in {artifacts.resolve()}\n"
          f"[xablate] every job of the study, on every machine: {job_overrides(url, database)}", flush=True)
    try:
        process.wait()
    except KeyboardInterrupt:
        pass
    finally:
        stop_server(process)
        if local is not None:
            local.stop()
    return 0
