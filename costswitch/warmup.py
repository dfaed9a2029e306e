"""What a fresh worker process would otherwise make its first request wait for: about 1.2 s on 2 cores,
mostly parsing the token encodings' rank files (0.8 s) and importing every view module (0.35 s).
gunicorn calls `warm_up` in each worker before it accepts connections (deploy/gunicorn.conf.py), so
recycled workers (`max_requests`) no longer show up as latency spikes.

Then everything loaded so far is moved out of the garbage collector's sight (`gc.freeze`). The
encodings alone are millions of objects that live as long as the process. A full collection walked
them all and stopped a request for 65-80 ms about every 700 requests (profiled in-process)."""

import gc
import logging
import time

from django.urls import get_resolver

logger = logging.getLogger(__name__)


def warm_up() -> float:
    """Import the URLconf with all its views, load the token encodings, and freeze what is loaded
    (out of the collector's sight); the seconds it took."""
    from models_registry.tokens import load_encodings

    started = time.perf_counter()
    get_resolver().url_patterns  # noqa: B018 - evaluating it imports every view module
    load_encodings()
    gc.collect()
    gc.freeze()
    seconds = time.perf_counter() - started
    logger.info("worker warmed up in %.2f s", seconds)
    return seconds
