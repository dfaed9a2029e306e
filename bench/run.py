#!/usr/bin/env python
"""Benchmark driver: runs the selected sections and merges their results into bench/results.json.

    make bench                                   # every section, throwaway PostgreSQL + Redis
    python scripts/testservices.py .venv/bin/python bench/run.py --only ledger --duration 2

Sections that touch the database need PostgreSQL (DATABASE_URL): they never run on SQLite, whose
single-writer lock says nothing about production. They run in a dedicated database on that server
(`costswitch_bench`, created and migrated when missing), so no other data is read or written.

Adding a section: write `bench/<name>.py` with `add_arguments(parser)`, `run(args) -> dict` and
`render(result) -> str`, and list it in SECTIONS. `run` may set `result["ok"] = False` to make the
driver exit 1 (after writing the results). Sections not run this time keep their previous results.
"""

import argparse
import importlib
import json
import os
import platform
import sys
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

DEFAULT_OUTPUT = ROOT / "bench" / "results.json"
DEFAULT_DATABASE = "costswitch_bench"
POSTGRES_SCHEMES = {"postgres", "postgresql", "pgsql"}


@dataclass(frozen=True)
class Section:
    module: str
    needs_database: bool


SECTIONS: dict[str, Section] = {
    "ledger": Section("bench.ledger", needs_database=True),
    "tokens": Section("bench.tokens", needs_database=False),
    "estimates": Section("bench.estimates", needs_database=True),
    "selection": Section("bench.selection", needs_database=True),
    "gateway": Section("bench.gateway", needs_database=True),
    "analytics": Section("bench.analytics", needs_database=True),
}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument(
        "--only", help=f"comma-separated sections to run (default: all of {', '.join(SECTIONS)})"
    )
    parser.add_argument(
        "--output", type=Path, default=DEFAULT_OUTPUT, help="results file (merged, not replaced)"
    )
    parser.add_argument("--database-name", default=DEFAULT_DATABASE, help="dedicated database on the server")
    parser.add_argument(
        "--fresh-database", action="store_true", help="drop and recreate the benchmark database first"
    )
    modules = {name: importlib.import_module(section.module) for name, section in SECTIONS.items()}
    for module in modules.values():
        module.add_arguments(parser)
    args = parser.parse_args(argv)

    selected = (
        list(SECTIONS) if not args.only else [name.strip() for name in args.only.split(",") if name.strip()]
    )
    unknown = sorted(set(selected) - set(SECTIONS))
    if unknown:
        parser.error(f"unknown section(s): {', '.join(unknown)}")

    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "costswitch.settings")
    # DEBUG keeps every SQL statement in memory and would slow the clients down: benchmarks never use it.
    os.environ["DEBUG"] = "0"
    os.environ.setdefault("SECRET_KEY", "benchmark-only-not-secret")
    needs_database = any(SECTIONS[name].needs_database for name in selected)
    database = None
    if needs_database:
        database = _prepare_database(args.database_name, fresh=args.fresh_database)

    import django

    django.setup()
    if needs_database:
        from django.core.management import call_command

        started = time.monotonic()
        call_command("migrate", interactive=False, verbosity=0)
        print(f"database {database}: migrated in {time.monotonic() - started:.1f} s", flush=True)

    results = _load(args.output)
    results["machine"] = _machine(with_database=needs_database)
    results["generated_at"] = datetime.now(UTC).isoformat(timespec="seconds")
    ok = True
    for name in selected:
        started = time.monotonic()
        result = modules[name].run(args)
        result.setdefault("generated_at", datetime.now(UTC).isoformat(timespec="seconds"))
        result.setdefault("wall_seconds", round(time.monotonic() - started, 1))
        results[name] = result
        ok = ok and result.get("ok", True)
        print()
        print(modules[name].render(result), flush=True)
    _save(args.output, results)
    print(f"\nwrote {args.output.relative_to(ROOT) if args.output.is_relative_to(ROOT) else args.output}")
    if not ok:
        print("FAILED: a section reported errors or a ledger inconsistency (see above)", file=sys.stderr)
    return 0 if ok else 1


def _prepare_database(name: str, *, fresh: bool) -> str:
    """Create the dedicated benchmark database on DATABASE_URL's server and point Django at it."""
    url = os.environ.get("DATABASE_URL", "")
    parts = urlsplit(url)
    if parts.scheme.split("+")[0] not in POSTGRES_SCHEMES:
        shown = parts.scheme or "unset (the embedded SQLite default)"
        print(
            f"bench: DATABASE_URL must point at PostgreSQL, but its scheme is {shown}.\n"
            "Run `make bench` (it starts a throwaway PostgreSQL) or set DATABASE_URL=postgres://...",
            file=sys.stderr,
        )
        sys.exit(2)

    import dj_database_url
    import psycopg
    from psycopg import sql

    config = dj_database_url.parse(url)
    connect_kwargs = {
        key: value
        for key, value in {
            "host": config.get("HOST") or None,
            "port": config.get("PORT") or None,
            "user": config.get("USER") or None,
            "password": config.get("PASSWORD") or None,
            **config.get("OPTIONS", {}),
        }.items()
        if value is not None
    }
    admin = None
    for maintenance_db in ("postgres", config.get("NAME"), "template1"):
        if not maintenance_db or maintenance_db == name:
            continue
        try:
            admin = psycopg.connect(
                dbname=maintenance_db, autocommit=True, connect_timeout=10, **connect_kwargs
            )
            break
        except psycopg.OperationalError as error:
            last_error = error
    if admin is None:
        print(
            f"bench: cannot connect to the PostgreSQL server of DATABASE_URL: {last_error}", file=sys.stderr
        )
        sys.exit(2)
    with admin:
        exists = admin.execute("SELECT 1 FROM pg_database WHERE datname = %s", [name]).fetchone()
        if exists and fresh:
            admin.execute(sql.SQL("DROP DATABASE {} WITH (FORCE)").format(sql.Identifier(name)))
            exists = None
        if not exists:
            admin.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
    os.environ["DATABASE_URL"] = urlunsplit(parts._replace(path="/" + name))
    return name


def _machine(*, with_database: bool) -> dict:
    import django

    machine = {
        "cores": os.cpu_count(),
        "usable_cores": len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count(),
        "cpu_model": _proc_field("/proc/cpuinfo", "model name"),
        "memory_gb": _memory_gb(),
        "platform": platform.platform(),
        "python": f"{platform.python_implementation()} {platform.python_version()}",
        "django": django.get_version(),
        # Other work on the machine skews every figure: a 1-minute load well above 0 means a noisy run.
        "load_average_at_start": [round(load, 2) for load in os.getloadavg()],
    }
    if with_database:
        from django.db import connection

        with connection.cursor() as cursor:
            cursor.execute("SHOW server_version")
            machine["postgres"] = cursor.fetchone()[0]
            server = {}
            for setting in ("fsync", "synchronous_commit", "shared_buffers", "max_connections"):
                cursor.execute(f"SHOW {setting}")
                server[setting] = cursor.fetchone()[0]
            machine["postgres_settings"] = server
        machine["database"] = connection.settings_dict["NAME"]
        connection.close()
    return machine


def _proc_field(path: str, field: str) -> str | None:
    try:
        with open(path) as handle:
            for line in handle:
                key, _, value = line.partition(":")
                if key.strip() == field:
                    return value.strip()
    except OSError:
        pass
    return None


def _memory_gb() -> float | None:
    total = _proc_field("/proc/meminfo", "MemTotal")  # "16318756 kB"
    return round(int(total.split()[0]) / 1024 / 1024, 1) if total else None


def _load(path: Path) -> dict:
    try:
        existing = json.loads(path.read_text())
    except (OSError, ValueError):
        return {}
    return existing if isinstance(existing, dict) else {}


def _save(path: Path, results: dict) -> None:
    ordered = {key: results[key] for key in ("machine", "generated_at") if key in results}
    ordered.update((key, value) for key, value in results.items() if key not in ordered)
    path.parent.mkdir(parents=True, exist_ok=True)
    temporary = path.with_suffix(".json.tmp")
    temporary.write_text(json.dumps(ordered, indent=2) + "\n")
    temporary.replace(path)


if __name__ == "__main__":
    sys.exit(main())
