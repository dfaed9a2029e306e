import json
from decimal import Decimal
from pathlib import Path

import pytest
from django.core.management import CommandError, call_command

from models_registry.catalog import CatalogError, load_catalog, parse_catalog
from models_registry.choices import PriceSource
from models_registry.models import ModelProfile, PriceChange, Provider
from models_registry.services import catalog_import, model_fallback_ids

pytestmark = pytest.mark.django_db
LITELLM_SAMPLE = Path(__file__).resolve().parent.parent / "data" / "litellm_sample.json"


def _model(model_id: str, **overrides) -> dict:
    entry = {
        "id": model_id,
        "provider": "acme-ai",
        "displayName": model_id.title(),
        "family": "acme",
        "tokenizer": "o200k_base",
        "contextWindow": 128000,
        "maxOutputTokens": 8192,
        "inputPricePerMillion": 1.1,
        "outputPricePerMillion": 4.4,
        "cachedInputPricePerMillion": 0.275,
        "capabilities": {"tools": True, "vision": False, "jsonMode": True, "streaming": True},
        "quality": {"chat": 70, "code": 65},
        "typicalLatencyMs": 400,
        "active": True,
        "fallbacks": [],
        "source": "https://example.com/pricing",
    }
    entry.update(overrides)
    return entry


def _catalog(*models: dict) -> dict:
    return {
        "schema": "costswitch.catalog/1",
        "asOf": "2026-11-25",
        "currency": "USD",
        "providers": [
            {
                "name": "acme-ai",
                "displayName": "Acme AI",
                "kind": "other",
                "baseUrl": "https://api.acme.example/v1",
                "apiKeyEnv": "ACME_API_KEY",
            }
        ],
        "models": list(models),
    }


def _parse(data: dict):
    """Through JSON text, as a file is read: prices arrive as Decimal, never float."""
    return parse_catalog(json.loads(json.dumps(data), parse_float=Decimal))


def _write(tmp_path, data) -> Path:
    path = tmp_path / "catalog.json"
    path.write_text(json.dumps(data))
    return path


def test_it_creates_providers_models_fallbacks_and_a_first_price_row():
    catalog = _parse(_catalog(_model("big", fallbacks=["small"]), _model("small", inputPricePerMillion=0.15)))
    report = catalog_import(catalog=catalog, source=PriceSource.CATALOG, source_detail="catalog.json")

    assert report.created == ["big", "small"] and report.providers_created == ["acme-ai"]
    big = ModelProfile.objects.get(pk="big")
    assert big.provider.base_url == "https://api.acme.example/v1"
    assert big.cached_input_price_per_million == Decimal("0.275")
    assert big.quality_scores == {"chat": 70, "code": 65}
    assert model_fallback_ids(big) == ["small"]
    first = PriceChange.objects.get(model=big)
    assert first.old_input_price_per_million is None and first.source == PriceSource.CATALOG
    assert first.applied_at is not None


def test_importing_the_same_catalog_twice_changes_nothing():
    catalog = _parse(_catalog(_model("big", fallbacks=["small"]), _model("small")))
    catalog_import(catalog=catalog, source=PriceSource.CATALOG)
    history = PriceChange.objects.count()

    again = catalog_import(catalog=catalog, source=PriceSource.CATALOG)

    assert not again.changed and again.unchanged == 2
    assert PriceChange.objects.count() == history


def test_a_new_price_is_recorded_with_the_old_one():
    catalog_import(catalog=_parse(_catalog(_model("big"))), source=PriceSource.CATALOG)

    report = catalog_import(
        catalog=_parse(_catalog(_model("big", outputPricePerMillion=3.3, notes="cheaper"))),
        source=PriceSource.CATALOG,
    )

    assert report.price_changes == ["big"]
    assert set(report.updated["big"]) == {"notes", "output_price_per_million"}
    change = PriceChange.objects.filter(model_id="big").first()  # newest first
    assert (change.old_output_price_per_million, change.output_price_per_million) == (
        Decimal("4.4"),
        Decimal("3.3"),
    )
    assert ModelProfile.objects.get(pk="big").output_price_per_million == Decimal("3.3")


def test_a_dry_run_reports_the_changes_and_writes_nothing():
    catalog_import(catalog=_parse(_catalog(_model("big"))), source=PriceSource.CATALOG)
    before = (ModelProfile.objects.count(), PriceChange.objects.count())

    report = catalog_import(
        catalog=_parse(_catalog(_model("big", inputPricePerMillion=9), _model("new"))),
        source=PriceSource.CATALOG,
        dry_run=True,
    )

    assert report.dry_run and report.created == ["new"] and report.price_changes == ["big"]
    assert (ModelProfile.objects.count(), PriceChange.objects.count()) == before
    assert ModelProfile.objects.get(pk="big").input_price_per_million == Decimal("1.1")


@pytest.mark.parametrize(
    ("entry", "problem"),
    [
        (_model("Bad Id"), "lowercase"),
        (_model("neg", inputPricePerMillion=-1), "zero or more"),
        (_model("precise", inputPricePerMillion=0.0000000001), "decimal places"),
        (_model("huge-out", maxOutputTokens=200000), "larger than contextWindow"),
        (_model("q", quality={"chat": 101}), "0 to 100"),
        (_model("task", quality={"poetry": 50}), "not one of"),
        (_model("tok", tokenizer="sentencepiece"), "not one of"),
        (_model("fb", fallbacks=["nowhere"]), "not in the catalog"),
        (_model("self", fallbacks=["self"]), "its own fallback"),
        (_model("prov", provider="nobody"), "not listed under providers"),
        ({"provider": "acme-ai"}, "missing field 'id'"),
    ],
)
def test_a_bad_entry_rejects_the_whole_file_before_anything_is_written(entry, problem):
    with pytest.raises(CatalogError) as caught:
        _parse(_catalog(_model("fine"), entry))
    assert any(problem in p for p in caught.value.problems), caught.value.problems
    assert not ModelProfile.objects.exists()


def test_it_reads_litellm_prices_per_token_as_exact_prices_per_million():
    catalog = load_catalog(LITELLM_SAMPLE)
    by_id = {m.id: m for m in catalog.models}

    assert catalog.format == "litellm"
    assert set(by_id) == {
        "gpt-4o",
        "claude-3-5-haiku-20241022",
        "groq-llama-3.1-8b-instant",
        "tiny-provider-odd.model_name",
    }
    assert catalog.skipped == 3  # the sample spec, an embedding model, an image model
    odd = by_id["tiny-provider-odd.model_name"]
    assert odd.input_price_per_million == Decimal("0.0375") and odd.output_price_per_million == Decimal(
        "0.15"
    )
    assert odd.provider_model_name == "Odd.Model_Name" and odd.context_window == 32768
    assert by_id["claude-3-5-haiku-20241022"].tokenizer == "claude"
    assert by_id["groq-llama-3.1-8b-instant"].tokenizer == "llama"
    assert by_id["gpt-4o"].cached_input_price_per_million == Decimal("1.25")


def test_a_litellm_refresh_updates_prices_and_limits_but_keeps_our_names_and_scores(tmp_path):
    ours = _model(
        "claude-3-5-haiku",
        provider="anthropic",
        providerModelName="claude-3-5-haiku-20241022",
        displayName="Claude 3.5 Haiku",
        tokenizer="claude",
        inputPricePerMillion=1,
    )
    data = _catalog(ours)
    data["providers"].append({"name": "anthropic", "displayName": "Anthropic", "kind": "anthropic"})
    catalog_import(catalog=_parse(data), source=PriceSource.CATALOG)

    report = catalog_import(
        catalog=load_catalog(LITELLM_SAMPLE), source=PriceSource.LITELLM, only_existing=True
    )

    assert report.created == [] and report.price_changes == ["claude-3-5-haiku"]
    haiku = ModelProfile.objects.get(pk="claude-3-5-haiku")
    assert haiku.input_price_per_million == Decimal("0.8")
    assert haiku.context_window == 200000 and haiku.display_name == "Claude 3.5 Haiku"
    assert haiku.quality_scores == {"chat": 70, "code": 65}
    assert haiku.price_changes.first().source == PriceSource.LITELLM


def test_the_command_reports_changes_and_supports_dry_run(tmp_path, capsys):
    path = _write(tmp_path, _catalog(_model("big"), _model("small")))

    call_command("import_models", str(path), "--dry-run")
    dry = capsys.readouterr().out
    assert "Dry run, nothing written" in dry and "+ big" in dry
    assert not ModelProfile.objects.exists()

    call_command("import_models", str(path))
    assert "2 created" in capsys.readouterr().out
    call_command("import_models", str(path))
    assert "0 created, 0 updated (0 with new prices), 2 unchanged" in capsys.readouterr().out
    assert Provider.objects.count() == 1


def test_the_command_refuses_a_broken_file_and_lists_its_problems(tmp_path, capsys):
    path = _write(tmp_path, _catalog(_model("neg", inputPricePerMillion=-1)))
    with pytest.raises(CommandError, match="1 problem"):
        call_command("import_models", str(path))
    assert "zero or more" in capsys.readouterr().err

    (tmp_path / "broken.json").write_text("{not json")
    with pytest.raises(CommandError, match="not valid JSON"):
        call_command("import_models", str(tmp_path / "broken.json"))
    with pytest.raises(CommandError, match="Unrecognised catalog"):
        call_command("import_models", str(_write(tmp_path, {"hello": "world"})))
    assert not ModelProfile.objects.exists()
