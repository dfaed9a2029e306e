from datetime import timedelta

import pytest
from django.utils import timezone
from rest_framework.test import APIClient

from budgets.models import ApiKey
from budgets.services.keys import api_key_revoke
from costswitch.keys import hash_api_key
from tests.conftest import client_with_key


@pytest.mark.django_db
def test_the_openapi_schema_is_served(client):
    response = client.get("/api/schema/", HTTP_ACCEPT="application/json")
    assert response.status_code == 200
    paths = response.json()["paths"]
    assert "/api/v1/budgets/status/{scopeType}/{scopeId}" in paths
    assert "/api/v1/reservations/{id}/settle/" in paths


@pytest.mark.django_db
def test_the_api_docs_use_no_cdn(client):
    response = client.get("/api/docs/")
    assert response.status_code == 200
    assert b"cdn." not in response.content


def test_it_stores_only_the_hash_of_a_key(team_key):
    api_key, secret = team_key
    assert api_key.key_hash == hash_api_key(secret)
    assert secret.startswith(api_key.prefix)
    assert not ApiKey.objects.filter(key_hash=secret).exists()
    assert secret not in {api_key.prefix, api_key.key_hash, api_key.name}


def test_a_valid_key_authenticates(team_key):
    assert client_with_key(team_key[1]).get("/api/v1/budgets").status_code == 200


def test_a_revoked_key_is_refused(team_key):
    api_key, secret = team_key
    api_key_revoke(api_key=api_key)
    response = client_with_key(secret).get("/api/v1/budgets")
    assert response.status_code == 401
    assert response.json()["code"] == "authentication_failed"


def test_an_expired_key_is_refused(team_key):
    api_key, secret = team_key
    api_key.expires_at = timezone.now() - timedelta(seconds=1)
    api_key.save()
    assert client_with_key(secret).get("/api/v1/budgets").status_code == 401


@pytest.mark.django_db
@pytest.mark.parametrize("header", ["Bearer cs_not-a-real-key", "Bearer nonsense", "Basic Zm9vOmJhcg=="])
def test_unknown_or_malformed_credentials_get_a_json_error(header):
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=header)
    response = client.get("/api/v1/budgets")
    assert response.status_code == 401
    assert response.json()["code"] in {"authentication_failed", "not_authenticated"}


@pytest.mark.django_db
def test_an_unknown_api_url_gets_a_json_404(client):
    response = client.get("/api/v1/nothing-here")
    assert response.status_code == 404
    assert response.json()["code"] == "not_found"


def test_a_non_numeric_id_is_a_404_not_a_crash(team_key):
    assert client_with_key(team_key[1]).get("/api/v1/budgets/abc").status_code == 404


def test_it_records_when_a_key_was_last_used(team_key):
    api_key, secret = team_key
    assert api_key.last_used_at is None
    client_with_key(secret).get("/api/v1/budgets")
    api_key.refresh_from_db()
    assert api_key.last_used_at is not None
