"""Closed-loop client processes for benchmark sections: forked together, released at one moment,
measured over one window after a warm-up."""

import multiprocessing
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from queue import Empty
from typing import Any

# Clients get this long between the release and the first request, so all start on the same clock.
START_DELAY_SECONDS = 0.05
WAIT_SECONDS = 120


@dataclass
class Window:
    reports: list[dict]  # one per client that reported
    lost: int  # clients that died without reporting
    before: Any  # what `measure` returned as the measured window opened
    after: Any  # ... and as it closed
    exit_codes: list[int | None]  # None: still running after the join timeout


def run_clients(
    client: Callable,
    client_args: Sequence[tuple],
    *,
    warmup: float,
    duration: float,
    measure: Callable[[], Any] = lambda: None,
) -> Window:
    """One forked process per `client_args` entry runs `client(*args, ready, go, start_at, warmup,
    duration, queue)`: it prepares, waits on `ready` and `go`, sleeps until `start_at.value`, works
    until `start_at + warmup + duration`, and puts one report dict on `queue`. Fork, not spawn, so
    clients share the parent's imports; close database connections before calling."""
    context = multiprocessing.get_context("fork")
    ready = context.Barrier(len(client_args) + 1)
    go = context.Event()
    start_at = context.Value("d", 0.0)
    queue = context.Queue()
    processes = [
        context.Process(
            target=client, args=(*args, ready, go, start_at, warmup, duration, queue), daemon=True
        )
        for args in client_args
    ]
    for process in processes:
        process.start()
    ready.wait(timeout=WAIT_SECONDS)  # every client has prepared (keys loaded, connected)
    start_at.value = time.monotonic() + START_DELAY_SECONDS
    go.set()
    measure_from = start_at.value + warmup
    sleep_until(measure_from)
    before = measure()
    sleep_until(measure_from + duration)
    after = measure()

    reports, lost = [], 0
    deadline = time.monotonic() + WAIT_SECONDS
    for _ in processes:
        try:
            reports.append(queue.get(timeout=max(deadline - time.monotonic(), 1)))
        except Empty:
            lost += 1
    for process in processes:
        process.join(timeout=30)
    return Window(reports, lost, before, after, [process.exitcode for process in processes])


def sleep_until(moment: float) -> None:
    remaining = moment - time.monotonic()
    if remaining > 0:
        time.sleep(remaining)
