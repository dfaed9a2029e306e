from decimal import Decimal

from django.conf import settings
from rest_framework import serializers

from budgets.choices import CarryOver, PeriodKind, ScopeType, ThresholdAction, UsageOutcome
from budgets.models import Alert, Budget, Reservation, UsageRecord
from budgets.services.budgets import ThresholdSpec
from costswitch.api.serializers import MoneyField, StrictFieldsMixin

MAX_ID_LENGTH = 200


class AlertInputSerializer(StrictFieldsMixin, serializers.Serializer):
    threshold = serializers.DecimalField(
        max_digits=6, decimal_places=2, min_value=Decimal("0.01"), max_value=Decimal(1000)
    )
    actions = serializers.ListField(
        child=serializers.ChoiceField(choices=ThresholdAction.choices), allow_empty=False, max_length=10
    )


def _threshold_specs(alerts: list[dict] | None) -> list[ThresholdSpec] | None:
    if alerts is None:
        return None
    percents = [alert["threshold"] for alert in alerts]
    if len(set(percents)) != len(percents):
        raise serializers.ValidationError({"alerts": ["Each threshold may appear once."]})
    return [ThresholdSpec(a["threshold"], tuple(dict.fromkeys(a["actions"]))) for a in alerts]


class BudgetInputSerializer(StrictFieldsMixin, serializers.Serializer):
    """The seed's `POST /api/v1/budgets` body: thresholds are called `alerts` there."""

    name = serializers.CharField(max_length=200)
    scope_type = serializers.ChoiceField(choices=ScopeType.choices)
    scope_id = serializers.IntegerField(min_value=1)
    limit = MoneyField()
    period = serializers.ChoiceField(choices=PeriodKind.choices, default=PeriodKind.MONTHLY)
    currency = serializers.CharField(max_length=3, required=False)
    start_date = serializers.DateTimeField(required=False)
    end_date = serializers.DateTimeField(required=False, allow_null=True)
    alerts = AlertInputSerializer(many=True, required=False, max_length=20)
    restricted_models = serializers.ListField(
        child=serializers.CharField(max_length=200), required=False, max_length=500
    )
    max_cost_per_request = MoneyField(required=False, allow_null=True)
    carry_over = serializers.ChoiceField(choices=CarryOver.choices, default=CarryOver.NONE)
    carry_over_cap = MoneyField(required=False, allow_null=True)

    def validate(self, attrs):
        attrs["thresholds"] = _threshold_specs(attrs.pop("alerts", None))
        return attrs


class BudgetUpdateSerializer(StrictFieldsMixin, serializers.Serializer):
    name = serializers.CharField(max_length=200, required=False)
    limit = MoneyField(required=False)
    end_date = serializers.DateTimeField(required=False, allow_null=True)
    alerts = AlertInputSerializer(many=True, required=False, max_length=20)
    restricted_models = serializers.ListField(
        child=serializers.CharField(max_length=200), required=False, max_length=500
    )
    max_cost_per_request = MoneyField(required=False, allow_null=True)
    carry_over = serializers.ChoiceField(choices=CarryOver.choices, required=False)
    carry_over_cap = MoneyField(required=False, allow_null=True)
    is_active = serializers.BooleanField(required=False)

    def validate(self, attrs):
        attrs["thresholds"] = _threshold_specs(attrs.pop("alerts", None))
        if "end_date" in attrs:
            attrs["ends_at"] = attrs.pop("end_date")
        return attrs


class BudgetOutputSerializer(serializers.ModelSerializer):
    scope_id = serializers.IntegerField()
    scope_name = serializers.CharField()
    start_date = serializers.DateTimeField(source="starts_at")
    end_date = serializers.DateTimeField(source="ends_at")
    alerts = serializers.SerializerMethodField()

    class Meta:
        model = Budget
        fields = [
            "id",
            "name",
            "scope_type",
            "scope_id",
            "scope_name",
            "period",
            "limit",
            "currency",
            "start_date",
            "end_date",
            "alerts",
            "restricted_models",
            "max_cost_per_request",
            "carry_over",
            "carry_over_cap",
            "is_active",
            "created_at",
            "updated_at",
        ]

    def get_alerts(self, budget: Budget) -> list[dict]:
        return [{"threshold": t.percent, "actions": t.actions} for t in budget.thresholds.all()]


class BudgetStatusSerializer(serializers.Serializer):
    """The seed's budget status contract (seed 000), plus reserved and the period bounds."""

    id = serializers.IntegerField(source="budget.pk")  # seed 001 names it `id`, seed 000 `budgetId`
    budget_id = serializers.IntegerField(source="budget.pk")
    name = serializers.CharField(source="budget.name")
    scope_type = serializers.CharField(source="budget.scope_type")
    scope_id = serializers.IntegerField(source="budget.scope_id")
    period = serializers.CharField(source="budget.period")
    period_start = serializers.DateTimeField()
    period_end = serializers.DateTimeField()
    current_amount = serializers.DecimalField(max_digits=20, decimal_places=9)
    current_spend = serializers.DecimalField(max_digits=20, decimal_places=9, source="current_amount")
    reserved = serializers.DecimalField(max_digits=20, decimal_places=9)
    limit = serializers.DecimalField(max_digits=20, decimal_places=9)
    currency = serializers.CharField(source="budget.currency")
    percent_used = serializers.DecimalField(max_digits=12, decimal_places=2)
    percent_committed = serializers.DecimalField(max_digits=12, decimal_places=2)
    remaining = serializers.DecimalField(max_digits=21, decimal_places=9)
    days_remaining = serializers.IntegerField()
    burn_rate = serializers.DecimalField(max_digits=20, decimal_places=9)
    projected_total = serializers.DecimalField(max_digits=21, decimal_places=9)
    status = serializers.CharField()
    active_alerts = serializers.ListField(child=serializers.DictField())
    cost_restrictions = serializers.DictField()
    last_updated = serializers.DateTimeField()


class ScopeStatusSerializer(serializers.Serializer):
    scope_type = serializers.CharField()
    scope_id = serializers.IntegerField()
    budgets = BudgetStatusSerializer(many=True)
    aggregate_status = serializers.CharField()
    cost_restrictions = serializers.DictField()


class UsageDetailsSerializer(StrictFieldsMixin, serializers.Serializer):
    """What a call cost and what it was about; shared by direct reports and reservation settles."""

    cost = MoneyField()
    model = serializers.CharField(max_length=200, required=False, default="")
    provider = serializers.CharField(max_length=100, required=False, default="")
    input_tokens = serializers.IntegerField(min_value=0, max_value=2**31 - 1, default=0)
    output_tokens = serializers.IntegerField(min_value=0, max_value=2**31 - 1, default=0)
    cached_input_tokens = serializers.IntegerField(min_value=0, max_value=2**31 - 1, default=0)
    task_type = serializers.CharField(max_length=50, required=False, default="")
    project = serializers.CharField(max_length=200, required=False, default="")
    agent = serializers.CharField(max_length=200, required=False, default="")
    conversation_id = serializers.CharField(max_length=200, required=False, default="")
    tags = serializers.ListField(child=serializers.CharField(max_length=100), required=False, max_length=50)
    metadata = serializers.DictField(required=False)
    outcome = serializers.ChoiceField(choices=UsageOutcome.choices, required=False, default="")
    rating = serializers.IntegerField(min_value=1, max_value=5, required=False, allow_null=True, default=None)


class SettleInputSerializer(UsageDetailsSerializer):
    pass


class UsageInputSerializer(UsageDetailsSerializer):
    request_id = serializers.CharField(max_length=MAX_ID_LENGTH)
    model = serializers.CharField(max_length=200)
    occurred_at = serializers.DateTimeField(required=False)
    team_id = serializers.IntegerField(required=False, min_value=1)
    user_id = serializers.IntegerField(required=False, min_value=1)
    currency = serializers.CharField(max_length=3, required=False)

    def validate_currency(self, value: str) -> str:
        if value != settings.COSTSWITCH_CURRENCY:
            raise serializers.ValidationError(f"Costs are recorded in {settings.COSTSWITCH_CURRENCY}.")
        return value


class UsageBatchInputSerializer(StrictFieldsMixin, serializers.Serializer):
    items = UsageInputSerializer(many=True, allow_empty=False)

    def validate_items(self, items):
        limit = settings.COSTSWITCH_MAX_BATCH_SIZE
        if len(items) > limit:
            raise serializers.ValidationError(f"A batch holds at most {limit} items, got {len(items)}.")
        return items


class UsageOutputSerializer(serializers.ModelSerializer):
    team_id = serializers.IntegerField()
    user_id = serializers.IntegerField()
    reservation_id = serializers.IntegerField()

    class Meta:
        model = UsageRecord
        fields = [
            "id",
            "request_id",
            "source",
            "model",
            "provider",
            "input_tokens",
            "output_tokens",
            "cached_input_tokens",
            "cost",
            "currency",
            "task_type",
            "project",
            "agent",
            "conversation_id",
            "tags",
            "metadata",
            "outcome",
            "rating",
            "team_id",
            "user_id",
            "reservation_id",
            "occurred_at",
            "recorded_at",
        ]


class AuthorizeInputSerializer(StrictFieldsMixin, serializers.Serializer):
    request_id = serializers.CharField(max_length=MAX_ID_LENGTH)
    amount = MoneyField()
    model = serializers.CharField(max_length=200, required=False, default="")
    ttl_seconds = serializers.IntegerField(min_value=1, max_value=86400, required=False)
    metadata = serializers.DictField(required=False)
    team_id = serializers.IntegerField(required=False, min_value=1)
    user_id = serializers.IntegerField(required=False, min_value=1)


class ReservationOutputSerializer(serializers.ModelSerializer):
    reservation_id = serializers.IntegerField(source="pk")
    team_id = serializers.IntegerField()
    user_id = serializers.IntegerField()
    holds = serializers.SerializerMethodField()

    class Meta:
        model = Reservation
        fields = [
            "reservation_id",
            "request_id",
            "state",
            "amount",
            "model",
            "team_id",
            "user_id",
            "metadata",
            "created_at",
            "expires_at",
            "finished_at",
            "holds",
        ]

    def get_holds(self, reservation: Reservation) -> list[dict]:
        return [
            {"budget_id": hold.period.budget_id, "period_id": hold.period_id, "amount": hold.amount}
            for hold in reservation.holds.all()
        ]


class BudgetAlertOutputSerializer(serializers.ModelSerializer):
    """A raised alert (GET /api/v1/alerts); not the thresholds that budgets call `alerts` in input."""

    budget_id = serializers.IntegerField()
    budget_name = serializers.CharField(source="budget.name")
    period_id = serializers.IntegerField(allow_null=True)
    acknowledged = serializers.SerializerMethodField()
    acknowledged_by = serializers.SlugRelatedField(slug_field="username", read_only=True)

    class Meta:
        model = Alert
        fields = [
            "id",
            "budget_id",
            "budget_name",
            "period_id",
            "kind",
            "threshold",
            "percent_used",
            "message",
            "data",
            "created_at",
            "acknowledged",
            "acknowledged_at",
            "acknowledged_by",
        ]

    def get_acknowledged(self, alert: Alert) -> bool:
        return alert.acknowledged_at is not None
