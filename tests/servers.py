"""Real servers on loopback, started and stopped by the tests themselves: PostgreSQL (Debian's
``postgresql``, installed by scripts/system-deps) and ``mlflow server`` with PostgreSQL as its
backend store and a folder as its artifact destination."""

from __future__ import annotations

import os
import pwd
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _postgres_bin() -> Path:
    found = sorted(Path("/usr/lib/postgresql").glob("*/bin/initdb"))
    if found:
        return found[-1].parent
    initdb = shutil.which("initdb")
    assert initdb, "PostgreSQL is not installed (scripts/system-deps installs Debian's postgresql)"
    return Path(initdb).parent


class Postgres:
    """A throw-away PostgreSQL cluster on 127.0.0.1 with trust authentication. PostgreSQL
    refuses to run as root, so as root the cluster belongs to the ``postgres`` user."""

    def __init__(self) -> None:
        self.bin = _postgres_bin()
        self.port = free_port()
        # under /tmp, not pytest's tmp_path: the postgres user must reach the folder
        self.dir = Path(tempfile.mkdtemp(prefix="insilico-pg-"))
        self.as_user: list[str] = []
        if os.geteuid() == 0:
            pw = pwd.getpwnam("postgres")
            os.chown(self.dir, pw.pw_uid, pw.pw_gid)
            self.as_user = ["runuser", "-u", "postgres", "--"]
        data = self.dir / "data"
        self._run("initdb", "-D", str(data), "-A", "trust", "-U", "postgres", "--no-sync", "-E", "UTF8")
        self._run("pg_ctl", "-D", str(data), "-l", str(self.dir / "server.log"), "-w", "-t", "60", "-o",
                  f"-p {self.port} -k {self.dir} -c listen_addresses=127.0.0.1 -c fsync=off", "start")
        self._run("createdb", "-h", "127.0.0.1", "-p", str(self.port), "-U", "postgres", "mlflow")
        self.uri = f"postgresql+psycopg2://postgres@127.0.0.1:{self.port}/mlflow"

    def _run(self, tool: str, *args: str) -> None:
        done = subprocess.run([*self.as_user, str(self.bin / tool), *args], capture_output=True, text=True,
                              timeout=120, check=False)
        assert done.returncode == 0, f"{tool} failed: {done.stdout[-1000:]}{done.stderr[-2000:]}"

    def query(self, sql: str) -> str:
        done = subprocess.run([str(self.bin / "psql"), "-h", "127.0.0.1", "-p", str(self.port), "-U", "postgres",
                               "-d", "mlflow", "-At", "-c", sql], capture_output=True, text=True, timeout=60)
        assert done.returncode == 0, done.stderr
        return done.stdout.strip()

    def close(self) -> None:
        subprocess.run([*self.as_user, str(self.bin / "pg_ctl"), "-D", str(self.dir / "data"), "-m", "fast",
                        "-w", "stop"], capture_output=True, timeout=60, check=False)
        shutil.rmtree(self.dir, ignore_errors=True)


class MlflowServer:
    """``mlflow server`` on loopback: a backend store URI and an artifact destination folder;
    clients reach artifacts only through the server (``mlflow-artifacts:``)."""

    def __init__(self, backend: str, artifacts: Path, log: Path) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self._log = open(log, "w")  # noqa: SIM115 - open for the server's lifetime
        mlflow = Path(sys.executable).parent / "mlflow"
        self.proc = subprocess.Popen([str(mlflow), "server", "--backend-store-uri", backend,
                                      "--artifacts-destination", artifacts.as_uri(), "--host", "127.0.0.1",
                                      "--port", str(self.port), "--workers", "1"],
                                     stdout=self._log, stderr=subprocess.STDOUT)
        deadline = time.time() + 180
        while time.time() < deadline:
            assert self.proc.poll() is None, f"mlflow server exited: {log.read_text()[-3000:]}"
            try:
                with urllib.request.urlopen(f"{self.url}/health", timeout=5) as r:
                    if r.status == 200:
                        return
            except OSError:
                time.sleep(0.5)
        raise AssertionError(f"mlflow server did not answer in 180 s: {log.read_text()[-3000:]}")

    def close(self) -> None:
        self.proc.terminate()
        try:
            self.proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(timeout=20)
        self._log.close()
