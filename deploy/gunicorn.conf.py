"""gunicorn settings for costswitch in production: `make prod`, deploy/costswitch-web.service, Procfile.

    gunicorn -c deploy/gunicorn.conf.py

Environment: BIND (or PORT), WEB_CONCURRENCY, GUNICORN_THREADS, GUNICORN_TIMEOUT,
GUNICORN_MAX_REQUESTS, GUNICORN_ACCESS_LOG; gunicorn itself reads FORWARDED_ALLOW_IPS (proxies
whose X-Forwarded-Proto/-For it trusts; default 127.0.0.1,::1).
"""

import json
import os
import time

from gunicorn.glogging import Logger

wsgi_app = "costswitch.wsgi:application"
proc_name = "costswitch-web"

# Local by default; a load balancer on another host needs BIND=0.0.0.0:8000 (or a private address).
bind = [os.environ.get("BIND") or f"127.0.0.1:{os.environ.get('PORT', '8000')}"]


def _cores() -> int:
    try:
        return len(os.sched_getaffinity(0))  # the CPUs this process may use, not all the host has
    except AttributeError:
        return os.cpu_count() or 1


# Threaded workers. An API call is a few milliseconds of database work, but the gateway holds its
# request for the provider's whole answer (seconds; a stream, minutes): with one request per
# process, five sync workers would serve five model calls at once and queue the rest (README
# "Measured"). Threads wait on providers, processes (2 x cores + 1) use the cores. Each thread may
# hold a database connection: WEB_CONCURRENCY x GUNICORN_THREADS (at most 8 x 8 by default) must
# stay under PostgreSQL's max_connections. Each process takes ~100 MB; scale out with machines.
workers = int(os.environ.get("WEB_CONCURRENCY") or min(2 * _cores() + 1, 8))
threads = int(os.environ.get("GUNICORN_THREADS", "8"))
worker_class = "gthread" if threads > 1 else "sync"
keepalive = 5  # a little longer than nothing, shorter than load balancers' idle timeouts

# A worker whose main loop is silent for this long is killed and replaced (a threaded worker's loop
# runs while its threads wait on providers). On TERM or HUP, workers finish their requests for up
# to graceful_timeout before they are stopped.
timeout = int(os.environ.get("GUNICORN_TIMEOUT", "30"))
graceful_timeout = 30

# Recycle workers now and then (against slow leaks); the jitter keeps them from restarting together.
max_requests = int(os.environ.get("GUNICORN_MAX_REQUESTS", "2000"))
max_requests_jitter = max_requests // 10

# preload_app off: each worker imports the app after the fork, so nothing opened at import time
# (database, Redis, Prometheus files) is shared between processes, and `kill -HUP` on the master
# loads new code without dropping the socket. The price is a second or so of CPU per worker start.
preload_app = False

# Workers signal liveness by touching a temp file; on tmpfs that never blocks on a busy disk (or an
# overlay filesystem in containers) and gets a healthy worker killed.
worker_tmp_dir = "/dev/shm" if os.path.isdir("/dev/shm") and os.access("/dev/shm", os.W_OK) else None

# The app logs every request itself (costswitch.access, JSON, with the request id), so gunicorn's
# own access log is off unless GUNICORN_ACCESS_LOG names a file or "-" (stdout).
accesslog = os.environ.get("GUNICORN_ACCESS_LOG") or None
errorlog = "-"
loglevel = os.environ.get("GUNICORN_LOG_LEVEL", "info")

# gunicorn >= 25.1 opens a control socket at $HOME/.gunicorn/gunicorn.ctl by default, shared by every
# gunicorn of the user: two instances (blue/green, or tests) would take it from each other.
control_socket_disable = True


def post_worker_init(worker) -> None:
    """Load encodings and views before the worker takes its first request (costswitch/warmup.py)."""
    from costswitch.warmup import warm_up

    warm_up()


class JsonAccessLogger(Logger):
    """gunicorn's access log as one JSON object a line, with the worker pid that served the request."""

    def access(self, resp, req, environ, request_time):
        if not self.cfg.accesslog:
            return
        atoms = self.atoms(resp, req, environ, request_time)
        entry = {
            "time": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
            "pid": os.getpid(),
            "remote": atoms["h"],
            "method": atoms["m"],
            "path": atoms["U"],
            "status": int(atoms["s"]) if str(atoms["s"]).isdigit() else None,
            "bytes": atoms["B"],
            "duration_ms": round(request_time.total_seconds() * 1000, 3),
            "request_id": atoms.get("{x-request-id}o"),
        }
        self.access_log.info(json.dumps(entry))


logger_class = JsonAccessLogger


def child_exit(server, worker):
    """A worker is gone: Prometheus multiprocess mode stops counting its live gauges."""
    if not os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        return
    try:
        from prometheus_client import multiprocess
    except ImportError:  # metrics not installed: nothing was written for this worker
        return
    multiprocess.mark_process_dead(worker.pid)
