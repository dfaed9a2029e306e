"""Token counting needs no network: a fresh interpreter whose every network call raises still counts.

Each check runs in a subprocess so nothing this test process already loaded (encodings, settings,
TIKTOKEN_CACHE_DIR) can help it, with HOME and TMPDIR in an empty folder so that no tiktoken download
cache elsewhere on the machine can hide a missing file.
"""

import json
import os
import socket
import subprocess
import sys
from pathlib import Path

from django.conf import settings

ENCODINGS_DIR = Path(settings.BASE_DIR) / "models_registry" / "encodings"

# Installed before anything else is imported. It prints as well as raises, in case a library
# swallows the exception and carries on.
REFUSE_NETWORK = """
import sys

def refuse_network(event, args):
    if event in {"socket.connect", "socket.getaddrinfo", "urllib.Request"}:
        print(f"NETWORK {event}", file=sys.stderr, flush=True)
        raise RuntimeError(f"network access refused: {event}")

sys.addaudithook(refuse_network)
"""

COUNT_TOKENS = """
import json, os
import django

django.setup()
from models_registry.tokens import count_text_tokens

text = "Ünïcödé 日本語のテキスト 🦊"
print(json.dumps({
    "cl100k_base": count_text_tokens(text, tokenizer="cl100k_base"),
    "o200k_base": count_text_tokens(text, tokenizer="o200k_base"),
    "cache_dir": os.environ["TIKTOKEN_CACHE_DIR"],
}))
"""

TRY_NETWORK = """
import socket, urllib.request

def connect():
    with socket.socket() as sock:  # a bare connect: create_connection would resolve the address first
        sock.connect(("127.0.0.1", PORT))

blocked = []
attempts = {
    "socket.connect": connect,
    "socket.getaddrinfo": lambda: socket.getaddrinfo("localhost", PORT),
    "urllib.Request": lambda: urllib.request.urlopen(f"http://127.0.0.1:{PORT}/", timeout=1),
}
for name, attempt in attempts.items():
    try:
        attempt()
    except RuntimeError:
        blocked.append(name)
    except OSError:
        pass  # reached the network layer (e.g. no HTTP answer): not blocked
print(",".join(blocked))
"""


def run_isolated(code: str, tmp_path: Path) -> subprocess.CompletedProcess:
    home = tmp_path / "home"
    home.mkdir(parents=True)
    env = {
        key: value
        for key, value in os.environ.items()
        if key not in {"TIKTOKEN_CACHE_DIR", "DATA_GYM_CACHE_DIR", "REDIS_URL", "DATABASE_URL"}
    }
    env.update(
        DJANGO_SETTINGS_MODULE="costswitch.settings_test",
        HOME=str(home),
        TMPDIR=str(home),
        TEMP=str(home),
        TMP=str(home),
        COSTSWITCH_VAR_DIR=str(tmp_path / "var"),
    )
    return subprocess.run(
        [sys.executable, "-c", code],
        cwd=settings.BASE_DIR,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )


def test_it_counts_with_both_encodings_without_any_network(tmp_path):
    result = run_isolated(REFUSE_NETWORK + COUNT_TOKENS, tmp_path)

    assert result.returncode == 0, result.stderr
    assert "NETWORK" not in result.stderr
    counts = json.loads(result.stdout.strip().splitlines()[-1])
    assert counts == {"cl100k_base": 18, "o200k_base": 14, "cache_dir": str(ENCODINGS_DIR)}
    assert list((tmp_path / "home").iterdir()) == []  # nothing was downloaded or cached


def test_the_network_guard_really_blocks(tmp_path):
    with socket.create_server(("127.0.0.1", 0)) as server:
        port = server.getsockname()[1]
        code = TRY_NETWORK.replace("PORT", str(port))
        unguarded = run_isolated(code, tmp_path / "unguarded")
        guarded = run_isolated(REFUSE_NETWORK + code, tmp_path / "guarded")

    # Without the guard the connection to the listening socket succeeds, so nothing is blocked ...
    assert unguarded.returncode == 0, unguarded.stderr
    assert unguarded.stdout.strip() == ""
    # ... and with it every kind of network access is refused.
    assert guarded.returncode == 0, guarded.stderr
    assert guarded.stdout.strip() == "socket.connect,socket.getaddrinfo,urllib.Request"
    assert "NETWORK socket.connect" in guarded.stderr
