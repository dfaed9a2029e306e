"""The registry snapshot carries each model's per-minute limits to the admission flow."""

import pytest

from selection.snapshot import build_snapshot
from tests.models_registry.factories import ModelProfileFactory


@pytest.mark.django_db
def test_the_snapshot_carries_the_rate_limits():
    ModelProfileFactory(id="limited", requests_per_minute=7, tokens_per_minute=7000)
    ModelProfileFactory(id="free")
    models = build_snapshot("v1").models
    assert (models["limited"].requests_per_minute, models["limited"].tokens_per_minute) == (7, 7000)
    assert (models["free"].requests_per_minute, models["free"].tokens_per_minute) == (None, None)
