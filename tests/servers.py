"""Test helpers: a throw-away PostgreSQL cluster and an `mlflow server` on loopback.

Both are context managers that stop what they started on the way out, even when the body fails.
PostgreSQL refuses to run as root: as root, its commands run as the `postgres` system user on a
cluster folder that user owns (under /tmp, which every user can traverse).
"""

from __future__ import annotations

import contextlib
import glob
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def postgres_bin() -> Path | None:
    """The folder of PostgreSQL's server programs (initdb, pg_ctl): Debian's versioned folder
    (the newest), else wherever `pg_ctl` is on PATH; None when PostgreSQL is not installed."""
    def version(folder: str) -> float:
        try:
            return float(Path(folder).parent.name)
        except ValueError:
            return 0.0

    for folder in sorted(glob.glob("/usr/lib/postgresql/*/bin"), key=version, reverse=True):
        if (Path(folder) / "pg_ctl").exists() and (Path(folder) / "initdb").exists():
            return Path(folder)
    found = shutil.which("pg_ctl")
    if found and (Path(found).resolve().parent / "initdb").exists():
        return Path(found).resolve().parent
    return None


def _tail(path: Path, n: int = 4000) -> str:
    try:
        return path.read_text(errors="replace")[-n:]
    except OSError:
        return f"(no log at {path})"


@contextlib.contextmanager
def postgres_cluster(database: str = "mlflow"):
    """A fresh cluster on 127.0.0.1:<free port> with `database` in it; yields its SQLAlchemy URI
    (`postgresql+psycopg2://postgres@127.0.0.1:PORT/mlflow`: psycopg2 named, as SQLAlchemy 2.1
    defaults `postgresql://` to psycopg 3; password-less, trust, on loopback only)."""
    import pwd

    bindir = postgres_bin()
    if bindir is None:
        raise FileNotFoundError("PostgreSQL's server programs (initdb, pg_ctl) are not installed")
    base = Path(tempfile.mkdtemp(prefix="nnenergy-pg-"))  # under /tmp: traversable by `postgres`
    as_user: list[str] = []
    if os.geteuid() == 0:
        pw = pwd.getpwnam("postgres")
        os.chown(base, pw.pw_uid, pw.pw_gid)
        as_user = ["runuser", "-u", "postgres", "--"]
    data, log, port = base / "data", base / "server.log", free_port()

    def run(*cmd: str) -> None:
        proc = subprocess.run([*as_user, *cmd], capture_output=True, text=True, timeout=120)
        if proc.returncode != 0:
            raise RuntimeError(f"{' '.join(cmd)} failed ({proc.returncode}):\n{proc.stdout}\n{proc.stderr}\n"
                               f"{_tail(log)}")

    started = False
    try:
        run(str(bindir / "initdb"), "-D", str(data), "-U", "postgres", "--auth=trust", "--encoding=UTF8",
            "--no-sync")
        # Loopback only, its own port and socket folder (no clash with a system cluster); fsync off: a test.
        opts = f"-c listen_addresses=127.0.0.1 -p {port} -k {base} -c fsync=off"
        run(str(bindir / "pg_ctl"), "-D", str(data), "-l", str(log), "-o", opts, "-w", "-t", "60", "start")
        started = True
        run(str(bindir / "createdb"), "-h", "127.0.0.1", "-p", str(port), "-U", "postgres", database)
        yield f"postgresql+psycopg2://postgres@127.0.0.1:{port}/{database}"
    finally:
        if started:
            with contextlib.suppress(Exception):
                run(str(bindir / "pg_ctl"), "-D", str(data), "-m", "fast", "-w", "-t", "60", "stop")
        shutil.rmtree(base, ignore_errors=True)


def _mlflow_cli() -> str:
    return str(Path(sys.executable).with_name("mlflow")) if Path(sys.executable).with_name("mlflow").exists() \
        else (shutil.which("mlflow") or "mlflow")


@contextlib.contextmanager
def mlflow_server(backend_store_uri: str, workdir: Path, workers: int = 2, timeout_s: float = 90):
    """`mlflow server` on 127.0.0.1:<free port>, artifacts proxied through it (`mlflow-artifacts:`)
    into `workdir/mlartifacts`; yields `http://127.0.0.1:PORT` once /health answers."""
    workdir.mkdir(parents=True, exist_ok=True)
    port, log = free_port(), workdir / "mlflow-server.log"
    cmd = [_mlflow_cli(), "server", "--backend-store-uri", backend_store_uri,
           "--artifacts-destination", str(workdir / "mlartifacts"),
           "--host", "127.0.0.1", "--port", str(port), "--workers", str(workers)]
    env = {k: v for k, v in os.environ.items() if not k.startswith("MLFLOW_")}
    # The server's GenAI job runner (several huey worker processes) is not used here and costs a
    # core for seconds at start-up on a 2-core machine.
    env["MLFLOW_SERVER_ENABLE_JOB_EXECUTION"] = "false"
    with log.open("wb") as out:
        proc = subprocess.Popen(cmd, cwd=workdir, env=env, stdout=out, stderr=subprocess.STDOUT,
                                start_new_session=True)  # its own process group: its workers stop with it
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + timeout_s
        while True:
            if proc.poll() is not None:
                raise RuntimeError(f"mlflow server exited ({proc.returncode}):\n{_tail(log)}")
            try:
                with urllib.request.urlopen(f"{url}/health", timeout=2) as r:
                    if r.status == 200:
                        break
            except OSError:
                pass
            if time.monotonic() > deadline:
                raise RuntimeError(f"mlflow server did not answer {url}/health in {timeout_s:.0f} s:\n{_tail(log)}")
            time.sleep(0.5)
        yield url
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(timeout=10)
        with contextlib.suppress(ProcessLookupError):  # a worker that outlived its parent
            os.killpg(proc.pid, signal.SIGKILL)
