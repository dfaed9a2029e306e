"""The catalog in the repository: big enough, consistent, and importable twice without changes."""

from collections import Counter

import pytest

from models_registry.catalog import DEFAULT_CATALOG, load_catalog
from models_registry.choices import PriceSource, TaskType
from models_registry.models import ModelProfile, PriceChange
from models_registry.services import catalog_import


def test_it_lists_at_least_40_models_from_at_least_6_providers_each_with_a_source():
    catalog = load_catalog(DEFAULT_CATALOG)
    per_provider = Counter(model.provider for model in catalog.models)
    assert len(catalog.models) >= 40
    assert len(per_provider) >= 6
    assert {"openai", "anthropic", "google", "mistral", "deepseek"} <= set(per_provider)
    assert all(model.source_url.startswith("https://") for model in catalog.models)
    assert all(set(model.quality_scores) == set(TaskType.values) for model in catalog.models)


def test_flagships_outscore_their_small_siblings():
    models = {model.id: model for model in load_catalog(DEFAULT_CATALOG).models}
    for big, small in [("gpt-4o", "gpt-4o-mini"), ("gpt-4.1", "gpt-4.1-mini"), ("gpt-5", "gpt-5-nano")]:
        assert models[big].quality_scores["reasoning"] > models[small].quality_scores["reasoning"]
        assert models[big].input_price_per_million > models[small].input_price_per_million


@pytest.mark.django_db
def test_importing_it_twice_creates_everything_once_and_then_changes_nothing():
    catalog = load_catalog(DEFAULT_CATALOG)
    first = catalog_import(catalog=catalog, source=PriceSource.CATALOG)
    assert len(first.created) == len(catalog.models) == ModelProfile.objects.count()
    assert PriceChange.objects.count() == len(catalog.models)

    second = catalog_import(catalog=load_catalog(DEFAULT_CATALOG), source=PriceSource.CATALOG)
    assert not second.changed and second.unchanged == len(catalog.models)
    assert PriceChange.objects.count() == len(catalog.models)
