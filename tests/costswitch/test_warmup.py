"""A gunicorn worker warms up before its first request (deploy/gunicorn.conf.py post_worker_init)."""

import json
import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]

# Run in a fresh interpreter: this test process has long imported and loaded everything.
PROBE = """
import gc, json, sys
import django
django.setup()
import tiktoken.registry
from costswitch.warmup import warm_up
def state():
    return {
        "views": "selection.api.views" in sys.modules,
        "encodings": sorted(tiktoken.registry.ENCODINGS),
        "frozen": gc.get_freeze_count() > 100_000,
    }
before = state()
warm_up()
after = state()
print(json.dumps([before, after]))
"""


def test_warm_up_imports_the_views_loads_the_encodings_and_freezes_them():
    env = {
        **os.environ,
        "DJANGO_SETTINGS_MODULE": os.environ.get("DJANGO_SETTINGS_MODULE", "costswitch.settings"),
    }
    done = subprocess.run(
        [sys.executable, "-c", PROBE], cwd=ROOT, env=env, capture_output=True, text=True, timeout=120
    )
    assert done.returncode == 0, done.stderr
    before, after = json.loads(done.stdout.strip().splitlines()[-1])
    assert before == {"views": False, "encodings": [], "frozen": False}
    # Frozen: the long-lived objects (the encodings are most of them) leave the collector's sight.
    assert after == {"views": True, "encodings": ["cl100k_base", "o200k_base"], "frozen": True}
