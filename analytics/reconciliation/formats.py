"""Provider usage exports, read into one shape: `ExternalLine`.

Recognized shapes (README "Reconciliation" documents them with examples):

- OpenAI usage API, completions (`GET /v1/organization/usage/completions`, grouped by model): pages
  of buckets (`start_time`/`end_time`, Unix seconds) whose results carry `model`, `input_tokens`
  (cached included), `input_cached_tokens`, `output_tokens`, `num_model_requests`, `project_id`,
  `api_key_id`. No money: each line is priced from the model registry.
- OpenAI costs API (`GET /v1/organization/costs`, grouped by line item): results with
  `amount.value` (USD) and `line_item` ("gpt-4o-2024-08-06, input"), `project_id`.
- Anthropic messages usage report (`/v1/organizations/usage_report/messages`, grouped by model):
  buckets (`starting_at`/`ending_at`, RFC 3339) with `uncached_input_tokens`,
  `cache_creation.ephemeral_*_input_tokens`, `cache_read_input_tokens`, `output_tokens`,
  `api_key_id`, `workspace_id`. Priced from the model registry.
- Anthropic cost report (`/v1/organizations/cost_report`, grouped by description): results with
  `amount` in cents as a decimal string, `model`, `cost_type`, `token_type`, `workspace_id`.
- CSV (the dashboards' exports, one row per bucket or per request): a header row naming columns
  like the JSON fields above (`start_time`/`start_time_iso`, `end_time`, `model`, `input_tokens`,
  `output_tokens`, `input_cached_tokens`, `num_model_requests`, `project_id`, `api_key_id`;
  Anthropic's `uncached_input_tokens`, `cache_read_input_tokens`...), plus optional `request_id`,
  `cost` (USD) and `occurred_at` (one request at one moment).
- costswitch lines (any provider; the cost-data webhook's `items`): `[{"requestId", "model",
  "inputTokens", "outputTokens", "cachedInputTokens", "cost", "occurredAt" or "startTime" +
  "endTime", "account"}]`.

Lines without a request id that share a time window and a model are merged into one (a costs
export lists input and output separately), so matching compares like with like.
"""

import csv
import hashlib
import io
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from decimal import Decimal, InvalidOperation
from typing import Any

from django.utils.dateparse import parse_datetime

from analytics.models import ExportProvider
from costswitch.api.parsers import parse_json
from costswitch.errors import ValidationFailed

MAX_LINES = 50_000
CENTS = Decimal(100)


@dataclass(frozen=True)
class ExternalLine:
    """One provider line: usage of `model` in [starts_at, ends_at) (equal for one request at one
    moment), or one request by id. `cost` is None when the export has no money (usage exports)."""

    key: str
    model: str
    starts_at: datetime
    ends_at: datetime
    request_id: str = ""
    input_tokens: int | None = None
    output_tokens: int | None = None
    cached_input_tokens: int = 0
    requests: int | None = None
    cost: Decimal | None = None
    accounts: frozenset[str] = field(default_factory=frozenset)

    @property
    def tokens(self) -> int | None:
        if self.input_tokens is None and self.output_tokens is None:
            return None
        return (self.input_tokens or 0) + (self.output_tokens or 0)

    @property
    def is_point(self) -> bool:
        """One request at one moment, without a request id: matched by model, time and tokens."""
        return not self.request_id and self.starts_at == self.ends_at


@dataclass
class ParsedExport:
    format: str
    lines: list[ExternalLine]
    errors: list[dict]


class _LineError(ValueError):
    pass


def parse_export(*, provider: str, content: Any, format: str = "") -> ParsedExport:
    """Read an export (bytes or str of CSV or JSON, or already-parsed JSON) into lines. A line that
    cannot be used is listed in `errors` with its index and the reason; a file that is not an export
    at all is a ValidationFailed."""
    if provider not in ExportProvider.values:
        raise ValidationFailed(
            f"provider must be one of {', '.join(ExportProvider.values)}.", code="unknown_provider"
        )
    if format not in ("", "csv", "json"):
        raise ValidationFailed("format must be csv or json.", code="unknown_format")
    if isinstance(content, bytes):
        try:
            content = content.decode("utf-8-sig")
        except UnicodeDecodeError:
            raise ValidationFailed("The export is not UTF-8 text.", code="parse_error") from None
    if isinstance(content, str):
        text = content.strip()
        if format == "csv" or (not format and text[:1] not in ("{", "[")):
            return _merged(provider, "csv", *_read_rows(_csv_rows(text), provider))
        try:
            content = parse_json(text.encode())
        except Exception as exc:
            raise ValidationFailed(f"The export is not valid JSON: {exc}", code="parse_error") from None
    elif format == "csv":
        raise ValidationFailed("A CSV export must be sent as text or a file.", code="parse_error")
    shape, rows = _json_rows(content)
    return _merged(provider, shape, *_read_rows(rows, provider))


def _csv_rows(text: str) -> list[dict]:
    reader = csv.DictReader(io.StringIO(text))
    if not reader.fieldnames or "model" not in [name.strip() for name in reader.fieldnames]:
        raise ValidationFailed("The CSV export needs a header row with a `model` column.", code="parse_error")
    rows = []
    for row in reader:
        rows.append({(k or "").strip(): (v.strip() if isinstance(v, str) else v) for k, v in row.items()})
        if len(rows) > MAX_LINES:
            raise ValidationFailed(f"An export may hold at most {MAX_LINES} lines.", code="too_many_lines")
    return rows


def _json_rows(data: Any) -> tuple[str, list[dict]]:
    """Flatten bucketed exports into rows carrying their bucket's window."""
    if isinstance(data, dict) and isinstance(data.get("items"), list):
        data = data["items"]
    if isinstance(data, list):
        return "lines", _checked(data)
    if not isinstance(data, dict) or not isinstance(data.get("data"), list):
        raise ValidationFailed(
            'Not a usage export: expected a provider report ({"data": [buckets]}) or a list of lines.',
            code="parse_error",
        )
    rows = []
    shape = ""
    for bucket in data["data"]:
        if not isinstance(bucket, dict) or not isinstance(bucket.get("results"), list):
            raise ValidationFailed("Every bucket of `data` needs a `results` list.", code="parse_error")
        window = {
            "start_time": bucket.get("start_time", bucket.get("starting_at")),
            "end_time": bucket.get("end_time", bucket.get("ending_at")),
        }
        for result in _checked(bucket["results"]):
            rows.append({**result, **window})
            shape = shape or _shape_of(result)
        if len(rows) > MAX_LINES:
            raise ValidationFailed(f"An export may hold at most {MAX_LINES} lines.", code="too_many_lines")
    return shape or "empty", rows


def _checked(rows: list) -> list[dict]:
    if len(rows) > MAX_LINES:
        raise ValidationFailed(f"An export may hold at most {MAX_LINES} lines.", code="too_many_lines")
    if not all(isinstance(row, dict) for row in rows):
        raise ValidationFailed("Every line of the export must be a JSON object.", code="parse_error")
    return rows


def _shape_of(result: dict) -> str:
    if "uncached_input_tokens" in result:
        return "anthropic_usage"
    if result.get("object") == "organization.costs.result" or isinstance(result.get("amount"), dict):
        return "openai_costs"
    if "amount" in result:
        return "anthropic_costs"
    return "openai_usage"


def _read_rows(rows: list[dict], provider: str) -> tuple[list[ExternalLine], list[dict]]:
    lines, errors = [], []
    for index, row in enumerate(rows):
        try:
            line = _line(row, provider)
        except _LineError as exc:
            errors.append({"line": index, "error": str(exc)})
            continue
        if line is not None:
            lines.append(line)
    return lines, errors


def _line(row: dict, provider: str) -> ExternalLine | None:
    """One row of any shape -> an ExternalLine (None: a row that carries nothing to reconcile)."""
    request_id = _text(row, "request_id")
    model = _text(row, "model")
    line_item = _text(row, "line_item")
    if not model and line_item:
        model = line_item.split(",")[0].strip()  # OpenAI costs: "gpt-4o-2024-08-06, input"
    cost = _cost(row)
    if not model:
        if cost is not None and cost == 0:
            return None
        if _text(row, "cost_type") not in ("", "tokens"):
            raise _LineError(f"{row.get('cost_type')} costs have no model and are not reconciled.")
        raise _LineError("The line names no model (export it grouped by model or line item).")
    occurred_at = _moment(row, "occurred_at")
    starts_at = occurred_at or _moment(row, "start_time", "start_time_iso", "starting_at")
    ends_at = occurred_at or _moment(row, "end_time", "end_time_iso", "ending_at")
    if starts_at is None or ends_at is None:
        raise _LineError("The line has no time: give occurredAt, or start and end times.")
    if ends_at < starts_at:
        raise _LineError("The line ends before it starts.")
    cache_read = _int(row, "cache_read_input_tokens")
    if "uncached_input_tokens" in row:
        creation = row.get("cache_creation") or {}
        if not isinstance(creation, dict):
            raise _LineError("cache_creation must be an object.")
        written = sum(_int(creation, name) or 0 for name in creation)
        input_tokens = (_int(row, "uncached_input_tokens") or 0) + written + (cache_read or 0)
        cached = cache_read or 0
    else:
        input_tokens = _int(row, "input_tokens")
        cached = _int(row, "input_cached_tokens", "cached_input_tokens") or 0
    output_tokens = _int(row, "output_tokens")
    if input_tokens is not None and cached > input_tokens:
        raise _LineError("Cached input tokens exceed the input tokens.")
    accounts = frozenset(
        value
        for value in (_text(row, name) for name in ("project_id", "api_key_id", "workspace_id", "account"))
        if value
    )
    if request_id:
        key = f"request:{request_id}"
    elif starts_at == ends_at:
        key = f"point:{starts_at.isoformat()}|{model}|{input_tokens}|{output_tokens}"
    else:
        key = f"window:{starts_at.isoformat()}|{ends_at.isoformat()}|{model}"
    return ExternalLine(
        key=key,
        model=model,
        starts_at=starts_at,
        ends_at=ends_at,
        request_id=request_id,
        input_tokens=input_tokens,
        output_tokens=output_tokens,
        cached_input_tokens=cached,
        requests=_int(row, "num_model_requests", "requests"),
        cost=cost,
        accounts=accounts,
    )


def _merged(provider: str, shape: str, lines: list[ExternalLine], errors: list[dict]) -> ParsedExport:
    """Merge lines with the same key (same window and model, or the same request id twice)."""
    merged: dict[str, ExternalLine] = {}
    for line in lines:
        earlier = merged.get(line.key)
        if earlier is not None and line.is_point:
            # Two requests alike at the same moment are two requests, not one to merge.
            n = 2
            while f"{line.key}#{n}" in merged:
                n += 1
            line = replace(line, key=f"{line.key}#{n}")
            earlier = None
        if earlier is None:
            merged[line.key] = line
            continue
        if line.request_id:
            if line != earlier:
                errors.append(
                    {"line": line.key, "error": "The same request id appears twice with other values."}
                )
            continue
        merged[line.key] = replace(
            earlier,
            input_tokens=_add(earlier.input_tokens, line.input_tokens),
            output_tokens=_add(earlier.output_tokens, line.output_tokens),
            cached_input_tokens=earlier.cached_input_tokens + line.cached_input_tokens,
            requests=_add(earlier.requests, line.requests),
            cost=_add(earlier.cost, line.cost),
            accounts=earlier.accounts | line.accounts,
        )
    return ParsedExport(format=shape, lines=list(merged.values()), errors=errors)


def line_fingerprint(*parts: object) -> str:
    """A stable id for a comparison (what was compared and both amounts)."""
    return hashlib.sha256("\x1f".join(str(part) for part in parts).encode()).hexdigest()


def _add(a, b):
    if a is None:
        return b
    if b is None:
        return a
    return a + b


def _text(row: dict, name: str) -> str:
    value = row.get(name)
    if value is None:
        return ""
    if not isinstance(value, str | int):
        raise _LineError(f"{name} must be text.")
    return str(value).strip()[:200]


def _int(row: dict, *names: str) -> int | None:
    for name in names:
        value = row.get(name)
        if value is None or value == "":
            continue
        try:
            number = Decimal(str(value))
        except InvalidOperation:
            raise _LineError(f"{name} must be a whole number, not {value!r}.") from None
        if number != number.to_integral_value() or number < 0 or number > 10**12:
            raise _LineError(f"{name} must be a whole number of at least 0, not {value!r}.")
        return int(number)
    return None


def _cost(row: dict) -> Decimal | None:
    """USD. OpenAI costs: amount.value in dollars; Anthropic cost report: amount in cents."""
    amount = row.get("amount")
    if isinstance(amount, dict):
        currency, raw, scale = amount.get("currency"), amount.get("value"), Decimal(1)
    elif amount is not None:
        currency, raw, scale = row.get("currency"), amount, CENTS
    else:
        currency, raw, scale = row.get("currency"), row.get("cost"), Decimal(1)
    if raw is None or raw == "":
        return None
    if currency and str(currency).upper() != "USD":
        raise _LineError(f"Only USD amounts are reconciled, not {currency}.")
    try:
        value = Decimal(str(raw)) / scale
    except InvalidOperation:
        raise _LineError(f"The amount {raw!r} is not a number.") from None
    if not value.is_finite() or abs(value) > Decimal(10) ** 10:
        raise _LineError(f"The amount {raw!r} is out of range.")
    return value


def _moment(row: dict, *names: str) -> datetime | None:
    for name in names:
        value = row.get(name)
        if value is None or value == "":
            continue
        if isinstance(value, int | Decimal) or (isinstance(value, str) and value.isdigit()):
            try:
                return datetime.fromtimestamp(int(value), tz=UTC)
            except (ValueError, OverflowError, OSError):
                raise _LineError(f"{name} is not a valid Unix time.") from None
        if isinstance(value, str):
            try:
                moment = parse_datetime(value)
            except ValueError:
                moment = None
            if moment is None or moment.tzinfo is None:
                raise _LineError(f"{name} must be an RFC 3339 time with an offset, not {value!r}.")
            return moment
        raise _LineError(f"{name} must be a time.")
    return None
