from decimal import Decimal

import factory

from models_registry.choices import ProviderKind, Tokenizer
from models_registry.models import ModelProfile, Provider


class ProviderFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Provider
        django_get_or_create = ("name",)

    name = "openai"
    display_name = factory.LazyAttribute(lambda p: p.name.title())
    kind = ProviderKind.OPENAI
    base_url = "https://api.openai.com/v1"
    api_key_env = "OPENAI_API_KEY"


class ModelProfileFactory(factory.django.DjangoModelFactory):
    """A model with round prices; quality 80 on every task type unless given."""

    class Meta:
        model = ModelProfile

    id = factory.Sequence(lambda n: f"model-{n}")
    provider = factory.SubFactory(ProviderFactory)
    display_name = factory.LazyAttribute(lambda m: m.id)
    tokenizer = Tokenizer.O200K_BASE
    context_window = 128_000
    max_output_tokens = 16_384
    input_price_per_million = Decimal("2.50")
    output_price_per_million = Decimal("10.00")
    cached_input_price_per_million = Decimal("1.25")
    supports_tools = True
    supports_json_mode = True
    quality_scores = factory.LazyFunction(
        lambda: dict.fromkeys(
            ["chat", "code", "math", "reasoning", "summarization", "extraction", "translation", "creative"],
            80,
        )
    )
