"""OS processes for tests that run costswitch as production does, against the pytest-django test
database (mark such tests `django_db(transaction=True)`, so what they write is committed and seen):
the production profile (scripts/prod.sh) or its gunicorn alone, a Celery worker, and the servers
behind them: a Redis of the test's own, and the throwaway PostgreSQL `make test` started.

Server commands come from scripts/testservices.py, which starts the suite's own servers.
"""

import importlib.util
import json
import os
import secrets
import shlex
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from urllib.parse import quote

import httpx
import pytest
from django.db import connection

REPO = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent  # the venv pytest runs in: gunicorn and celery are next to it

_spec = importlib.util.spec_from_file_location("testservices", REPO / "scripts" / "testservices.py")
testservices = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(testservices)


def free_port() -> int:
    return testservices._free_port()


def wait_for_port(port: int, what: str, timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with socket.socket() as sock:
            if sock.connect_ex(("127.0.0.1", port)) == 0:
                return
        time.sleep(0.05)
    raise AssertionError(f"{what} did not listen on port {port} within {timeout} s")


def database_url() -> str:
    db = connection.settings_dict  # the test database, e.g. test_costswitch
    credentials = quote(db["USER"] or "", safe="")
    if db["PASSWORD"]:
        credentials += ":" + quote(db["PASSWORD"], safe="")
    host = db["HOST"] or "127.0.0.1"
    return f"postgres://{credentials}@{host}:{db['PORT'] or 5432}/{db['NAME']}"


def app_env(tmp_path: Path, **overrides: str) -> dict[str, str]:
    """The environment of an app or worker process: production settings on the test database."""
    return {
        "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
        "HOME": os.environ.get("HOME", str(tmp_path)),
        "DATABASE_URL": database_url(),
        "REDIS_URL": os.environ.get("REDIS_URL", ""),
        "SECRET_KEY": secrets.token_urlsafe(50),
        "ALLOWED_HOSTS": "127.0.0.1",
        "COSTSWITCH_VAR_DIR": str(tmp_path / "var"),
        "LOG_LEVEL": "WARNING",
        **overrides,
    }


class ProdProfile:
    """scripts/prod.sh on a free port of 127.0.0.1: gunicorn with two workers, a Celery worker and
    beat. `web_only` runs its gunicorn alone (no migrate, collectstatic or Celery), which is all
    an API test needs."""

    def __init__(self, tmp_path: Path, *, web_only: bool = False, **env: str):
        self.port = free_port()
        self.base_url = f"http://127.0.0.1:{self.port}"
        self.log_path = tmp_path / "prod.log"
        self.access_log = tmp_path / "access.log"
        if web_only:
            self.command = [str(BIN / "gunicorn"), "-c", "deploy/gunicorn.conf.py"]
            (tmp_path / "static").mkdir(exist_ok=True)  # whitenoise warns about a missing STATIC_ROOT
        else:
            self.command = ["bash", "scripts/prod.sh"]
        self.env = app_env(
            tmp_path,
            PORT=str(self.port),
            WEB_CONCURRENCY="2",
            CELERY_CONCURRENCY="1",
            STATIC_ROOT=str(tmp_path / "static"),
            GUNICORN_ACCESS_LOG=str(self.access_log),
            **env,
        )
        self.process: subprocess.Popen | None = None

    def start(self) -> None:
        with self.log_path.open("wb") as log:
            self.process = subprocess.Popen(
                self.command,
                cwd=REPO,
                env=self.env,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,  # its own process group: nothing is left behind
            )

    def log_tail(self) -> str:
        return self.log_path.read_text(errors="replace")[-4000:]

    def wait_until_ready(self, timeout: float = 120) -> dict:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            assert self.process.poll() is None, f"{self.command[-1]} exited early:\n{self.log_tail()}"
            try:
                response = httpx.get(f"{self.base_url}/readyz", timeout=5)
                if response.status_code == 200:
                    return response.json()
            except httpx.TransportError:
                pass
            time.sleep(0.3)
        raise AssertionError(f"/readyz did not answer 200 in {timeout} s:\n{self.log_tail()}")

    def worker_pids(self) -> set[int]:
        if not self.access_log.exists():
            return set()
        entries = [json.loads(line) for line in self.access_log.read_text().splitlines() if line.strip()]
        return {entry["pid"] for entry in entries if entry["path"].startswith("/api/v1/")}

    def group_alive(self) -> bool:
        return _group_alive(self.process)

    def kill_everything(self) -> None:
        _kill_group(self.process)


class CeleryWorker:
    """`celery -A costswitch worker` (prefork) in its own process group; `include` names extra task
    modules (`-I`), e.g. test-only ones."""

    def __init__(self, tmp_path: Path, name: str, *, include: str = "", concurrency: int = 1, **env: str):
        self.name = name
        self.log_path = tmp_path / f"celery-{name}.log"
        self.command = [
            str(BIN / "celery"),
            "-A",
            "costswitch",
            "worker",
            "--pool=prefork",
            f"--concurrency={concurrency}",
            f"--hostname={name}@%h",
            "--loglevel=INFO",
            # No other workers to meet: start consuming at once.
            "--without-mingle",
            "--without-gossip",
            "--without-heartbeat",
        ]
        if include:
            self.command.append(f"--include={include}")
        self.env = app_env(tmp_path, LOG_LEVEL="INFO", PYTHONPATH=str(REPO), **env)
        self.process: subprocess.Popen | None = None

    def start(self) -> None:
        with self.log_path.open("ab") as log:
            self.process = subprocess.Popen(
                self.command,
                cwd=REPO,
                env=self.env,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )

    def log_tail(self) -> str:
        return self.log_path.read_text(errors="replace")[-4000:] if self.log_path.exists() else ""

    def kill_everything(self) -> None:
        """SIGKILL to the worker and its pool processes at once: nothing gets to acknowledge or requeue."""
        _kill_group(self.process)


class RedisServer:
    """A redis-server of the test's own on a free port, which the test may stop and start again."""

    def __init__(self):
        self.port = free_port()
        self.url = f"redis://127.0.0.1:{self.port}/0"
        self.workdir = tempfile.mkdtemp(prefix="costswitch-redis-")
        self.process: subprocess.Popen | None = None

    def start(self) -> None:
        self.process = subprocess.Popen(
            testservices.redis_command(self.port, self.workdir), stdout=subprocess.DEVNULL
        )
        wait_for_port(self.port, "Redis")

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.send_signal(signal.SIGCONT)  # a paused server would never see the TERM
            self.process.terminate()
            self.process.wait(timeout=10)

    def pause(self) -> None:
        """A hung server: connections are still accepted (by the kernel) but nothing is answered."""
        self.process.send_signal(signal.SIGSTOP)

    def resume(self) -> None:
        self.process.send_signal(signal.SIGCONT)

    def close(self) -> None:
        self.stop()
        shutil.rmtree(self.workdir, ignore_errors=True)


class PostgresServer:
    """The throwaway PostgreSQL server of the test database, stopped and started with pg_ctl as the
    user that owns it (`postgres` when the tests run as root, as scripts/testservices.py started it).

    `for_test_database()` skips the test unless the server is one scripts/testservices.py started on
    this machine: the suite never stops a server it did not create."""

    def __init__(self, datadir: Path, options: str):
        self.datadir = datadir
        self.options = options
        self.pg_ctl = testservices._pg_bin("pg_ctl")

    @classmethod
    def for_test_database(cls) -> "PostgresServer":
        with connection.cursor() as cursor:
            cursor.execute("SHOW data_directory")
            datadir = Path(cursor.fetchone()[0])
        opts = datadir / "postmaster.opts"
        if not datadir.parent.name.startswith("costswitch-pg-") or not opts.exists():
            pytest.skip("the test database's PostgreSQL was not started by scripts/testservices.py here")
        # postmaster.opts holds the running server's command line; pg_ctl start wants it minus the
        # binary and the data directory.
        argv = shlex.split(opts.read_text())[1:]
        at = argv.index("-D")
        del argv[at : at + 2]
        return cls(datadir, shlex.join(argv))

    def _pg_ctl(self, *args: str) -> None:
        subprocess.run(
            testservices._as_postgres([self.pg_ctl, "-D", str(self.datadir), *args]),
            check=True,
            stdout=subprocess.DEVNULL,
        )

    def stop(self) -> None:
        """A fast shutdown: sessions are disconnected, the server is gone when this returns."""
        self._pg_ctl("-m", "fast", "-w", "stop")

    def start(self) -> None:
        """Returns once the server accepts connections."""
        log = str(self.datadir.parent / "log")
        self._pg_ctl("-o", self.options, "-l", log, "-w", "start")

    def running(self) -> bool:
        result = subprocess.run(
            testservices._as_postgres([self.pg_ctl, "-D", str(self.datadir), "status"]),
            stdout=subprocess.DEVNULL,
            check=False,
        )
        return result.returncode == 0


def _group_alive(process: subprocess.Popen | None) -> bool:
    if process is None:
        return False
    try:
        os.killpg(process.pid, 0)
    except ProcessLookupError:
        return False
    return True


def _kill_group(process: subprocess.Popen | None) -> None:
    if _group_alive(process):
        os.killpg(process.pid, signal.SIGKILL)
        process.wait(timeout=10)
