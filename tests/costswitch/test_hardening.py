import io
import os
import secrets
import subprocess
import sys
from decimal import Decimal
from pathlib import Path

import pytest
from django.conf import settings
from django.core.exceptions import RequestDataTooBig
from django.test import override_settings
from rest_framework.test import APIClient

from budgets.models import UsageRecord
from costswitch.api.parsers import read_limited
from tests.budgets.factories import UserFactory, team_budget

REPO = Path(__file__).resolve().parents[2]


def test_check_deploy_is_clean_with_production_settings(tmp_path):
    env = {
        "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
        "HOME": os.environ.get("HOME", str(tmp_path)),
        "DJANGO_SETTINGS_MODULE": "costswitch.settings",
        "DEBUG": "0",
        "SECRET_KEY": secrets.token_urlsafe(50),
        "ALLOWED_HOSTS": "example.com",
        "COSTSWITCH_VAR_DIR": str(tmp_path),
    }
    result = subprocess.run(
        [sys.executable, "manage.py", "check", "--deploy", "--fail-level", "WARNING"],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert "System check identified no issues" in result.stdout


def test_production_defaults_are_secure():
    # The test settings run with DEBUG off, as production does.
    assert settings.DEBUG is False
    assert settings.SESSION_COOKIE_SECURE and settings.CSRF_COOKIE_SECURE and settings.SESSION_COOKIE_HTTPONLY
    assert settings.SECURE_HSTS_SECONDS == 31_536_000
    assert settings.X_FRAME_OPTIONS == "DENY"


def test_api_responses_carry_security_headers(team_key):
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {team_key[1]}")
    response = client.get("/api/v1/budgets", secure=True)
    assert response.status_code == 200
    assert response["X-Content-Type-Options"] == "nosniff"
    assert response["X-Frame-Options"] == "DENY"
    assert response["Referrer-Policy"] == "same-origin"
    assert response["Cross-Origin-Opener-Policy"] == "same-origin"
    assert response["Strict-Transport-Security"] == "max-age=31536000; includeSubDomains"


@pytest.mark.django_db
def test_session_and_csrf_cookies_are_secure_and_the_session_cookie_is_http_only(client):
    UserFactory(username="ada", is_staff=True)
    login_page = client.get("/admin/login/")
    assert login_page.cookies["csrftoken"]["secure"]
    response = client.post("/admin/login/", {"username": "ada", "password": "password"})
    assert response.status_code == 302
    session = response.cookies["sessionid"]
    assert session["secure"] and session["httponly"]


@pytest.fixture
def session_client(world):
    """bob, logged in with a session, and a client that enforces CSRF as browsers get it."""
    team_budget(world.alpha, limit=Decimal("10"))
    client = APIClient(enforce_csrf_checks=True)
    assert client.login(username="bob", password="password")
    return client


USAGE = {"requestId": "req-csrf-1", "model": "gpt-4o", "cost": 0.25}


def test_a_session_write_without_a_csrf_token_is_refused(session_client):
    response = session_client.post("/api/v1/usage", USAGE, format="json")
    assert response.status_code == 403
    body = response.json()
    assert body["code"] == "permission_denied"
    assert "CSRF" in body["message"]
    assert not UsageRecord.objects.exists()


def test_a_session_write_with_the_csrf_token_is_accepted(session_client):
    session_client.get("/admin/login/")  # sets the csrftoken cookie, as any page does
    token = session_client.cookies["csrftoken"].value
    response = session_client.post("/api/v1/usage", USAGE, format="json", HTTP_X_CSRFTOKEN=token)
    assert response.status_code == 201, response.json()


def test_an_api_key_write_needs_no_csrf_token(world, team_key):
    team_budget(world.alpha, limit=Decimal("10"))
    client = APIClient(enforce_csrf_checks=True)
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {team_key[1]}")
    assert client.post("/api/v1/usage", USAGE, format="json").status_code == 201


@override_settings(DATA_UPLOAD_MAX_MEMORY_SIZE=2048)
def test_an_oversized_json_body_is_refused_with_413_and_changes_nothing(world, team_key):
    team_budget(world.alpha, limit=Decimal("10"))
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {team_key[1]}")
    items = [{"requestId": f"big-{n}", "model": "gpt-4o", "cost": 0.01} for n in range(60)]

    response = client.post("/api/v1/usage", {"items": items}, format="json")

    assert response.status_code == 413
    assert response.json() == {
        "status": 413,
        "code": "request_too_large",
        "message": "The request body is larger than the 2048 bytes this server accepts.",
    }
    assert not UsageRecord.objects.exists()
    small = client.post("/api/v1/usage", {"items": items[:5]}, format="json")
    assert small.status_code == 201


@override_settings(DATA_UPLOAD_MAX_MEMORY_SIZE=10)
def test_a_body_without_a_declared_length_is_still_cut_at_the_limit():
    assert read_limited(io.BytesIO(b"0123456789")) == b"0123456789"
    with pytest.raises(RequestDataTooBig):
        read_limited(io.BytesIO(b"0123456789A"))
