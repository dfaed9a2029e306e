"""Read model catalogs into plain specs: our own format (`catalog/models.json`) and LiteLLM's price file.

Parsing is kept apart from the database so a bad file is rejected whole, with every problem listed,
before anything is written. Money is read as Decimal straight from the JSON text, never via float.
"""

import json
import re
from collections.abc import Iterable
from dataclasses import dataclass, field
from decimal import Decimal, InvalidOperation
from pathlib import Path
from typing import Any

from costswitch.money import MONEY_DECIMAL_PLACES
from models_registry.choices import ProviderKind, TaskType, Tokenizer
from models_registry.models import SLUG_PATTERN
from models_registry.pricing import MILLION

DEFAULT_CATALOG = Path(__file__).resolve().parent / "catalog" / "models.json"
CATALOG_SCHEMA = "costswitch.catalog/1"
_SLUG = re.compile(SLUG_PATTERN)


class CatalogError(ValueError):
    """The file cannot be imported; `problems` lists every entry that is wrong."""

    def __init__(self, message: str, problems: list[str] | None = None):
        super().__init__(message)
        self.problems = problems or []


@dataclass(frozen=True)
class ProviderSpec:
    name: str
    display_name: str
    kind: str
    base_url: str = ""
    api_key_env: str = ""
    pricing_url: str = ""


@dataclass(frozen=True)
class ModelSpec:
    """One model as a catalog describes it. `None` means the catalog does not say (keep what we have)."""

    id: str
    provider: str
    input_price_per_million: Decimal
    output_price_per_million: Decimal
    cached_input_price_per_million: Decimal | None
    context_window: int
    max_output_tokens: int
    provider_model_name: str = ""
    display_name: str = ""
    family: str | None = None
    tokenizer: str | None = None
    supports_tools: bool | None = None
    supports_vision: bool | None = None
    supports_json_mode: bool | None = None
    supports_streaming: bool | None = None
    quality_scores: dict[str, int] | None = None
    typical_latency_ms: int | None = None
    is_active: bool | None = None
    fallbacks: tuple[str, ...] | None = None
    source_url: str | None = None
    notes: str | None = None


@dataclass
class Catalog:
    format: str
    providers: list[ProviderSpec] = field(default_factory=list)
    models: list[ModelSpec] = field(default_factory=list)
    skipped: int = 0


def load_catalog(path: Path | str) -> Catalog:
    """Parse a catalog file in either supported format, detected from its content."""
    try:
        with open(path, encoding="utf-8") as handle:
            data = json.load(handle, parse_float=Decimal, parse_int=int)
    except OSError as exc:
        raise CatalogError(f"Cannot read {path}: {exc.strerror or exc}.") from exc
    except json.JSONDecodeError as exc:
        raise CatalogError(f"{path} is not valid JSON: {exc}.") from exc
    return parse_catalog(data)


def parse_catalog(data: Any) -> Catalog:
    if isinstance(data, dict) and data.get("schema") == CATALOG_SCHEMA:
        return _parse_costswitch(data)
    if isinstance(data, dict) and any(isinstance(v, dict) and "litellm_provider" in v for v in data.values()):
        return _parse_litellm(data)
    raise CatalogError(
        f"Unrecognised catalog: expected {CATALOG_SCHEMA!r} (see models_registry/catalog/models.json) "
        "or LiteLLM's model_prices_and_context_window.json."
    )


# --- our format -------------------------------------------------------------------------------------


def _parse_costswitch(data: dict) -> Catalog:
    problems: list[str] = []
    catalog = Catalog(format="costswitch")
    for index, raw in enumerate(data.get("providers") or []):
        where = f"providers[{index}]"
        try:
            catalog.providers.append(
                ProviderSpec(
                    name=_slug(raw, "name", where),
                    display_name=str(raw.get("displayName") or raw["name"]),
                    kind=_choice(raw.get("kind", ProviderKind.OTHER), ProviderKind.values, f"{where}.kind"),
                    base_url=str(raw.get("baseUrl") or ""),
                    api_key_env=str(raw.get("apiKeyEnv") or ""),
                    pricing_url=str(raw.get("pricingUrl") or ""),
                )
            )
        except (CatalogError, KeyError, TypeError, AttributeError) as exc:
            problems.append(_problem(where, exc))
    known_providers = {p.name for p in catalog.providers}
    for index, raw in enumerate(data.get("models") or []):
        where = f"models[{index}]"
        try:
            spec = _costswitch_model(raw, where)
        except (CatalogError, KeyError, TypeError, AttributeError) as exc:
            problems.append(_problem(where, exc))
            continue
        if spec.provider not in known_providers:
            problems.append(f"{where} ({spec.id}): provider {spec.provider!r} is not listed under providers.")
        catalog.models.append(spec)
    problems.extend(_check_models(catalog.models))
    if problems:
        raise CatalogError(f"The catalog has {len(problems)} problem(s).", problems)
    return catalog


def _costswitch_model(raw: dict, where: str) -> ModelSpec:
    model_id = _slug(raw, "id", where)
    where = f"{where} ({model_id})"
    capabilities = raw.get("capabilities") or {}
    quality = raw.get("quality")
    if quality is not None:
        quality = {
            _choice(task, TaskType.values, f"{where}.quality"): _score(score, f"{where}.quality.{task}")
            for task, score in quality.items()
        }
    return ModelSpec(
        id=model_id,
        provider=str(raw["provider"]),
        provider_model_name=str(raw.get("providerModelName") or ""),
        display_name=str(raw.get("displayName") or model_id),
        family=str(raw.get("family") or ""),
        tokenizer=_choice(raw.get("tokenizer", Tokenizer.O200K_BASE), Tokenizer.values, f"{where}.tokenizer"),
        context_window=_positive_int(raw.get("contextWindow"), f"{where}.contextWindow"),
        max_output_tokens=_positive_int(raw.get("maxOutputTokens"), f"{where}.maxOutputTokens"),
        input_price_per_million=_price(raw.get("inputPricePerMillion"), f"{where}.inputPricePerMillion"),
        output_price_per_million=_price(raw.get("outputPricePerMillion"), f"{where}.outputPricePerMillion"),
        cached_input_price_per_million=_price(
            raw.get("cachedInputPricePerMillion"), f"{where}.cachedInputPricePerMillion", optional=True
        ),
        supports_tools=bool(capabilities.get("tools", False)),
        supports_vision=bool(capabilities.get("vision", False)),
        supports_json_mode=bool(capabilities.get("jsonMode", False)),
        supports_streaming=bool(capabilities.get("streaming", True)),
        quality_scores=quality,
        typical_latency_ms=(
            None
            if raw.get("typicalLatencyMs") is None
            else _positive_int(raw["typicalLatencyMs"], f"{where}.typicalLatencyMs")
        ),
        is_active=bool(raw.get("active", True)),
        fallbacks=tuple(str(f) for f in raw.get("fallbacks") or ()),
        source_url=str(raw.get("source") or ""),
        notes=str(raw.get("notes") or ""),
    )


# --- LiteLLM's model_prices_and_context_window.json -------------------------------------------------

# LiteLLM's provider names -> ours (name, kind). Unlisted providers keep their LiteLLM name, kind "other".
LITELLM_PROVIDERS = {
    "openai": ("openai", ProviderKind.OPENAI),
    "text-completion-openai": ("openai", ProviderKind.OPENAI),
    "anthropic": ("anthropic", ProviderKind.ANTHROPIC),
    "gemini": ("google", ProviderKind.GOOGLE),
    "vertex_ai-language-models": ("google-vertex", ProviderKind.GOOGLE),
    "mistral": ("mistral", ProviderKind.MISTRAL),
    "deepseek": ("deepseek", ProviderKind.DEEPSEEK),
    "xai": ("xai", ProviderKind.XAI),
    "together_ai": ("together", ProviderKind.TOGETHER),
    "groq": ("groq", ProviderKind.GROQ),
    "fireworks_ai": ("fireworks", ProviderKind.FIREWORKS),
    "cohere_chat": ("cohere", ProviderKind.COHERE),
}
# Family markers in a model name -> tokenizer, checked in order; OpenAI's older models use cl100k.
_TOKENIZER_MARKERS = (
    ("claude", Tokenizer.CLAUDE),
    ("gemini", Tokenizer.GEMINI),
    ("llama", Tokenizer.LLAMA),
    ("mistral", Tokenizer.MISTRAL),
    ("mixtral", Tokenizer.MISTRAL),
    ("codestral", Tokenizer.MISTRAL),
    ("deepseek", Tokenizer.DEEPSEEK),
    ("qwen", Tokenizer.QWEN),
    ("grok", Tokenizer.GROK),
    ("command", Tokenizer.COHERE),
    ("gpt-3.5", Tokenizer.CL100K_BASE),
    ("gpt-4-", Tokenizer.CL100K_BASE),
)


def guess_tokenizer(model_name: str) -> str:
    name = model_name.lower()
    if name in {"gpt-4", "gpt-4-32k"}:
        return Tokenizer.CL100K_BASE
    for marker, tokenizer in _TOKENIZER_MARKERS:
        if marker in name and not (marker == "gpt-4-" and name.startswith(("gpt-4-1", "gpt-4-o"))):
            return tokenizer
    return Tokenizer.O200K_BASE


def litellm_model_id(key: str) -> str:
    """LiteLLM keys may carry a provider prefix and capitals (`groq/llama-3.3-70b`); ids may not."""
    slug = re.sub(r"[^a-z0-9._-]+", "-", key.lower()).strip("-._")
    return slug[:100]


def _parse_litellm(data: dict) -> Catalog:
    catalog = Catalog(format="litellm")
    providers: dict[str, ProviderSpec] = {}
    problems: list[str] = []
    for key, raw in data.items():
        if key == "sample_spec" or not isinstance(raw, dict) or raw.get("mode") != "chat":
            catalog.skipped += 1
            continue
        if raw.get("input_cost_per_token") is None or raw.get("output_cost_per_token") is None:
            catalog.skipped += 1
            continue
        litellm_provider = str(raw.get("litellm_provider") or "other")
        name, kind = LITELLM_PROVIDERS.get(
            litellm_provider, (litellm_model_id(litellm_provider), ProviderKind.OTHER)
        )
        providers.setdefault(name, ProviderSpec(name=name, display_name=name, kind=kind))
        where = f"{key!r}"
        try:
            context = _positive_int(
                raw.get("max_input_tokens") or raw.get("max_tokens"), f"{where}.max_input_tokens"
            )
            output = _positive_int(raw.get("max_output_tokens") or raw.get("max_tokens") or context, where)
            cached = raw.get("cache_read_input_token_cost")
            catalog.models.append(
                ModelSpec(
                    id=litellm_model_id(key),
                    provider=name,
                    provider_model_name=key.split("/", 1)[1] if "/" in key else key,
                    display_name=key,
                    tokenizer=guess_tokenizer(key),
                    context_window=context,
                    max_output_tokens=min(output, context),
                    input_price_per_million=_per_million(
                        raw["input_cost_per_token"], f"{where}.input_cost_per_token"
                    ),
                    output_price_per_million=_per_million(
                        raw["output_cost_per_token"], f"{where}.output_cost_per_token"
                    ),
                    cached_input_price_per_million=(
                        None
                        if cached is None
                        else _per_million(cached, f"{where}.cache_read_input_token_cost")
                    ),
                    supports_tools=bool(raw.get("supports_function_calling", False)),
                    supports_vision=bool(raw.get("supports_vision", False)),
                    supports_json_mode=bool(raw.get("supports_response_schema", False)),
                    source_url=str(raw.get("source") or "") or None,
                )
            )
        except (CatalogError, TypeError) as exc:
            problems.append(_problem(where, exc))
    catalog.providers = list(providers.values())
    problems.extend(_check_models(catalog.models))
    if problems:
        raise CatalogError(f"The LiteLLM file has {len(problems)} problem(s).", problems)
    return catalog


# --- field readers ----------------------------------------------------------------------------------


def _check_models(models: Iterable[ModelSpec]) -> list[str]:
    models = list(models)
    problems = []
    seen: set[str] = set()
    for spec in models:
        if spec.id in seen:
            problems.append(f"{spec.id}: listed twice.")
        seen.add(spec.id)
        if spec.max_output_tokens > spec.context_window:
            problems.append(f"{spec.id}: maxOutputTokens is larger than contextWindow.")
    for spec in models:
        for fallback in spec.fallbacks or ():
            if fallback == spec.id:
                problems.append(f"{spec.id}: a model cannot be its own fallback.")
            elif fallback not in seen:
                problems.append(f"{spec.id}: fallback {fallback!r} is not in the catalog.")
    return problems


def _problem(where: str, exc: Exception) -> str:
    """CatalogErrors already say where they are; other errors get the entry's position."""
    if isinstance(exc, CatalogError):
        return str(exc)
    if isinstance(exc, KeyError):
        return f"{where}: missing field {exc.args[0]!r}."
    return f"{where}: {exc}"


def _slug(raw: dict, key: str, where: str) -> str:
    value = raw[key]
    if not isinstance(value, str) or not _SLUG.match(value) or len(value) > 100:
        raise CatalogError(f"{where}: {key} {value!r} must be lowercase letters, digits, '.', '_' or '-'.")
    return value


def _choice(value: Any, allowed: Iterable[str], where: str) -> str:
    allowed = list(allowed)
    if value not in allowed:
        raise CatalogError(f"{where}: {value!r} is not one of {', '.join(allowed)}.")
    return value


def _score(value: Any, where: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value <= 100:
        raise CatalogError(f"{where}: must be a whole number from 0 to 100.")
    return value


def _positive_int(value: Any, where: str) -> int:
    if isinstance(value, Decimal) and value == value.to_integral_value():
        value = int(value)
    if isinstance(value, bool) or not isinstance(value, int) or value <= 0:
        raise CatalogError(f"{where}: must be a positive whole number.")
    return value


def _number(value: Any, where: str) -> Decimal:
    if isinstance(value, bool) or not isinstance(value, int | Decimal | str):
        raise CatalogError(f"{where}: must be a number.")
    try:
        amount = Decimal(value)
    except InvalidOperation as exc:
        raise CatalogError(f"{where}: {value!r} is not a number.") from exc
    if not amount.is_finite() or amount < 0:
        raise CatalogError(f"{where}: must be zero or more.")
    return amount


def _price(value: Any, where: str, *, optional: bool = False) -> Decimal | None:
    if value is None and optional:
        return None
    amount = _number(value, where)
    if amount != amount.quantize(Decimal(1).scaleb(-MONEY_DECIMAL_PLACES)):
        raise CatalogError(f"{where}: more than {MONEY_DECIMAL_PLACES} decimal places.")
    return amount


def _per_million(value: Any, where: str) -> Decimal:
    """LiteLLM prices are per token (2.5e-06); ours are per 1M tokens and must fit 9 decimals."""
    return _price(_number(value, where) * MILLION, where)
