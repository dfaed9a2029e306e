"""Estimates section: latency of one cost estimate for a request on its model plus 10 alternatives.

`selection.estimates.estimate_request` is called in-process, as the API view calls it, for a team
API key whose chain has an organization and a team budget, with the shipped catalog loaded. Two cases:

- unseen prompt: content made unique per call, so every tokenizer family counts from scratch;
- repeated prompt: the same request again, so token counts come from the cache (Redis under
  `make bench`) and only the budget reads and arithmetic remain.

The SQL queries one estimate runs are listed too. Django is imported inside the functions.
"""

import time
import uuid

from bench.stats import format_table, latency_summary

ALTERNATIVES = 10
PROMPT = (
    "You are reviewing last month's LLM invoices for the platform team. For each line, say whether the "
    "model was a sensible choice for the task, suggest a cheaper model where quality would hold, and "
    "estimate the saving. Lines: support chat 1.2M tokens on a flagship model; nightly summaries 300k "
    "tokens; code review bot 800k tokens; a translation batch of 2M tokens. "
)


def add_arguments(parser) -> None:
    group = parser.add_argument_group("estimates section")
    group.add_argument(
        "--estimate-iterations", type=int, default=300, help="timed estimates per case (default 300)"
    )


def run(args) -> dict:
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    from selection.estimates import ChatRequest, estimate_request

    principal, model_ids = _setup()
    requested, alternatives = model_ids[0], model_ids[1:]

    def request(content: str) -> ChatRequest:
        messages = [
            {"role": "system", "content": "You are a careful FinOps analyst."},
            {"role": "user", "content": content},
        ]
        return ChatRequest(messages=messages, model=requested, max_tokens=800)

    def timed(make_content) -> list[float]:
        for _ in range(20):  # warm-up: encodings loaded, connections open
            estimate_request(principal=principal, request=request(make_content()), alternatives=alternatives)
        samples = []
        for _ in range(args.estimate_iterations):
            chat = request(make_content())
            started = time.perf_counter()
            estimate_request(principal=principal, request=chat, alternatives=alternatives)
            samples.append(time.perf_counter() - started)
        return samples

    cases = {
        "unseen prompt": timed(lambda: f"{uuid.uuid4().hex} {PROMPT}"),
        "repeated prompt": timed(lambda: PROMPT),
    }
    with CaptureQueriesContext(connection) as queries:
        estimate_request(principal=principal, request=request(PROMPT), alternatives=alternatives)
    tokenizers = sorted({model.tokenizer for model in _models(model_ids)})
    return {
        "description": f"estimate_request on 1 model + {ALTERNATIVES} alternatives, in-process, team API key "
        "with org + team budgets, shipped catalog",
        "config": {
            "iterations": args.estimate_iterations,
            "models": model_ids,
            "tokenizers": tokenizers,
            "max_tokens": 800,
        },
        "latency_ms": {name: latency_summary(samples) for name, samples in cases.items()},
        "queries_per_estimate": len(queries.captured_queries),
        "queries": [query["sql"][:160] for query in queries.captured_queries],
    }


def render(result: dict) -> str:
    rows = [
        [name, summary["p50"], summary["p99"], summary["max"]]
        for name, summary in result["latency_ms"].items()
    ]
    table = format_table(["case", "p50 ms", "p99 ms", "max ms"], rows)
    config = result["config"]
    return (
        f"{table}\n{len(config['models'])} models, tokenizers {', '.join(config['tokenizers'])}; "
        f"{result['queries_per_estimate']} SQL queries per estimate"
    )


def _models(model_ids):
    from models_registry.models import ModelProfile

    return ModelProfile.objects.filter(pk__in=model_ids)


def _setup():
    """The shipped catalog (imported when missing) and a fresh organization with a team key."""
    from datetime import timedelta
    from decimal import Decimal

    from django.utils import timezone

    from budgets.choices import ScopeType
    from budgets.models import Organization, Team
    from budgets.principals import Principal, principal_for_api_key
    from budgets.services.budgets import budget_create
    from budgets.services.keys import api_key_create
    from models_registry.catalog import DEFAULT_CATALOG, load_catalog
    from models_registry.choices import PriceSource
    from models_registry.models import ModelProfile
    from models_registry.services import catalog_import

    catalog_import(catalog=load_catalog(DEFAULT_CATALOG), source=PriceSource.CATALOG, source_detail="bench")
    tag = f"estimates-{time.time_ns()}"
    organization = Organization.objects.create(name=f"Bench {tag}", slug=f"bench-{tag}")
    team = Team.objects.create(organization=organization, name="team", slug="team")
    admin = Principal(organization=organization, org_wide=True)
    for scope_type, scope_id in [(ScopeType.ORGANIZATION, organization.pk), (ScopeType.TEAM, team.pk)]:
        budget_create(
            principal=admin,
            name=scope_type,
            scope_type=scope_type,
            scope_id=scope_id,
            limit=Decimal("100000"),
            starts_at=timezone.now() - timedelta(hours=1),
        )
    api_key, _ = api_key_create(organization=organization, name="bench", team=team)
    # Spread over tokenizer families, like a real comparison across providers.
    models = list(ModelProfile.objects.usable().order_by("provider__name", "id"))
    by_tokenizer: dict[str, list[str]] = {}
    for model in models:
        by_tokenizer.setdefault(model.tokenizer, []).append(model.pk)
    chosen: list[str] = []
    while len(chosen) < ALTERNATIVES + 1 and any(by_tokenizer.values()):
        for ids in by_tokenizer.values():
            if ids and len(chosen) < ALTERNATIVES + 1:
                chosen.append(ids.pop(0))
    return principal_for_api_key(api_key), chosen
