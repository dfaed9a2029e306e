"""Provider exports read into lines: the documented OpenAI and Anthropic shapes, CSV and JSON."""

from decimal import Decimal
from pathlib import Path

import pytest

from analytics.reconciliation.formats import parse_export
from costswitch.errors import ValidationFailed
from tests.analytics.factories import AUG_1, AUG_2

EXPORTS = Path(__file__).resolve().parents[2] / "data" / "usage_exports"


def read(name: str) -> bytes:
    return (EXPORTS / name).read_bytes()


def test_it_reads_the_openai_completions_usage_buckets():
    parsed = parse_export(provider="openai", content=read("openai_completions_usage.json"))

    assert parsed.format == "openai_usage"
    assert parsed.errors == []
    first, mini, second = parsed.lines
    assert (first.model, first.starts_at, first.ends_at) == ("gpt-4o-2024-08-06", AUG_1, AUG_2)
    assert (first.input_tokens, first.cached_input_tokens, first.output_tokens) == (
        1_000_000,
        200_000,
        100_000,
    )
    assert first.requests == 40 and first.cost is None
    assert first.accounts == {"proj_alpha"}
    assert mini.model == "gpt-4o-mini-2024-07-18"
    assert second.starts_at == AUG_2


def test_the_csv_export_reads_like_the_json_one():
    from_csv = parse_export(provider="openai", content=read("openai_usage.csv"), format="csv")
    from_json = parse_export(provider="openai", content=read("openai_completions_usage.json"))

    assert from_csv.format == "csv"
    assert from_csv.lines == from_json.lines


def test_openai_cost_line_items_of_one_model_merge_into_one_line():
    parsed = parse_export(provider="openai", content=read("openai_costs.json"))

    assert parsed.format == "openai_costs"
    assert [(line.model, line.cost) for line in parsed.lines] == [
        ("gpt-4o-2024-08-06", Decimal("3.25")),
        ("gpt-4o-mini-2024-07-18", Decimal("0.105")),
    ]
    assert parsed.lines[0].tokens is None


def test_anthropic_usage_counts_cache_writes_and_reads_as_input():
    parsed = parse_export(provider="anthropic", content=read("anthropic_messages_usage.json"))

    assert parsed.format == "anthropic_usage"
    (line,) = parsed.lines
    assert line.model == "claude-sonnet-4-20250514"
    assert (line.input_tokens, line.cached_input_tokens, line.output_tokens) == (1_000_000, 300_000, 80_000)
    assert line.accounts == {"apikey_01Alpha", "wrkspc_01Alpha"}


def test_anthropic_cost_amounts_are_cents_and_non_token_costs_are_reported_not_used():
    parsed = parse_export(provider="anthropic", content=read("anthropic_cost_report.json"))

    assert parsed.format == "anthropic_costs"
    (line,) = parsed.lines
    assert line.cost == Decimal("3.30")
    assert parsed.errors == [{"line": 2, "error": "web_search costs have no model and are not reconciled."}]


def test_costswitch_lines_take_a_request_id_or_a_moment():
    parsed = parse_export(
        provider="other",
        content={
            "items": [
                {
                    "request_id": "r-1",
                    "model": "gpt-4o",
                    "cost": Decimal("0.5"),
                    "occurred_at": "2025-08-01T10:00:00Z",
                },
                {
                    "model": "gpt-4o",
                    "input_tokens": 10,
                    "output_tokens": 5,
                    "occurred_at": "2025-08-01T10:00:00Z",
                },
                {
                    "model": "gpt-4o",
                    "input_tokens": 10,
                    "output_tokens": 5,
                    "occurred_at": "2025-08-01T10:00:00Z",
                },
            ]
        },
    )

    assert parsed.format == "lines"
    request, point, twin = parsed.lines
    assert request.request_id == "r-1" and request.cost == Decimal("0.5")
    # Two alike requests at the same moment stay two lines.
    assert point.is_point and twin.is_point and point.key != twin.key


@pytest.mark.parametrize(
    ("content", "message"),
    [
        ("{not json", "not valid JSON"),
        ({"object": "page"}, "Not a usage export"),
        ({"data": [{"start_time": 1}]}, "results"),
        ("a,b\n1,2\n", "`model` column"),
        (b"\xff\xfe\x00", "not UTF-8"),
    ],
)
def test_a_file_that_is_not_an_export_is_refused(content, message):
    with pytest.raises(ValidationFailed) as refused:
        parse_export(provider="openai", content=content)
    assert message in refused.value.message


def test_bad_lines_are_listed_with_the_reason_and_the_rest_is_used():
    parsed = parse_export(
        provider="other",
        content=[
            {"model": "gpt-4o", "cost": "0.1", "occurred_at": "2025-08-01T10:00:00Z"},
            {"model": "gpt-4o", "cost": "0.1"},
            {"model": "gpt-4o", "cost": "lots", "occurred_at": "2025-08-01T10:00:00Z"},
            {"model": "gpt-4o", "input_tokens": -3, "occurred_at": "2025-08-01T10:00:00Z"},
            {"model": "gpt-4o", "cost": "1", "currency": "EUR", "occurred_at": "2025-08-01T10:00:00Z"},
            {"model": "gpt-4o", "cost": "1", "occurred_at": "2025-08-01 10:00"},
        ],
    )

    assert len(parsed.lines) == 1
    assert [error["line"] for error in parsed.errors] == [1, 2, 3, 4, 5]
    assert "no time" in parsed.errors[0]["error"]
    assert "EUR" in parsed.errors[3]["error"]


def test_unknown_provider_and_format_are_refused():
    with pytest.raises(ValidationFailed, match="provider"):
        parse_export(provider="acme-ai", content=[])
    with pytest.raises(ValidationFailed, match="format"):
        parse_export(provider="openai", content=[], format="xml")
