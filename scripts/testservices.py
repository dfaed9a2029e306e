#!/usr/bin/env python
"""Run a command with a throwaway PostgreSQL and Redis, unless DATABASE_URL is already set.

    python scripts/testservices.py pytest -x

PostgreSQL refuses to run as root, so as root (CI) the cluster is initialised and started as the
`postgres` user. Both servers listen on 127.0.0.1 on free ports and are removed afterwards.
"""

import os
import pwd
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from contextlib import ExitStack, contextmanager
from pathlib import Path

PG_BIN_CANDIDATES = sorted(Path("/usr/lib/postgresql").glob("*/bin"), reverse=True)


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _pg_bin(name: str) -> str:
    found = shutil.which(name)
    if found:
        return found
    for directory in PG_BIN_CANDIDATES:
        if (directory / name).exists():
            return str(directory / name)
    sys.exit(f"{name} not found: install PostgreSQL (apt-get install postgresql) or set DATABASE_URL")


def _as_postgres(command: list[str]) -> list[str]:
    return ["runuser", "-u", "postgres", "--", *command] if os.geteuid() == 0 else command


def _wait_for(port: int, what: str, timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with socket.socket() as sock:
            if sock.connect_ex(("127.0.0.1", port)) == 0:
                return
        time.sleep(0.1)
    sys.exit(f"{what} did not start on port {port}")


@contextmanager
def postgresql():
    root = Path(tempfile.mkdtemp(prefix="costswitch-pg-"))
    datadir, sockdir = root / "data", root / "sock"
    sockdir.mkdir()
    if os.geteuid() == 0:
        user = pwd.getpwnam("postgres")
        for path in (root, sockdir):
            os.chown(path, user.pw_uid, user.pw_gid)
    port = _free_port()
    subprocess.run(
        _as_postgres(
            [
                _pg_bin("initdb"),
                "-D",
                str(datadir),
                "-U",
                "postgres",
                "-A",
                "trust",
                "--no-sync",
                "-E",
                "UTF8",
            ]
        ),
        check=True,
        stdout=subprocess.DEVNULL,
    )
    options = (
        f"-p {port} -k {sockdir} -c listen_addresses=127.0.0.1 -c fsync=off -c synchronous_commit=off "
        "-c full_page_writes=off -c max_connections=200"
    )
    subprocess.run(
        _as_postgres(
            [_pg_bin("pg_ctl"), "-D", str(datadir), "-o", options, "-l", str(root / "log"), "-w", "start"]
        ),
        check=True,
        stdout=subprocess.DEVNULL,
    )
    try:
        _wait_for(port, "PostgreSQL")
        yield f"postgres://postgres@127.0.0.1:{port}/costswitch"
    finally:
        subprocess.run(
            _as_postgres([_pg_bin("pg_ctl"), "-D", str(datadir), "-m", "immediate", "stop"]),
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        shutil.rmtree(root, ignore_errors=True)


def redis_command(port: int, workdir: str) -> list[str]:
    """A throwaway redis-server on 127.0.0.1:port that keeps nothing on disk (tests/load uses it too)."""
    server = shutil.which("redis-server")
    if server is None:
        sys.exit("redis-server not found: install it (apt-get install redis-server) or set REDIS_URL")
    return [
        server,
        "--port",
        str(port),
        "--bind",
        "127.0.0.1",
        "--save",
        "",
        "--appendonly",
        "no",
        "--dir",
        workdir,
    ]


@contextmanager
def redis():
    port = _free_port()
    workdir = tempfile.mkdtemp(prefix="costswitch-redis-")
    process = subprocess.Popen(redis_command(port, workdir), stdout=subprocess.DEVNULL)
    try:
        _wait_for(port, "Redis")
        yield f"redis://127.0.0.1:{port}/0"
    finally:
        process.terminate()
        process.wait(timeout=10)
        shutil.rmtree(workdir, ignore_errors=True)


def main(argv: list[str]) -> int:
    if not argv:
        sys.exit(__doc__)
    env = dict(os.environ)
    with ExitStack() as stack:
        if not env.get("DATABASE_URL"):
            env["DATABASE_URL"] = stack.enter_context(postgresql())
        if not env.get("REDIS_URL"):
            env["REDIS_URL"] = stack.enter_context(redis())
        return subprocess.call(argv, env=env)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
