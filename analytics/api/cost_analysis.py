"""`/api/v1/cost-analysis/...`: spend summaries, breakdowns, trends, forecasts, savings and
recommendations, as JSON or CSV (`?format=csv` or `Accept: text/csv`).

Query parameters are validated (unknown ones are refused, so a typo never passes as a default):
`since`/`until` (ISO 8601; default the last 30 days), `scope` (`organization`, `team:<id>`,
`user:<id>`), `groupBy`, `interval` (`day`, `week`, `month`). Every figure is limited to what the
caller may see; a scope outside it is 404.
"""

import csv
import io
from datetime import date, datetime, timedelta
from decimal import Decimal

from django.conf import settings
from django.urls import path
from django.utils import timezone
from djangorestframework_camel_case.util import camelize
from drf_spectacular.utils import OpenApiResponse, extend_schema
from rest_framework import renderers, serializers
from rest_framework.response import Response
from rest_framework.views import APIView

from analytics.forecast import forecasts_for_principal
from analytics.recommendations import recommendations_for_principal
from analytics.savings import SAVINGS_GROUPS, savings_report
from analytics.spend import GROUP_FIELDS, INTERVALS, SpendQuery, spend_breakdown, spend_summary, spend_trend
from budgets.choices import ScopeType
from budgets.principals import principal_from_request
from costswitch.api.renderers import CamelCaseDecimalJSONRenderer
from costswitch.api.serializers import StrictFieldsMixin, validated
from costswitch.money import display_decimal

DEFAULT_RANGE = timedelta(days=30)
SCOPE_PATTERN = r"^(organization(:\d+)?|team:\d+|user:\d+)$"


class CSVRenderer(renderers.BaseRenderer):
    """Rows as CSV: the `results` list of a response, or the response itself as one row. Nested
    objects become dotted columns (`downgraded.successRate`), lists are joined with `;`."""

    media_type = "text/csv"
    format = "csv"
    charset = "utf-8"

    def render(self, data, accepted_media_type=None, renderer_context=None):
        if data is None:
            return b""
        rows = data.get("results", [data]) if isinstance(data, dict) else data
        flat = [_flatten(camelize(row)) for row in rows]
        columns: list[str] = []
        for row in flat:
            columns.extend(key for key in row if key not in columns)
        buffer = io.StringIO()
        writer = csv.DictWriter(buffer, fieldnames=columns, lineterminator="\n")
        writer.writeheader()
        writer.writerows(flat)
        return buffer.getvalue().encode()


def _cell(value):
    if isinstance(value, Decimal):
        return str(display_decimal(value))
    if isinstance(value, datetime | date):
        return value.isoformat()
    if value is None:
        return ""
    return value


def _flatten(row: dict, prefix: str = "") -> dict:
    flat = {}
    for key, value in row.items():
        name = f"{prefix}{key}"
        if isinstance(value, dict):
            flat.update(_flatten(value, f"{name}."))
        elif isinstance(value, list):
            flat[name] = ";".join(str(_cell(item)) for item in value)
        else:
            flat[name] = _cell(value)
    return flat


# --- Input ----------------------------------------------------------------------------------------


class RangeQuerySerializer(StrictFieldsMixin, serializers.Serializer):
    since = serializers.DateTimeField(required=False, help_text="Start (inclusive); default 30 days ago.")
    until = serializers.DateTimeField(required=False, help_text="End (exclusive); default now.")
    scope = serializers.RegexField(
        SCOPE_PATTERN,
        required=False,
        help_text="`organization`, `team:<id>` or `user:<id>`; default everything the caller can see.",
    )
    format = serializers.ChoiceField(choices=["json", "csv"], required=False, help_text="Answer as CSV.")

    def validate(self, attrs):
        now = timezone.now()
        attrs.setdefault("until", now)
        attrs.setdefault("since", attrs["until"] - DEFAULT_RANGE)
        if attrs["since"] >= attrs["until"]:
            raise serializers.ValidationError({"since": ["Must be before until."]})
        return attrs


class GroupQuerySerializer(RangeQuerySerializer):
    groupBy = serializers.ChoiceField(choices=list(GROUP_FIELDS), required=False, default="team")


class TrendQuerySerializer(RangeQuerySerializer):
    interval = serializers.ChoiceField(choices=list(INTERVALS), required=False, default="day")


class SavingsQuerySerializer(RangeQuerySerializer):
    interval = serializers.ChoiceField(choices=list(INTERVALS), required=False, default="month")
    groupBy = serializers.ChoiceField(choices=list(SAVINGS_GROUPS), required=False)


class ForecastQuerySerializer(StrictFieldsMixin, serializers.Serializer):
    scope = serializers.RegexField(SCOPE_PATTERN, required=False, help_text="Only this scope's budgets.")
    budget = serializers.IntegerField(required=False, min_value=1, help_text="Only this budget.")
    format = serializers.ChoiceField(choices=["json", "csv"], required=False)


class RecommendationsQuerySerializer(StrictFieldsMixin, serializers.Serializer):
    format = serializers.ChoiceField(choices=["json", "csv"], required=False)


# --- Output (documentation of the shapes) --------------------------------------------------------

MONEY = {"max_digits": 30, "decimal_places": 9}


class FiguresSerializer(serializers.Serializer):
    requests = serializers.IntegerField()
    successes = serializers.IntegerField()
    failures = serializers.IntegerField()
    input_tokens = serializers.IntegerField()
    output_tokens = serializers.IntegerField()
    cost = serializers.DecimalField(**MONEY)
    average_cost_per_request = serializers.DecimalField(**MONEY, allow_null=True)
    cost_per_successful_request = serializers.DecimalField(
        **MONEY, allow_null=True, help_text="All spend divided by the successful requests."
    )


class RangeSerializer(serializers.Serializer):
    since = serializers.DateTimeField()
    until = serializers.DateTimeField()
    scope = serializers.CharField(allow_null=True)
    currency = serializers.CharField()


class SummarySerializer(RangeSerializer, FiguresSerializer):
    pass


class BreakdownRowSerializer(FiguresSerializer):
    key = serializers.CharField(allow_null=True, help_text="Model id, provider, team id, tag...")
    label = serializers.CharField(allow_null=True)


class BreakdownSerializer(RangeSerializer):
    group_by = serializers.CharField()
    results = BreakdownRowSerializer(many=True)


class TrendPointSerializer(FiguresSerializer):
    period_start = serializers.DateField()
    starts_at = serializers.DateTimeField()


class TrendSerializer(RangeSerializer):
    interval = serializers.CharField()
    time_zone = serializers.CharField()
    results = TrendPointSerializer(many=True)


class ForecastItemSerializer(serializers.Serializer):
    budget_id = serializers.IntegerField()
    budget_name = serializers.CharField()
    scope_type = serializers.CharField()
    scope_id = serializers.IntegerField()
    scope_name = serializers.CharField()
    currency = serializers.CharField()
    in_force = serializers.BooleanField()
    period_start = serializers.DateTimeField(allow_null=True)
    period_end = serializers.DateTimeField(allow_null=True)
    spent = serializers.DecimalField(**MONEY)
    reserved = serializers.DecimalField(**MONEY)
    limit = serializers.DecimalField(**MONEY)
    burn_rate = serializers.DecimalField(**MONEY, help_text="Flat burn rate of budget status.")
    method = serializers.CharField(required=False, help_text="weekday_seasonal or flat.")
    observed_days = serializers.IntegerField(required=False)
    daily_mean = serializers.DecimalField(**MONEY, required=False)
    weekday_expected = serializers.ListField(child=serializers.DecimalField(**MONEY), required=False)
    projected_total = serializers.DecimalField(**MONEY, required=False)
    projected_low = serializers.DecimalField(**MONEY, required=False)
    projected_high = serializers.DecimalField(**MONEY, required=False)
    interval_confidence = serializers.IntegerField(required=False)
    will_exceed = serializers.BooleanField(required=False)
    limit_reached_on = serializers.DateField(allow_null=True, required=False)
    limit_reached_earliest = serializers.DateField(allow_null=True, required=False)
    limit_reached_latest = serializers.DateField(allow_null=True, required=False)


class ForecastSerializer(serializers.Serializer):
    generated_at = serializers.DateTimeField()
    results = ForecastItemSerializer(many=True)


class SavingsQualitySerializer(serializers.Serializer):
    requests = serializers.IntegerField()
    actual_cost = serializers.DecimalField(**MONEY)
    baseline_cost = serializers.DecimalField(**MONEY)
    savings = serializers.DecimalField(**MONEY)
    judged = serializers.IntegerField()
    successes = serializers.IntegerField()
    success_rate = serializers.DecimalField(max_digits=8, decimal_places=2, allow_null=True)
    mean_rating = serializers.DecimalField(max_digits=4, decimal_places=2, allow_null=True)


class SavingsFiguresSerializer(serializers.Serializer):
    admitted = serializers.IntegerField()
    compared = serializers.IntegerField(help_text="Settled requests whose baseline model has a price.")
    actual_cost = serializers.DecimalField(**MONEY)
    baseline_cost = serializers.DecimalField(**MONEY)
    savings = serializers.DecimalField(**MONEY)
    savings_percent = serializers.DecimalField(max_digits=8, decimal_places=2, allow_null=True)
    downgraded_share = serializers.DecimalField(max_digits=8, decimal_places=2, allow_null=True)
    downgraded = SavingsQualitySerializer()
    not_downgraded = SavingsQualitySerializer()


class SavingsPointSerializer(SavingsFiguresSerializer):
    period_start = serializers.DateField()


class SavingsGroupSerializer(SavingsFiguresSerializer):
    key = serializers.CharField(allow_null=True)
    label = serializers.CharField(allow_null=True)


class EstimatedSavingsSerializer(serializers.Serializer):
    compared = serializers.IntegerField()
    switched = serializers.IntegerField()
    total = serializers.DecimalField(**MONEY)
    average = serializers.DecimalField(**MONEY, allow_null=True)
    percent = serializers.DecimalField(max_digits=8, decimal_places=2, allow_null=True)


class SavingsSerializer(RangeSerializer, SavingsFiguresSerializer):
    interval = serializers.CharField()
    headline = serializers.CharField()
    series = SavingsPointSerializer(many=True)
    groups = SavingsGroupSerializer(many=True, required=False)
    estimated = EstimatedSavingsSerializer(help_text="From reservation-time estimates (the explainer).")
    results = SavingsPointSerializer(many=True, help_text="The rows CSV exports: groups, else the series.")


class QualityImpactSerializer(serializers.Serializer):
    current_score = serializers.IntegerField()
    suggested_score = serializers.IntegerField()
    score_difference = serializers.IntegerField()
    current_success_rate = serializers.DecimalField(max_digits=8, decimal_places=2, allow_null=True)
    suggested_success_rate = serializers.DecimalField(max_digits=8, decimal_places=2, allow_null=True)


class RecommendationSerializer(serializers.Serializer):
    rank = serializers.IntegerField()
    kind = serializers.ChoiceField(choices=["budget_exhaustion", "switch_model"])
    title = serializers.CharField()
    expected_monthly_savings = serializers.DecimalField(**MONEY, allow_null=True)
    quality_impact = QualityImpactSerializer(allow_null=True)
    team_id = serializers.IntegerField(required=False, allow_null=True)
    task_type = serializers.CharField(required=False)
    current_model = serializers.CharField(required=False)
    suggested_model = serializers.CharField(required=False)
    share_percent = serializers.DecimalField(max_digits=8, decimal_places=2, required=False)
    requests = serializers.IntegerField(required=False)
    current_cost = serializers.DecimalField(**MONEY, required=False)
    suggested_cost = serializers.DecimalField(**MONEY, required=False)
    budget_id = serializers.IntegerField(required=False)
    limit_reached_on = serializers.DateField(required=False)
    projected_total = serializers.DecimalField(**MONEY, required=False)
    limit = serializers.DecimalField(**MONEY, required=False)
    projected_overrun = serializers.DecimalField(**MONEY, required=False)


class RecommendationListSerializer(serializers.Serializer):
    generated_at = serializers.DateTimeField()
    results = RecommendationSerializer(many=True)


# --- Views ----------------------------------------------------------------------------------------


def _scope(value: str | None) -> tuple[str | None, int | None]:
    if not value:
        return None, None
    kind, _, ident = value.partition(":")
    return kind, int(ident) if ident else None


class CostAnalysisView(APIView):
    """Shared plumbing: JSON or CSV out, JSON errors whatever format was asked for."""

    renderer_classes = [CamelCaseDecimalJSONRenderer, CSVRenderer]
    query_serializer: type[serializers.Serializer] = RangeQuerySerializer

    def handle_exception(self, exc):
        # An error is always JSON: a CSV client still gets the code and the message.
        self.request.accepted_renderer = CamelCaseDecimalJSONRenderer()
        self.request.accepted_media_type = "application/json"
        return super().handle_exception(exc)

    def params(self, request) -> dict:
        return validated(self.query_serializer, request.query_params.dict())

    def query(self, request, params: dict) -> SpendQuery:
        scope_type, scope_id = _scope(params.get("scope"))
        principal = principal_from_request(request)
        if scope_type == ScopeType.ORGANIZATION and scope_id is None:
            scope_id = principal.organization.pk
        return SpendQuery(
            since=params["since"], until=params["until"], scope_type=scope_type, scope_id=scope_id
        )

    def envelope(self, params: dict) -> dict:
        return {
            "since": params["since"],
            "until": params["until"],
            "scope": params.get("scope"),
            "currency": settings.COSTSWITCH_CURRENCY,
        }


class SummaryView(CostAnalysisView):
    """Totals of the range: requests, successes, tokens in/out, cost, average costs."""

    @extend_schema(parameters=[RangeQuerySerializer], responses={200: SummarySerializer})
    def get(self, request):
        params = self.params(request)
        figures = spend_summary(principal=principal_from_request(request), query=self.query(request, params))
        return Response({**self.envelope(params), **figures})


class BreakdownView(CostAnalysisView):
    group_by: str | None = None
    query_serializer = GroupQuerySerializer

    def get(self, request):
        params = self.params(request)
        group_by = self.group_by or params["groupBy"]
        rows = spend_breakdown(
            principal=principal_from_request(request), query=self.query(request, params), group_by=group_by
        )
        return Response({**self.envelope(params), "group_by": group_by, "results": rows})


class ByModelView(BreakdownView):
    """Figures per model, dearest first."""

    group_by = "model"
    query_serializer = RangeQuerySerializer

    @extend_schema(parameters=[RangeQuerySerializer], responses={200: BreakdownSerializer})
    def get(self, request):
        return super().get(request)


class ByProviderView(BreakdownView):
    """Figures per provider, dearest first."""

    group_by = "provider"
    query_serializer = RangeQuerySerializer

    @extend_schema(parameters=[RangeQuerySerializer], responses={200: BreakdownSerializer})
    def get(self, request):
        return super().get(request)


class ByScopeView(BreakdownView):
    """Figures per team (default), user, API key, project, agent, conversation, task type, tag..."""

    @extend_schema(parameters=[GroupQuerySerializer], responses={200: BreakdownSerializer})
    def get(self, request):
        return super().get(request)


class TrendsView(CostAnalysisView):
    """A series per day, week or month in the organization's time zone; empty buckets are zeros."""

    query_serializer = TrendQuerySerializer

    @extend_schema(parameters=[TrendQuerySerializer], responses={200: TrendSerializer})
    def get(self, request):
        params = self.params(request)
        principal = principal_from_request(request)
        rows = spend_trend(
            principal=principal, query=self.query(request, params), interval=params["interval"]
        )
        return Response(
            {
                **self.envelope(params),
                "interval": params["interval"],
                "time_zone": principal.organization.timezone,
                "results": rows,
            }
        )


class ForecastView(CostAnalysisView):
    """Per visible budget: projected period total with a 95% interval, and when the limit is reached."""

    query_serializer = ForecastQuerySerializer

    @extend_schema(parameters=[ForecastQuerySerializer], responses={200: ForecastSerializer})
    def get(self, request):
        params = self.params(request)
        principal = principal_from_request(request)
        scope_type, scope_id = _scope(params.get("scope"))
        if scope_type == ScopeType.ORGANIZATION and scope_id is None:
            scope_id = principal.organization.pk
        now = timezone.now()
        results = forecasts_for_principal(
            principal=principal,
            now=now,
            scope_type=scope_type,
            scope_id=scope_id,
            budget_id=params.get("budget"),
        )
        return Response({"generated_at": now, "results": results})


class SavingsView(CostAnalysisView):
    """What switching saved on settled requests, per period (and team or model), with success rates."""

    query_serializer = SavingsQuerySerializer

    @extend_schema(parameters=[SavingsQuerySerializer], responses={200: SavingsSerializer})
    def get(self, request):
        params = self.params(request)
        report = savings_report(
            principal=principal_from_request(request),
            query=self.query(request, params),
            interval=params["interval"],
            group_by=params.get("groupBy"),
        )
        rows = report.get("groups", report["series"])
        return Response({**self.envelope(params), "interval": params["interval"], **report, "results": rows})


class RecommendationsView(CostAnalysisView):
    """Ranked: budgets about to run out, then cheaper comparable models by expected monthly saving."""

    query_serializer = RecommendationsQuerySerializer

    @extend_schema(
        parameters=[RecommendationsQuerySerializer],
        responses={200: OpenApiResponse(RecommendationListSerializer)},
    )
    def get(self, request):
        self.params(request)
        now = timezone.now()
        results = recommendations_for_principal(
            principal=principal_from_request(request), now=now, currency=settings.COSTSWITCH_CURRENCY
        )
        return Response({"generated_at": now, "results": results})


urlpatterns = [
    path("cost-analysis/summary", SummaryView.as_view(), name="cost-analysis-summary"),
    path("cost-analysis/by-model", ByModelView.as_view(), name="cost-analysis-by-model"),
    path("cost-analysis/by-provider", ByProviderView.as_view(), name="cost-analysis-by-provider"),
    path("cost-analysis/by-scope", ByScopeView.as_view(), name="cost-analysis-by-scope"),
    path("cost-analysis/trends", TrendsView.as_view(), name="cost-analysis-trends"),
    path("cost-analysis/forecast", ForecastView.as_view(), name="cost-analysis-forecast"),
    path("cost-analysis/savings", SavingsView.as_view(), name="cost-analysis-savings"),
    path(
        "cost-analysis/recommendations", RecommendationsView.as_view(), name="cost-analysis-recommendations"
    ),
]
