"""`make run`'s embedded default: SQLite, no Redis. The ledger's hot statements are written out in
SQL that both databases must run, and the rest of the suite runs on PostgreSQL, so this drives the
admission and ledger path once on SQLite, in a subprocess with its own settings."""

import json
import os
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]

SCRIPT = """
import json, re
from io import StringIO

import django

django.setup()
from django.core.management import call_command
from django.test import Client

from budgets.models import UsageRecord

call_command("migrate", verbosity=0)
call_command("import_models", verbosity=0, stdout=StringIO())
out = StringIO()
call_command("seed_demo", stdout=out)
secret = re.search(r"API key:\\s+(\\S+)", out.getvalue()).group(1)
client = Client(HTTP_AUTHORIZATION=f"Bearer {secret}")


def post(path, data=None):
    response = client.post(path, data=data or {}, content_type="application/json")
    return response.status_code, response.json()


messages = [{"role": "user", "content": "Summarize: the deploy went fine."}]
selected = post("/api/v1/models/select", {"request": {"messages": messages}})
settled = post(
    f"/api/v1/reservations/{selected[1]['reservationId']}/settle",
    {"cost": "0.000123", "inputTokens": 10, "outputTokens": 5},
)
held = post("/api/v1/reservations", {"requestId": "embedded-1", "amount": "0.01"})
released = post(f"/api/v1/reservations/{held[1]['reservationId']}/release")
ledger = StringIO()
call_command("check_ledger", stdout=ledger)
print(json.dumps({
    "statuses": [selected[0], settled[0], held[0], released[0]],
    "settled_cost": settled[1]["cost"],
    "released_state": released[1]["state"],
    "recorded": UsageRecord.objects.filter(request_id=selected[1]["requestId"]).count(),
    "ledger": ledger.getvalue(),
}))
"""


def test_admission_and_the_ledger_run_on_the_embedded_sqlite_default(tmp_path):
    env = {
        key: value
        for key, value in os.environ.items()
        if key not in {"DATABASE_URL", "REDIS_URL", "CELERY_BROKER_URL"}
    }
    env.update(DJANGO_SETTINGS_MODULE="costswitch.settings", DEBUG="1", COSTSWITCH_VAR_DIR=str(tmp_path))
    result = subprocess.run(
        [sys.executable, "-c", SCRIPT], cwd=REPO, env=env, capture_output=True, text=True, timeout=300
    )
    assert result.returncode == 0, result.stderr[-3000:]
    report = json.loads(result.stdout.strip().splitlines()[-1])
    assert report["statuses"] == [201, 201, 201, 200]
    assert report["settled_cost"] == 0.000123
    assert report["released_state"] == "released"
    assert report["recorded"] == 1
    assert "Ledger consistent" in report["ledger"]
    assert (tmp_path / "db.sqlite3").exists()  # it really ran on the embedded database
